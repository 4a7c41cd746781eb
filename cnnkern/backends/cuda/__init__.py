"""The CUDA backend: hand-written kernels (``kernels/*.cu``) launched through CuPy on
the current stream. Imports only where CuPy is installed; ``unavailable_reason`` says
why it cannot run (no device, no driver)."""
from __future__ import annotations

import cupy  # noqa: F401  (ImportError -> the registry reports the backend unavailable)

from ...registry import Algorithm, register
from . import conv

BACKEND = "cuda"
TOL = {"float16": 2e-3, "float32": 1e-5, "float64": 1e-12}


def unavailable_reason():
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # noqa: BLE001 - no driver, no device, broken install
        return f"backend 'cuda' is not available: {exc}"
    if count == 0:
        return "backend 'cuda' is not available: no CUDA device"
    return None


register(Algorithm("direct", BACKEND, "conv", conv.direct, can_implement=conv.can_run,
                   tolerance=TOL, summary="one thread per output, no workspace"))
register(Algorithm("im2col", BACKEND, "conv", conv.im2col, can_implement=conv.can_run,
                   workspace_bytes=conv.im2col_workspace, tolerance=TOL,
                   summary="column matrix in bounded chunks + tiled GEMM kernel"))
register(Algorithm("implicit_gemm", BACKEND, "conv", conv.implicit_gemm,
                   can_implement=conv.can_run, tolerance=TOL,
                   summary="tiled GEMM gathering input windows on the fly"))
