"""Transposed convolution and gradients against torch (float64)."""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import cnnkern as ck
from helpers import rel_err

torch = pytest.importorskip("torch")
F = torch.nn.functional
T = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731


def _geometry(draw, max_stride, max_size):
    """Shared draws of both strategies: dimensions, groups, kernel, stride, dilation,
    symmetric padding and input size."""
    nd = draw(st.sampled_from([1, 2, 3]))
    groups = draw(st.integers(1, 3))
    cig, cog = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    big = 4 if nd < 3 else 3
    k = tuple(draw(st.integers(1, big)) for _ in range(nd))
    s = tuple(draw(st.integers(1, max_stride)) for _ in range(nd))
    d = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    pad = tuple(draw(st.integers(0, 3)) for _ in range(nd))
    size = tuple(draw(st.integers(1, max_size if nd < 3 else max_size // 2))
                 for _ in range(nd))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return nd, groups, cig, cog, k, s, d, pad, size, rng


@st.composite
def transpose_cases(draw):
    nd, groups, cig, cog, k, s, d, pad, size, rng = _geometry(draw, 3, 10)
    op = tuple(draw(st.integers(0, max(si, di) - 1)) for si, di in zip(s, d))
    for n, ki, si, di, pi, oi in zip(size, k, s, d, pad, op):
        assume((n - 1) * si - 2 * pi + (ki - 1) * di + oi + 1 >= 1)
    x = rng.standard_normal((draw(st.integers(1, 2)), cig * groups) + size)
    w = rng.standard_normal((cig * groups, cog) + k)
    b = rng.standard_normal(cog * groups) if draw(st.booleans()) else None
    return nd, x, w, b, s, pad, op, groups, d


@given(transpose_cases())
def test_conv_transpose_matches_torch(case):
    nd, x, w, b, s, pad, op, groups, d = case
    fn = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[nd]
    ref = fn(T(x), T(w), None if b is None else T(b), s, pad, op, groups, d).numpy()
    ours = {1: ck.conv_transpose1d, 2: ck.conv_transpose2d, 3: ck.conv_transpose3d}[nd]
    y = ours(x, w, b, s, pad, op, groups, d)
    assert y.shape == ref.shape
    assert rel_err(y, ref) < 1e-10


@st.composite
def grad_cases(draw):
    nd, groups, cig, cog, k, s, d, pad, size, rng = _geometry(draw, 4, 12)
    for n, ki, di, pi in zip(size, k, d, pad):
        assume(n + 2 * pi >= (ki - 1) * di + 1)
    x = rng.standard_normal((draw(st.integers(1, 2)), cig * groups) + size)
    w = rng.standard_normal((cog * groups, cig) + k)
    return nd, x, w, s, pad, d, groups


@given(grad_cases())
def test_input_and_weight_gradients_match_torch(case):
    nd, x, w, s, pad, d, groups = case
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[nd]
    xt, wt = T(x).requires_grad_(True), T(w).requires_grad_(True)
    y = conv(xt, wt, None, s, pad, d, groups)
    gy = torch.randn(y.shape, dtype=torch.float64)
    gx_ref, gw_ref = torch.autograd.grad(y, (xt, wt), gy)
    gin = getattr(ck.grad, f"conv{nd}d_input")(x.shape, w, gy.numpy(), s, pad, d, groups)
    gwt = getattr(ck.grad, f"conv{nd}d_weight")(x, w.shape, gy.numpy(), s, pad, d, groups)
    assert rel_err(gin, gx_ref.numpy()) < 1e-10
    assert rel_err(gwt, gw_ref.numpy()) < 1e-10


def test_grad_matches_torch_nn_grad_signature(rng):
    x = rng.standard_normal((2, 4, 9, 8))
    w = rng.standard_normal((6, 2, 3, 3))
    gy = rng.standard_normal((2, 6, 5, 4))
    ref_in = torch.nn.grad.conv2d_input(x.shape, T(w), T(gy), 2, 1, 1, 2).numpy()
    ref_w = torch.nn.grad.conv2d_weight(T(x), w.shape, T(gy), 2, 1, 1, 2).numpy()
    assert rel_err(ck.grad.conv2d_input(x.shape, w, gy, 2, 1, 1, 2), ref_in) < 1e-12
    assert rel_err(ck.grad.conv2d_weight(x, w.shape, gy, 2, 1, 1, 2), ref_w) < 1e-12


def test_weight_gradient_is_deterministic(rng):
    x = rng.standard_normal((4, 8, 16, 16)).astype(np.float32)
    gy = rng.standard_normal((4, 8, 8, 8)).astype(np.float32)
    a = ck.grad.conv2d_weight(x, (8, 8, 3, 3), gy, 2, 1)
    b = ck.grad.conv2d_weight(x, (8, 8, 3, 3), gy, 2, 1)
    assert a.tobytes() == b.tobytes()


def test_input_gradient_when_every_window_is_padding():
    """Outputs that see only padding send nothing back to the input."""
    w = np.ones((1, 1, 1))
    gy = np.ones((1, 1, 4))
    gx = ck.grad.conv1d_input((1, 1, 1), w, gy, stride=1, padding=((3, 0),))
    np.testing.assert_array_equal(gx, [[[1.0]]])
    x = torch.zeros(1, 1, 1, dtype=torch.float64, requires_grad=True)
    y = F.conv1d(F.pad(x, (3, 0)), torch.ones(1, 1, 1, dtype=torch.float64))
    (g,) = torch.autograd.grad(y, x, torch.ones_like(y))
    np.testing.assert_array_equal(gx, g.numpy())


@pytest.mark.parametrize("algo", ["direct", "im2col", "fft", "winograd_f4x4_3x3"])
def test_transpose_runs_through_forward_algorithms(algo, rng):
    x = rng.standard_normal((2, 4, 6, 7)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    ref = F.conv_transpose2d(T(x).double(), T(w).double(), None, 2, 1, 1).numpy()
    y = ck.conv_transpose2d(x, w, None, 2, 1, 1, algo=algo)
    assert y.dtype == np.float32
    assert rel_err(y, ref) < 1e-4


def test_transpose_empty_batch_and_unbatched(rng):
    w = rng.standard_normal((3, 2, 3, 3))
    y = ck.conv_transpose2d(np.zeros((0, 3, 4, 4)), w, stride=2)
    assert y.shape == (0, 2, 9, 9)
    x = rng.standard_normal((3, 4, 4))
    ref = F.conv_transpose2d(T(x), T(w), stride=2).numpy()
    assert rel_err(ck.conv_transpose2d(x, w, stride=2), ref) < 1e-12
