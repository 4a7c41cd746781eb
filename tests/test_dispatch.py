"""The dispatcher: pure choices from a table, explain, autotune, forced algorithms."""
import re

import numpy as np
import pytest

import cnnkern as ck
from cnnkern import dispatch, registry
from cnnkern.params import ConvParams
from cnnkern.suites import SUITES


def P(x, w, **kw):
    return ConvParams.build("conv", len(x) - 2, x, w, dtype=np.float32, **kw)


# (input shape, weight shape, params) -> what the CPU rules pick and the runner-up the
# reason names; measured fastest (or within 10%) on the 2-core machine in the runs of
# docs/dispatch.md
TABLE = [
    ((1, 64, 56, 56), (64, 64, 1, 1), {}, "im2col", None),           # 1x1 is one GEMM
    ((1, 64, 56, 56), (64, 64, 3, 3), dict(padding=1), "im2col", "tap_gemm"),
    ((1, 96, 56, 56), (96, 1, 7, 7), dict(padding=3, groups=96), "fft", "im2col"),
    ((1, 128, 56, 56), (128, 1, 31, 31), dict(padding=15, groups=128), "fft", "im2col"),
    ((1, 16, 16384), (16, 16, 255), dict(padding=127), "fft", None),  # long 1-D kernel
    ((1, 1, 65536), (64, 1, 1024), {}, "fft", None),
    ((1, 16, 64), (16, 16, 3), dict(padding=1), "im2col", "winograd_f2_3"),
    # DeepLab's ASPP: 23% of the taps in the padding, which tap_gemm skips
    ((1, 512, 33, 33), (256, 512, 3, 3), dict(padding=6, dilation=6), "tap_gemm", None),
    ((1, 3, 224, 224), (96, 3, 11, 11), dict(stride=4, padding=2), "im2col", None),
    ((2, 8, 6, 6, 6), (8, 8, 3, 3, 3), dict(padding=1), "im2col", "fft"),
]


@pytest.mark.parametrize("xs,ws,kw,expected,runner_up", TABLE)
def test_rule_table(xs, ws, kw, expected, runner_up):
    p = P(xs, ws, **kw)
    assert dispatch.select(p, "numpy") == expected
    choice = dispatch.choose(dispatch.candidates(p, "numpy"))
    assert choice.name == expected and choice.why.startswith("lowest estimated time (")
    if runner_up:
        assert f"; next {runner_up} at " in choice.why


# The Numba backend's rules on the long 1-D suite layers (batch 1), where its FFT
# estimate (fitted, docs/dispatch.md) now ranks FFT as measured: 11.9 ms against
# implicit_gemm's 18.8 on k255, 14.8 against 37.5 on k1024, 11.9 against 2.4 on k31
NUMBA_TABLE = [
    ((1, 16, 16384), (16, 16, 255), dict(padding=127), "fft"),
    ((1, 1, 65536), (64, 1, 1024), {}, "fft"),
    ((1, 16, 16384), (16, 16, 31), dict(padding=15), "implicit_gemm"),
]


@pytest.mark.parametrize("xs,ws,kw,expected", NUMBA_TABLE)
def test_numba_rule_table(xs, ws, kw, expected):
    assert dispatch.select(P(xs, ws, **kw), "numba") == expected


def test_rule_with_weights_and_limits(rng):
    w = (rng.standard_normal((4, 1, 9, 1)) * rng.standard_normal((4, 1, 1, 9)))
    p = P((1, 4, 256, 256), w.shape, padding=4, groups=4)
    assert dispatch.select(p, "numpy", w) == "separable"        # rank-1 filters
    assert dispatch.select(p, "numpy") == "fft"                 # values unknown
    choice = dispatch.choose(dispatch.candidates(p, "numpy", w, workspace_limit=0))
    assert choice.name == "direct" and choice.excluded.name == "separable"
    assert "separable (estimated" in choice.why and "over the workspace limit" in choice.why


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_cached_auto_choice_matches_the_full_rules(backend, rng):
    """``auto_choice`` (the cached shape verdict, weight values read only where they
    could change the choice) against ``choose(candidates(...))`` on random calls; the
    same shape with rank-1 and full-rank weights, in both orders, with limits."""
    unsettled = 0
    for _ in range(12):
        c, k = int(rng.integers(1, 9)), int(rng.choice([1, 3, 5, 9]))
        groups = c if rng.random() < 0.5 else 1
        size = int(rng.integers(k, 3 * k + 40))
        full = rng.standard_normal((c, c // groups, k, k))
        rank1 = rng.standard_normal((c, c // groups, k, 1)) * \
            rng.standard_normal((c, c // groups, 1, k))
        p = P((int(rng.integers(1, 3)), c, size, size), full.shape, padding=k // 2,
              groups=groups)
        for limit in (None, 0, int(rng.integers(1, 1 << 20))):
            for w in ((full, rank1) if rng.random() < 0.5 else (rank1, full)):
                got = dispatch.auto_choice(p, backend, w, limit)
                want = dispatch.choose(dispatch.candidates(p, backend, w, limit))
                assert got.name == want.name
                if not dispatch._shape_verdict(p, backend, limit).settled:
                    unsettled += 1          # decided by the checks: the same account
                    assert got.why == want.why
                assert (got.excluded and got.excluded.name) == \
                    (want.excluded and want.excluded.name)
    assert unsettled    # the calls where the values decide were among them


def test_cached_verdict_follows_threads_and_the_registry(monkeypatch):
    p = P((1, 4, 64, 64), (4, 4, 3, 3), padding=1)
    before = dispatch.select(p, "numpy")
    saved = dispatch.estimate_seconds
    with monkeypatch.context() as m:
        m.setattr(dispatch, "estimate_seconds", lambda name, p, backend="numpy":
                  0.0 if name == "instant" else saved(name, p, backend))
        m.setitem(registry._ALGORITHMS[("conv", "numpy")], "instant",
                  registry.Algorithm("instant", "numpy", "conv", lambda *a: None))
        assert dispatch.select(p, "numpy") == "instant"
    assert dispatch.select(p, "numpy") == before
    threads = ck.get_num_threads()
    try:
        ck.set_num_threads(1)
        one = dispatch._shape_verdict(p, "numba", None)
        ck.set_num_threads(2)
        assert dispatch._shape_verdict(p, "numba", None) is not one
    finally:
        ck.set_num_threads(threads)


def test_select_is_pure_and_never_runs_anything():
    from cnnkern import registry

    def boom(*args, **kwargs):
        raise AssertionError("select ran an algorithm")
    algs = registry.algorithms("conv", "numpy")
    saved = [a.run for a in algs]
    for a in algs:
        object.__setattr__(a, "run", boom)       # records are frozen dataclasses
    try:
        p = P((1, 8, 16, 16), (8, 8, 3, 3), padding=1)
        assert dispatch.select(p, "numpy") == dispatch.select(p, "numpy")
    finally:
        for a, run in zip(algs, saved):
            object.__setattr__(a, "run", run)


def test_direct_is_never_auto_chosen_when_another_can_run():
    for suite in SUITES.values():
        for layer in suite:
            xs, ws = layer.shapes(1)
            assert dispatch.select(P(xs, ws, **layer.kwargs()), "numpy") != "direct"


def test_separable_needs_weights_and_is_considered_with_them(rng):
    x = rng.standard_normal((1, 4, 64, 64))
    w = rng.standard_normal((4, 1, 9, 1)) * rng.standard_normal((4, 1, 1, 9))
    assert "separable" in ck.supported_algorithms(x, w, padding=4, groups=4)
    e = ck.explain(x, w, padding=4, groups=4)
    sep = next(c for c in e.candidates if c.name == "separable")
    assert sep.reason is None and sep.estimate_s > 0
    p = P(x.shape, w.shape, padding=4, groups=4)
    assert "needs the weight values" in next(
        c.reason for c in dispatch.candidates(p, "numpy") if c.name == "separable")


def test_separable_refuses_kernels_with_one_long_axis(rng):
    """A 1x1 or 1xk filter is rank 1 trivially, and one pass is already the whole
    filter: separable must refuse it before the weight check (which, on 2048x512 1x1
    weights, built ~100 MiB of float64 temporaries per call)."""
    x = rng.standard_normal((1, 8, 9, 9))
    for kernel in ((1, 1), (1, 7), (5, 1)):
        w = rng.standard_normal((4, 8) + kernel)
        assert "separable" not in ck.supported_algorithms(x, w)
        reason = next(c.reason for c in ck.explain(x, w).candidates
                      if c.name == "separable")
        assert "at least two kernel axes longer than 1" in reason


def _family_calls(rng):
    """A call each numpy algorithm can run."""
    rank1 = rng.standard_normal((2, 1, 5, 1)) * rng.standard_normal((2, 1, 1, 5))
    return {
        "direct": ((1, 2, 9, 9), rng.standard_normal((2, 2, 3, 3)), dict(stride=2)),
        "im2col": ((1, 2, 9, 9), rng.standard_normal((2, 2, 3, 3)), dict(stride=2)),
        "fft": ((1, 2, 20, 20), rng.standard_normal((2, 2, 9, 9)), {}),
        "winograd_f2x2_3x3": ((1, 2, 8, 8), rng.standard_normal((2, 2, 3, 3)), {}),
        "winograd_f4x4_3x3": ((1, 2, 8, 8), rng.standard_normal((2, 2, 3, 3)), {}),
        "winograd_f2_3": ((1, 2, 8), rng.standard_normal((2, 2, 3)), {}),
        "winograd_f4_3": ((1, 2, 8), rng.standard_normal((2, 2, 3)), {}),
        "separable": ((1, 2, 12, 12), rank1, dict(groups=2)),
        "tap_gemm": ((1, 4, 9, 9), rng.standard_normal((4, 4, 3, 3)),
                     dict(padding=6, dilation=6)),
    }


def test_explain_covers_every_algorithm_family(rng):
    calls = _family_calls(rng)
    assert set(calls) == {a.name for a in registry.algorithms("conv", "numpy")}
    for name, (xs, w, kw) in calls.items():
        x = rng.standard_normal(xs)
        e = ck.explain(x, w, **kw)
        line = next(line for line in str(e).splitlines() if line.split()[:1] == [name])
        assert "estimated" in line and "MiB" in line, (name, line)
        assert name in ck.supported_algorithms(x, w, **kw)
        d = e.as_dict()
        assert d["choice"] == e.choice and d["source"] == "rules"
        cand = next(c for c in d["candidates"] if c["name"] == name)
        assert cand["reason"] is None and cand["estimate_s"] > 0
    # and each says why it cannot run a call outside its reach
    x = rng.standard_normal((1, 2, 9, 9))
    text = str(ck.explain(x, rng.standard_normal((2, 2, 4, 4)), stride=2))
    for name in ("winograd_f2x2_3x3", "winograd_f4x4_3x3", "winograd_f2_3",
                 "winograd_f4_3", "separable"):
        assert re.search(rf"{name}\s+cannot run: \S", text), name


def test_explain_report(rng):
    x = rng.standard_normal((2, 8, 12, 12)).astype(np.float32)
    w = rng.standard_normal((8, 8, 3, 3)).astype(np.float32)
    e = ck.explain(x, w, stride=2, padding=1)
    text = str(e)
    assert "winograd_f4x4_3x3    cannot run: needs stride 1, got (2, 2)" in text
    assert f"choice: {e.choice}" in text
    assert e.choice in ck.supported_algorithms(x, w, 2, 1)
    assert e.choice == dispatch.select(P(x.shape, w.shape, stride=2, padding=1),
                                       e.backend)


def test_explain_names_the_kernel_or_plan_that_would_run():
    """On the Numba backend, the depthwise kernel and the Winograd plan the algorithm
    would run for the call, as it chooses them when it runs."""
    pytest.importorskip("numba")
    from cnnkern.backends.numba import depthwise, winograd
    deep = (np.zeros((1, 512, 14, 14), np.float32), np.ones((512, 512, 3, 3), np.float32))
    e = ck.explain(*deep, padding=1, backend="numba")
    cand = {c.name: c for c in e.candidates}
    plan = winograd.plan_for(e.params, 2)
    assert plan == "channels"
    assert cand["winograd_f2x2_3x3"].variant == "channels plan"
    assert "workspace" in str(e) and ", channels plan" in str(e)
    assert cand["im2col"].variant == "windows columns"
    x, w = np.zeros((1, 16, 56, 56), np.float32), np.ones((16, 1, 3, 3), np.float32)
    e = ck.explain(x, w, padding=1, groups=16, backend="numba")
    dw = next(c for c in e.candidates if c.name == "depthwise")
    assert dw.variant == f"{depthwise.kernel_for(e.params)} kernel"
    assert e.as_dict()["candidates"][[c.name for c in e.candidates].index("depthwise")][
        "variant"] == dw.variant
    assert all(c.variant is None for c in ck.explain(
        x, w, padding=1, groups=16, backend="numpy").candidates if c.name != "im2col")


def test_explain_names_im2col_layout_on_both_cpu_backends(cpu_backend):
    """im2col (the NumPy code on both CPU backends, its windows filled by a compiled
    loop on the Numba one) says which column layout it would run where it has two: a
    tall one-wide output (a short row per copy) takes the wide one, a deep 3x3 layer
    the windows; few output channels under a 5x5 kernel the wide one only where the
    windows are copied tap by tap; a strided layer has only the windows."""
    from cnnkern.backends.numpy import im2col
    backend = cpu_backend
    filled = backend == "numba"
    narrow = (np.zeros((1, 16, 28, 28), np.float32), np.ones((8, 16, 5, 5), np.float32))
    deep = (np.zeros((1, 256, 14, 14), np.float32), np.ones((256, 256, 3, 3), np.float32))
    tall = (np.zeros((1, 64, 10000, 1), np.float32), np.ones((8, 64, 3, 1), np.float32))
    for (x, w), pad, stride, layout in (
            (tall, (1, 0), 1, "wide"), (deep, 2, 1, "windows"),
            (narrow, 2, 1, "windows" if filled else "wide"), (narrow, 2, 2, None)):
        e = ck.explain(x, w, padding=pad, stride=stride, backend=backend)
        cand = {c.name: c for c in e.candidates}
        assert cand["im2col"].variant == (layout and f"{layout} columns")
        assert im2col.layout_for(e.params, filled) == (layout or "windows")


def test_autotune_measures_once_and_is_correct(rng):
    x = rng.standard_normal((1, 4, 10, 10))
    w = rng.standard_normal((4, 4, 3, 3))
    ref = ck.conv2d(x, w, padding=1, algo="direct")
    y = ck.conv2d(x, w, padding=1, algo="autotune")
    np.testing.assert_allclose(y, ref, rtol=1e-10, atol=1e-12)
    e = ck.explain(x, w, padding=1)
    assert e.why == "measured fastest by autotune"
    measured = [c for c in e.candidates if c.measured_s is not None]
    assert len(measured) == len(ck.supported_algorithms(x, w, padding=1))
    assert e.choice == min(measured, key=lambda c: c.measured_s).name


def test_gpu_cost_model_prefers_implicit_gemm():
    """Measured on the H100 (docs/performance.md): implicit GEMM beat im2col + GEMM and
    direct on every ResNet-50 / VGG-16 layer."""
    for suite in ("resnet50", "vgg16"):
        for layer in SUITES[suite]:
            xs, ws = layer.shapes(32)
            p = P(xs, ws, **layer.kwargs())
            costs = {n: dispatch.estimate_seconds(n, p, "cuda")
                     for n in ("direct", "im2col", "implicit_gemm")}
            assert min(costs, key=costs.get) == "implicit_gemm"


def test_im2col_estimate_stays_positive_whatever_its_layout():
    """The wide layout scales im2col's column term; on a tall one-wide output (many
    short rows, where the windows layout's copy is dearest) the estimate stays at least
    the GEMM's time."""
    pytest.importorskip("numba")
    for xs, ws, pad in (((1, 64, 10000, 1), (8, 64, 3, 1), (1, 0)),
                        ((1, 16, 28, 28), (32, 16, 5, 5), 2)):
        p = ConvParams.build("conv2d", 2, xs, ws, padding=pad, dtype=np.float32)
        assert dispatch.im2col_layout(p) == "wide"
        assert dispatch.estimate_seconds("im2col", p, "numba") > \
            p.flops / dispatch.NUMBA_RATES["im2col_gemm"]
