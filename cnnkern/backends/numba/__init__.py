"""The Numba backend: the default for NumPy arrays when Numba is installed.

Compiled kernels where NumPy has no fast form (direct, depthwise, the Winograd
transforms, with the Winograd GEMMs as single-threaded BLAS calls inside Numba's
parallel loop), NumPy/SciPy where they are already fast (im2col's BLAS GEMM, FFT,
separable passes, the weight gradient, pooling: the same code as the NumPy backend,
run with ``ck.set_num_threads`` threads). Every kernel is a top-level
``@njit(cache=True)`` function: a new process loads the machine code from Numba's
cache instead of compiling it again.
"""
from __future__ import annotations

from functools import partial

import numba  # noqa: F401  (ImportError -> the registry reports the backend unavailable)

from ...registry import Algorithm, register
from ...threads import pin_numba_blas
from ..numpy import EXACT, FFT, GEMM, fft, im2col, pooling, separable
from ..numpy import direct as numpy_direct
from ..numpy import _separable_can, _winograd_can
from . import direct, winograd

BACKEND = "numba"

#: float32 kernels accumulate in float32 (the NumPy oracle in float64).
DIRECT = {"float16": 2e-3, "float32": 2e-5, "float64": 1e-12}

pin_numba_blas()


def _depthwise_can(p, weight=None):
    if p.groups != p.in_channels:
        return f"needs groups == in_channels (depthwise), got groups={p.groups} for " \
               f"{p.in_channels} input channels"
    return None


register(Algorithm("direct", BACKEND, "conv", direct.conv,
                   workspace_bytes=direct.workspace_bytes, tolerance=DIRECT,
                   summary="Numba: output planes in cache, taps clipped to the input"))
register(Algorithm("depthwise", BACKEND, "conv", direct.depthwise,
                   can_implement=_depthwise_can,
                   workspace_bytes=direct.depthwise_workspace, tolerance=DIRECT,
                   summary="Numba: channels last, the innermost loop over channels"))
register(Algorithm("im2col", BACKEND, "conv", im2col.conv,
                   workspace_bytes=im2col.workspace_bytes, tolerance=GEMM,
                   summary="column matrix in bounded chunks + BLAS matmul (NumPy code)"))
register(Algorithm("fft", BACKEND, "conv", fft.conv, workspace_bytes=fft.workspace_bytes,
                   tolerance=FFT, summary="rfftn, per-frequency GEMM, irfftn (NumPy code)"))
for _nd, _m, _name, _tol in [
    (2, 2, "winograd_f2x2_3x3", {"float16": 2e-3, "float32": 2e-5, "float64": 1e-12}),
    (2, 4, "winograd_f4x4_3x3", {"float16": 2e-3, "float32": 1e-4, "float64": 1e-11}),
    (1, 2, "winograd_f2_3", {"float16": 2e-3, "float32": 2e-5, "float64": 1e-12}),
    (1, 4, "winograd_f4_3", {"float16": 2e-3, "float32": 1e-4, "float64": 1e-11}),
]:
    register(Algorithm(_name, BACKEND, "conv", partial(winograd.conv, m=_m),
                       can_implement=_winograd_can(_nd, _m),
                       workspace_bytes=partial(winograd.workspace_bytes, m=_m),
                       tolerance=_tol,
                       summary=f"Numba tile transforms F({_m},3), GEMMs per point in BLAS"))
register(Algorithm("separable", BACKEND, "conv", separable.conv,
                   can_implement=_separable_can, workspace_bytes=separable.workspace_bytes,
                   tolerance={"float16": 3e-3, "float32": 1e-4, "float64": 1e-9},
                   summary="rank-1 filters as one 1-D pass per axis (NumPy code)"))
register(Algorithm("direct", BACKEND, "conv_grad_weight", numpy_direct.grad_weight,
                   tolerance=EXACT, summary="tap-by-tap contraction (NumPy code)"))
register(Algorithm("direct", BACKEND, "max_pool", pooling.max_pool,
                   workspace_bytes=pooling.workspace_bytes, tolerance=EXACT))
register(Algorithm("direct", BACKEND, "avg_pool", pooling.avg_pool,
                   workspace_bytes=pooling.workspace_bytes, tolerance=EXACT))
