"""im2col a block of output rows at a time: each thread builds the columns of a few
output rows (a few hundred KiB, so they stay in its cache) and multiplies them with a
single-threaded BLAS GEMM, inside one Numba parallel loop.

The NumPy im2col (``backends/numpy/im2col.py``) writes the whole column matrix (7 MiB
for a 7x7 stem on a 224x224 image) and reads it back in one multithreaded GEMM; this
one never lets the columns leave the cache, and reads the input in place through the
index maps of ``_layout`` (no padded copy). What it pays instead: the weights are read
once per block, so it suits layers whose weight matrix is small next to their images
(stems, few channels, large images); the cost model decides.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from ...threads import get_num_threads
from ..numpy._common import alloc, finish
from ._layout import as3d, compute_dtype, copy_run, index_maps, pads3, sync_numba, triple

#: Column bytes of one block: about a quarter of a 1-2 MiB per-core L2.
BLOCK_BYTES = 256 * 1024


@njit(cache=True, inline="always")
def _fill_block(buf, xf, x_shape, n, g, r0, r1, ow_, oh_, mz, my, mx, spans, pw, ker,
                stride, dil):
    """Columns ``(cig * taps, (r1 - r0) * ow_)`` of image ``n``, group ``g``, output rows
    ``r0 <= r < r1`` (``r = od * oh_ + oh``) into ``buf``. Along W, ``spans[kw]`` is the
    run of outputs whose source is inside the row (one direct copy); the rest read the
    map ``mx`` (-1: zero)."""
    c_, di, hi, wi = x_shape[1], x_shape[2], x_shape[3], x_shape[4]
    kh_, kw_ = ker[1], ker[2]
    taps = ker[0] * kh_ * kw_
    sd, sh, sw = stride[0], stride[1], stride[2]
    dd, dh, dw = dil[0], dil[1], dil[2]
    kk = buf.size // ((r1 - r0) * ow_)
    npos = (r1 - r0) * ow_
    cig = kk // taps
    for ct in range(kk):
        c, t = ct // taps, ct % taps
        kd, kh, kw = t // (kh_ * kw_), (t // kw_) % kh_, t % kw_
        plane = (n * c_ + g * cig + c) * di * hi * wi
        e0, e1 = spans[kw, 0], spans[kw, 1]
        for r in range(r0, r1):
            z = mz[(r // oh_) * sd + kd * dd]
            y = my[(r % oh_) * sh + kh * dh]
            o = ct * npos + (r - r0) * ow_
            if z < 0 or y < 0:
                for e in range(ow_):
                    buf[o + e] = 0
                continue
            row = plane + (z * hi + y) * wi
            for e in range(e0):
                src = mx[e * sw + kw * dw]
                buf[o + e] = xf[row + src] if src >= 0 else 0
            if e1 > e0:
                copy_run(buf, o + e0, xf, row + e0 * sw + kw * dw - pw, e1 - e0, sw)
            for e in range(max(e0, e1), ow_):
                src = mx[e * sw + kw * dw]
                buf[o + e] = xf[row + src] if src >= 0 else 0


@njit(cache=True, parallel=True)
def _blocks_kernel(x, wm, y, mz, my, mx, spans, pw, ker, stride, dil, rows_per_block):
    """``y (N, K, OD, OH, OW)`` from ``x (N, C, D, H, W)`` and ``wm (G, K/G, C/G * taps)``:
    one (image, group, block of output rows) per iteration."""
    n_, g_, cog, kk = x.shape[0], wm.shape[0], wm.shape[1], wm.shape[2]
    oh_, ow_ = y.shape[3], y.shape[4]
    rows = y.shape[2] * oh_
    nblk = (rows + rows_per_block - 1) // rows_per_block
    xf = x.reshape(x.size)
    yf = y.reshape(y.size)
    out_vol = rows * ow_
    for u in prange(n_ * g_ * nblk):
        n, g, b = u // (g_ * nblk), (u // nblk) % g_, u % nblk
        r0 = b * rows_per_block
        r1 = min(r0 + rows_per_block, rows)
        npos = (r1 - r0) * ow_
        buf = np.empty(kk * npos, dtype=x.dtype)
        _fill_block(buf, xf, x.shape, n, g, r0, r1, ow_, oh_, mz, my, mx, spans, pw, ker,
                    stride, dil)
        res = np.dot(wm[g], buf.reshape(kk, npos))    # SciPy's BLAS, one thread
        for o in range(cog):
            dst = np.uint64(((n * g_ + g) * cog + o) * out_vol + r0 * ow_)
            for i in range(np.uint64(npos)):
                yf[dst + i] = res[o, i]


def _spans(p, width: int) -> np.ndarray:
    """Per kw: the outputs ``[e0, e1)`` whose W source ``e * sw + kw * dw - pw`` is
    inside ``[0, width)``."""
    sw, dw, pw = triple(p.stride, 1)[2], triple(p.dilation, 1)[2], int(pads3(p)[2])
    ow = triple(p.output_size, 1)[2]
    spans = np.zeros((triple(p.kernel_size, 1)[2], 2), np.int64)
    for kw in range(spans.shape[0]):
        off = kw * dw - pw
        e0 = min(ow, max(0, -(off // sw)))
        e1 = min(ow, (width - 1 - off) // sw + 1) if width - 1 >= off else 0
        spans[kw] = (e0, max(e0, e1))
    return spans


def rows_per_block(p, threads: int) -> int:
    """Output rows per block: columns near ``BLOCK_BYTES``, and at least four blocks a
    thread when the call has that many rows."""
    out = triple(p.output_size, 1)
    row = p.in_per_group * p.kernel_volume * out[2] * compute_dtype(p.dtype).itemsize
    rows = out[0] * out[1]
    per = max(1, min(rows, BLOCK_BYTES // row))
    while per > 1 and p.batch * p.groups * -(-rows // per) < 4 * threads:
        per //= 2
    return per


def blocks(p) -> tuple[int, int]:
    """(work units of the call, threads): what the cost model needs to know how busy
    the threads will be."""
    threads = get_num_threads()
    out = triple(p.output_size, 1)
    per = rows_per_block(p, threads)
    return p.batch * p.groups * -(-(out[0] * out[1]) // per), threads


def conv(x, w, bias, p):
    sync_numba()
    cd = compute_dtype(p.dtype)
    x3 = as3d(x, cd)
    wm = np.ascontiguousarray(w, dtype=cd).reshape(p.groups, p.out_per_group, -1)
    y = alloc((p.batch, p.out_channels) + triple(p.output_size, 1), dtype=cd)
    st, dil, ker = (np.array(triple(v, 1), np.int64)
                    for v in (p.stride, p.dilation, p.kernel_size))
    _blocks_kernel(x3, wm, y, *index_maps(p), _spans(p, x3.shape[4]), int(pads3(p)[2]),
                   ker, st, dil, rows_per_block(p, get_num_threads()))
    return finish(y.reshape(p.output_shape), bias, p)


def workspace_bytes(p) -> int:
    """Per thread: one block's columns and its GEMM result."""
    out = triple(p.output_size, 1)
    positions = rows_per_block(p, get_num_threads()) * out[2]
    per_thread = (p.in_per_group * p.kernel_volume + p.out_per_group) * positions
    return get_num_threads() * per_thread * compute_dtype(p.dtype).itemsize

