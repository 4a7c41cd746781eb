"""Every registered algorithm against the float64 direct reference, on every case it
claims, at the tolerance it states (driven by the registry: a new algorithm is tested
the day it is registered)."""
import importlib.util
import itertools

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import cnnkern as ck
from cnnkern import registry
from cnnkern.params import ConvParams
from helpers import conv_err, rel_err
from strategies import conv_cases

from conftest import CPU_BACKENDS

#: (backend, algorithm) for every registered CPU algorithm
ALGOS = [(b, a.name) for b in CPU_BACKENDS for a in registry.algorithms("conv", b)]
NAMES = sorted({name for _, name in ALGOS})
FN = {1: ck.conv1d, 2: ck.conv2d, 3: ck.conv3d}
DTYPES = [np.float64, np.float32, np.float16]


def _params(c, dtype=np.float64):
    nd = c["w"].ndim - 2
    return ConvParams.build("conv", nd, c["x"].shape, c["w"].shape, stride=c["stride"],
                            padding=c["padding"], dilation=c["dilation"],
                            groups=c["groups"], padding_mode=c["padding_mode"],
                            dtype=dtype)


def check_algorithm(algo, c, dtype):
    backend, name = algo
    alg = registry.get("conv", backend, name)
    p = _params(c, dtype)
    w = c["w"].astype(dtype)
    if alg.check(p, w) is not None or p.batch == 0:
        return None
    nd = p.ndim
    x = c["x"].astype(dtype)
    b = None if c["b"] is None else c["b"].astype(dtype)
    # the reference sees the same rounded inputs: the error measured is the algorithm's
    f64 = (lambda a: None if a is None else a.astype(np.float64))
    args = (c["stride"], c["padding"], c["dilation"], c["groups"])
    kw = dict(padding_mode=c["padding_mode"], algo="direct", backend="numpy")
    ref = FN[nd](f64(x), f64(w), f64(b), *args, **kw)
    mag = (lambda a: None if a is None else np.abs(f64(a)))
    ref_abs = FN[nd](mag(x), mag(w), mag(b), *args, **kw)
    terms = p.in_per_group * p.kernel_volume + (b is not None)
    y = FN[nd](x, w, b, c["stride"], c["padding"], c["dilation"], c["groups"],
               padding_mode=c["padding_mode"], algo=name, backend=backend)
    assert y.dtype == dtype
    assert not np.isnan(y).any()
    err = conv_err(y, ref, ref_abs, terms)
    assert err < alg.tolerance[np.dtype(dtype).name], (algo, np.dtype(dtype).name, err)
    return err


#: Strategy settings that land in what each algorithm claims, so that every
#: algorithm gets its full share of random cases (anything else it refuses).
CLAIMS = {
    "winograd_f2x2_3x3": dict(ndims=(2,), kernel=3, stride=1, dilation=1),
    "winograd_f4x4_3x3": dict(ndims=(2,), kernel=3, stride=1, dilation=1),
    "winograd_f2_3": dict(ndims=(1,), kernel=3, stride=1, dilation=1),
    "winograd_f4_3": dict(ndims=(1,), kernel=3, stride=1, dilation=1),
    # kernels with an axis of 1 (which it refuses when fewer than two axes are
    # longer) are the rank-1 test's below; here they filtered out so many draws that
    # Hypothesis's filter health check failed now and then
    "separable": dict(ndims=(2, 3), rank1=True, min_kernel=2),
    "depthwise": dict(depthwise=True),
    "tap_gemm": dict(modes=("zeros",)),
}


@st.composite
def claimed_cases(draw, name):
    return draw(conv_cases(**CLAIMS.get(name, {})))


@pytest.mark.parametrize("algo", ALGOS, ids="-".join)
@given(data=st.data())
def test_algorithm_matches_direct(algo, data):
    c = data.draw(claimed_cases(algo[1]))
    errors = [check_algorithm(algo, c, dtype) for dtype in DTYPES]
    # count only the cases the algorithm ran (implicit_gemm refuses float64)
    assume(any(e is not None for e in errors))


@pytest.mark.parametrize("algo", ALGOS, ids="-".join)
@given(c=conv_cases(ndims=(1, 2), rank1=True))
def test_algorithm_matches_direct_on_rank1(algo, c):
    for dtype in DTYPES:
        check_algorithm(algo, c, dtype)


WINOGRAD_CASES = [
    dict(nd=2, size=(17, 23), pad=1, groups=1),
    dict(nd=2, size=(8, 8), pad=((0, 2), (3, 1)), groups=2),
    dict(nd=2, size=(3, 3), pad=0, groups=3),
    dict(nd=1, size=(29,), pad=2, groups=2),
]


@pytest.mark.parametrize("name", [a for a in ALGOS if a[1].startswith("winograd")],
                         ids="-".join)
@pytest.mark.parametrize("case", WINOGRAD_CASES)
def test_winograd_tiles_and_edges(name, case, rng):
    nd = case["nd"]
    x = rng.standard_normal((2, 6) + case["size"])
    w = rng.standard_normal((6, 6 // case["groups"]) + (3,) * nd)
    c = dict(x=x, w=w, b=rng.standard_normal(6), stride=1, padding=case["pad"],
             dilation=1, groups=case["groups"], padding_mode="zeros")
    for dtype in DTYPES:
        check_algorithm(name, c, dtype)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_every_algorithm_claims_some_case(backend):
    """An algorithm whose can_implement refuses everything would be tested on nothing."""
    rng = np.random.default_rng(7)
    claimed = set()
    for nd, dtype in itertools.product((1, 2, 3), (np.float64, np.float32)):
        x = rng.standard_normal((1, 2) + (9,) * nd).astype(dtype)
        for groups in (1, 2):
            w = np.ones((2, 2 // groups) + (3,) * nd, dtype)
            claimed.update(ck.supported_algorithms(x, w, padding=1, groups=groups,
                                                   backend=backend))
    assert claimed == {name for b, name in ALGOS if b == backend}


def test_im2col_chunks_cover_every_output(monkeypatch, rng):
    """Force many small chunks (image and row splits) through the chunk loop."""
    from cnnkern.backends.numpy import im2col
    x = rng.standard_normal((3, 4, 13, 11))
    w = rng.standard_normal((6, 2, 3, 3))
    ref = ck.conv2d(x, w, None, (2, 1), 1, 1, 2, algo="direct")
    for chunk in (1, 700, 5000, 10**9):
        monkeypatch.setattr(im2col, "CHUNK_BYTES", chunk)
        p = ConvParams.build("conv2d", 2, x.shape, w.shape, stride=(2, 1), padding=1,
                             groups=2)
        y = im2col.conv(x, w, None, p, chunk_bytes=chunk)
        assert rel_err(y, ref) < 1e-12


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_im2col_pointwise_layers_use_the_input_as_columns(nd, rng):
    """1x1, stride 1, unpadded: the input is the column matrix (no copy), in whole
    images and in row chunks, with groups, from a non-contiguous input and float16."""
    from cnnkern.backends.numpy import im2col
    size = (5, 4, 3)[:nd]
    x = rng.standard_normal((3, 12) + size[::-1]).transpose((0, 1) + tuple(
        range(nd + 1, 1, -1)))                             # spatial axes reversed
    w = rng.standard_normal((6, 4) + (1,) * nd)
    p = ConvParams.build("conv", nd, x.shape, w.shape, groups=3)
    assert im2col.pointwise(p) and im2col.workspace_bytes(p, 10**9) == \
        3 * 12 * int(np.prod(size)) * 8                    # the cast/padded copy only
    ref = FN[nd](x, w, None, groups=3, algo="direct")
    for dtype, tol in ((np.float64, 1e-12), (np.float16, 2e-3)):
        for chunk in (1, 10**9):
            y = im2col.conv(x.astype(dtype), w.astype(dtype), None,
                            ConvParams.build("conv", nd, x.shape, w.shape, groups=3,
                                             dtype=dtype), chunk_bytes=chunk)
            assert y.dtype == dtype and rel_err(y, ref) < tol


def random_wide_case(rng):
    """A stride-1 call of 1-3 dimensions with everything else drawn: kernel, dilation,
    padding amount and mode, groups, batch, dtype, and a non-contiguous input."""
    nd = int(rng.integers(1, 4))
    mode = str(rng.choice(["zeros", "reflect", "replicate", "circular"]))
    size = tuple(int(v) for v in rng.integers(4, 12, nd))
    kernel = tuple(int(v) for v in rng.integers(1, 4, nd))
    dil = tuple(int(v) for v in rng.integers(1, 3, nd))
    pad = tuple(int(rng.integers(0, min(3, n - 1) + 1)) for n in size)
    kernel = tuple(min(k, (n + 2 * q - 1) // d + 1) for k, n, q, d in
                   zip(kernel, size, pad, dil))          # the window fits the input
    if kernel == (1,) * nd and pad == (0,) * nd:
        pad = (1,) + (0,) * (nd - 1)                       # not pointwise
    groups = int(rng.integers(1, 3))
    x = rng.standard_normal((int(rng.integers(1, 4)), groups * int(rng.integers(1, 4))) +
                            size[::-1]).transpose((0, 1) + tuple(range(nd + 1, 1, -1)))
    w = rng.standard_normal((groups * int(rng.integers(1, 4)),
                             x.shape[1] // groups) + kernel)
    return nd, x, w, dict(padding=pad, dilation=dil, groups=groups, padding_mode=mode)


@pytest.mark.parametrize("layout", ["windows", "wide"])
def test_im2col_layouts_match_the_reference_on_random_calls(layout, rng, monkeypatch):
    """Both column layouts, forced, on random stride-1 calls in whole images, row
    chunks down to one row, and float16/32/64 (outputs start as NaN)."""
    from cnnkern.backends.numpy import im2col
    monkeypatch.setattr(im2col, "layout_for", lambda p, filled=False: layout)
    fills = [None]
    if layout == "windows" and importlib.util.find_spec("numba") is not None:
        from cnnkern.backends.numba import columns
        fills.append(columns.fill)                  # the Numba backend's
    for _ in range(40):
        nd, x, w, kw = random_wide_case(rng)
        ref = FN[nd](x, w, None, algo="direct", **kw)
        for dtype, tol in ((np.float64, 1e-12), (np.float32, 2e-5), (np.float16, 2e-3)):
            p = ConvParams.build("conv", nd, x.shape, w.shape, dtype=dtype, **kw)
            assert im2col.wide_possible(p)
            for chunk, fill in itertools.product((1, 3000, 10**9), fills):
                y = im2col.conv(x.astype(dtype), w.astype(dtype), None, p,
                                chunk_bytes=chunk, fill=fill)
                assert y.dtype == dtype and rel_err(y, ref) < tol, (x.shape, w.shape, kw)


def test_numba_column_fill_is_the_numpy_column_matrix(rng):
    """The Numba backend's fill writes exactly the tap-by-tap copies' matrix: random
    1-3-D calls with stride, dilation and padding, for row chunks of the first output
    axis anywhere in the image (the matrix starts as NaN)."""
    pytest.importorskip("numba")
    from cnnkern.backends.numba import columns
    from cnnkern.backends.numpy import im2col
    for _ in range(60):
        nd = int(rng.integers(1, 4))
        c, n = int(rng.integers(1, 5)), int(rng.integers(1, 3))
        size = tuple(int(v) for v in rng.integers(6, 12, nd))
        kw = dict(stride=tuple(int(v) for v in rng.integers(1, 4, nd)),
                  padding=tuple(int(v) for v in rng.integers(0, 3, nd)),
                  dilation=tuple(int(v) for v in rng.integers(1, 3, nd)))
        kernel = tuple(int(v) for v in rng.integers(1, 4, nd))
        p = ConvParams.build("conv", nd, (n, c) + size, (2, c) + kernel,
                             dtype=np.float32, **kw)
        xp = rng.standard_normal((n, c) + p.padded_size).astype(np.float32)
        r0 = int(rng.integers(0, p.output_size[0]))
        rows = slice(r0, int(rng.integers(r0 + 1, p.output_size[0] + 1)))
        block = (rows.stop - rows.start,) + p.output_size[1:]
        size = n * c * p.kernel_volume * int(np.prod(block))
        ref = im2col._columns(xp, p, rows, block, np.full(size, np.nan, np.float32), None)
        got = im2col._columns(xp, p, rows, block, np.full(size, np.nan, np.float32),
                              columns.fill)
        assert np.array_equal(got, ref), (p, rows)


def test_im2col_wide_layout_workspace_bounds_each_chunk(monkeypatch):
    """Wide layout: a chunk holds its columns and GEMM result over the flat span of its
    rows, and the padded image; row chunks stay within the bound."""
    from cnnkern.backends.numpy import im2col
    monkeypatch.setattr(im2col, "layout_for", lambda p, filled=False: "wide")
    p = ConvParams.build("conv2d", 2, (2, 3, 20, 20), (8, 3, 5, 5), padding=2)
    isz = np.dtype(p.dtype).itemsize
    image = 3 * 24 * 24 * isz
    per_column = (3 * 25 + 8) * isz
    assert im2col.wide_span(p, 20) == 19 * 24 + 20
    assert im2col.workspace_bytes(p, 10**9) == 2 * (per_column * (19 * 24 + 20) + image)
    chunk = per_column * 5 * 24 + image
    assert im2col.workspace_bytes(p, chunk) == per_column * (4 * 24 + 20) + image <= chunk
    spans = list(im2col._chunks(p, chunk, isz, "wide"))
    assert len(spans) == 2 * 4 and all(r.stop - r.start == 5 for _, r in spans)


TAP_GEMM_CASES = [
    dict(x=(3, 4, 13, 11), w=(6, 2, 3, 3), stride=(2, 1), padding=(6, 2),
         dilation=(6, 1), groups=2),
    dict(x=(2, 3, 40), w=(4, 3, 5), stride=3, padding=9, dilation=4),
    dict(x=(2, 2, 5, 6, 4), w=(3, 2, 3, 2, 3), padding=(1, 3, 2), stride=(1, 2, 1)),
    dict(x=(1, 2, 4, 4), w=(2, 2, 3, 3), padding=5, dilation=5),  # 8 taps reach nothing
]


@pytest.mark.parametrize("case", TAP_GEMM_CASES)
def test_tap_gemm_steps_cover_every_output(case, rng):
    """Image chunks and bands of output rows (down to one row a step), every tap's box
    of outputs, taps that reach no output at all."""
    from cnnkern.backends.numpy import tap_gemm
    case = dict(case)
    x, w = rng.standard_normal(case.pop("x")), rng.standard_normal(case.pop("w"))
    nd = x.ndim - 2
    b = rng.standard_normal(w.shape[0])
    ref = FN[nd](x, w, b, algo="direct", **case)
    p = ConvParams.build("conv", nd, x.shape, w.shape, **case)
    for chunk in (1, 700, 10**9):
        assert tap_gemm.workspace_bytes(p, chunk) <= w.size * 8 + max(
            chunk, tap_gemm._per_row_bytes(p, 8))
        y = tap_gemm.conv(x, w, b, p, chunk_bytes=chunk)
        assert rel_err(y, ref) < 1e-12


def test_im2col_workspace_bounds_each_chunk():
    """Whole images: the columns and the images' padded copy (the GEMM writes into the
    output); part of an image: its padded copy, the columns and the GEMM's temporary
    result, all within the chunk bound."""
    from cnnkern.backends.numpy import im2col
    p = ConvParams.build("conv2d", 2, (4, 3, 20, 20), (64, 3, 3, 3), padding=1)
    isz = np.dtype(p.dtype).itemsize
    col_row = 3 * 9 * 20 * isz                     # bytes of one output row's columns
    image = 3 * 22 * 22 * isz                      # one padded image
    assert im2col.workspace_bytes(p, 10**9) == 4 * (20 * col_row + image)
    row = (3 * 9 + 64) * 20 * isz                  # ... with its GEMM result
    chunk = 5 * row + image + 1
    assert im2col.workspace_bytes(p, chunk) == 5 * row + image <= chunk
    spans = list(im2col._chunks(p, chunk, isz))
    assert len(spans) == 4 * 4 and all(r.stop - r.start <= 5 for _, r in spans)


@pytest.mark.parametrize("layout", ["windows", "wide"])
def test_im2col_groups_images_up_to_the_group_bound(layout, rng, monkeypatch):
    """Under a large chunk bound, images share a chunk only while the chunk stays
    within ``GROUP_BYTES``; every output is still written (outputs start as NaN)."""
    from cnnkern.backends.numpy import im2col
    monkeypatch.setattr(im2col, "layout_for", lambda p, filled=False: layout)
    x = rng.standard_normal((7, 3, 10, 9))
    w = rng.standard_normal((5, 3, 3, 3))
    p = ConvParams.build("conv2d", 2, x.shape, w.shape, padding=1)
    whole = im2col.workspace_bytes(p, 10**9) // 7              # one image's chunk
    ref = ck.conv2d(x, w, padding=1, algo="direct")
    for group, images in ((10**9, 7), (3 * whole, 3), (whole + 1, 1), (1, 1)):
        monkeypatch.setattr(im2col, "GROUP_BYTES", group)
        spans = list(im2col._chunks(p, 10**9, 8, layout))
        assert [s.stop - s.start for s, _ in spans] == \
            [images] * (7 // images) + [7 % images] * (7 % images > 0)
        assert all(r == slice(0, 10) for _, r in spans)
        assert im2col.workspace_bytes(p, 10**9) == images * whole
        assert rel_err(im2col.conv(x, w, None, p, chunk_bytes=10**9), ref) < 1e-12


FFT_CASES = [
    dict(nd=2, x=(3, 4, 13, 11), w=(6, 2, 3, 5), stride=(2, 1), padding=(1, 2),
         dilation=(1, 2), groups=2),
    dict(nd=2, x=(2, 6, 10, 9), w=(6, 1, 5, 5), padding=2, groups=6),          # depthwise
    dict(nd=2, x=(2, 3, 9, 9), w=(6, 1, 3, 3), padding=1, groups=3),       # multiplier 2
    dict(nd=1, x=(3, 1, 40), w=(5, 1, 7), padding=3),                      # 1 input ch.
    dict(nd=2, x=(2, 4, 8, 7), w=(4, 4, 3, 3), padding=(1, 2), padding_mode="reflect"),
    dict(nd=2, x=(2, 4, 8, 7), w=(4, 2, 3, 3), padding=1, groups=2,
         padding_mode="circular"),
    dict(nd=2, x=(2, 3, 6, 6), w=(4, 3, 2, 3), padding=(3, 4)),   # pad > kernel - 1
    dict(nd=3, x=(2, 2, 5, 6, 4), w=(3, 2, 3, 2, 3), padding=1, stride=(1, 2, 1)),
]


@pytest.mark.parametrize("case", FFT_CASES)
def test_fft_chunks_and_blocks_cover_every_output(case, monkeypatch, rng):
    """Force chunks of one image and blocks of one channel (and everything between)
    through the FFT loops, on every padding treatment and channel layout."""
    from cnnkern.backends.numpy import _common, fft
    monkeypatch.setattr(_common, "POISON", True)
    case = dict(case)
    nd, xs, ws = case.pop("nd"), case.pop("x"), case.pop("w")
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    ref = FN[nd](x, w, b, algo="direct", backend="numpy", **case)
    p = ConvParams.build(f"conv{nd}d", nd, x.shape, w.shape, **case)
    plans = set()
    for chunk in (1, 3000, 20000, 60000, 10**9):
        plans.add(fft._plan(p, chunk)[:2])
        y = fft.conv(x, w, b, p, chunk_bytes=chunk)
        assert rel_err(y, ref) < 1e-12, chunk
    assert (1, 1) in plans and (x.shape[0], w.shape[0]) in plans


def test_fft_workspace_counts_the_weight_spectrum_and_one_step():
    from cnnkern.backends.numpy import fft
    p = ConvParams.build("conv2d", 2, (8, 16, 30, 30), (32, 16, 7, 7), padding=3,
                         dtype=np.float32)
    spec = 36 * 19 * 8                    # one channel's spectrum: 36 x (36 // 2 + 1) bins
    assert fft._fft_shape(p) == (36, 36)
    w_bytes = 32 * 16 * spec
    chunk = 2 * 2**20
    images, channels, wb, step = fft._plan(p, chunk)
    assert wb == w_bytes and step <= chunk and 1 <= images < 8 and 1 <= channels <= 32
    assert fft.workspace_bytes(p, chunk) == w_bytes + step


def test_separable_detection_tolerance(rng):
    from cnnkern.backends.numpy.separable import rank1_factors
    u, v = rng.standard_normal((4, 3, 5, 1)), rng.standard_normal((4, 3, 1, 7))
    w = u * v
    f = rank1_factors(w)
    assert f is not None
    np.testing.assert_allclose(f[0][..., :, None] * f[1][..., None, :], w, rtol=1e-12)
    noisy = w + 1e-6 * rng.standard_normal(w.shape)
    assert rank1_factors(noisy) is None
    # float32 weights: the same perturbation is below the float32 tolerance (1e-5)
    assert rank1_factors(noisy.astype(np.float32)) is not None
    w0 = w.copy()
    w0[1, 2] = 0.0                                  # an all-zero slice is rank 1
    assert rank1_factors(w0) is not None
    w3 = rng.standard_normal((2, 1, 3, 1, 1)) * rng.standard_normal((2, 1, 1, 4, 1)) * \
        rng.standard_normal((2, 1, 1, 1, 2))
    assert rank1_factors(w3) is not None
