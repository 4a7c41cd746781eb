"""The CUDA backend against the NumPy float64 reference, through the public API
(skipped without CuPy and a CUDA device). Registry-driven: every CUDA algorithm is
tested on every case it claims."""
import numpy as np
import pytest
from hypothesis import given, settings

import cnnkern as ck
from cnnkern import registry
from helpers import conv_err, rel_err
from strategies import conv_cases

cp = pytest.importorskip("cupy")
try:
    _DEVICES = cp.cuda.runtime.getDeviceCount()
except Exception:  # noqa: BLE001 - no driver or no device
    _DEVICES = 0
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(_DEVICES == 0, reason="no CUDA device")]

ALGOS = [a.name for a in registry.algorithms("conv", "cuda")] if _DEVICES else []
FN = {1: ck.conv1d, 2: ck.conv2d, 3: ck.conv3d}


def _reference(c, dtype, magnitude=False):
    f64 = (lambda a: None if a is None else a.astype(dtype).astype(np.float64))
    if magnitude:
        f64 = (lambda a, f=f64: None if a is None else np.abs(f(a)))
    nd = c["w"].ndim - 2
    return FN[nd](f64(c["x"]), f64(c["w"]), f64(c["b"]), c["stride"], c["padding"],
                  c["dilation"], c["groups"], padding_mode=c["padding_mode"], algo="direct")


def _gpu(c, dtype, algo):
    nd = c["w"].ndim - 2
    dev = (lambda a: None if a is None else cp.asarray(a.astype(dtype)))
    y = FN[nd](dev(c["x"]), dev(c["w"]), dev(c["b"]), c["stride"], c["padding"],
               c["dilation"], c["groups"], padding_mode=c["padding_mode"], algo=algo)
    assert isinstance(y, cp.ndarray) and y.dtype == dtype
    return cp.asnumpy(y)


@pytest.mark.parametrize("algo", ALGOS)
@settings(max_examples=120)
@given(c=conv_cases())
def test_cuda_algorithm_matches_reference(algo, c):
    for dtype in (np.float32, np.float64):
        y = _gpu(c, dtype, algo)
        ref = _reference(c, dtype)
        assert y.shape == ref.shape
        if ref.size:
            assert not np.isnan(y).any()
            tol = registry.get("conv", "cuda", algo).tolerance[np.dtype(dtype).name]
            terms = c["w"][0].size + (c["b"] is not None)
            assert conv_err(y, ref, _reference(c, dtype, True), terms) < tol


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_cuda_sanitizer_cases(algo, nd, rng):
    """Small, edge-heavy cases (odd sizes, stride > kernel, dilation, groups with a
    multiplier, asymmetric padding); the check script also runs these under
    compute-sanitizer."""
    c = dict(x=rng.standard_normal((3, 4) + (7,) * nd),
             w=rng.standard_normal((6, 2) + (2,) * nd), b=rng.standard_normal(6),
             stride=3, padding=((3, 0),) * nd, dilation=2, groups=2, padding_mode="zeros")
    assert rel_err(_gpu(c, np.float32, algo), _reference(c, np.float32)) < 1e-5


def test_im2col_chunks(monkeypatch, rng):
    from cnnkern.backends.cuda import conv
    c = dict(x=rng.standard_normal((3, 4, 19, 17)), w=rng.standard_normal((5, 4, 3, 3)),
             b=None, stride=1, padding=1, dilation=1, groups=1, padding_mode="zeros")
    monkeypatch.setattr(conv, "IM2COL_CHUNK_BYTES", 4 * 36 * 128 * 3)
    assert rel_err(_gpu(c, np.float32, "im2col"), _reference(c, np.float32)) < 1e-5


def test_float16_and_padding_modes_and_empty_batch(rng):
    x = rng.standard_normal((2, 3, 9, 9))
    w = rng.standard_normal((4, 3, 3, 3))
    for mode in ("reflect", "replicate", "circular"):
        y = ck.conv2d(cp.asarray(x), cp.asarray(w), padding=2, padding_mode=mode)
        ref = ck.conv2d(x, w, padding=2, padding_mode=mode)
        assert rel_err(cp.asnumpy(y), ref) < 1e-12
    y16 = ck.conv2d(cp.asarray(x, dtype=cp.float16), cp.asarray(w, dtype=cp.float16))
    assert y16.dtype == cp.float16
    ref = ck.conv2d(x.astype(np.float16).astype(np.float64),
                    w.astype(np.float16).astype(np.float64))
    assert rel_err(cp.asnumpy(y16), ref) < 2e-3
    empty = ck.conv2d(cp.zeros((0, 3, 9, 9)), cp.asarray(w))
    assert isinstance(empty, cp.ndarray) and empty.shape == (0, 4, 7, 7)


def test_transpose_and_input_gradient_on_gpu(rng):
    x = rng.standard_normal((2, 4, 6, 7))
    w = rng.standard_normal((4, 3, 3, 3))
    y = ck.conv_transpose2d(cp.asarray(x), cp.asarray(w), None, 2, 1, 1)
    ref = ck.conv_transpose2d(x, w, None, 2, 1, 1)
    assert isinstance(y, cp.ndarray) and rel_err(cp.asnumpy(y), ref) < 1e-12


def test_torch_cuda_tensors_zero_copy():
    torch = pytest.importorskip("torch")
    x = torch.randn(2, 3, 10, 10, device="cuda")
    w = torch.randn(4, 3, 3, 3, device="cuda", requires_grad=True)
    y = ck.conv2d(x, w, padding=1, algo="implicit_gemm")
    assert isinstance(y, torch.Tensor) and y.is_cuda and y.dtype == torch.float32
    torch.backends.cudnn.allow_tf32 = False
    ref = torch.nn.functional.conv2d(x.double(), w.detach().double(), padding=1)
    assert rel_err(y.cpu().numpy(), ref.cpu().numpy()) < 1e-5


def test_numpy_cupy_mix_is_a_type_error():
    with pytest.raises(TypeError, match="expected all arrays on one device, but input is "
                                        "a cupy array on cuda:0 and weight is a numpy "
                                        "array on cpu"):
        ck.conv2d(cp.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3)))


def test_forced_numpy_backend_on_gpu_arrays(rng):
    x = cp.asarray(rng.standard_normal((1, 2, 6, 6)))
    w = cp.asarray(rng.standard_normal((2, 2, 3, 3)))
    y = ck.conv2d(x, w, backend="numpy", algo="fft")
    assert isinstance(y, cp.ndarray)
    assert rel_err(cp.asnumpy(y), cp.asnumpy(ck.conv2d(x, w))) < 1e-5


def test_ops_without_cuda_kernels_say_so():
    with pytest.raises(ck.BackendUnavailableError, match="max_pool2d: no algorithm for "
                                                         "this operation on backend 'cuda'"):
        ck.max_pool2d(cp.ones((1, 1, 4, 4)), 2)
