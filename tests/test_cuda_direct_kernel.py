"""kernels/direct.cu on the GPU against the NumPy float64 reference (skipped without
CuPy and a CUDA device)."""
import numpy as np
import pytest
from hypothesis import given, settings

import cnnkern as ck
from cnnkern.params import ConvParams
from helpers import rel_err
from strategies import conv_cases

cp = pytest.importorskip("cupy")
try:
    _DEVICES = cp.cuda.runtime.getDeviceCount()
except Exception:  # noqa: BLE001 - no driver or no device
    _DEVICES = 0
pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(_DEVICES == 0, reason="no CUDA device")]

cuda_direct = pytest.importorskip("benchmarks.cuda_direct")
FN = {1: ck.conv1d, 2: ck.conv2d, 3: ck.conv3d}


def _run(c, dtype):
    nd = c["w"].ndim - 2
    p = ConvParams.build("conv", nd, c["x"].shape, c["w"].shape, stride=c["stride"],
                         padding=c["padding"], dilation=c["dilation"], groups=c["groups"],
                         dtype=dtype)
    x, w = cp.asarray(c["x"].astype(dtype)), cp.asarray(c["w"].astype(dtype))
    b = None if c["b"] is None else cp.asarray(c["b"].astype(dtype))
    y = cp.full(p.output_shape, cp.nan, dtype=dtype)          # poisoned
    cuda_direct.conv_direct(x, w, b, p, out=y)
    ref = FN[nd](c["x"].astype(dtype).astype(np.float64),
                 c["w"].astype(dtype).astype(np.float64),
                 None if c["b"] is None else c["b"].astype(dtype).astype(np.float64),
                 c["stride"], c["padding"], c["dilation"], c["groups"], algo="direct")
    return cp.asnumpy(y), ref


@settings(max_examples=200)
@given(conv_cases(modes=("zeros",)))
def test_direct_kernel_matches_reference(c):
    for dtype, tol in [(np.float32, 1e-6), (np.float64, 1e-13)]:
        y, ref = _run(c, dtype)
        assert not np.isnan(y).any()
        if ref.size:
            assert rel_err(y, ref) < tol


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_direct_kernel_sanitizer_cases(nd, rng):
    """Small, edge-heavy cases: also run under compute-sanitizer by the check script."""
    x = rng.standard_normal((2, 4) + (7,) * nd)
    w = rng.standard_normal((6, 2) + (3,) * nd)
    c = dict(x=x, w=w, b=rng.standard_normal(6), stride=2, padding=((3, 0),) * nd,
             dilation=2, groups=2)
    y, ref = _run(c, np.float32)
    assert rel_err(y, ref) < 1e-6
