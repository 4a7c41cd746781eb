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

import numba  # noqa: F401  (ImportError -> the registry reports the backend unavailable)

from ...registry import Algorithm, register
from ...threads import pin_numba_blas, start_numba_threads
from ..numpy import register_cpu_algorithms
from . import columns, depthwise, direct, im2col_blocks, implicit_gemm, winograd

BACKEND = "numba"

#: float32 kernels accumulate in float32 (the NumPy oracle in float64).
DIRECT = {"float16": 2e-3, "float32": 2e-5, "float64": 1e-12}

start_numba_threads()
pin_numba_blas()


def _depthwise_can(p, weight=None):
    if p.groups != p.in_channels:
        return f"needs groups == in_channels (depthwise), got groups={p.groups} for " \
               f"{p.in_channels} input channels"
    return None


register(Algorithm("direct", BACKEND, "conv", direct.conv,
                   workspace_bytes=direct.workspace_bytes, tolerance=DIRECT,
                   summary="Numba: output planes in cache, taps clipped to the input"))
register(Algorithm("depthwise", BACKEND, "conv", depthwise.depthwise,
                   can_implement=_depthwise_can,
                   workspace_bytes=depthwise.depthwise_workspace, tolerance=DIRECT,
                   summary="Numba: NCHW planes split by stride phase, or channels last"))


def _blocks_can(p, weight=None):
    if p.kernel_volume == 1:
        return "needs a kernel larger than 1 tap (a 1x1 layer's columns are its input: " \
               "im2col's one large GEMM is the better plan)"
    return None


register(Algorithm("im2col_blocks", BACKEND, "conv", im2col_blocks.conv,
                   can_implement=_blocks_can,
                   workspace_bytes=im2col_blocks.workspace_bytes,
                   tolerance={"float16": 2e-3, "float32": 2e-5, "float64": 1e-12},
                   summary="Numba: a block of columns at a time in cache, a one-thread "
                           "BLAS GEMM per block"))
register(Algorithm("implicit_gemm", BACKEND, "conv", implicit_gemm.conv,
                   can_implement=implicit_gemm.can_implement,
                   workspace_bytes=implicit_gemm.workspace_bytes,
                   tolerance={"float16": 2e-3, "float32": 2e-5},
                   summary="Numba: 6x64 sums in vector registers, the input read in "
                           "place (no columns), weights packed per call"))
register_cpu_algorithms(BACKEND, winograd,
                        "Numba tile transforms F({m},3), GEMMs per point in BLAS",
                        shared_note=" (NumPy code)", column_fill=columns.fill,
                        fill_note=" (NumPy code, columns filled by Numba)")
