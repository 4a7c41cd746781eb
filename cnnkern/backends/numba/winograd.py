"""Winograd F(m x m, 3 x 3) (and F(m, 3) in 1-D): tile transforms in Numba, the
per-point channel reduction in BLAS. Two plans; the cost model picks one per call
(``plan_for``):

**tiles**, for large images with few channels. The output is cut into rows of
``m x m`` tiles. One parallel loop runs over work items (a few whole tile rows, or a
segment of one long row), and a thread takes each item through every stage with
buffers of its own, sized to stay in cache:

1. gather: the ``alpha`` input rows under the item, channels last, padding read
   through the index maps of ``_layout`` (any mode, no padded copy of the input);
2. input transform: ``V[p, g, t, :] = (B^T d B)[p]``, two 1-D passes over each tile's
   ``alpha x alpha`` channel vectors;
3. ``M[p, g] = V[p, g] @ U[g, p]`` for the ``alpha^2`` points and each group: a
   single-threaded BLAS GEMM each, called from the thread (one thread pool for every
   stage: docs/architecture.md says why);
4. output transform: ``A^T M A`` plus the bias, channels last;
5. scatter: back to (N, K, H, W), cropped at the edges.

``U = G g G^T`` is computed once per call, into a fresh array.

**channels**, for deep layers with few tiles. There every work item of the first plan
streams all of ``U`` (16/9 or 4 times the weights: 17-38 MiB at 512 channels) from
memory for a GEMM over a few tiles; on the 2-core VM, whose memory moves about
10 GB/s, that cost more than the GEMMs. So the input transform runs first for a chunk
of tile rows (``_input_stage``), then one parallel loop over blocks of 16-64 output
channels (``_channel_stage``) transforms the block's filters into a buffer of its own,
runs every point's GEMM over all the chunk's tiles, and does the block's output
transform: ``U`` never exists whole, and the weights are read once per chunk. In
float32 on AVX-512, with blocks of 64 channels and at least SIMD_MIN_TILES tiles in
the chunk (``simd_gemms``), those GEMMs run in ``implicit_gemm``'s 6 x 64 register
tile (``register_tiles.tile64``, rows at offsets ``0 .. C-1``) instead of BLAS, which
spends much of a GEMM over a few dozen tiles packing its operands: 1.1-1.3x less time
for the whole call on the deep VGG-16 and ResNet-50 layers with many tiles. (The same
tiles in the work-item plan, tried, gained 1.16x on one layer and lost 6% on two.)

Channels last, every transform loop runs over a contiguous channel vector, long and
unit-stride whatever the image size (the first version ran its inner loops across the
tiles of one row, 14 long on a 56-wide image, and spent more time in the transforms
than in the GEMMs). The matrices come from :mod:`cnnkern.winograd`.
"""
from __future__ import annotations

from math import prod

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from ...winograd import float_transforms
from ...threads import get_num_threads
from ..numpy._common import alloc
from ..numpy.workspace import prefix, workspace
from ._layout import bias_or_zeros, compute_dtype, index_maps, sync_numba
from .register_tiles import tile64
from .simd import full_width

R = 3
#: Buffers of one work item (one per thread at a time): cache-sized; the best of
#: 4/8/16 MiB on the VGG-16 and ResNet-50 3x3 layers (2-core EPYC, batch 1).
ITEM_BYTES = 4 * 2**20
#: Tiles per GEMM that an item may grow past ITEM_BYTES to reach.
GEMM_TILES = 64
#: The register tile of the channel plan's point GEMMs (``simd_gemms``): tiles x
#: channels, and the fewest tiles worth it (the 6-row tile pads 4 tiles to 6).
SIMD_TILES, SIMD_LANES, SIMD_MIN_TILES = 6, 64, 12
#: The channel plan's chunk: transformed tiles (which every thread reads) and the
#: threads' GEMM results. Within the 32 MiB L3; 16 and 32 MiB measured no better.
CHUNK_BYTES = 8 * 2**20


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
def _scatter(out, y, n, k0, yy0, xx0):
    """``y[n, k0 + k, yy0 + i, xx0 + col] = out[i, col, k]`` inside the output, channel
    by channel (writes along an output row; see ``_gather``)."""
    mh, cols, nk = out.shape
    oh, ow = y.shape[2], y.shape[3]
    width = np.uint64(max(0, min(cols, ow - xx0)))
    for i in range(mh):
        if yy0 + i >= oh:
            break
        for k in range(nk):
            for col in range(width):
                y[n, k0 + k, yy0 + i, xx0 + col] = out[i, col, k]


@njit(cache=True, inline="always")
def _transform_row(x, hmap, wmap, bth, btw, slab, tmp, v, n, row, col0, t0, nt, mw):
    """Gather the input under ``nt`` tiles of one tile row (from output row ``row``,
    column ``col0``) and transform them into ``v[:, :, t0:t0 + nt]``."""
    _gather(x, hmap, wmap, slab, n, row, col0)
    for t in range(nt):
        _input_tile(slab, bth, btw, tmp, v, t0 + t, t * mw)


@njit(cache=True, inline="always")
def _finish_row(mm, ath, atw, bias, tmp, out, y, n, k0, row, col0, t0, nt, mw):
    """Output-transform the tiles ``mm[:, :, t0:t0 + nt]`` of one tile row and write
    them to ``y`` from channel ``k0``, output row ``row``, column ``col0``."""
    for t in range(nt):
        _output_tile(mm, ath, atw, bias, tmp, out, t0 + t, t * mw)
    _scatter(out, y, n, k0, row, col0)


@njit(cache=True, parallel=True)
def _winograd_kernel(x, hmap, wmap, u, bth, btw, ath, atw, bias, y, tiles_h, tiles_w,
                     rows_per_item, seg):
    """Every stage for one work item per thread: ``rows_per_item`` whole tile rows, or
    ``seg`` tiles of one row. Its buffers are its own and small enough to stay in
    cache from the gather to the scatter."""
    n_, nc = x.shape[0], x.shape[1]
    groups, pts, cig, cog = u.shape
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
            _transform_row(x, hmap, wmap, bth, btw, slab, tmp_in, v, n, ty * mh,
                           tx0 * mw, r * nt, nt, mw)
        for q in range(pts * groups):   # single-threaded BLAS, inside this thread
            np.dot(v[q // groups, q % groups], u[q % groups, q // groups],
                   mm[q // groups, q % groups])
        for r in range(rows):
            n, ty = (r0 + r) // tiles_h, (r0 + r) % tiles_h
            _finish_row(mm, ath, atw, bias, tmp_out, out, y, n, 0, ty * mh, tx0 * mw,
                        r * nt, nt, mw)


#: Input channels whose taps the filter transform gathers at a time.
FILTER_CHANNELS = 8
#: Elements its gather buffer's rows run past the output channels: a row of 512 or
#: 1024 floats is a multiple of 2 KiB, and a column of such rows falls in 2 L1 sets.
ROW_SKEW = 16


@njit(cache=True)
def _filter_block(w2, gh, gw, k0, c0, nc, u3, taps, tmp):
    """``u3[(a, b), c0 + c, o] = (G_h w[k0 + o, c0 + c] G_w^T)[a, b]`` for ``nc`` input
    channels from ``c0`` and the ``u3.shape[2]`` filters from ``k0``, vectorized over
    the filters (the layout ``u`` has for the GEMMs). ``w2`` is the weight as
    (K, C/groups * kh * kw); ``taps`` (FILTER_CHANNELS * kh * kw rows) and ``tmp``
    (FILTER_CHANNELS * ah * kw rows) are 2-D buffers of the caller's.

    The taps are gathered filter by filter, a contiguous run of each, into rows
    ROW_SKEW longer than the filters: with C = 512, one input channel of every filter
    is a column of reads 18 KiB apart and unskewed rows a column of writes 2 KiB apart,
    and either falls in a few L1 sets (the gather ran 5x slower and took 60% of the
    transform). Each transformed element is one expression over the R taps it sums
    (R is a constant: the loop unrolls, one store per element), and each point's
    channels are written as one contiguous run."""
    ah, kh = gh.shape
    aw = gw.shape[0]
    uo, uk = np.uint64(u3.shape[2]), np.uint64(k0)
    run = np.uint64(nc * kh * R)
    s0 = np.uint64(c0 * kh * R)
    for o in range(uo):
        for r in range(run):
            taps[r, o] = w2[uk + o, s0 + r]
    for c in range(nc):                 # along the kernel columns: tmp[(c, a, j), :]
        t0 = c * kh * R
        for a in range(ah):
            row = (c * ah + a) * R
            for j in range(R):
                if kh == 1:             # 1-D: G_h is [[1]]
                    for o in range(uo):
                        tmp[row + j, o] = taps[t0 + j, o]
                else:
                    g0, g1, g2 = gh[a, 0], gh[a, 1], gh[a, 2]
                    for o in range(uo):
                        tmp[row + j, o] = g0 * taps[t0 + j, o] + \
                            g1 * taps[t0 + R + j, o] + g2 * taps[t0 + 2 * R + j, o]
    for a in range(ah):                 # along the kernel rows
        for b in range(aw):
            g0, g1, g2 = gw[b, 0], gw[b, 1], gw[b, 2]
            p = a * aw + b
            for c in range(nc):
                row = (c * ah + a) * R
                for o in range(uo):
                    u3[p, c0 + c, o] = g0 * tmp[row, o] + g1 * tmp[row + 1, o] + \
                        g2 * tmp[row + 2, o]


@njit(cache=True, parallel=True)
def _filter_transform(w2, gh, gw, u):
    """``u[g, (a, b), c, o] = (G_h w[g * cog + o, c] G_w^T)[a, b]``; ``w2`` is the
    weight as (K, C/groups * kh * kw). One (group, block of FILTER_CHANNELS input
    channels) per step (``_filter_block``)."""
    ah, kh = gh.shape
    kw = gw.shape[1]
    groups, cig, cog = u.shape[0], u.shape[2], u.shape[3]
    blocks = (cig + FILTER_CHANNELS - 1) // FILTER_CHANNELS
    for q in prange(groups * blocks):
        g, c0 = q // blocks, (q % blocks) * FILTER_CHANNELS
        nc = min(FILTER_CHANNELS, cig - c0)
        taps = np.empty((FILTER_CHANNELS * kh * kw, cog + ROW_SKEW), dtype=u.dtype)
        tmp = np.empty((FILTER_CHANNELS * ah * kw, cog + ROW_SKEW), dtype=u.dtype)
        _filter_block(w2, gh, gw, g * cog, c0, nc, u[g], taps, tmp)


@njit(cache=True, parallel=True)
def _input_stage(x, hmap, wmap, bth, btw, v, tiles_h, tiles_w, mh, mw, r0):
    """``v[:, :, r * tiles_w + t, :]``: the transformed tiles of tile rows ``r0 + r``
    (all of them, for the channel-blocked kernel), one tile row per step."""
    nc = x.shape[1]
    ah, aw = bth.shape[0], btw.shape[0]
    rows = v.shape[2] // tiles_w
    for r in prange(rows):
        n, ty = (r0 + r) // tiles_h, (r0 + r) % tiles_h
        slab = np.empty((ah, tiles_w * mw + aw - mw, nc), dtype=v.dtype)
        tmp = np.empty((ah, aw, nc), dtype=v.dtype)
        _transform_row(x, hmap, wmap, bth, btw, slab, tmp, v, n, ty * mh, 0,
                       r * tiles_w, tiles_w, mw)


def _tiled_gemms(v, g, u3, mm):
    """``mm[p, 0, t, :] = v[p, g, t, :] @ u3[p]`` for every point, 6 tiles x 64
    channels at a time in ``register_tiles.tile64``; the rows of ``mm`` past the last
    tile get copies of it. Float32 only; typed per dtype (below), so that the float64
    build of ``_channel_stage``, which never takes this path, still compiles."""
    raise NotImplementedError("called from Numba code only")


@overload(_tiled_gemms, jit_options={"cache": True})
def _tiled_gemms_typed(v, g, u3, mm):
    if v.dtype != types.float32:
        def refuse(v, g, u3, mm):
            raise ValueError("register tiles take float32 only")
        return refuse

    def gemms(v, g, u3, mm):
        pts, groups, ntiles, cig = v.shape
        rows = mm.shape[2]
        vf, uf, mf = v.reshape(v.size), u3.reshape(u3.size), mm.reshape(mm.size)
        offs = np.arange(cig)
        bs = np.empty(SIMD_TILES, dtype=np.int64)
        for p in range(pts):
            v_at = (p * groups + g) * ntiles * cig
            for t0 in range(0, ntiles, SIMD_TILES):
                for i in range(SIMD_TILES):
                    bs[i] = v_at + min(t0 + i, ntiles - 1) * cig
                tile64(vf, uf, p * cig * SIMD_LANES, offs, cig, bs, mf,
                       (p * rows + t0) * SIMD_LANES)
    return gemms


@njit(cache=True, parallel=True)
def _channel_stage(w2, gh, gw, v, ath, atw, bias, y, tiles_h, tiles_w, r0, lanes, simd):
    """For each (group, block of ``lanes`` output channels): the block's transformed
    filters, the GEMMs of every point over all the tiles in ``v``, and the output
    transform of the block's channels, all in one thread's cache-sized buffers. The
    transformed filters of the whole layer never exist: on a deep layer with few
    tiles they are 16/9 (F2) or 4x (F4) the weights, and writing them out and reading
    them back cost more than the GEMMs (10 GB/s here)."""
    pts, groups, ntiles, cig = v.shape
    cog = y.shape[1] // groups
    ah, kh = gh.shape
    kw = gw.shape[1]
    mh, mw = ath.shape[0], atw.shape[0]
    aw = atw.shape[1]
    blocks = (cog + lanes - 1) // lanes
    rows = ntiles // tiles_w
    for q in prange(groups * blocks):
        g, o0 = q // blocks, (q % blocks) * lanes
        nb = min(lanes, cog - o0)
        k0 = g * cog + o0
        u3 = np.empty((pts, cig, nb), dtype=y.dtype)
        taps = np.empty((FILTER_CHANNELS * kh * kw, nb + ROW_SKEW), dtype=y.dtype)
        tmp = np.empty((FILTER_CHANNELS * ah * kw, nb + ROW_SKEW), dtype=y.dtype)
        for c0 in range(0, cig, FILTER_CHANNELS):
            _filter_block(w2, gh, gw, k0, c0, min(FILTER_CHANNELS, cig - c0), u3, taps,
                          tmp)
        if simd:
            rows_ = (ntiles + SIMD_TILES - 1) // SIMD_TILES * SIMD_TILES
            mm = np.empty((pts, 1, rows_, nb), dtype=y.dtype)
            _tiled_gemms(v, g, u3, mm)
        else:
            mm = np.empty((pts, 1, ntiles, nb), dtype=y.dtype)
            for p in range(pts):        # single-threaded BLAS, inside this thread
                np.dot(v[p, g], u3[p], mm[p, 0])
        kbias = bias[k0:k0 + nb]
        tmp_out = np.empty((mh, aw, nb), dtype=y.dtype)
        out = np.empty((mh, tiles_w * mw, nb), dtype=y.dtype)
        for r in range(rows):
            n, ty = (r0 + r) // tiles_h, (r0 + r) % tiles_h
            _finish_row(mm, ath, atw, kbias, tmp_out, out, y, n, k0, ty * mh, 0,
                        r * tiles_w, tiles_w, mw)


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


def workspace_bytes(p, m) -> int:
    """The plan's buffers: per thread a work item's, and the transformed filters; or
    a chunk of transformed tiles, and per thread a block of channels' (with the rows
    that the register tiles pad the GEMM results with)."""
    itemsize = compute_dtype(p.dtype).itemsize
    threads = get_num_threads()
    ah, aw = _alphas(p, m)
    gather_rows = FILTER_CHANNELS * (R + ah) * R       # _filter_block's taps and tmp
    if plan_for(p, m) == "tiles":
        filters = _points(p, m) * p.out_channels * p.in_per_group * itemsize
        rows, seg = _work_split(p, m, threads)
        gather = gather_rows * (p.out_per_group + ROW_SKEW) * itemsize
        return threads * max(_item_bytes(p, m, rows, seg), gather) + filters
    th, tw, mh, mw = _tiles(p, m)
    lanes = _lanes(p)
    slab = (ah * (tw * mw + aw) + ah * aw) * p.in_channels
    block = _points(p, m) * (p.in_per_group + SIMD_TILES - 1) * lanes + \
        gather_rows * (lanes + ROW_SKEW) + mh * (tw * mw + aw) * lanes
    chunk = min(p.batch * th, _chunk_rows(p, m)) * _row_bytes(p, m)
    return chunk + threads * (max(slab * itemsize, block * itemsize))


def conv(x, w, bias, p, m):
    sync_numba()
    cd = compute_dtype(p.dtype)
    (ath, gh, bth), (atw, gw, btw) = _matrices(p, m, cd)
    th, tw, mh, mw = _tiles(p, m)
    ah, aw = _alphas(p, m)
    hmap, wmap = _tile_maps(p, m)
    x4 = np.ascontiguousarray(x, dtype=cd)
    w4 = np.ascontiguousarray(w, dtype=cd)
    if p.ndim == 1:
        x4 = x4[:, :, None, :]
    w2 = w4.reshape(p.out_channels, -1)
    y = alloc((p.batch, p.out_channels, p.output_size[0] if p.ndim == 2 else 1,
               p.output_size[-1]), cd)
    b = bias_or_zeros(bias, p, cd)
    if plan_for(p, m) == "channels":
        rows = _chunk_rows(p, m)
        lanes = _lanes(p)
        total = p.batch * th
        shape = (ah * aw, p.groups, min(rows, total) * tw, p.in_per_group)
        with workspace((prod(shape),), cd) as flat:
            for r0 in range(0, total, rows):
                nr = min(rows, total - r0)
                v = prefix(flat, shape[:2] + (nr * tw, shape[3]))
                _input_stage(x4, hmap, wmap, bth, btw, v, th, tw, mh, mw, r0)
                _channel_stage(w2, gh, gw, v, ath, atw, b, y, th, tw, r0, lanes,
                               simd_gemms(p, nr * tw))
    else:
        with workspace((p.groups, ah * aw, p.in_per_group, p.out_per_group), cd) as u:
            _filter_transform(w2, gh, gw, u)
            rows, seg = _work_split(p, m, get_num_threads())
            _winograd_kernel(x4, hmap, wmap, u, bth, btw, ath, atw, b, y, th, tw, rows,
                             seg)
    return y.reshape(p.output_shape).astype(p.dtype, copy=False)


def plan_for(p, m) -> str:
    """"tiles" (work items of tile rows, ``_winograd_kernel``) or "channels" (blocks
    of output channels over all the tiles of a chunk, ``_channel_stage``): the one the
    cost model (``dispatch.winograd_plan``) finds cheaper."""
    from ...dispatch import winograd_plan
    return winograd_plan(p, m)


def plan_features(p, m, plan: str) -> dict:
    """The counts the cost model rates for ``plan``: GEMM FLOPs (float32-equivalent) in
    BLAS and in register tiles (the channel plan's, ``simd_gemms``; rows padded to
    whole tiles), transform terms, elements of transformed filters computed (the
    channel plan computes them once per chunk), and one call. (BLAS calls and bytes
    streamed past the cache were tried as well: the fit gave them no weight.)"""
    th, tw = _tiles(p, m)[:2]
    tiles = p.batch * th * tw
    pts, alpha = _points(p, m), _alphas(p, m)[1]
    filters = pts * p.out_channels * p.in_per_group
    scale = compute_dtype(p.dtype).itemsize / 4
    gemm = tiled = 0.0
    if plan == "tiles":
        chunks, gemm = 1, 2.0 * tiles * filters * scale
    else:
        rows, total = _chunk_rows(p, m), p.batch * th
        chunks = -(-total // rows)
        for r0 in range(0, total, rows):
            nt = min(rows, total - r0) * tw
            if simd_gemms(p, nt):
                tiled += 2.0 * -(-nt // SIMD_TILES) * SIMD_TILES * filters
            else:
                gemm += 2.0 * nt * filters * scale
    return dict(gemm=gemm, tiled=tiled,
                transform=float(tiles * pts * alpha * (p.in_channels + p.out_channels)),
                filter=float(chunks * filters), call=1.0)


def _row_bytes(p, m) -> int:
    """What one tile row adds to a chunk of the channel plan: its transformed tiles,
    and the GEMM results of every thread's block of channels."""
    tw = _tiles(p, m)[1]
    width = p.in_channels + get_num_threads() * _lanes(p)
    return _points(p, m) * tw * width * compute_dtype(p.dtype).itemsize


def _chunk_rows(p, m) -> int:
    return max(1, CHUNK_BYTES // _row_bytes(p, m))


def plans(p, m) -> tuple:
    """The plans that keep to their buffer bounds: the channel plan needs a whole tile
    row in a chunk (a long 1-D signal is one tile row)."""
    return ("tiles", "channels") if _row_bytes(p, m) <= CHUNK_BYTES else ("tiles",)


def simd_gemms(p, ntiles: int) -> bool:
    """Whether the channel plan's point GEMMs over ``ntiles`` tiles run in register
    tiles (float32 blocks of 64 channels, on AVX-512) rather than in BLAS. The tile
    takes 6 rows, so below SIMD_MIN_TILES the rows it pads cost more than BLAS's
    overhead on a small GEMM saves."""
    return compute_dtype(p.dtype) == np.float32 and _lanes(p) == SIMD_LANES and \
        p.out_per_group % SIMD_LANES == 0 and ntiles >= SIMD_MIN_TILES and full_width()


def _lanes(p) -> int:
    """Output channels per step of the channel plan: a multiple of 16 from 16 to 64
    (the best of 16/32/64/128 on the deep VGG-16, ResNet-50 and AlexNet layers), and
    at least two steps per thread where the channels allow; a group's channels when
    it has fewer."""
    per = -(-p.out_channels // (2 * get_num_threads()))
    return int(min(p.out_per_group, max(16, min(64, -(-per // 16) * 16))))
