"""scipy.signal-style 2-D functions against SciPy; conv_matrix against conv."""
import numpy as np
import pytest
import scipy.signal as ss
from hypothesis import given
from hypothesis import strategies as st

import cnnkern as ck
from cnnkern.winograd import correlate_exact, transforms
from helpers import rel_err


@given(st.integers(1, 9), st.integers(1, 9), st.integers(1, 6), st.integers(1, 6),
       st.sampled_from(["full", "same", "valid"]), st.sampled_from(["fill", "wrap", "symm"]),
       st.floats(-2, 2), st.integers(0, 2**32 - 1))
def test_correlate_and_convolve_match_scipy(h, w, kh, kw, mode, boundary, fill, seed):
    rng = np.random.default_rng(seed)
    a, k = rng.standard_normal((h, w)), rng.standard_normal((kh, kw))
    for ours, theirs in [(ck.correlate2d, ss.correlate2d), (ck.convolve2d, ss.convolve2d)]:
        try:
            ref = theirs(a, k, mode, boundary, fill)
        except ValueError:
            with pytest.raises(ValueError):
                ours(a, k, mode, boundary, fill)
            continue
        y = ours(a, k, mode, boundary, fill)
        assert y.shape == ref.shape
        assert rel_err(y, ref) < 1e-12


def test_valid_mode_swaps_like_scipy(rng):
    a, k = rng.standard_normal((3, 4)), rng.standard_normal((6, 7))
    for ours, theirs in [(ck.correlate2d, ss.correlate2d), (ck.convolve2d, ss.convolve2d)]:
        assert rel_err(ours(a, k, "valid"), theirs(a, k, "valid")) < 1e-12


def test_signal_float32_keeps_dtype(rng):
    a = rng.standard_normal((20, 20)).astype(np.float32)
    k = rng.standard_normal((5, 5)).astype(np.float32)
    y = ck.correlate2d(a, k, "same", "symm")
    assert y.dtype == np.float32
    assert rel_err(y, ss.correlate2d(a.astype(np.float64), k.astype(np.float64), "same",
                                     "symm")) < 1e-5


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_conv_matrix_equals_conv(mode, nd, rng):
    shape = (2, 4) + (5,) * nd
    x = rng.standard_normal(shape)
    w = rng.standard_normal((6, 2) + (3,) * nd)
    kw = dict(stride=2, padding=2, dilation=1, groups=2)
    if mode == "reflect":
        kw["padding"] = 1
    m = ck.conv_matrix(w, shape, padding_mode=mode, **kw)
    conv = {1: ck.conv1d, 2: ck.conv2d, 3: ck.conv3d}[nd]
    y = conv(x, w, padding_mode=mode, **kw)
    assert m.shape == (y.size, x.size)
    assert rel_err(m @ x.ravel(), y.ravel()) < 1e-12
    m1 = ck.conv_matrix(w, shape[1:], padding_mode=mode, **kw)
    assert rel_err(m1 @ x[1].ravel(), y[1].ravel()) < 1e-12


def test_conv_matrix_is_sparse_with_expected_nonzeros(rng):
    w = rng.standard_normal((1, 1, 3, 3)) + 5.0    # no zero taps
    m = ck.conv_matrix(w, (1, 6, 6), padding=1)
    # 6x6 output: 16 interior windows see 9 taps, 16 edge windows 6, 4 corners 4
    assert m.nnz == 16 * 9 + 16 * 6 + 4 * 4


@pytest.mark.parametrize("m,r", [(2, 3), (4, 3), (6, 3), (3, 2), (2, 5)])
def test_winograd_transforms_are_exact(m, r, rng):
    for _ in range(5):
        d = [int(v) for v in rng.integers(-9, 10, m + r - 1)]
        g = [int(v) for v in rng.integers(-9, 10, r)]
        assert correlate_exact(d, g, m, r) == [sum(d[i + k] * g[k] for k in range(r))
                                               for i in range(m)]
    at, gm, bt = transforms(m, r)
    assert all(x.denominator == 1 for row in bt for x in row)   # integer input transform
    assert len(at) == m and len(gm) == m + r - 1 and len(bt) == m + r - 1
