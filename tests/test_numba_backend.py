"""What is particular to the Numba backend: the thread knob, the on-disk JIT cache, and
the chunk loops that bound its workspace (the algorithms themselves are checked against
the reference in test_algorithms, over both CPU backends)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("numba")

import cnnkern as ck  # noqa: E402
from cnnkern import threads  # noqa: E402
from helpers import rel_err  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def all_threads():
    yield
    ck.set_num_threads(None)


def reference(x, w, **kw):
    f64 = (lambda a: a.astype(np.float64))
    return ck.conv2d(f64(x), f64(w), backend="numpy", algo="direct", **kw)


def test_numba_is_the_default_for_numpy_arrays(rng):
    x = rng.standard_normal((1, 4, 8, 8)).astype(np.float32)
    w = rng.standard_normal((4, 1, 3, 3)).astype(np.float32)
    assert ck.explain(x, w, padding=1, groups=4).backend == "numba"
    assert "numba" in ck.available_backends()


@pytest.mark.parametrize("bad,exc,text", [
    ("2", TypeError, "expected n to be None or an int, but got '2'"),
    (True, TypeError, "expected n to be None or an int"),
    (0, ValueError,
     r"expected 1 <= n <= \d+ \(the CPUs this process may use\), but got n=0"),
    (10**6, ValueError, r"expected 1 <= n <= \d+ .*but got n=1000000"),
])
def test_set_num_threads_rejects_bad_values(bad, exc, text):
    with pytest.raises(exc, match="set_num_threads: " + text):
        ck.set_num_threads(bad)


def test_one_knob_sets_numba_and_fft_threads(rng):
    import numba
    ck.set_num_threads(1)
    assert ck.get_num_threads() == 1
    x = rng.standard_normal((2, 6, 12, 12)).astype(np.float32)
    w = rng.standard_normal((6, 1, 3, 3)).astype(np.float32)
    y = ck.conv2d(x, w, padding=1, groups=6, algo="depthwise")
    assert numba.get_num_threads() == 1
    assert rel_err(y, reference(x, w, padding=1, groups=6)) < 2e-5
    ck.set_num_threads(None)
    assert ck.get_num_threads() == threads.cpu_count()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="OpenBLAS found via /proc")
@pytest.mark.parametrize("preset", [None, "300000"])
def test_numba_threads_start_without_leaving_a_trace(preset):
    """The spin count is in the environment only while Numba loads OpenMP, and one
    the user set is left alone."""
    import os
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k not in threads.WAIT_VARIABLES}
    root = os.path.dirname(os.path.dirname(os.path.abspath(ck.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    if preset:
        env["GOMP_SPINCOUNT"] = preset
    code = ("import os, cnnkern.backends.numba, numba.np.ufunc.parallel as par; "
            "print(par._is_initialized, os.environ.get('GOMP_SPINCOUNT'))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["True", str(preset)]


def test_blas_threads_are_reached():
    assert threads.blas_threads_controlled()


@pytest.mark.parametrize("algo,kw,module", [
    ("winograd_f4x4_3x3", dict(padding=1), "winograd"),
    ("winograd_f2x2_3x3", dict(padding=(2, 0), groups=2), "winograd"),
    ("depthwise", dict(padding=2, groups=6, stride=2), "depthwise"),
    ("depthwise", dict(padding=1, groups=6, padding_mode="reflect"), "depthwise"),
    ("depthwise", dict(padding=2, groups=6, dilation=2), "depthwise"),
    ("im2col_blocks", dict(padding=2, stride=(2, 1)), "im2col_blocks"),
    ("im2col_blocks", dict(padding=1, groups=2, padding_mode="circular"), "im2col_blocks"),
    ("im2col_blocks", dict(padding=(0, 3), dilation=(1, 2)), "im2col_blocks"),
])
def test_chunk_loops_cover_every_output(algo, kw, module, monkeypatch, rng):
    """Blocks of one tile row / one image / one output row: every block boundary is
    crossed."""
    import importlib
    mod = importlib.import_module(f"cnnkern.backends.numba.{module}")
    limit = {"winograd": "ITEM_BYTES", "im2col_blocks": "BLOCK_BYTES"}.get(module,
                                                                          "CHUNK_BYTES")
    monkeypatch.setattr(mod, limit, 1)
    x = rng.standard_normal((3, 6, 13, 11)).astype(np.float32)
    cig = 1 if kw.get("groups") == 6 else 6 // kw.get("groups", 1)
    w = rng.standard_normal((6, cig, 3, 3)).astype(np.float32)
    y = ck.conv2d(x, w, algo=algo, **kw)
    assert rel_err(y, reference(x, w, **kw)) < 1e-4


IGEMM_CASES = [   # (input shape, weight shape, kwargs): every tile, block and edge path
    ((2, 19, 23, 21), (70, 19, 3, 3), dict(padding=1)),        # 64 + 6 channels, K 171
    ((1, 6, 40, 37), (24, 3, 5, 5), dict(padding=2, groups=2)),   # 12x32 tiles
    ((3, 3, 61, 59), (64, 3, 7, 7), dict(stride=2, padding=3)),   # a stem
    ((1, 32, 17, 17), (130, 32, 1, 1), {}),                       # 3 blocks, 2 idle lanes
    ((2, 16, 29, 31), (48, 16, 3, 3), dict(padding=6, dilation=(6, 3),
                                           padding_mode="reflect")),
    ((2, 8, 300), (40, 8, 9), dict(padding=4, stride=3)),          # 1-D
    ((1, 4, 9, 10, 11), (33, 4, 3, 2, 3), dict(padding=1, stride=(1, 2, 1),
                                               padding_mode="circular")),
]


@pytest.mark.parametrize("xs,ws,kw", IGEMM_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_implicit_gemm_matches_the_reference(xs, ws, kw, dtype, rng, monkeypatch):
    """Whole 16x16 transposes and element-wise edges in the weight packing and the
    output write, blocks of fewer positions than a tile, 1-3 dimensions, a bias."""
    from cnnkern.backends.numba import implicit_gemm
    for per in (implicit_gemm.MAX_POSITIONS, 12):
        monkeypatch.setattr(implicit_gemm, "MAX_POSITIONS", per)
        x = rng.standard_normal(xs).astype(dtype)
        w = rng.standard_normal(ws).astype(dtype)
        b = rng.standard_normal(ws[0]).astype(dtype)
        fn = {3: ck.conv1d, 4: ck.conv2d, 5: ck.conv3d}[len(xs)]
        y = fn(x, w, b, algo="implicit_gemm", **kw)
        ref = fn(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                 algo="direct", backend="numpy", **kw)
        assert y.dtype == dtype and y.shape == ref.shape
        assert rel_err(y, ref) < (2e-3 if dtype == np.float16 else 1e-5)


def test_implicit_gemm_refuses_float64():
    x, w = np.zeros((1, 2, 5, 5)), np.zeros((2, 2, 3, 3))
    with pytest.raises(ValueError, match="implicit_gemm.*float32 vectors only"):
        ck.conv2d(x, w, algo="implicit_gemm")


ROW_CASES = [      # (nd, input size, kernel, stride, padding, dilation, padding_mode)
    (2, (13, 11), (3, 3), 1, 1, 1, "zeros"),
    (2, (9, 15), (5, 5), (1, 2), 2, 1, "zeros"),
    (2, (10, 10), (7, 7), 1, 3, (2, 1), "reflect"),
    (2, (8, 3), (3, 3), (2, 2), 1, 1, "replicate"),         # rows narrower than 4 pixels
    (2, (7, 7), (7, 7), 2, 3, 1, "circular"),
    (1, (23,), (5,), 2, 2, 1, "zeros"),
    (3, (5, 6, 9), (3, 2, 3), (2, 1, 1), 1, 1, "zeros"),
]


@pytest.mark.parametrize("case", ROW_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_depthwise_row_kernel_matches_the_reference(case, dtype, rng, monkeypatch):
    """The row kernel (kernel width and stride as compile-time constants, four pixels at
    a time) on every row remainder, both strides, every padding mode, 1-3 dimensions."""
    from cnnkern.backends.numba import depthwise
    from cnnkern.params import ConvParams
    monkeypatch.setattr(depthwise, "kernel_for", lambda p: "rows")
    nd, size, k, stride, padding, dilation, mode = case
    c = 5
    x = rng.standard_normal((2, c) + size).astype(dtype)
    w = rng.standard_normal((c, 1) + k).astype(dtype)
    b = rng.standard_normal(c).astype(dtype)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=c,
              padding_mode=mode)
    p = ConvParams.build(f"conv{nd}d", nd, x.shape, w.shape, dtype=dtype, **kw)
    assert depthwise.uses_row_kernel(p)
    fn = getattr(ck, f"conv{nd}d")
    y = fn(x, w, b, algo="depthwise", **kw)
    ref = fn(*(a.astype(np.float64) for a in (x, w, b)), algo="direct", backend="numpy",
             **kw)
    assert y.dtype == dtype
    assert rel_err(y, ref) < (1e-5 if dtype == np.float32 else 1e-12)


def random_depthwise_case(rng):
    """A depthwise call of 1-3 dimensions with every parameter drawn: sizes, strides
    1-3, dilations 1-2, channel multipliers 1-3, any padding mode and amount."""
    nd = int(rng.integers(1, 4))
    while True:
        size = tuple(int(v) for v in rng.integers(1, 20, nd))
        k = tuple(int(v) for v in rng.integers(1, 6, nd))
        dil = tuple(int(v) for v in rng.integers(1, 3, nd))
        mode = str(rng.choice(["zeros", "reflect", "replicate", "circular"]))
        top = [n - 1 if mode == "reflect" else n for n in size]
        pad = tuple(int(rng.integers(0, t + 1 if mode != "zeros" else 5)) for t in top)
        if all(n + 2 * q >= d * (j - 1) + 1 for n, q, d, j in zip(size, pad, dil, k)):
            break
    c, mult = int(rng.integers(1, 6)), int(rng.integers(1, 4))
    kw = dict(stride=tuple(int(v) for v in rng.integers(1, 4, nd)), padding=pad,
              dilation=dil, groups=c, padding_mode=mode)
    return nd, (int(rng.integers(1, 4)), c) + size, (c * mult, 1) + k, kw


@pytest.mark.parametrize("kernel", ["planes", "taps", "blocks"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_depthwise_kernels_match_the_reference_on_random_calls(kernel, dtype, rng,
                                                             monkeypatch):
    """The plane kernel (stride phases, flat passes), the tap-list kernel and the
    channel-block kernel (one output per channel; channel counts that leave a partial
    block), forced, on 40 random calls each; the plane kernel's buffers start as NaN,
    so a position its fill misses shows up in the output."""
    from cnnkern.backends.numba import depthwise, depthwise_blocks
    monkeypatch.setattr(depthwise, "kernel_for", lambda p: kernel)
    monkeypatch.setattr(depthwise_blocks, "MAX_LANES", 16)     # several blocks a call
    for _ in range(40):
        nd, xs, ws, kw = random_depthwise_case(rng)
        if kernel == "blocks":
            xs = (xs[0], int(rng.integers(1, 40))) + xs[2:]
            ws = (xs[1], 1) + ws[2:]
            kw["groups"] = xs[1]
        x, w = rng.standard_normal(xs).astype(dtype), rng.standard_normal(ws).astype(dtype)
        b = rng.standard_normal(ws[0]).astype(dtype)
        fn = getattr(ck, f"conv{nd}d")
        y = fn(x, w, b, algo="depthwise", **kw)
        ref = fn(*(a.astype(np.float64) for a in (x, w, b)), algo="direct",
                 backend="numpy", **kw)
        assert y.dtype == dtype
        assert rel_err(y, ref) < (1e-5 if dtype == np.float32 else 1e-12), (xs, ws, kw)


#: Kernel widths for the flat-row kernel's test: each is a compilation (2-3 s), so a
#: few, with groups of 16 and a tail (20, 35) among them.
FLAT_WIDTHS = (1, 2, 3, 5, 7, 13, 20, 35)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_depthwise_flat_kernel_matches_the_reference(dtype, rng, monkeypatch):
    """The flat-row kernel, forced, on 40 random stride-1 zero-padded calls of 1-2
    dimensions: any size, padding (asymmetric too), dilation and multiplier, and
    kernels up to 35 wide, so that rows of taps split into unrolled groups and a tail,
    and kernels larger than the image, whose rows in the padding are skipped."""
    from cnnkern.backends.numba import depthwise, depthwise_flat
    from cnnkern.params import ConvParams
    monkeypatch.setattr(depthwise, "kernel_for", lambda p: "flat")
    seen = set()
    for case in range(40):
        nd = int(rng.integers(1, 3))
        while True:
            size = tuple(int(v) for v in rng.integers(1, 24, nd))
            k = tuple(int(v) for v in rng.integers(1, 8, nd - 1)) + \
                (int(rng.choice(FLAT_WIDTHS)),)
            dil = tuple(int(v) for v in rng.integers(1, 3, nd))
            pad = tuple((int(rng.integers(0, 2 + d * (j - 1))),
                         int(rng.integers(0, 2 + d * (j - 1)))) for d, j in zip(dil, k))
            if all(n + a + b >= d * (j - 1) + 1
                   for n, (a, b), d, j in zip(size, pad, dil, k)):
                break
        c, mult = int(rng.integers(1, 6)), int(rng.integers(1, 4))
        x = rng.standard_normal((int(rng.integers(1, 4)), c) + size).astype(dtype)
        w = rng.standard_normal((c * mult, 1) + k).astype(dtype)
        b = rng.standard_normal(c * mult).astype(dtype)
        kw = dict(padding=pad, dilation=dil, groups=c)
        p = ConvParams.build(f"conv{nd}d", nd, x.shape, w.shape, dtype=dtype, **kw)
        assert depthwise_flat.applies(p)
        _, _, g, tail = depthwise_flat.plan(p)
        seen.add((k[-1] > depthwise_flat.GROUP, tail > 0))
        fn = getattr(ck, f"conv{nd}d")
        y = fn(x, w, b, algo="depthwise", **kw)
        ref = fn(*(a.astype(np.float64) for a in (x, w, b)), algo="direct",
                 backend="numpy", **kw)
        assert y.dtype == dtype
        assert rel_err(y, ref) < (1e-5 if dtype == np.float32 else 1e-12), (x.shape, k, kw)
    assert (True, True) in seen and (False, False) in seen


def test_depthwise_flat_kernel_takes_stride_1_zero_padding_only():
    """Strides, other padding modes and 3-D calls go to the other kernels."""
    from cnnkern.backends.numba.depthwise_flat import applies
    from cnnkern.params import ConvParams

    def params(nd=2, **kw):
        return ConvParams.build(f"conv{nd}d", nd, (1, 4) + (9,) * nd, (4, 1) + (3,) * nd,
                                groups=4, dtype=np.float32, **kw)
    assert applies(params(padding=1)) and applies(params(nd=1, padding=2, dilation=2))
    assert not applies(params(padding=1, stride=2))
    assert not applies(params(padding=1, padding_mode="reflect"))
    assert not applies(params(nd=3, padding=1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_depthwise_planes_copies_only_the_inside_at_stride_1(dtype, rng, monkeypatch):
    """Under zero padding at stride 1 each part of the plane kernel fills its buffer's
    padding with the first plane and copies only the inside of the others: 20 random
    calls (1-3 dimensions, any dilation, multiplier and padding amount, "same" with
    even kernels for asymmetric padding) of 8-92 planes, up to 12 a part, buffers
    poisoned with NaN; and four with 3x3 kernels, which run as one nine-tap pass."""
    from cnnkern.backends.numba import depthwise, depthwise_planes
    from cnnkern.params import ConvParams
    monkeypatch.setattr(depthwise, "kernel_for", lambda p: "planes")
    for case in range(24):
        nd = 2 if case >= 20 else int(rng.integers(1, 4))
        size = tuple(int(v) for v in rng.integers(1, 16, nd))
        k = (3, 3) if case >= 20 else tuple(int(v) for v in rng.integers(1, 6, nd))
        dil = tuple(int(v) for v in rng.integers(1, 3, nd))
        pad = "same" if case % 3 == 0 else \
            tuple(int(d * (j - 1) + rng.integers(0, 3)) // 2 for d, j in zip(dil, k))
        c, mult = int(rng.integers(4, 24)), int(rng.integers(1, 3))
        kw = dict(padding=pad, dilation=dil, groups=c)
        x = rng.standard_normal((int(rng.integers(2, 5)), c) + size).astype(dtype)
        w = rng.standard_normal((c * mult, 1) + k).astype(dtype)
        b = rng.standard_normal(c * mult).astype(dtype)
        fn = getattr(ck, f"conv{nd}d")
        try:
            ref = fn(*(a.astype(np.float64) for a in (x, w, b)), algo="direct",
                     backend="numpy", **kw)
        except ValueError:                  # a kernel larger than the padded input
            continue
        y = fn(x, w, b, algo="depthwise", **kw)
        p = ConvParams.build(f"conv{nd}d", nd, x.shape, w.shape, dtype=dtype, **kw)
        assert depthwise_planes.copies_inside(p)
        assert rel_err(y, ref) < (1e-5 if dtype == np.float32 else 1e-12), \
            (x.shape, w.shape, kw)


def test_depthwise_kernel_choice(rng):
    """Small kernels take the row kernel unless most taps fall in the padding; large,
    dilated-along-rows and multiplier layers take the tap-list kernel."""
    from cnnkern.backends.numba.depthwise import uses_row_kernel
    from cnnkern.params import ConvParams

    def params(size, k, **kw):
        return ConvParams.build("conv2d", 2, (1, 8) + size, (kw.pop("cout", 8), 1) + k,
                                groups=8, **kw)
    assert uses_row_kernel(params((56, 56), (7, 7), padding=3))
    assert uses_row_kernel(params((56, 56), (3, 3), padding=1, stride=2))
    assert not uses_row_kernel(params((56, 56), (9, 9), padding=4))
    assert not uses_row_kernel(params((56, 56), (3, 3), padding=2, dilation=2))
    assert not uses_row_kernel(params((56, 56), (3, 3), padding=1, cout=16))
    assert not uses_row_kernel(params((56, 56), (3, 3), padding=1, stride=4))
    assert not uses_row_kernel(params((3, 3), (7, 7), padding=3))   # 27% of taps inside


def suite_params(ref):
    """The float32, batch-1 call of suite layer ``ref`` ("suite/name")."""
    from cnnkern.params import ConvParams
    from cnnkern.suites import layer
    spec = layer(ref)
    xs, ws = spec.shapes(1)
    return ConvParams.build("conv2d", spec.ndim, xs, ws, dtype=np.float32, **spec.kwargs())


@pytest.mark.parametrize("layer,kernel", [
    ("mobilenetv2/dw_56_s2", "planes"), ("mobilenetv2/dw_112", "flat"),
    ("replknet31b/dw31_s1", "slide"), ("convnext_t/dw7_s3", "slide"),
    ("mobilenetv2/dw_7", "flat"), ("replknet31b/dw31_s3", "slide"),
    ("replknet31b/dw13_s4", "slide"), ("convnext_t/dw7_s4", "slide"),
    ("shufflenet/dw3x3", "flat"),
])
def test_depthwise_runs_the_kernel_measured_fastest(layer, kernel):
    """At batch 1 the cost model picks the kernel that measured fastest on these layers
    (2-core EPYC, docs/dispatch.md): the sliding window for 7x7 and larger kernels,
    the flat-row kernel for 3x3 ones at stride 1 under zero padding (on MobileNetV2's
    7x7 image 1.13x the sliding window's time), the stride-phase planes at stride 2.
    Without AVX-512 (or in float64) the sliding window does not run and the flat-row
    kernel takes its layers."""
    from cnnkern.backends.numba.depthwise import kernel_for
    from cnnkern.backends.numba.simd import full_width
    if kernel == "slide" and not full_width():
        kernel = "flat"
    assert kernel_for(suite_params(layer)) == kernel


def test_depthwise_blocks_only_where_the_weights_outweigh_the_input():
    """At batch 8 the whole-filter transpose of the tap-list kernel pays back
    (0.85-0.88x for the block kernel on dw7_s4 and dw13_s4), and the block kernel has
    no channel multiplier."""
    from cnnkern.backends.numba.depthwise_blocks import applies
    from cnnkern.params import ConvParams
    p1 = suite_params("replknet31b/dw13_s4")
    assert applies(p1)
    p8 = ConvParams.build("conv2d", 2, (8,) + p1.input_shape[1:], p1.weight_shape,
                          padding=6, groups=1024, dtype=np.float32)
    assert not applies(p8)
    mult = ConvParams.build("conv2d", 2, p1.input_shape, (2048, 1, 13, 13), padding=6,
                            groups=1024, dtype=np.float32)
    assert not applies(mult)


def random_slide_case(rng):
    """A depthwise call the sliding-window kernel takes: 1-3 dimensions, no dilation
    along the width (strides 1-3 along every axis, dilations 1-2 along the others),
    widths of one to several tiles under kernels up to 17 wide (as wide as the image or
    wider), 1-80 channels (partial and several blocks), any padding mode and amount."""
    nd = int(rng.integers(1, 4))
    while True:
        size = tuple(int(v) for v in rng.integers(1, 9, nd - 1)) + \
            (int(rng.integers(1, 30)),)
        k = tuple(int(v) for v in rng.integers(1, 5, nd - 1)) + (int(rng.integers(1, 18)),)
        stride = tuple(int(v) for v in rng.integers(1, 4, nd))
        dil = tuple(int(v) for v in rng.integers(1, 3, nd - 1)) + (1,)
        mode = str(rng.choice(["zeros", "reflect", "replicate", "circular"]))
        top = [n - 1 if mode == "reflect" else n for n in size]
        pad = tuple(int(rng.integers(0, (t if mode != "zeros" else 9) + 1)) for t in top)
        if all(n + 2 * q >= d * (j - 1) + 1 for n, q, d, j in zip(size, pad, dil, k)):
            break
    c = int(rng.integers(1, 81))
    kw = dict(stride=stride, padding=pad, dilation=dil, groups=c, padding_mode=mode)
    return nd, (int(rng.integers(1, 4)), c) + size, (c, 1) + k, kw


@pytest.mark.parametrize("tiles", [(8,), (4,)])
def test_depthwise_slide_kernel_matches_the_reference_on_random_calls(tiles, rng,
                                                                     monkeypatch):
    """The sliding-window kernel, forced, with each register tile, on 40 random
    float32 calls; the output starts as NaN, so an output a tile misses shows up.
    Both slides run: along the taps where the image is wider than the kernel, along
    the input columns where it is narrower."""
    from cnnkern.backends.numba import depthwise, depthwise_slide
    monkeypatch.setattr(depthwise, "kernel_for", lambda p: "slide")
    monkeypatch.setattr(depthwise_slide, "TILES", tiles)
    monkeypatch.setattr(depthwise_slide, "MAX_LANES", 32)      # several blocks a call
    depthwise_slide._plan.cache_clear()
    flips = set()
    for _ in range(40):
        nd, xs, ws, kw = random_slide_case(rng)
        x, w = rng.standard_normal(xs).astype(np.float32), \
            rng.standard_normal(ws).astype(np.float32)
        b = rng.standard_normal(ws[0]).astype(np.float32)
        fn = getattr(ck, f"conv{nd}d")
        y = fn(x, w, b, algo="depthwise", **kw)
        ref = fn(*(a.astype(np.float64) for a in (x, w, b)), algo="direct",
                 backend="numpy", **kw)
        assert y.dtype == np.float32
        assert rel_err(y, ref) < 1e-5, (xs, ws, kw)
        flips.add(xs[-1] < ws[-1])
    assert flips == {True, False}            # both slide directions were drawn
    depthwise_slide._plan.cache_clear()


def test_depthwise_slide_kernel_takes_float32_undilated_width_one_output_per_channel():
    from cnnkern.backends.numba.depthwise_slide import applies, full_width
    from cnnkern.params import ConvParams

    def params(dtype=np.float32, stride=1, dilation=1, mult=1):
        return ConvParams.build("conv2d", 2, (1, 32, 9, 9), (32 * mult, 1, 5, 5),
                                padding=2, groups=32, stride=(2, stride),
                                dilation=(2, dilation), dtype=dtype)
    assert applies(params()) == applies(params(stride=2)) == full_width()
    for p in (params(np.float64), params(dilation=2), params(mult=2), params(stride=3)):
        assert not applies(p)                   # stride 3: a 5-wide kernel's one-tap phase
    big = ConvParams.build("conv2d", 2, (1, 1, 2048, 2048), (1, 1, 5, 5), padding=2,
                           groups=1, dtype=np.float32)      # one 16-lane block: 256 MiB
    assert not applies(big)


def random_winograd_case(rng):
    """A Winograd call (3-tap kernel, stride 1) of 1 or 2 dimensions with every other
    parameter drawn: sizes, groups 1-3, channel counts that leave a remainder of the
    16-64 filter blocks, any padding mode and amount, a bias or none."""
    nd = int(rng.integers(1, 3))
    mode = str(rng.choice(["zeros", "reflect", "replicate", "circular"]))
    size = tuple(int(v) for v in rng.integers(3, 19, nd))
    top = [n - 1 if mode == "reflect" else n for n in size]
    pad = tuple(int(rng.integers(0, min(t, 3) + 1)) for t in top)
    groups = int(rng.integers(1, 4))
    cin = groups * int(rng.integers(1, 7))
    cout = groups * int(rng.choice([1, 5, 17, 40]))
    kw = dict(padding=pad, groups=groups, padding_mode=mode)
    return nd, (int(rng.integers(1, 4)), cin) + size, (cout, cin // groups) + (3,) * nd, kw


@pytest.mark.parametrize("plan", ["tiles", "channels"])
@pytest.mark.parametrize("chunk", [None, 1])
def test_winograd_plans_match_the_reference_on_random_calls(plan, chunk, rng,
                                                            monkeypatch):
    """Both Winograd plans, forced, F2 and F4, on random calls; the output starts as
    NaN (the tests' ``poison_outputs``), so a tile or a channel block a plan misses
    shows up. With ``chunk`` set, each work item and each chunk of the channel plan is
    a single tile row."""
    from cnnkern.backends.numba import winograd
    monkeypatch.setattr(winograd, "plan_for", lambda p, m: plan)
    if chunk:
        monkeypatch.setattr(winograd, "ITEM_BYTES", chunk)
        monkeypatch.setattr(winograd, "CHUNK_BYTES", chunk)
    for _ in range(12):
        nd, xs, ws, kw = random_winograd_case(rng)
        for m in (2, 4):
            for dtype in (np.float32, np.float64):
                x = rng.standard_normal(xs).astype(dtype)
                w = rng.standard_normal(ws).astype(dtype)
                b = rng.standard_normal(ws[0]).astype(dtype) if rng.random() < 0.5 \
                    else None
                fn = getattr(ck, f"conv{nd}d")
                algo = f"winograd_f{m}x{m}_3x3" if nd == 2 else f"winograd_f{m}_3"
                y = fn(x, w, b, algo=algo, **kw)
                ref = fn(*(None if a is None else a.astype(np.float64) for a in (x, w, b)),
                         algo="direct", backend="numpy", **kw)
                tol = (1e-4 if dtype == np.float32 else 1e-11) if m == 4 else \
                    (2e-5 if dtype == np.float32 else 1e-12)
                assert y.dtype == dtype
                assert rel_err(y, ref) < tol, (m, xs, ws, kw)


@pytest.mark.parametrize("m", [2, 4])
def test_winograd_channel_plan_register_tiles_match_the_reference(m, rng, monkeypatch):
    """The channel plan's point GEMMs in register tiles (``simd_gemms``: float32, 64
    channel blocks): tile counts that leave a partial 6-row tile, groups, 1-D, and
    with one-row chunks, chunks too small for the tiles (BLAS) beside tiled ones.
    The tiles must actually run where the host has AVX-512."""
    from cnnkern.backends.numba import winograd
    from cnnkern.backends.numba.simd import full_width
    monkeypatch.setattr(winograd, "plan_for", lambda p, m_: "channels")
    monkeypatch.setattr(winograd, "_lanes", lambda p: 64)
    tiled, decide = [], winograd.simd_gemms
    monkeypatch.setattr(winograd, "simd_gemms",
                        lambda *a: tiled.append(decide(*a)) or tiled[-1])
    cases = [((2, 24, 13, 11), (128, 24, 3, 3), dict(padding=1)),
             ((1, 40, 17, 9), (128, 20, 3, 3), dict(padding=(2, 0), groups=2)),
             ((3, 16, 70), (64, 16, 3), dict(padding=1, padding_mode="reflect"))]
    for chunk in (None, 1):
        if chunk:
            monkeypatch.setattr(winograd, "CHUNK_BYTES", chunk)
        for xs, ws, kw in cases:
            x = rng.standard_normal(xs).astype(np.float32)
            w = rng.standard_normal(ws).astype(np.float32)
            b = rng.standard_normal(ws[0]).astype(np.float32)
            nd = len(xs) - 2
            fn = getattr(ck, f"conv{nd}d")
            algo = f"winograd_f{m}x{m}_3x3" if nd == 2 else f"winograd_f{m}_3"
            y = fn(x, w, b, algo=algo, **kw)
            ref = fn(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                     algo="direct", backend="numpy", **kw)
            assert rel_err(y, ref) < (1e-4 if m == 4 else 2e-5), (xs, ws, kw, chunk)
    assert any(tiled) == full_width() and not all(tiled)


@pytest.mark.parametrize("layer,plan", [
    ("vgg16/conv1_2", "tiles"), ("resnet50/res2_3x3", "tiles"),
    ("vgg16/conv4_2", "channels"), ("resnet50/res5_3x3", "channels"),
    ("alexnet/conv4", "channels"),
])
def test_winograd_runs_the_plan_measured_fastest(layer, plan):
    """At batch 1 the plan that measured fastest on these layers (2-core EPYC,
    docs/dispatch.md): work items of whole tile rows where the image is large and the
    channels few, blocks of output channels where the transformed filters are large."""
    from cnnkern.backends.numba.winograd import plan_for
    assert plan_for(suite_params(layer), 2) == plan


SCRIPT = """
import json, sys, time
import numpy as np
import cnnkern as ck
from cnnkern.backends.numba import (depthwise, depthwise_blocks, depthwise_flat,
                                    depthwise_planes, depthwise_slide, direct,
                                    im2col_blocks, implicit_gemm, winograd)
plan_for = winograd.plan_for
x = np.random.default_rng(0).standard_normal((1, 8, 12, 12)).astype(np.float32)
w = np.random.default_rng(1).standard_normal((8, 8, 3, 3)).astype(np.float32)
t0 = time.perf_counter()
ck.conv2d(x, w, padding=1, algo="direct")
ck.conv2d(x, w, padding=1, algo="winograd_f4x4_3x3")
winograd.plan_for = lambda p, m: "tiles" if plan_for(p, m) == "channels" else "channels"
ck.conv2d(x, w, padding=1, algo="winograd_f4x4_3x3")            # the other plan
ck.conv2d(x, w[:, :1], padding=1, groups=8, algo="depthwise")   # the row kernel
depthwise.kernel_for = lambda p: "planes"
ck.conv2d(x, w[:, :1], padding=1, groups=8, algo="depthwise")
depthwise.kernel_for = lambda p: "blocks"
ck.conv2d(x, w[:, :1], padding=1, groups=8, algo="depthwise")
depthwise.kernel_for = lambda p: "flat"
ck.conv2d(x, w[:, :1], padding=1, groups=8, algo="depthwise")
depthwise.kernel_for = lambda p: "slide"
ck.conv2d(x, w[:, :1], padding=1, groups=8, algo="depthwise")
ck.conv2d(x, w, padding=1, algo="im2col_blocks")
ck.conv2d(x, w, padding=1, algo="implicit_gemm")
first = time.perf_counter() - t0
stats = [direct._conv_kernel.stats, winograd._winograd_kernel.stats,
         winograd._channel_stage.stats, depthwise._depthwise_rows.stats,
         depthwise_planes._planes_kernel.stats, im2col_blocks._blocks_kernel.stats,
         depthwise_blocks._blocks_taps.stats, depthwise_flat._flat_kernel.stats,
         implicit_gemm._kernel.stats, implicit_gemm._pack.stats,
         depthwise_slide._slide_kernel.stats]
print(json.dumps(dict(first=first, hits=sum(len(s.cache_hits) for s in stats),
                      misses=sum(len(s.cache_misses) for s in stats))))
"""


def test_second_process_loads_compiled_kernels_from_the_cache(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba"),
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    runs = []
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, check=True,
                             capture_output=True, text=True, timeout=600).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
    assert runs[0]["misses"] > 0                 # the first process compiled...
    assert runs[1]["misses"] == 0 and runs[1]["hits"] > 0   # ...the second did not
