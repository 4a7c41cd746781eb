"""Loading ``kernels/*.cu`` through CuPy (NVRTC) with explicit template instances.

One ``cupy.RawModule`` per (file, source hash, options, device), kept in a memo; CuPy
also caches the compiled binary on disk. Shapes are never baked into source text:
every specialization is a template instance named in ``name_expressions``.
"""
from __future__ import annotations

import hashlib
import os
import threading
import numpy as np

from ..._sources import kernel_dir

#: Set by the tests: fresh outputs start as NaN so an unwritten element cannot pass.
POISON = False

#: Adds -lineinfo (for compute-sanitizer and ncu source views).
DEBUG = os.environ.get("CNNKERN_CUDA_DEBUG", "") not in ("", "0")

CTYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}

_LOCK = threading.Lock()
_MODULES: dict = {}


def source_hash(filename: str) -> str:
    d = kernel_dir()
    h = hashlib.sha256()
    for path in sorted(d.glob("*.cuh")) + [d / filename]:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def options() -> tuple:
    opts = ("-std=c++17", f"-I{kernel_dir()}")
    return opts + ("-lineinfo",) if DEBUG else opts


def get_module(filename: str, names: tuple):
    """The compiled module of ``kernels/<filename>`` on the current device."""
    import cupy as cp
    key = (filename, source_hash(filename), options(), names, cp.cuda.Device().id)
    with _LOCK:
        mod = _MODULES.get(key)
        if mod is None:
            src = (kernel_dir() / filename).read_text()
            mod = cp.RawModule(code=src, options=options(), name_expressions=names)
            _MODULES[key] = mod
    return mod


def alloc(shape, dtype):
    import cupy as cp
    if POISON:
        return cp.full(shape, cp.nan, dtype=dtype)
    return cp.empty(shape, dtype=dtype)


def index_type(*arrays) -> str:
    """32-bit indexing when every byte extent fits, else 64-bit."""
    return "int" if max(a.nbytes for a in arrays if a is not None) < 2**31 else "long long"


GEOMETRY = np.dtype([
    ("batch", "<i4"), ("c_in", "<i4"), ("c_out", "<i4"), ("groups", "<i4"),
    ("in_", "<i4", 3), ("out", "<i4", 3), ("kernel", "<i4", 3), ("stride", "<i4", 3),
    ("dilation", "<i4", 3), ("pad_before", "<i4", 3)])


def geometry(p):
    """The ``ConvGeometry`` struct of kernels/common.cuh, passed by value."""
    def three(vals, fill):
        return list(vals) + [fill] * (3 - len(vals))
    g = np.zeros((), dtype=GEOMETRY)
    g["batch"], g["c_in"], g["c_out"], g["groups"] = (p.batch, p.in_channels,
                                                      p.out_channels, p.groups)
    g["in_"] = three(p.input_size, 1)
    g["out"] = three(p.output_size, 1)
    g["kernel"] = three(p.kernel_size, 1)
    g["stride"] = three(p.stride, 1)
    g["dilation"] = three(p.dilation, 1)
    g["pad_before"] = three([b for b, _ in p.padding], 0)
    return g[()]


def null_or(array):
    """A device pointer argument, or a null pointer for None."""
    return np.uint64(0) if array is None else array
