"""im2col a block of output positions at a time: each thread builds the columns of a
block of output positions (about 256 KiB, so they stay in its cache) and multiplies
them with a single-threaded BLAS GEMM, inside one Numba parallel loop.

The NumPy im2col (``backends/numpy/im2col.py``) writes the whole column matrix (7 MiB
for a 7x7 stem on a 224x224 image) and reads it back in one multithreaded GEMM; this
one never lets the columns leave the cache, and reads the input in place through the
index maps of ``_layout`` (no padded copy). What it pays instead: the weights are read
once per block, so it suits layers whose weight matrix is small next to their images
(stems, few channels, large images); the cost model decides.
"""
from __future__ import annotations

from functools import lru_cache
from math import prod

import numpy as np
from numba import njit, prange

from ...params import tap_spans
from ...threads import get_num_threads
from ..numpy._common import alloc, finish
from ._layout import as3d, compute_dtype, copy_run, index_maps, pads3, sync_numba, triple

#: Column bytes of one block: about a quarter of a 1-2 MiB per-core L2.
BLOCK_BYTES = 256 * 1024


@njit(cache=True, inline="always")
def _fill_block(buf, xf, x_shape, n, g, p0, p1, ow_, oh_, mz, my, mx, spans, pw, ker,
                stride, dil):
    """Columns ``(cig * taps, p1 - p0)`` of image ``n``, group ``g``, flat output
    positions ``p0 <= (od * oh_ + oh) * ow_ + ow < p1`` into ``buf``. Along W,
    ``spans[kw]`` is the run of outputs whose source is inside the row (one direct copy);
    the rest read the map ``mx`` (-1: zero)."""
    c_, di, hi, wi = x_shape[1], x_shape[2], x_shape[3], x_shape[4]
    kh_, kw_ = ker[1], ker[2]
    taps = ker[0] * kh_ * kw_
    sd, sh, sw = stride[0], stride[1], stride[2]
    dd, dh, dw = dil[0], dil[1], dil[2]
    npos = p1 - p0
    cig = buf.size // npos // taps
    for ct in range(cig * taps):
        c, t = ct // taps, ct % taps
        kd, kh, kw = t // (kh_ * kw_), (t // kw_) % kh_, t % kw_
        plane = (n * c_ + g * cig + c) * di * hi * wi
        e0, e1 = spans[kw, 0], spans[kw, 1]
        for r in range(p0 // ow_, (p1 - 1) // ow_ + 1):
            lo, top = max(0, p0 - r * ow_), min(ow_, p1 - r * ow_)
            o = ct * npos + r * ow_ - p0            # buf index of (row r, e = 0)
            z = mz[(r // oh_) * sd + kd * dd]
            y = my[(r % oh_) * sh + kh * dh]
            if z < 0 or y < 0:
                for e in range(lo, top):
                    buf[o + e] = 0
                continue
            row = plane + (z * hi + y) * wi
            for e in range(lo, min(e0, top)):
                src = mx[e * sw + kw * dw]
                buf[o + e] = xf[row + src] if src >= 0 else 0
            a, b = max(e0, lo), min(e1, top)
            if b > a:
                copy_run(buf, o + a, xf, row + a * sw + kw * dw - pw, b - a, sw)
            for e in range(max(e1, lo), top):
                src = mx[e * sw + kw * dw]
                buf[o + e] = xf[row + src] if src >= 0 else 0


@njit(cache=True, parallel=True)
def _blocks_kernel(x, wm, y, mz, my, mx, spans, pw, ker, stride, dil, per_block):
    """``y (N, K, OD, OH, OW)`` from ``x (N, C, D, H, W)`` and ``wm (G, K/G, C/G * taps)``:
    one (image, group, block of ``per_block`` flat output positions) per iteration."""
    n_, g_, cog, kk = x.shape[0], wm.shape[0], wm.shape[1], wm.shape[2]
    oh_, ow_ = y.shape[3], y.shape[4]
    out_vol = y.shape[2] * oh_ * ow_
    nblk = (out_vol + per_block - 1) // per_block
    xf = x.reshape(x.size)
    yf = y.reshape(y.size)
    for u in prange(n_ * g_ * nblk):
        n, g, b = u // (g_ * nblk), (u // nblk) % g_, u % nblk
        p0 = b * per_block
        p1 = min(p0 + per_block, out_vol)
        npos = p1 - p0
        buf = np.empty(kk * npos, dtype=x.dtype)
        _fill_block(buf, xf, x.shape, n, g, p0, p1, ow_, oh_, mz, my, mx, spans, pw, ker,
                    stride, dil)
        res = np.dot(wm[g], buf.reshape(kk, npos))    # SciPy's BLAS, one thread
        for o in range(cog):
            dst = np.uint64(((n * g_ + g) * cog + o) * out_vol + p0)
            for i in range(np.uint64(npos)):
                yf[dst + i] = res[o, i]


@lru_cache(maxsize=256)
def _spans(p) -> np.ndarray:
    """Per kw: the outputs ``[e0, e1)`` whose W source is inside the input row. Shared
    between calls of one shape (the kernel only reads it; building it took 6 us)."""
    n, k, s, d, o = (triple(v, 1)[2] for v in (p.input_size, p.kernel_size, p.stride,
                                               p.dilation, p.output_size))
    return np.array(tap_spans(n, k, s, d, int(pads3(p)[2]), o), np.int64).reshape(k, 2)


def positions_per_block(p, threads: int) -> int:
    """Output positions per block: columns near ``BLOCK_BYTES`` (at least 16 positions,
    for the GEMM), and at least four blocks a thread when the call has that many."""
    per_position = p.in_per_group * p.kernel_volume * compute_dtype(p.dtype).itemsize
    total = prod(p.output_size)
    per = min(total, max(16, BLOCK_BYTES // per_position))
    while per > 16 and p.batch * p.groups * -(-total // per) < 4 * threads:
        per //= 2
    return per


def blocks(p) -> tuple[int, int]:
    """(work units of the call, threads): what the cost model needs to know how busy
    the threads will be."""
    threads = get_num_threads()
    per = positions_per_block(p, threads)
    return p.batch * p.groups * -(-prod(p.output_size) // per), threads


def conv(x, w, bias, p):
    sync_numba()
    cd = compute_dtype(p.dtype)
    x3 = as3d(x, cd)
    wm = np.ascontiguousarray(w, dtype=cd).reshape(p.groups, p.out_per_group, -1)
    y = alloc((p.batch, p.out_channels) + triple(p.output_size, 1), dtype=cd)
    st, dil, ker = (np.array(triple(v, 1), np.int64)
                    for v in (p.stride, p.dilation, p.kernel_size))
    _blocks_kernel(x3, wm, y, *index_maps(p), _spans(p), int(pads3(p)[2]),
                   ker, st, dil, positions_per_block(p, get_num_threads()))
    return finish(y.reshape(p.output_shape), bias, p)


def workspace_bytes(p) -> int:
    """Per thread: one block's columns and its GEMM result."""
    positions = positions_per_block(p, get_num_threads())
    per_thread = (p.in_per_group * p.kernel_volume + p.out_per_group) * positions
    return get_num_threads() * per_thread * compute_dtype(p.dtype).itemsize

