"""Implicit GEMM on the CPU: the convolution as the GEMM ``out[p, o] = sum_k col[p, k]
w[o, k]`` with the column matrix never built. A register-blocked micro-kernel
(``register_tiles.py``) keeps 6 output positions x 64 output channels (or 8 x 32) of
sums in vector registers through the whole reduction; each step broadcasts one input
element per position, read straight from the (padded) NCHW input at the position's
base plus the step's offset, and multiplies it with a row of 64 packed weights.

What it needs besides the output: a padded copy of the input when the layer pads (none
otherwise), the weights packed as ``(groups, blocks, K, 64)`` rows (one transposing
pass at copy speed), and per thread a block's sums before they are written transposed
into the NCHW output. Against im2col it saves the column matrix and BLAS's packing of
it; against BLAS it wins where BLAS is weak here: few output channels, small K, small
images (measured in docs/performance.md).

float32 only (float16 computes in float32); float64 would need its own 8-lane kernels.
"""
from __future__ import annotations

from functools import lru_cache
from math import prod

import numpy as np
from numba import njit, prange

from ...threads import get_num_threads
from ..numpy._common import alloc, finish, pad_input
from ._layout import as3d, compute_dtype, sync_numba, triple
from .register_tiles import tile32, tile64
from .simd import from_lanes, to_lanes

#: Output positions of a block: its sums (positions x 64 x 4 bytes, 50 KiB at most)
#: stay in the core's L2 until they are written out.
MAX_POSITIONS = 192


@njit(cache=True, inline="always")
def _bases(bs, p0, npos, n_off, out_hw, ow_, in_hw, wi, stride):
    """Input offset of each output position ``p0 <= p < p0 + npos`` (flat (d, h, w)),
    padded to a whole tile with copies of the last one."""
    od, rest = p0 // out_hw, p0 % out_hw
    oh, ow = rest // ow_, rest % ow_
    for i in range(npos):
        bs[i] = n_off + od * stride[0] * in_hw + oh * stride[1] * wi + ow * stride[2]
        ow += 1
        if ow == ow_:
            ow = 0
            oh += 1
            if oh * ow_ == out_hw:
                oh = 0
                od += 1
    for i in range(npos, bs.size):
        bs[i] = bs[npos - 1]


@njit(cache=True, parallel=True)
def _kernel(xf, wp, y, offs, in_shape, out_shape, stride, per, mr):
    """``y (N, K, OD*OH*OW)`` from the padded input ``xf`` (flat ``in_shape`` (N, C, D,
    H, W)) and the packed weights ``wp (G, blocks, taps*C/G, lanes)``, ``mr`` positions
    a tile; one (image, group, channel block, ``per`` positions) per iteration."""
    n_, oc_, out_vol = y.shape
    g_, nb, kk, lanes = wp.shape
    ocg = oc_ // g_
    cg = in_shape[1] // g_
    in_hw = in_shape[3] * in_shape[4]
    in_vol = in_shape[2] * in_hw
    out_hw = out_shape[1] * out_shape[2]
    nch = (out_vol + per - 1) // per
    yf = y.reshape(y.size)
    for u in prange(n_ * g_ * nb * nch):
        n, g, blk, ch = u // (g_ * nb * nch), (u // (nb * nch)) % g_, (u // nch) % nb, \
            u % nch
        p0 = ch * per
        npos = min(per, out_vol - p0)
        buf = np.empty((per + mr) * lanes, dtype=np.float32)
        bs = np.empty(per + mr, dtype=np.int64)
        _bases(bs, p0, npos, (n * in_shape[1] + g * cg) * in_vol, out_hw, out_shape[2],
               in_hw, in_shape[4], stride)
        w_at = (g * nb + blk) * kk * lanes
        for t in range(0, npos, mr):
            if lanes == 64:
                tile64(xf, wp, w_at, offs, kk, bs[t:], buf, t * lanes)
            else:
                tile32(xf, wp, w_at, offs, kk, bs[t:], buf, t * lanes)
        oc0 = g * ocg + blk * lanes
        from_lanes(buf, 0, lanes, min(lanes, ocg - blk * lanes), npos, yf,
                   (n * oc_ + oc0) * out_vol + p0, out_vol)


@njit(cache=True, parallel=True)
def _pack(w3, wp):
    """``wp[g, b, k, j] = w3[g, b * lanes + j, k]``, zero past the last channel
    (``simd.to_lanes``), in chunks of 256 ``k``."""
    g_, nb, kk, lanes = wp.shape
    ocg = w3.shape[1]
    w3f, wpf = w3.reshape(w3.size), wp.reshape(wp.size)
    chunks = (kk + 255) // 256
    for u in prange(g_ * nb * chunks):
        g, b, c = u // (nb * chunks), (u // chunks) % nb, u % chunks
        k0, k1 = c * 256, min(c * 256 + 256, kk)
        to_lanes(w3f, (g * ocg + b * lanes) * kk + k0, kk, min(lanes, ocg - b * lanes),
                 k1 - k0, wpf, ((g * nb + b) * kk + k0) * lanes, lanes)


def lanes(p) -> int:
    """Output channels of a tile: 64, or 32 where a group has 32 or fewer."""
    return 64 if p.out_per_group > 32 else 32


def tile_positions(p) -> int:
    """Output positions of a tile: 6 of 64 channels (24 vector sums), 8 of 32 (16)."""
    return 6 if lanes(p) == 64 else 8


def _blocks(p) -> int:
    """Channel blocks of a group."""
    return -(-p.out_per_group // lanes(p))


def positions_per_block(p, threads: int) -> int:
    """``MAX_POSITIONS`` (whole tiles), halved while the call has fewer than four blocks
    a thread."""
    mr = tile_positions(p)
    units = p.batch * p.groups * _blocks(p)
    total = prod(p.output_size)
    per = MAX_POSITIONS
    while per > mr and units * -(-total // per) < 4 * threads:
        per //= 2
    return max(mr, per // mr * mr)


@lru_cache(maxsize=256)
def _offsets(p) -> np.ndarray:
    """The input offset of every reduction step ``(c, kd, kh, kw)`` from a position's
    base in the padded input. Shared between calls of one shape (read only)."""
    size = triple(p.padded_size, 1)
    steps = np.ix_(np.arange(p.in_per_group), *(np.arange(k) * d for k, d in zip(
        triple(p.kernel_size, 1), triple(p.dilation, 1))))
    strides = (prod(size), size[1] * size[2], size[2], 1)
    return sum(s * a for s, a in zip(strides, steps)).astype(np.int64).ravel()


def conv(x, w, bias, p):
    sync_numba()
    cd = compute_dtype(p.dtype)
    xp = as3d(pad_input(x, p, dtype=cd), cd)
    kk = p.in_per_group * p.kernel_volume
    wp = np.empty((p.groups, _blocks(p), kk, lanes(p)), dtype=cd)
    _pack(np.ascontiguousarray(w, dtype=cd).reshape(p.groups, p.out_per_group, kk), wp)
    y = alloc((p.batch, p.out_channels, prod(p.output_size)), dtype=cd)
    _kernel(xp.reshape(-1), wp, y, _offsets(p), np.array(xp.shape, np.int64),
            np.array(triple(p.output_size, 1), np.int64),
            np.array(triple(p.stride, 1), np.int64),
            positions_per_block(p, get_num_threads()), tile_positions(p))
    return finish(y.reshape(p.output_shape), bias, p)


def _padded_bytes(p, cast: bool) -> int:
    """The padded input copy: when the layer pads (or, with ``cast``, is float16)."""
    padded = any(pair != (0, 0) for pair in p.padding)
    if not (padded or cast and p.dtype != compute_dtype(p.dtype)):
        return 0
    return p.batch * p.in_channels * prod(p.padded_size) * compute_dtype(p.dtype).itemsize


def _packed_bytes(p) -> int:
    """The packed weights, idle lanes included."""
    return p.groups * _blocks(p) * lanes(p) * p.in_per_group * p.kernel_volume * \
        compute_dtype(p.dtype).itemsize


def features(p) -> dict:
    """The amounts the cost model charges (``dispatch.NUMBA_RATES["igemm_*"]``): the
    multiply-adds run, idle lanes and the last tile's copies included, as FLOPs and
    divided by the share of the threads the blocks keep busy: under ``fma``, or
    ``fma32`` for the 8 x 32 tile (a broadcast for every two multiply-adds, against
    four in the 6 x 64 tile), or ``fma_dilated`` where the taps spread over (d - 1) x
    more input rows and columns, which leave the caches sooner; the bytes of packed
    weights (read and written) and of the padded input written; the output written."""
    threads = get_num_threads()
    mr = tile_positions(p)
    per = positions_per_block(p, threads)
    total = prod(p.output_size)
    units = p.batch * p.groups * _blocks(p) * -(-total // per)
    busy = units / (threads * -(-units // threads)) if units else 1.0
    flops = 2 * p.batch * p.groups * _blocks(p) * lanes(p) * -(-total // mr) * mr * \
        p.in_per_group * p.kernel_volume
    tile = "fma32" if lanes(p) == 32 else "fma_dilated" if max(p.dilation) > 1 else "fma"
    return {"fma": 0.0, "fma32": 0.0, "fma_dilated": 0.0, tile: flops / busy,
            "pack": 2 * _packed_bytes(p), "pad": _padded_bytes(p, cast=False),
            "out": p.batch * p.out_channels * total * compute_dtype(p.dtype).itemsize}


def workspace_bytes(p) -> int:
    """The padded input (when the layer pads or casts), the packed weights, and per
    thread one block's sums and input bases."""
    per = positions_per_block(p, get_num_threads()) + tile_positions(p)
    per_position = lanes(p) * compute_dtype(p.dtype).itemsize + 8
    return _padded_bytes(p, cast=True) + _packed_bytes(p) + \
        get_num_threads() * per * per_position


def can_implement(p, weight=None):
    if compute_dtype(p.dtype) != np.float32:
        return f"computes in float32 vectors only, got dtype={p.dtype.name} " \
               "(float64 has no 8-lane kernel)"
    return None
