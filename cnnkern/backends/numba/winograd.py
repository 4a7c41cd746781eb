"""Winograd F(m x m, 3 x 3) (and F(m, 3) in 1-D): tile transforms in Numba, the
per-point channel reduction in BLAS.

The output is cut into rows of ``m x m`` tiles. A block of tile rows at a time:

1. input transform (Numba, parallel over input channels): ``V[p, c, t] = (B^T d B)[p]``
   for every tile ``t`` of the block, applied as two 1-D passes (along the tile's
   rows, then its columns) whose inner loop runs across the tiles of a row, so it
   vectorizes; zero padding is read as zeros, never copied;
2. ``M[p] = U[p] @ V[p]`` for the ``alpha^2`` points and each group: one
   single-threaded BLAS GEMM each, spread over Numba's threads (one thread pool for
   every stage: docs/architecture.md says why);
3. output transform (Numba, parallel over output channels): ``Y = A^T M A`` per tile,
   cropped at the edges, plus the bias.

The block is sized so that ``V`` and ``M`` together stay under ``CHUNK_BYTES``: the
workspace is bounded whatever the batch. ``U = G g G^T`` is computed once per call.
The matrices come from :mod:`cnnkern.winograd`.
"""
from __future__ import annotations

from math import prod

import numpy as np
from numba import njit, prange

from ...winograd import float_transforms
from ..numpy._common import pad_input
from ._layout import bias_or_zeros, compute_dtype, sync_numba

R = 3
#: Upper bound on the transformed input and product blocks of one step.
CHUNK_BYTES = 32 * 2**20


@njit(cache=True, parallel=True)
def _input_transform(x, bth, btw, v, row0, rows, tiles_h, tiles_w, mh, mw, pad_h, pad_w):
    """``v[p, c, t]`` for the tiles of tile rows ``row0 .. row0 + rows`` (a global tile
    row is image * tiles_h + tile row); ``x`` is (N, C, H, W), zero outside.

    Inner loops run over the tiles of a row with unsigned indices (no negative-index
    wraparound, so they vectorize); only the edge tiles check bounds. The four
    small-matrix passes here and in ``_output_transform`` are written out, not shared
    through a helper taking row views: a view in these loops costs atomic reference
    count updates that the threads contend on (see ``direct._plane``)."""
    ah, aw = bth.shape[0], btw.shape[0]
    h, w = x.shape[2], x.shape[3]
    ntw = np.uint64(tiles_w)
    umw = np.uint64(mw)
    # tiles whose whole patch row lies inside the input: tx_lo <= tx < tx_hi
    tx_lo = (pad_w + mw - 1) // mw
    tx_hi = max(tx_lo, min(tiles_w, (w + pad_w - aw) // mw + 1))
    for c in prange(x.shape[1]):
        d = np.empty((ah, aw, tiles_w), dtype=x.dtype)
        tmp = np.empty((ah, aw, tiles_w), dtype=x.dtype)
        for r in range(rows):
            n = (row0 + r) // tiles_h
            ty = (row0 + r) % tiles_h
            for i in range(ah):
                iy = ty * mh + i - pad_h
                if iy < 0 or iy >= h:
                    d[i] = 0
                    continue
                for j in range(aw):
                    for tx in range(tiles_w):
                        if tx == tx_lo:
                            base = np.uint64(tx_lo * mw + j - pad_w)
                            for t in range(np.uint64(tx_hi - tx_lo)):
                                d[i, j, np.uint64(tx_lo) + t] = x[n, c, iy, base + t * umw]
                        if tx_lo <= tx < tx_hi:
                            continue
                        ix = tx * mw + j - pad_w
                        d[i, j, tx] = x[n, c, iy, ix] if 0 <= ix < w else 0
            # along each patch row: tmp[i, b, :] = sum_j btw[b, j] d[i, j, :]
            for i in range(ah):
                for b in range(aw):
                    for t in range(ntw):
                        tmp[i, b, t] = 0
                    for j in range(aw):
                        coef = btw[b, j]
                        if coef != 0:
                            for t in range(ntw):
                                tmp[i, b, t] += coef * d[i, j, t]
            # along each patch column: v[(a, b), c, t] = sum_i bth[a, i] tmp[i, b, :]
            t0 = np.uint64(r * tiles_w)
            for a in range(ah):
                for b in range(aw):
                    p = a * aw + b
                    for t in range(ntw):
                        v[p, c, t0 + t] = 0
                    for i in range(ah):
                        coef = bth[a, i]
                        if coef != 0:
                            for t in range(ntw):
                                v[p, c, t0 + t] += coef * tmp[i, b, t]


@njit(cache=True, parallel=True)
def _output_transform(mm, ath, atw, bias, y, row0, rows, tiles_h, tiles_w):
    """``y[n, k, ty*mh + i, tx*mw + j] = (A^T M A)[i, j] + bias[k]`` for the tiles of
    the block, cropped to the output."""
    mh, ah = ath.shape
    mw, aw = atw.shape
    oh, ow = y.shape[2], y.shape[3]
    ntw = np.uint64(tiles_w)
    full = ow // mw                     # tiles whose m outputs all lie inside the row
    for k in prange(mm.shape[1]):
        tmp = np.empty((mh, aw, tiles_w), dtype=mm.dtype)
        out = np.empty((mh, mw, tiles_w), dtype=mm.dtype)
        for r in range(rows):
            n = (row0 + r) // tiles_h
            ty = (row0 + r) % tiles_h
            t0 = np.uint64(r * tiles_w)
            for i in range(mh):
                for b in range(aw):
                    for t in range(ntw):
                        tmp[i, b, t] = 0
                    for a in range(ah):
                        coef = ath[i, a]
                        if coef != 0:
                            p = a * aw + b
                            for t in range(ntw):
                                tmp[i, b, t] += coef * mm[p, k, t0 + t]
            for i in range(mh):
                for j in range(mw):
                    for t in range(ntw):
                        out[i, j, t] = bias[k]
                    for b in range(aw):
                        coef = atw[j, b]
                        if coef != 0:
                            for t in range(ntw):
                                out[i, j, t] += coef * tmp[i, b, t]
            for i in range(mh):
                yy = ty * mh + i
                if yy >= oh:
                    break
                for j in range(mw):
                    for t in range(np.uint64(full)):
                        y[n, k, yy, t * np.uint64(mw) + np.uint64(j)] = out[i, j, t]
                for tx in range(full, tiles_w):
                    for j in range(mw):
                        if tx * mw + j < ow:
                            y[n, k, yy, tx * mw + j] = out[i, j, tx]


@njit(cache=True, parallel=True)
def _filter_transform(w, gh, gw, u):
    """``u[(a, b), o, c] = (G_h w[o, c] G_w^T)[a, b]``; ``w`` is (K, C, kh, kw)."""
    ah, kh = gh.shape
    aw, kw = gw.shape
    for o in prange(w.shape[0]):
        tmp = np.empty((ah, kw), dtype=u.dtype)
        for c in range(w.shape[1]):
            for a in range(ah):
                for j in range(kw):
                    acc = 0.0
                    for i in range(kh):
                        acc += gh[a, i] * w[o, c, i, j]
                    tmp[a, j] = acc
            for a in range(ah):
                for b in range(aw):
                    acc = 0.0
                    for j in range(kw):
                        acc += tmp[a, j] * gw[b, j]
                    u[a * aw + b, o, c] = acc


@njit(cache=True, parallel=True)
def _point_gemms(u, v, mm):
    """``mm[p, g] = u[p, g] @ v[p, g]``: one single-threaded BLAS GEMM per (point, group),
    spread over Numba's threads (BLAS is never asked for threads of its own here)."""
    pts, groups = u.shape[0], u.shape[1]
    for q in prange(pts * groups):
        np.dot(u[q // groups, q % groups], v[q // groups, q % groups],
               mm[q // groups, q % groups])


def _matrices(p, m, cd):
    """(AT, G, BT) per axis (height, width); a 1-D call gets a height of one tap."""
    at, g, bt = (a.astype(cd) for a in float_transforms(m, R))
    one = np.ones((1, 1), dtype=cd)
    width = (at, g, bt)
    height = width if p.ndim == 2 else (one, one, one)
    return height, width


def _tiles(p, m):
    if p.ndim == 2:
        return -(-p.output_size[0] // m), -(-p.output_size[1] // m), m, m
    return 1, -(-p.output_size[0] // m), 1, m


def _points(p, m) -> int:
    _, _, mh, mw = _tiles(p, m)
    return (mh + (R - 1 if p.ndim == 2 else 0)) * (mw + R - 1)


def _row_bytes(p, m) -> int:
    """V and M bytes of one tile row."""
    tw = _tiles(p, m)[1]
    return _points(p, m) * tw * (p.in_channels + p.out_channels) * \
        compute_dtype(p.dtype).itemsize


def _block_rows(p, m):
    """Tile rows per step, so that V and M of one step fit in CHUNK_BYTES."""
    return max(1, min(p.batch * _tiles(p, m)[0], CHUNK_BYTES // _row_bytes(p, m)))


def workspace_bytes(p, m) -> int:
    itemsize = compute_dtype(p.dtype).itemsize
    filters = _points(p, m) * p.out_channels * p.in_per_group * itemsize
    padded = 0 if p.has_zero_padding else prod(p.padded_size) * p.in_channels * \
        p.batch * itemsize
    return _block_rows(p, m) * _row_bytes(p, m) + filters + padded


def conv(x, w, bias, p, m):
    sync_numba()
    cd = compute_dtype(p.dtype)
    (ath, gh, bth), (atw, gw, btw) = _matrices(p, m, cd)
    g, cig, cog = p.groups, p.in_per_group, p.out_per_group
    th, tw, mh, mw = _tiles(p, m)
    ah, aw = bth.shape[0], btw.shape[0]
    pads = [b for b, _ in p.padding]
    if not p.has_zero_padding:
        x = pad_input(x, p, cd)
        pads = [0] * p.ndim
    x4 = np.ascontiguousarray(x, dtype=cd)
    w4 = w.astype(cd, copy=False)
    if p.ndim == 1:
        x4, w4, pads = x4[:, :, None, :], w4[:, :, None, :], [0] + pads
    # U[p, g, o, c] = (G w G^T)[p]
    u = np.empty((ah * aw, p.out_channels, cig), dtype=cd)
    _filter_transform(np.ascontiguousarray(w4), gh, gw, u)
    u = u.reshape(ah * aw, g, cog, cig)
    b = bias_or_zeros(bias, p, cd)
    y = np.empty((p.batch, p.out_channels, p.output_size[0] if p.ndim == 2 else 1,
                  p.output_size[-1]), dtype=cd)
    total = p.batch * th
    step = _block_rows(p, m)
    for row0 in range(0, total, step):
        rows = min(step, total - row0)
        v = np.empty((ah * aw, p.in_channels, rows * tw), dtype=cd)
        _input_transform(x4, bth, btw, v, row0, rows, th, tw, mh, mw, pads[0], pads[1])
        mm = np.empty((ah * aw, g, cog, rows * tw), dtype=cd)
        _point_gemms(u, v.reshape(ah * aw, g, cig, rows * tw), mm)
        _output_transform(mm.reshape(ah * aw, p.out_channels, rows * tw), ath, atw, b, y,
                          row0, rows, th, tw)
    return y.reshape(p.output_shape).astype(p.dtype, copy=False)
