"""The NumPy reference backend: every algorithm in plain NumPy.

``direct`` is the float64 oracle; the others are the real algorithms (im2col + GEMM,
FFT, Winograd, separable) in the compute dtype, tested against it.
"""
from __future__ import annotations

from functools import partial

from ...registry import Algorithm, register
from . import direct, fft, im2col, pooling, separable, winograd

BACKEND = "numpy"

#: Relative-error bounds against the float64 reference accepted by the tests.
EXACT = {"float16": 2e-3, "float32": 1e-6, "float64": 1e-12}
GEMM = {"float16": 2e-3, "float32": 2e-5, "float64": 1e-12}
FFT = {"float16": 2e-3, "float32": 1e-4, "float64": 1e-10}


def _winograd_can(ndim, m):
    def can(p, weight=None):
        if p.ndim != ndim:
            return f"needs {ndim}-D data, got {p.ndim}-D"
        if any(k != 3 for k in p.kernel_size):
            return f"needs a {'x'.join(['3'] * ndim)} kernel, got {p.kernel_size}"
        if any(s != 1 for s in p.stride):
            return f"needs stride 1, got {p.stride}"
        if any(d != 1 for d in p.dilation):
            return f"needs dilation 1, got {p.dilation}"
        return None
    return can


def _separable_can(p, weight=None):
    if p.ndim < 2:
        return "needs 2-D or 3-D filters (a 1-D filter is already one pass)"
    if weight is None:
        return "needs the weight values to detect rank-1 filters"
    if separable.rank1_factors(weight) is None:
        return "some filter slice is not rank 1 (within the tolerance of its dtype)"
    return None


register(Algorithm("direct", BACKEND, "conv", direct.conv, tolerance=EXACT, reference=True,
                   summary="sum over kernel taps of strided windows, float64 (the oracle)"))
register(Algorithm("im2col", BACKEND, "conv", im2col.conv,
                   workspace_bytes=im2col.workspace_bytes, tolerance=GEMM,
                   summary="column matrix in bounded chunks + BLAS matmul per group"))
register(Algorithm("fft", BACKEND, "conv", fft.conv, workspace_bytes=fft.workspace_bytes,
                   tolerance=FFT, summary="rfftn, per-frequency channel GEMM, irfftn, crop"))
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
                       summary=f"Winograd F({_m},3) per axis, batched GEMM per point"))
register(Algorithm("separable", BACKEND, "conv", separable.conv,
                   can_implement=_separable_can, workspace_bytes=separable.workspace_bytes,
                   tolerance={"float16": 3e-3, "float32": 1e-4, "float64": 1e-9},
                   summary="rank-1 filters as one 1-D pass per axis"))
register(Algorithm("direct", BACKEND, "conv_grad_weight", direct.grad_weight,
                   tolerance=EXACT, summary="tap-by-tap contraction, fixed order"))
register(Algorithm("direct", BACKEND, "max_pool", pooling.max_pool,
                   workspace_bytes=pooling.workspace_bytes, tolerance=EXACT))
register(Algorithm("direct", BACKEND, "avg_pool", pooling.avg_pool,
                   workspace_bytes=pooling.workspace_bytes, tolerance=EXACT))
