"""Forward convolution against PyTorch CPU in float64 (the independent oracle)."""
import numpy as np
import pytest
from hypothesis import given

import cnnkern as ck
from helpers import rel_err, torch_conv
from strategies import conv_cases

torch = pytest.importorskip("torch")
FN = {1: ck.conv1d, 2: ck.conv2d, 3: ck.conv3d}


def run_case(c, **kw):
    nd = c["w"].ndim - 2
    return FN[nd](c["x"], c["w"], c["b"], c["stride"], c["padding"], c["dilation"],
                  c["groups"], padding_mode=c["padding_mode"], **kw)


@given(conv_cases())
def test_auto_matches_torch(c):
    y = run_case(c)
    ref = torch_conv(c["x"], c["w"], c["b"], c["stride"], c["pairs"], c["dilation"],
                     c["groups"], c["padding_mode"])
    assert y.dtype == np.float64
    assert y.shape == ref.shape
    if ref.size:
        assert rel_err(y, ref) < 1e-10


@given(conv_cases(max_batch=2))
def test_direct_matches_torch(c):
    y = run_case(c, algo="direct")
    ref = torch_conv(c["x"], c["w"], c["b"], c["stride"], c["pairs"], c["dilation"],
                     c["groups"], c["padding_mode"])
    assert y.shape == ref.shape
    if ref.size:
        assert rel_err(y, ref) < 1e-10


@pytest.mark.parametrize("algo", ["direct", "im2col", "fft"])
def test_small_integers_exact(algo, rng):
    """Index math: small-integer data has an exact float64 answer."""
    x = rng.integers(-3, 4, (2, 4, 9, 7)).astype(np.float64)
    w = rng.integers(-3, 4, (6, 2, 3, 2)).astype(np.float64)
    b = rng.integers(-3, 4, 6).astype(np.float64)
    y = ck.conv2d(x, w, b, stride=(2, 1), padding=((2, 0), (1, 3)), dilation=(1, 2),
                  groups=2, algo=algo)
    ref = torch_conv(x, w, b, (2, 1), [(2, 0), (1, 3)], (1, 2), 2)
    if algo == "fft":
        np.testing.assert_allclose(y, ref, atol=1e-9)
    else:
        np.testing.assert_array_equal(y, ref)


def test_same_padding_matches_torch_same(rng):
    x = rng.standard_normal((2, 3, 10, 9))
    w = rng.standard_normal((4, 3, 4, 3))
    ref = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w),
                                     padding="same", dilation=(2, 1)).numpy()
    assert rel_err(ck.conv2d(x, w, padding="same", dilation=(2, 1)), ref) < 1e-12


@pytest.mark.parametrize("n,s,k", [(10, 2, 3), (11, 2, 3), (7, 3, 5), (5, 4, 1)])
def test_same_with_stride_keeps_ceil_size(n, s, k, rng):
    x = rng.standard_normal((1, 1, n))
    y = ck.conv1d(x, rng.standard_normal((1, 1, k)), stride=s, padding="same")
    assert y.shape[-1] == -(-n // s)


def test_torch_tensor_in_torch_tensor_out(rng):
    x = torch.from_numpy(rng.standard_normal((2, 3, 8, 8)).astype(np.float32))
    w = torch.from_numpy(rng.standard_normal((4, 3, 3, 3)).astype(np.float32))
    w.requires_grad_(True)
    y = ck.conv2d(x, w, padding=1)
    assert isinstance(y, torch.Tensor) and y.dtype == torch.float32
    ref = torch.nn.functional.conv2d(x.double(), w.detach().double(), padding=1)
    assert rel_err(y.numpy(), ref.numpy()) < 1e-5


def test_torch_output_shares_memory_with_result(rng):
    x = torch.from_numpy(rng.standard_normal((1, 1, 5)))
    y = ck.conv1d(x, torch.ones(1, 1, 1, dtype=torch.float64))
    assert isinstance(y, torch.Tensor)
    np.testing.assert_array_equal(y.numpy(), x.numpy())


def test_unbatched_input(rng):
    x = rng.standard_normal((3, 9, 8))
    w = rng.standard_normal((5, 3, 3, 3))
    y = ck.conv2d(x, w, padding=1)
    assert y.shape == (5, 9, 8)
    np.testing.assert_allclose(y, ck.conv2d(x[None], w, padding=1)[0], rtol=1e-12)


def test_non_contiguous_and_read_only(rng):
    base = rng.standard_normal((2, 8, 12, 20))
    x = base[:, ::2, :, ::2]                   # strided view
    w = np.asfortranarray(rng.standard_normal((4, 4, 3, 3)))
    x.setflags(write=False)
    w.setflags(write=False)
    ref = torch_conv(np.ascontiguousarray(x), np.ascontiguousarray(w), None, (1, 1),
                     [(1, 1), (1, 1)], (1, 1), 1)
    for algo in ck.supported_algorithms(x, w, padding=1):
        assert rel_err(ck.conv2d(x, w, padding=1, algo=algo), ref) < 1e-10, algo


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_empty_batch(nd, rng):
    x = np.zeros((0, 2) + (5,) * nd, dtype=np.float32)
    w = rng.standard_normal((3, 2) + (3,) * nd).astype(np.float32)
    y = {1: ck.conv1d, 2: ck.conv2d, 3: ck.conv3d}[nd](x, w, padding=1)
    assert y.shape == (0, 3) + (5,) * nd and y.dtype == np.float32


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_output_dtype_is_input_dtype(dtype, rng):
    x = rng.standard_normal((2, 3, 7, 7)).astype(dtype)
    w = rng.standard_normal((2, 3, 3, 3)).astype(dtype)
    b = rng.standard_normal(2).astype(dtype)
    y = ck.conv2d(x, w, b)
    assert y.dtype == dtype
    ref = torch_conv(x, w, b, (1, 1), [(0, 0), (0, 0)], (1, 1), 1)
    assert rel_err(y, ref) < {np.float16: 2e-3, np.float32: 1e-5, np.float64: 1e-12}[dtype]


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_padding_modes(mode, nd, rng):
    x = rng.standard_normal((2, 2) + (6,) * nd)
    w = rng.standard_normal((3, 2) + (3,) * nd)
    pads = [(2, 1)] * nd
    y = FN[nd](x, w, padding=tuple(pads), padding_mode=mode)
    ref = torch_conv(x, w, None, (1,) * nd, pads, (1,) * nd, 1, mode)
    assert rel_err(y, ref) < 1e-12


def test_depthwise_channel_multiplier(rng):
    x = rng.standard_normal((2, 4, 11, 11))
    w = rng.standard_normal((12, 1, 5, 5))
    ref = torch_conv(x, w, None, (2, 2), [(2, 2), (2, 2)], (1, 1), 4)
    for algo in ck.supported_algorithms(x, w, 2, 2, groups=4):
        y = ck.conv2d(x, w, None, 2, 2, groups=4, algo=algo)
        assert rel_err(y, ref) < 1e-10, algo
