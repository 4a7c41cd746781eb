"""Array kinds: what came in, which backend serves it, and how the result goes back.

NumPy in, NumPy out; a CPU tensor of another library (PyTorch, JAX) goes in through
DLPack without a copy and its own kind comes back. GPU arrays (CuPy, or anything with
``__cuda_array_interface__`` / a CUDA ``__dlpack_device__``) belong to the ``cuda``
backend. No foreign library is imported unless the caller passed one of its arrays.
"""
from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from .params import fail

_DLPACK_CPU = 1
_DLPACK_CUDA_LIKE = (2, 3, 13)  # kDLCUDA, kDLCUDAHost, kDLCUDAManaged


@dataclass(frozen=True)
class Kind:
    """Where an array lives and which library it belongs to."""

    library: str          # "numpy", "cupy", or a foreign module's root name ("torch", "jax")
    device: str           # "cpu" or "cuda:<id>"

    @property
    def on_gpu(self) -> bool:
        return self.device != "cpu"


NUMPY = Kind("numpy", "cpu")


def _root_module(obj) -> str:
    return type(obj).__module__.split(".")[0]


def kind_of(obj) -> Kind:
    if isinstance(obj, np.ndarray):
        return NUMPY
    lib = _root_module(obj)
    if lib == "cupy":
        return Kind("cupy", f"cuda:{obj.device.id}")
    if hasattr(obj, "__dlpack_device__"):
        dev_type, dev_id = obj.__dlpack_device__()
        if int(dev_type) in _DLPACK_CUDA_LIKE:
            return Kind(lib, f"cuda:{dev_id}")
        if int(dev_type) == _DLPACK_CPU:
            return Kind(lib, "cpu")
        return Kind(lib, f"dlpack-device-{int(dev_type)}:{dev_id}")
    if hasattr(obj, "__cuda_array_interface__"):
        return Kind(lib, "cuda:?")
    return NUMPY


def to_host(fname: str, argname: str, obj) -> np.ndarray:
    """A NumPy view of a CPU array (zero-copy for DLPack producers)."""
    if isinstance(obj, np.ndarray):
        return obj
    kind = kind_of(obj)
    if kind.on_gpu:
        # only reached when the caller forced a CPU backend on GPU arrays
        if kind.library == "cupy":
            return obj.get()
        if kind.library == "torch":
            return obj.detach().cpu().numpy()
        fail(fname, f"cannot copy {argname} ({kind.library} array on {kind.device}) to "
                    f"the host; pass a CuPy array or a torch tensor", TypeError)
    if _root_module(obj) == "torch":
        # a tensor that requires grad refuses DLPack export; we never build a graph
        obj = obj.detach()
        if str(obj.dtype) == "torch.bfloat16":
            fail(fname, f"expected {argname} of a floating dtype (float16, float32, "
                        f"float64) on the CPU, but got bfloat16 (supported on the cuda "
                        f"backend only)", TypeError)
        if obj.is_conj() or obj.is_neg():
            obj = obj.resolve_conj().resolve_neg()
    if hasattr(obj, "__dlpack__"):
        try:
            return np.from_dlpack(obj)
        except (TypeError, BufferError, RuntimeError) as exc:
            fail(fname, f"could not read {argname} ({type(obj).__name__}) through "
                        f"DLPack: {exc}", TypeError)
    try:
        arr = np.asarray(obj)
    except Exception as exc:  # noqa: BLE001 - report anything NumPy cannot read
        fail(fname, f"expected {argname} to be an array, but got {type(obj).__name__} "
                    f"({exc})", TypeError)
    if arr.dtype == object:
        fail(fname, f"expected {argname} to be a numeric array, but got "
                    f"{type(obj).__name__} of dtype object", TypeError)
    return arr


def to_device(fname: str, argname: str, obj):
    """A CuPy view of a GPU array (zero-copy through DLPack or the CUDA array
    interface)."""
    import cupy as cp
    if _root_module(obj) == "cupy":
        return obj
    if not kind_of(obj).on_gpu:
        fail(fname, f"expected {argname} on a CUDA device, but got a "
                    f"{type(obj).__name__} on the CPU", TypeError)
    if _root_module(obj) == "torch":
        obj = obj.detach()
    if hasattr(obj, "__dlpack__"):
        try:
            return cp.from_dlpack(obj)
        except Exception as exc:  # noqa: BLE001 - report what the producer refused
            fail(fname, f"could not read {argname} ({type(obj).__name__}) through "
                        f"DLPack: {exc}", TypeError)
    return cp.asarray(obj)


def array_module(arr):
    """``cupy`` for CuPy arrays, else ``numpy``."""
    if _root_module(arr) == "cupy":
        return sys.modules["cupy"]
    return np


def common_kind(fname: str, **arrays) -> Kind:
    """The kind of the first array; every other array must live on the same device."""
    first_name, first = None, None
    for name, obj in arrays.items():
        if obj is None:
            continue
        k = kind_of(obj)
        if first is None:
            first_name, first = name, k
            continue
        if k.device != first.device:
            fail(fname, f"expected all arrays on one device, but {first_name} is a "
                        f"{first.library} array on {first.device} and {name} is a "
                        f"{k.library} array on {k.device}", TypeError)
    return first or NUMPY


def _from_dlpack(library: str, array) -> Any:
    """``array`` as an array of ``library`` through its from_dlpack, if it has one."""
    module = sys.modules.get(library) or importlib.import_module(library)
    for path in ("from_dlpack", "numpy.from_dlpack", "dlpack.from_dlpack"):
        target: Optional[Any] = module
        for part in path.split("."):
            target = getattr(target, part, None)
        if callable(target):
            return target(array)
    return array


def wrap(result, kind: Kind) -> Any:
    """Hand a result back as the caller's array kind (zero-copy where possible)."""
    if _root_module(result) == "cupy":
        return result if kind.library == "cupy" else _from_dlpack(kind.library, result)
    if kind.library == "numpy":
        return result
    if kind.library == "torch":
        tensor = sys.modules["torch"].from_numpy(np.ascontiguousarray(result))
        return tensor.to(kind.device) if kind.on_gpu else tensor
    if kind.library == "cupy":
        import cupy
        with cupy.cuda.Device(int(kind.device.split(":")[1])):
            return cupy.asarray(result)
    return _from_dlpack(kind.library, np.ascontiguousarray(result))


def default_backend(kind: Kind) -> str:
    """The backend a call on this kind of array runs on when none is named."""
    if kind.on_gpu:
        return "cuda"
    from .registry import load_backend
    return "numba" if load_backend("numba") is None else "numpy"


def available_backends() -> list[str]:
    """The backends that can run on this machine now."""
    from .registry import BACKEND_MODULES, load_backend
    return [b for b in BACKEND_MODULES if load_backend(b) is None]
