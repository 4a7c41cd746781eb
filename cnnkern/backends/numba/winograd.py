"""Winograd F(m x m, 3 x 3) (and F(m, 3) in 1-D): tile transforms in Numba, the
per-point channel reduction in BLAS.

The output is cut into rows of ``m x m`` tiles. One parallel loop runs over work items
(a few whole tile rows, or a segment of one long row), and a thread takes each item
through every stage with buffers of its own, sized to stay in cache:

1. gather: the ``alpha`` input rows under the item, channels last, padding read
   through the index maps of ``_layout`` (any mode, no padded copy of the input);
2. input transform: ``V[p, g, t, :] = (B^T d B)[p]``, two 1-D passes over each tile's
   ``alpha x alpha`` channel vectors;
3. ``M[p, g] = V[p, g] @ U[p, g]`` for the ``alpha^2`` points and each group: a
   single-threaded BLAS GEMM each, called from the thread (one thread pool for every
   stage: docs/architecture.md says why);
4. output transform: ``A^T M A`` plus the bias, channels last;
5. scatter: back to (N, K, H, W), cropped at the edges.

Channels last, every transform loop runs over a contiguous channel vector, long and
unit-stride whatever the image size (the first version ran its inner loops across the
tiles of one row, 14 long on a 56-wide image, and spent more time in the transforms
than in the GEMMs). Fusing the stages per item keeps V and M in cache between them
(the stage-by-stage version with 8-32 MiB blocks was 10-40% slower on VGG-16).
``U = G g G^T`` is computed once per call. The matrices come from
:mod:`cnnkern.winograd`.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from ...winograd import float_transforms
from ...threads import get_num_threads
from ._layout import bias_or_zeros, compute_dtype, index_maps, sync_numba

R = 3
#: Buffers of one work item (one per thread at a time): cache-sized; the best of
#: 4/8/16 MiB on the VGG-16 and ResNet-50 3x3 layers (2-core EPYC, batch 1).
ITEM_BYTES = 4 * 2**20
#: Tiles per GEMM that an item may grow past ITEM_BYTES to reach.
GEMM_TILES = 64


@njit(cache=True)
def _gather(x, hmap, wmap, slab, n, row, col0):
    """``slab[i, col, c] = x[n, c, hmap[row + i], wmap[col0 + col]]``, zero where a map
    gives -1 (the maps cover every tile's patch: ``_tile_maps``).

    Channel by channel, so that the reads run along an input row: reading across
    channels strides by a plane, and planes a multiple of 4 KiB apart all fall in one
    cache set."""
    ah, wcols, nc = slab.shape
    for i in range(ah):
        iy = hmap[row + i]
        for c in range(nc):
            for col in range(wcols):
                ix = wmap[col0 + col]
                slab[i, col, c] = x[n, c, iy, ix] if iy >= 0 and ix >= 0 else 0


@njit(cache=True)
def _input_tile(slab, bth, btw, tmp, v, t, col0):
    """``v[(a, b), g, t, :] = sum_ij bth[a, i] btw[b, j] slab[i, col0 + j, :]``: the
    tile's alpha x alpha channel vectors, transformed in two 1-D passes.

    Indices only, no array views (a view costs atomic reference count updates that the
    threads contend on, see ``direct._plane``); unsigned channel indices, so that the
    inner loops carry no negative-index wraparound and vectorize."""
    ah, aw = bth.shape[0], btw.shape[0]
    groups, cig = v.shape[1], v.shape[3]
    uc, ucig = np.uint64(slab.shape[2]), np.uint64(cig)
    for i in range(ah):                 # along the patch rows
        for b in range(aw):
            for c in range(uc):
                tmp[i, b, c] = 0
            for j in range(aw):
                coef = btw[b, j]
                if coef != 0:
                    for c in range(uc):
                        tmp[i, b, c] += coef * slab[i, col0 + j, c]
    for a in range(ah):                 # along the patch columns
        for b in range(aw):
            p = a * aw + b
            for g in range(groups):
                c0 = np.uint64(g * cig)
                for c in range(ucig):
                    v[p, g, t, c] = 0
                for i in range(ah):
                    coef = bth[a, i]
                    if coef != 0:
                        for c in range(ucig):
                            v[p, g, t, c] += coef * tmp[i, b, c0 + c]


@njit(cache=True)
def _output_tile(mm, ath, atw, bias, tmp, out, t, col0):
    """``out[i, col0 + j, :] = (A^T M_t A)[i, j, :] + bias`` for tile ``t``."""
    mh, ah = ath.shape
    mw, aw = atw.shape
    groups, cog = mm.shape[1], mm.shape[3]
    uk, ucog = np.uint64(out.shape[2]), np.uint64(cog)
    for i in range(mh):                 # along the patch columns
        for b in range(aw):
            for g in range(groups):
                k0 = np.uint64(g * cog)
                for k in range(ucog):
                    tmp[i, b, k0 + k] = 0
                for a in range(ah):
                    coef = ath[i, a]
                    if coef != 0:
                        p = a * aw + b
                        for k in range(ucog):
                            tmp[i, b, k0 + k] += coef * mm[p, g, t, k]
    for i in range(mh):                 # along the patch rows
        for j in range(mw):
            for k in range(uk):
                out[i, col0 + j, k] = bias[k]
            for b in range(aw):
                coef = atw[j, b]
                if coef != 0:
                    for k in range(uk):
                        out[i, col0 + j, k] += coef * tmp[i, b, k]


@njit(cache=True)
def _scatter(out, y, n, yy0, xx0):
    """``y[n, k, yy0 + i, xx0 + col] = out[i, col, k]`` inside the output, channel by
    channel (writes along an output row; see ``_gather``)."""
    mh, cols, nk = out.shape
    oh, ow = y.shape[2], y.shape[3]
    width = np.uint64(max(0, min(cols, ow - xx0)))
    for i in range(mh):
        if yy0 + i >= oh:
            break
        for k in range(nk):
            for col in range(width):
                y[n, k, yy0 + i, xx0 + col] = out[i, col, k]


@njit(cache=True, parallel=True)
def _winograd_kernel(x, hmap, wmap, u, bth, btw, ath, atw, bias, y, tiles_h, tiles_w,
                     rows_per_item, seg):
    """Every stage for one work item per thread: ``rows_per_item`` whole tile rows, or
    ``seg`` tiles of one row. Its buffers are its own and small enough to stay in
    cache from the gather to the scatter."""
    n_, nc = x.shape[0], x.shape[1]
    pts, groups, cig, cog = u.shape
    nk = groups * cog
    ah, aw = bth.shape[0], btw.shape[0]
    mh, mw = ath.shape[0], atw.shape[0]
    nseg = (tiles_w + seg - 1) // seg
    total = n_ * tiles_h
    row_items = (total + rows_per_item - 1) // rows_per_item
    for item in prange(row_items * nseg):
        r0 = (item // nseg) * rows_per_item
        rows = min(rows_per_item, total - r0)
        tx0 = (item % nseg) * seg
        nt = min(seg, tiles_w - tx0)
        slab = np.empty((ah, nt * mw + aw - mw, nc), dtype=y.dtype)
        tmp_in = np.empty((ah, aw, nc), dtype=y.dtype)
        tmp_out = np.empty((mh, aw, nk), dtype=y.dtype)
        v = np.empty((pts, groups, rows * nt, cig), dtype=y.dtype)
        mm = np.empty((pts, groups, rows * nt, cog), dtype=y.dtype)
        out = np.empty((mh, nt * mw, nk), dtype=y.dtype)
        for r in range(rows):
            n, ty = (r0 + r) // tiles_h, (r0 + r) % tiles_h
            _gather(x, hmap, wmap, slab, n, ty * mh, tx0 * mw)
            for t in range(nt):
                _input_tile(slab, bth, btw, tmp_in, v, r * nt + t, t * mw)
        for q in range(pts * groups):   # single-threaded BLAS, inside this thread
            np.dot(v[q // groups, q % groups], u[q // groups, q % groups],
                   mm[q // groups, q % groups])
        for r in range(rows):
            n, ty = (r0 + r) // tiles_h, (r0 + r) % tiles_h
            for t in range(nt):
                _output_tile(mm, ath, atw, bias, tmp_out, out, r * nt + t, t * mw)
            _scatter(out, y, n, ty * mh, tx0 * mw)


@njit(cache=True, parallel=True)
def _filter_transform(w, gh, gw, u):
    """``u[(a, b), g, c, o] = (G_h w[g * cog + o, c] G_w^T)[a, b]``; ``w`` is
    (K, C/groups, kh, kw). One (group, input channel) per step, vectorized over the
    output channels of the group (the layout ``u`` has for the GEMMs)."""
    ah, kh = gh.shape
    aw, kw = gw.shape
    groups, cig, cog = u.shape[1], u.shape[2], u.shape[3]
    uo = np.uint64(cog)
    for q in prange(groups * cig):
        g, c = q // cig, q % cig
        k0 = np.uint64(g * cog)
        taps = np.empty((kh, kw, cog), dtype=u.dtype)
        tmp = np.empty((ah, kw, cog), dtype=u.dtype)
        for o in range(uo):             # each filter's taps are adjacent in w
            for i in range(kh):
                for j in range(kw):
                    taps[i, j, o] = w[k0 + o, c, i, j]
        for a in range(ah):
            for j in range(kw):
                for o in range(uo):
                    tmp[a, j, o] = 0
                for i in range(kh):
                    coef = gh[a, i]
                    for o in range(uo):
                        tmp[a, j, o] += coef * taps[i, j, o]
        acc = np.empty(cog, dtype=u.dtype)
        for a in range(ah):
            for b in range(aw):
                for o in range(uo):
                    acc[o] = 0
                for j in range(kw):
                    coef = gw[b, j]
                    for o in range(uo):
                        acc[o] += coef * tmp[a, j, o]
                p = a * aw + b
                for o in range(uo):
                    u[p, g, c, o] = acc[o]


def _matrices(p, m, cd):
    """(AT, G, BT) per axis (height, width); a 1-D call gets a height of one tap."""
    at, g, bt = (a.astype(cd) for a in float_transforms(m, R))
    one = np.ones((1, 1), dtype=cd)
    width = (at, g, bt)
    height = width if p.ndim == 2 else (one, one, one)
    return height, width


def _tiles(p, m):
    """(tile rows per image, tiles per row, tile height, tile width)."""
    if p.ndim == 2:
        return -(-p.output_size[0] // m), -(-p.output_size[1] // m), m, m
    return 1, -(-p.output_size[0] // m), 1, m


def _alphas(p, m):
    _, _, mh, mw = _tiles(p, m)
    return mh + (R - 1 if p.ndim == 2 else 0), mw + R - 1


def _points(p, m) -> int:
    ah, aw = _alphas(p, m)
    return ah * aw


def _item_bytes(p, m, rows: int, tiles: int) -> int:
    """Buffers of one work item: ``rows`` tile rows of ``tiles`` tiles each."""
    _, _, mh, mw = _tiles(p, m)
    ah, aw = _alphas(p, m)
    c, k = p.in_channels, p.out_channels
    elems = ah * (tiles * mw + aw - mw) * c + rows * tiles * _points(p, m) * (c + k) + \
        mh * tiles * mw * k + (ah * c + mh * k) * aw
    return elems * compute_dtype(p.dtype).itemsize


def _work_split(p, m, threads: int):
    """(tile rows per item, tiles per item along a row). Whole rows: as many as fit in
    ITEM_BYTES, or as give GEMM_TILES tiles if that is more (a GEMM over a few tiles
    streams all of U for little work), but no fewer items than two per thread where
    the rows allow. A row that does not fit in ITEM_BYTES is cut into segments."""
    th, tw = _tiles(p, m)[:2]
    full = _item_bytes(p, m, 1, tw)
    if full > ITEM_BYTES:
        per_tile = _item_bytes(p, m, 1, 2) - _item_bytes(p, m, 1, 1)
        fixed = full - tw * per_tile
        return 1, max(1, min(tw, (ITEM_BYTES - fixed) // per_tile))
    wanted = max(ITEM_BYTES // full, -(-GEMM_TILES // tw))
    return max(1, min(wanted, -(-p.batch * th // (2 * threads)))), tw


def _tile_maps(p, m):
    """Source-index maps (height, width) over every tile's whole patch, -1 past the
    padded input as well, so that the gather needs no bounds check."""
    th, tw, mh, mw = _tiles(p, m)
    ah, aw = _alphas(p, m)
    maps = index_maps(p)
    hmap = maps[1] if p.ndim == 2 else np.zeros(1, dtype=np.int64)
    out = []
    for src, length in ((hmap, th * mh + ah - mh), (maps[2], tw * mw + aw - mw)):
        full = np.full(max(length, src.size), -1, dtype=np.int64)
        full[:src.size] = src
        out.append(full)
    return out


def work_items(p, m) -> int:
    """Work items of a call (each one BLAS call per point and group)."""
    th, tw = _tiles(p, m)[:2]
    rows, seg = _work_split(p, m, get_num_threads())
    return -(-p.batch * th // rows) * -(-tw // seg)


def workspace_bytes(p, m) -> int:
    """A work item's buffers per thread, and the transformed filters."""
    itemsize = compute_dtype(p.dtype).itemsize
    filters = _points(p, m) * p.out_channels * p.in_per_group * itemsize
    rows, seg = _work_split(p, m, get_num_threads())
    return get_num_threads() * _item_bytes(p, m, rows, seg) + filters


def conv(x, w, bias, p, m):
    sync_numba()
    cd = compute_dtype(p.dtype)
    (ath, gh, bth), (atw, gw, btw) = _matrices(p, m, cd)
    th, tw = _tiles(p, m)[:2]
    ah, aw = _alphas(p, m)
    hmap, wmap = _tile_maps(p, m)
    x4 = np.ascontiguousarray(x, dtype=cd)
    w4 = np.ascontiguousarray(w, dtype=cd)
    if p.ndim == 1:
        x4, w4 = x4[:, :, None, :], w4[:, :, None, :]
    u = np.empty((ah * aw, p.groups, p.in_per_group, p.out_per_group), dtype=cd)
    _filter_transform(w4, gh, gw, u)
    y = np.empty((p.batch, p.out_channels, p.output_size[0] if p.ndim == 2 else 1,
                  p.output_size[-1]), dtype=cd)
    rows, seg = _work_split(p, m, get_num_threads())
    _winograd_kernel(x4, hmap, wmap, u, bth, btw, ath, atw, bias_or_zeros(bias, p, cd),
                     y, th, tw, rows, seg)
    return y.reshape(p.output_shape).astype(p.dtype, copy=False)
