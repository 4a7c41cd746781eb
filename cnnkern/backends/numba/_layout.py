"""Shapes as the Numba kernels take them: every call as 3-D (1-D and 2-D calls get
leading spatial axes of size 1), padding as per-axis source-index maps; and the
strided run copy the kernels that read the unpadded input share."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit

from ...threads import sync_numba
from ..numpy._common import alloc, compute_dtype

__all__ = ["as3d", "bias_or_zeros", "compute_dtype", "copy_run", "depthwise_operands",
           "index_maps", "pads3", "sync_numba", "triple"]


def triple(values, fill: int):
    """A per-axis tuple of 1-3 entries as 3 entries, leading axes filled."""
    values = tuple(values)
    return (fill,) * (3 - len(values)) + values


def as3d(a: np.ndarray, dtype) -> np.ndarray:
    """``(N, C, *spatial)`` as a C-contiguous ``(N, C, D, H, W)`` array of ``dtype``."""
    a = np.ascontiguousarray(a, dtype=dtype)
    return a.reshape(a.shape[:2] + triple(a.shape[2:], 1))


def bias_or_zeros(bias, p, dtype) -> np.ndarray:
    """The bias in ``dtype``; zeros without one (the kernels start every output from it)."""
    if bias is None:
        return np.zeros(p.out_channels, dtype)
    return np.asarray(bias, dtype=dtype)


def depthwise_operands(x, w, bias, p):
    """What the NCHW depthwise kernels take: the input as 3-D, the weights as one row of
    taps per output channel and the bias, in the compute dtype, and a fresh 3-D output
    (all after ``sync_numba``)."""
    sync_numba()
    cd = compute_dtype(p.dtype)
    w2 = np.ascontiguousarray(w, dtype=cd).reshape(p.out_channels, p.kernel_volume)
    y = alloc((p.batch, p.out_channels) + triple(p.output_size, 1), dtype=cd)
    return as3d(x, cd), w2, bias_or_zeros(bias, p, cd), y


def pads3(p) -> np.ndarray:
    """The leading padding per axis (trailing padding follows from the output size)."""
    return np.array(triple([b for b, _ in p.padding], 0), dtype=np.int64)


def _source_index(j: np.ndarray, n: int, mode: str) -> np.ndarray:
    if mode == "zeros":
        return np.where((j >= 0) & (j < n), j, -1)
    if mode == "replicate":
        return np.clip(j, 0, n - 1)
    if mode == "circular":
        return np.mod(j, n)
    period = 2 * (n - 1)                    # reflect about the edge samples, as np.pad
    if period == 0:
        return np.zeros_like(j)
    r = np.mod(j, period)
    return np.where(r < n, r, period - r)


def index_maps(p):
    """For each of the 3 axes, the source index of every padded position (-1 for a zero),
    so that a kernel can read any padding mode without a padded copy of the input.
    Shared between calls of one shape: the kernels only read them."""
    return _index_maps(p.input_size, p.padding, p.padding_mode)


@lru_cache(maxsize=256)
def _index_maps(size, padding, mode):
    maps = []
    for n, (before, after) in zip(triple(size, 1), triple(padding, (0, 0))):
        j = np.arange(-before, n + after, dtype=np.int64)
        maps.append(_source_index(j, n, mode).astype(np.int64))
    return tuple(maps)


@njit(cache=True, inline="always")
def copy_run(dst, do, src, so, n, step):
    """``dst[do + q] = src[so + q * step]`` for ``q < n``. Indices are uint64 (no
    negative-index wraparound to stop vectorization) and a stride of 2 is written
    ``q + q``: in Numba uint64 * int64 is a float64."""
    d0, s0 = np.uint64(do), np.uint64(so)
    if step == 1:
        for q in range(np.uint64(n)):
            dst[d0 + q] = src[s0 + q]
    elif step == 2:
        for q in range(np.uint64(n)):
            dst[d0 + q] = src[s0 + q + q]
    else:
        st = np.uint64(step)
        for q in range(np.uint64(n)):
            dst[d0 + q] = src[s0 + st * q]
