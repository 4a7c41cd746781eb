"""Where the implementation sources are, and one hash over all of them.

The autotune cache keys its entries with this hash (and the library version), so a
changed kernel or algorithm never reuses a timing measured for the old code.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


@lru_cache(maxsize=None)
def kernel_dir() -> Path:
    """``cnnkern/kernels`` in an installed wheel, else ``kernels/`` of the checkout."""
    for candidate in (PACKAGE / "kernels", PACKAGE.parent / "kernels"):
        if (candidate / "common.cuh").is_file():
            return candidate
    raise FileNotFoundError(f"cnnkern: CUDA sources not found next to {PACKAGE}")


@lru_cache(maxsize=None)
def implementation_hash() -> str:
    """sha256 (16 hex digits) of the CUDA sources and the backends' Python modules."""
    h = hashlib.sha256()
    try:
        kernels = sorted(kernel_dir().glob("*.cu*"))
    except FileNotFoundError:
        kernels = []
    for path in kernels + sorted((PACKAGE / "backends").rglob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]
