"""The NumPy reference backend: every algorithm in plain NumPy.

``direct`` is the float64 oracle; the others are the real algorithms (im2col + GEMM,
FFT, Winograd, separable) in the compute dtype, tested against it.
"""
from __future__ import annotations

from functools import partial
from typing import Optional

from ...registry import Algorithm, register
from . import direct, fft, im2col, pooling, separable, tap_gemm, winograd
from .workspace import keep_freed_memory

BACKEND = "numpy"

#: Whether this process's heap keeps freed blocks for the next call (glibc only;
#: ``workspace.keep_freed_memory``).
HEAP_KEPT = keep_freed_memory()

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
    if sum(k > 1 for k in p.kernel_size) < 2:
        return f"needs at least two kernel axes longer than 1, got {p.kernel_size} " \
               f"(one pass would be the whole filter)"
    return None


def _separable_values(weight) -> Optional[str]:
    if weight is None:
        return "needs the weight values to detect rank-1 filters"
    if separable.rank1_factors(weight) is None:
        return "some filter slice is not rank 1 (within the tolerance of its dtype)"
    return None


register(Algorithm("direct", BACKEND, "conv", direct.conv, tolerance=EXACT, reference=True,
                   summary="sum over kernel taps of strided windows, float64 (the oracle)"))
#: (dimensions, m, name, tolerance) of the Winograd variants of every CPU backend.
WINOGRAD_VARIANTS = [
    (2, 2, "winograd_f2x2_3x3", {"float16": 2e-3, "float32": 2e-5, "float64": 1e-12}),
    (2, 4, "winograd_f4x4_3x3", {"float16": 2e-3, "float32": 1e-4, "float64": 1e-11}),
    (1, 2, "winograd_f2_3", {"float16": 2e-3, "float32": 2e-5, "float64": 1e-12}),
    (1, 4, "winograd_f4_3", {"float16": 2e-3, "float32": 1e-4, "float64": 1e-11}),
]


def register_cpu_algorithms(backend: str, winograd_module, winograd_summary: str,
                            shared_note: str = "", column_fill=None,
                            fill_note: str = "") -> None:
    """Register on ``backend`` the algorithms every CPU backend has: this package's
    im2col (its column matrix built by ``column_fill`` where given, ``fill_note`` in
    its summary), FFT, separable, weight gradient and pooling (``shared_note`` marks
    them in the summaries), and the Winograd variants of ``winograd_module``."""
    register(Algorithm("im2col", backend, "conv", partial(im2col.conv, fill=column_fill),
                       workspace_bytes=partial(im2col.workspace_bytes, fill=column_fill),
                       tolerance=GEMM,
                       summary="column matrix in bounded chunks + BLAS matmul per group"
                               + (fill_note or shared_note)))
    register(Algorithm("tap_gemm", backend, "conv", tap_gemm.conv,
                       can_implement=tap_gemm.can_implement,
                       workspace_bytes=tap_gemm.workspace_bytes, tolerance=GEMM,
                       summary="a BLAS GEMM per kernel tap over the outputs it reaches "
                               "inside the input (zero padding skipped)" + shared_note))
    register(Algorithm("fft", backend, "conv", fft.conv,
                       workspace_bytes=fft.workspace_bytes, tolerance=FFT,
                       summary="rfftn, per-frequency channel GEMM, irfftn, crop" + shared_note))
    for nd, m, name, tol in WINOGRAD_VARIANTS:
        register(Algorithm(name, backend, "conv", partial(winograd_module.conv, m=m),
                           can_implement=_winograd_can(nd, m),
                           workspace_bytes=partial(winograd_module.workspace_bytes, m=m),
                           tolerance=tol, summary=winograd_summary.format(m=m)))
    register(Algorithm("separable", backend, "conv", separable.conv,
                       can_implement=_separable_can, value_check=_separable_values,
                       workspace_bytes=separable.workspace_bytes,
                       tolerance={"float16": 3e-3, "float32": 1e-4, "float64": 1e-9},
                       summary="rank-1 filters as one 1-D pass per axis" + shared_note))
    register(Algorithm("direct", backend, "conv_grad_weight", direct.grad_weight,
                       tolerance=EXACT,
                       summary="tap-by-tap contraction, fixed order" + shared_note))
    register(Algorithm("direct", backend, "max_pool", pooling.max_pool,
                       workspace_bytes=pooling.workspace_bytes, tolerance=EXACT))
    register(Algorithm("direct", backend, "avg_pool", pooling.avg_pool,
                       workspace_bytes=pooling.workspace_bytes, tolerance=EXACT))


register_cpu_algorithms(BACKEND, winograd, "Winograd F({m},3) per axis, batched GEMM per point")
