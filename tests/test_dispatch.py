"""The dispatcher: pure choices from a table, explain, autotune, forced algorithms."""
import numpy as np
import pytest

import cnnkern as ck
from cnnkern import dispatch
from cnnkern.params import ConvParams
from cnnkern.suites import SUITES


def P(x, w, **kw):
    return ConvParams.build("conv", len(x) - 2, x, w, dtype=np.float32, **kw)


# (input shape, weight shape, params) -> what the CPU rules pick; measured fastest on the
# 2-core machine in the calibration runs of docs/dispatch.md
TABLE = [
    ((1, 64, 56, 56), (64, 64, 1, 1), {}, "im2col"),                    # 1x1 is one GEMM
    ((1, 64, 56, 56), (64, 64, 3, 3), dict(padding=1), "im2col"),
    ((1, 96, 56, 56), (96, 1, 7, 7), dict(padding=3, groups=96), "fft"),  # ConvNeXt dw 7x7
    ((1, 16, 16384), (16, 16, 255), dict(padding=127), "fft"),           # long 1-D kernel
    ((1, 1, 65536), (64, 1, 1024), {}, "fft"),
    ((1, 512, 33, 33), (256, 512, 3, 3), dict(padding=6, dilation=6), "im2col"),
    ((1, 3, 224, 224), (96, 3, 11, 11), dict(stride=4, padding=2), "im2col"),
]


@pytest.mark.parametrize("xs,ws,kw,expected", TABLE)
def test_rule_table(xs, ws, kw, expected):
    assert dispatch.select(P(xs, ws, **kw), "numpy") == expected


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


def test_explain_report(rng):
    x = rng.standard_normal((2, 8, 12, 12)).astype(np.float32)
    w = rng.standard_normal((8, 8, 3, 3)).astype(np.float32)
    e = ck.explain(x, w, stride=2, padding=1)
    text = str(e)
    assert "winograd_f4x4_3x3    cannot run: needs stride 1, got (2, 2)" in text
    assert f"choice: {e.choice}" in text
    assert e.choice in ck.supported_algorithms(x, w, 2, 1)
    assert e.choice == dispatch.select(P(x.shape, w.shape, stride=2, padding=1), "numpy")


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
