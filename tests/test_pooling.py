"""Pooling against torch (float64)."""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import cnnkern as ck
from helpers import rel_err

torch = pytest.importorskip("torch")
F = torch.nn.functional


@st.composite
def pool_cases(draw, dilated=True):
    nd = draw(st.sampled_from([1, 2, 3]))
    k = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    s = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    pad = tuple(draw(st.integers(0, ki // 2)) for ki in k)
    d = tuple(draw(st.integers(1, 3)) if dilated else 1 for _ in range(nd))
    size = tuple(draw(st.integers(1, 12 if nd < 3 else 6)) for _ in range(nd))
    for n, ki, di, pi in zip(size, k, d, pad):
        assume(n + 2 * pi >= (ki - 1) * di + 1)
    ceil = draw(st.booleans())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((draw(st.integers(1, 2)), draw(st.integers(1, 3))) + size)
    return nd, x, k, s, pad, d, ceil


@given(pool_cases())
def test_max_pool_matches_torch(case):
    nd, x, k, s, pad, d, ceil = case
    ref, ref_i = getattr(F, f"max_pool{nd}d")(torch.from_numpy(x), k, s, pad, d, ceil,
                                               return_indices=True)
    y, i = getattr(ck, f"max_pool{nd}d")(x, k, s, pad, d, ceil, return_indices=True)
    assert y.shape == tuple(ref.shape)
    np.testing.assert_array_equal(y, ref.numpy())
    # a window that sees only padding (possible with dilation) is -inf in both; torch
    # then reports an arbitrary out-of-range index, cnnkern reports -1
    real = np.isfinite(ref.numpy())
    np.testing.assert_array_equal(i[real], ref_i.numpy()[real])
    assert (i[~real] == -1).all()


@given(pool_cases(dilated=False), st.booleans(), st.sampled_from([None, 3]))
def test_avg_pool_matches_torch(case, include_pad, divisor):
    nd, x, k, s, pad, _, ceil = case
    kw = {} if nd == 1 else {"divisor_override": divisor}
    try:
        ref = getattr(F, f"avg_pool{nd}d")(torch.from_numpy(x), k, s, pad, ceil,
                                           include_pad, **kw).numpy()
    except RuntimeError:
        # torch's avg_pool3d refuses inputs smaller than the kernel even when the
        # padding covers it; cnnkern computes those (same formula as 1-D/2-D)
        assume(False)
    y = getattr(ck, f"avg_pool{nd}d")(x, k, s, pad, ceil, include_pad, **kw)
    assert y.shape == ref.shape
    assert rel_err(y, ref) < 1e-12


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_pool_dtypes(dtype, rng):
    x = rng.standard_normal((2, 3, 8, 8)).astype(dtype)
    assert ck.max_pool2d(x, 2).dtype == dtype
    y = ck.avg_pool2d(x, 3, 2, 1)
    assert y.dtype == dtype
    ref = F.avg_pool2d(torch.from_numpy(x.astype(np.float64)), 3, 2, 1).numpy()
    assert rel_err(y, ref) < (2e-3 if dtype == np.float16 else 1e-6)


def test_pool_unbatched_and_torch_in_out(rng):
    x = torch.from_numpy(rng.standard_normal((3, 9, 9)))
    y = ck.max_pool2d(x, 3, 2)
    assert isinstance(y, torch.Tensor) and tuple(y.shape) == (3, 4, 4)
    np.testing.assert_array_equal(y.numpy(), F.max_pool2d(x, 3, 2).numpy())
