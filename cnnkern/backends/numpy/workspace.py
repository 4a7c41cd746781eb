"""Scratch memory of the CPU backends that stays mapped from one call to the next:
buffers kept per thread (channels-last copies, column matrices, transformed filters),
and glibc's heap told to keep what the Numba kernels free.

Why: memory the OS maps afresh costs a page fault per 4 KiB on first touch (about 2 us
each on the 2-core VM, a tenth of the bandwidth of a plain copy). glibc maps every
block above its mmap threshold (128 KiB at the start) afresh and unmaps it when freed,
and gives the top of its heap back once more than twice the largest block freed so far
lies free there. So in a fresh process a call whose workspaces are about its output's
size found all of them new on every call: MobileNetV2's dw_14 at batch 8 took 1324
page faults and 4.1 ms a call, against none and 0.9 ms now; VGG-16's conv1_2 137754
faults and 298 ms against 50 and 131 (benchmarks/results/2026-11-23-cpu-fresh-process-
b1.json and -b8.json; docs/performance.md, "Page faults").
Two remedies, both here: the Python-side workspaces are kept (``workspace``), so a
call's output is the only block it allocates and frees, as for PyTorch; and
``keep_freed_memory`` sets glibc's thresholds to the values its own heuristic reaches
once a process has freed one 32 MiB block, so that the buffers the Numba kernels
allocate in their threads are reused as well.

The kept buffers are released by ``release()`` (``cnnkern.release_workspaces``); at
most ``KEEP_BYTES`` per thread stay, and a buffer larger than that is never kept.
Each ``workspace`` block takes a buffer nobody else holds, so nested and concurrent
calls never share one.
"""
from __future__ import annotations

import ctypes
import os
import platform
import threading
from math import prod

import numpy as np

from . import _common

#: The most bytes of kept buffers per thread: the workspace bound of issue 9 (a call's
#: workspace is chunked below it).
KEEP_BYTES = 64 * 2**20
#: Smaller buffers come from ``np.empty`` and are not kept: glibc serves them from its
#: heap without a fresh mapping, and a small layer's call is tens of microseconds.
SMALL_BYTES = 64 * 2**10


class _Kept(threading.local):
    def __init__(self):
        self.free: list[np.ndarray] = []        # by size, smallest first
        self.total = 0


_KEPT = _Kept()


def _take(nbytes: int) -> np.ndarray:
    """The smallest kept buffer of at least ``nbytes`` (out of the free list), or a new
    one."""
    kept = _KEPT
    for i, buf in enumerate(kept.free):
        if buf.nbytes >= nbytes:
            kept.total -= buf.nbytes
            return kept.free.pop(i)
    return np.empty(-(-nbytes // 8), dtype=np.float64).view(np.uint8)   # 8-aligned


def _give_back(buf: np.ndarray) -> None:
    """Keep ``buf`` for the next call, dropping the smallest kept buffers while the
    total is over ``KEEP_BYTES``."""
    if buf.nbytes > KEEP_BYTES:
        return
    kept = _KEPT
    free = kept.free
    i = 0
    while i < len(free) and free[i].nbytes < buf.nbytes:
        i += 1
    free.insert(i, buf)
    kept.total += buf.nbytes
    while kept.total > KEEP_BYTES:
        kept.total -= free.pop(0).nbytes


class workspace:
    """``with workspace(shape, dtype) as a``: a C-contiguous scratch array for the
    block. Its contents are left over from an earlier call (NaN, for a floating dtype,
    when outputs are poisoned, as the tests do), so the caller writes every element it
    reads; it must not outlive the block."""

    __slots__ = ("_shape", "_dtype", "_buf")

    def __init__(self, shape, dtype):
        self._shape = shape
        self._dtype = np.dtype(dtype)
        self._buf = None

    def __enter__(self) -> np.ndarray:
        nbytes = prod(self._shape) * self._dtype.itemsize
        if nbytes < SMALL_BYTES:
            arr = np.empty(self._shape, dtype=self._dtype)
        else:
            self._buf = _take(nbytes)
            arr = np.ndarray(self._shape, dtype=self._dtype, buffer=self._buf)
        if _common.POISON and self._dtype.kind in "fc":
            arr.fill(np.nan)
        return arr

    def __exit__(self, *exc) -> None:
        if self._buf is not None:
            _give_back(self._buf)
            self._buf = None


def prefix(flat: np.ndarray, shape) -> np.ndarray:
    """The first elements of a flat workspace as a C-contiguous array of ``shape``: a
    chunk smaller than the largest one the workspace was sized for."""
    return flat[:prod(shape)].reshape(shape)


def kept_bytes() -> int:
    """Bytes of scratch buffers this thread keeps now."""
    return _KEPT.total


def release() -> None:
    """Drop the scratch buffers this thread keeps."""
    _KEPT.free.clear()
    _KEPT.total = 0


#: glibc's ``mallopt`` parameters, and the values its dynamic threshold ends at on
#: 64-bit (``DEFAULT_MMAP_THRESHOLD_MAX``, and twice that for trimming).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 * 2**20
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD
#: Environment variables by which a user sets these thresholds; if any is set,
#: ``keep_freed_memory`` leaves the heap alone.
HEAP_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_",
                  "GLIBC_TUNABLES")


def keep_freed_memory() -> bool:
    """Set glibc's mmap threshold to 32 MiB and its trim threshold to 64 MiB, unless
    the process is not on glibc or its environment sets them (``HEAP_VARIABLES``).
    Returns whether it set them. Process-wide, as after glibc's own adjustment: a
    freed block of up to 32 MiB stays in the heap for the next allocation instead of
    going back to the OS, and at most 64 MiB stay free at the top of each heap."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc" or \
            any(v in os.environ for v in HEAP_VARIABLES):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and \
        bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
