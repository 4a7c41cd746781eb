"""Depthwise convolution (one output per channel, float32) by a sliding register window:
eight outputs of a row sum their taps in eight vector registers while the window of
inputs (or of weights) under them slides one column per step.

Written for the layers the other depthwise kernels here were slow on, small images
under large kernels (RepLKNet's and ConvNeXt's last stages: 7x7 images under 13x13 and
7x7 filters), where PyTorch took 0.43-0.77x their time. Those kernels keep their sums
in memory and load an input and a weight vector per multiply-add. Here the sums of
eight neighbouring outputs (a vector of 16 channels each) stay in registers through
all their taps: outputs ``j .. j + 7`` under tap ``s`` read the input columns ``j + s
.. j + s + 7``, the columns of tap ``s - 1`` moved by one, so a step loads one weight
vector and one input column for eight multiply-adds. Where the image is narrower than
the kernel the tile slides over the input columns instead, with a window of weights
(``_image``): each step then is an input column that reaches the tile, not a tap,
which skips the taps that only ever meet zero padding. It took every 7x7 and larger
depthwise layer of the suites from the other kernels, at 1.2-4.8x their speed
(docs/dispatch.md).

A work unit is a block of up to 64 channels of a group of images. Its weights come
channels last (16 x 16 register transposes) into rows padded with zero vectors, once
per unit; each image's block into a padded buffer (rows copied into padding zeroed once
under zero padding, through the padding mode's index maps otherwise). Kernel rows
whose input row is zero padding are skipped. Stride and dilation are free along depth
and height; along the width the window needs dilation 1, and a stride ``S`` splits the
columns into ``S`` phases, each a stride-1 window over its own taps (``_plan``).
"""
from __future__ import annotations

from functools import lru_cache
from math import prod
from typing import NamedTuple

import numpy as np
from numba import njit, prange
from numba.extending import overload

from ...threads import get_num_threads
from ._layout import depthwise_operands, index_maps, pads3, triple
from .simd import from_lanes, full_width, to_lanes, vfma, vload, vstore

#: Outputs per register tile: 8 (8 sums + 8 window columns + a weight: 17 of 32
#: vectors) or 4, whose windows reach less far into zero padding on narrow images.
TILES = (8, 4)
#: Most buffer memory a call may take (all parts).
WORKSPACE_BYTES = 32 * 2**20
#: Zero weights on either side of each kernel row: the window of the flipped slide
#: starts up to 7 taps before the row and ends up to 7 after it.
WPAD = max(TILES) - 1
#: Widest channel block of a work unit, in lanes: its weights (169 taps of 13x13 are
#: 43 KB at 64 lanes) and one image stay in L2.
MAX_LANES = 64


@njit(cache=True, inline="always")
def _slide8(xf, x_at, wf, w_at, taps, lanes, a):
    """``a[k] += w[s] * x[s + k]`` for ``s < taps``, ``k < 8``: the weight vectors
    from ``w_at`` and the input columns from ``x_at``, ``lanes`` apart."""
    a0, a1, a2, a3, a4, a5, a6, a7 = a
    x0, x1, x2 = vload(xf, x_at), vload(xf, x_at + lanes), vload(xf, x_at + 2 * lanes)
    x3, x4 = vload(xf, x_at + 3 * lanes), vload(xf, x_at + 4 * lanes)
    x5, x6 = vload(xf, x_at + 5 * lanes), vload(xf, x_at + 6 * lanes)
    at = x_at + 7 * lanes
    for s in range(taps):
        wv = vload(wf, w_at + s * lanes)
        x7 = vload(xf, at + s * lanes)
        a0 = vfma(wv, x0, a0)
        a1 = vfma(wv, x1, a1)
        a2 = vfma(wv, x2, a2)
        a3 = vfma(wv, x3, a3)
        a4 = vfma(wv, x4, a4)
        a5 = vfma(wv, x5, a5)
        a6 = vfma(wv, x6, a6)
        a7 = vfma(wv, x7, a7)
        x0, x1, x2, x3, x4, x5, x6 = x1, x2, x3, x4, x5, x6, x7
    return a0, a1, a2, a3, a4, a5, a6, a7


@njit(cache=True, inline="always")
def _slide4(xf, x_at, wf, w_at, taps, lanes, a):
    """``_slide8`` for four outputs."""
    a0, a1, a2, a3 = a
    x0, x1, x2 = vload(xf, x_at), vload(xf, x_at + lanes), vload(xf, x_at + 2 * lanes)
    at = x_at + 3 * lanes
    for s in range(taps):
        wv = vload(wf, w_at + s * lanes)
        x3 = vload(xf, at + s * lanes)
        a0 = vfma(wv, x0, a0)
        a1 = vfma(wv, x1, a1)
        a2 = vfma(wv, x2, a2)
        a3 = vfma(wv, x3, a3)
        x0, x1, x2 = x1, x2, x3
    return a0, a1, a2, a3


def _slide(xf, x_at, wf, w_at, taps, lanes, a):
    """``_slide8`` or ``_slide4``, by the number of sums in ``a``."""
    raise NotImplementedError("called from Numba code only")


@overload(_slide, jit_options={"cache": True})
def _slide_typed(xf, x_at, wf, w_at, taps, lanes, a):
    return {8: _slide8, 4: _slide4}[len(a)].py_func


@njit(cache=True, inline="always")
def _phase_ranges(j0, n_out, k_e, lo_e, hi_e):
    """For a tile's outputs ``j0 .. j0 + n_out - 1`` and a column phase with ``k_e``
    taps and input in its columns ``lo_e:hi_e``: the taps whose window holds input and
    the input columns the outputs reach."""
    s0, s1 = max(0, lo_e - j0 - n_out + 1), min(k_e, hi_e - j0)
    i0, i1 = max(lo_e, j0), min(hi_e, j0 + n_out - 1 + k_e)
    return s0, s1, i0, i1


@njit(cache=True, inline="always")
def _phase_sums(a, xf, wf, rows_x, rows_w, m, j0, n_out, ks, los, his, x_ph, w_ph, lanes,
                v, ob, o_at):
    """Outputs ``j0 .. j0 + n_out - 1`` of a row, lanes ``v .. v + 15``, into ``ob``
    from ``o_at`` (``lanes`` apart): the sums ``a`` (a tile of 8 or 4, starting at the
    bias) plus, for each column phase ``e`` (``ks[e]`` taps, input in its columns
    ``los[e]:his[e]``; ``x_ph`` and ``w_ph`` apart in the blocks), the slides over each
    of the ``m`` kernel rows. Each phase slides over whichever of its taps or input
    columns are fewer; the slide over the columns (a window of weights) takes the sums
    in reverse order."""
    last = len(a) - 1
    for e in range(ks.size):
        s0, s1, i0, i1 = _phase_ranges(j0, n_out, ks[e], los[e], his[e])
        if min(s1 - s0, i1 - i0) <= 0:
            continue
        if i1 - i0 < s1 - s0:
            a = a[::-1]
            w_at = e * w_ph + (WPAD + i0 - j0 - last) * lanes + v
            for r in range(m):
                a = _slide(wf, rows_w[r] + w_at, xf, rows_x[r] + e * x_ph + i0 * lanes + v,
                           i1 - i0, lanes, a)
            a = a[::-1]
        else:
            x_at = e * x_ph + (j0 + s0) * lanes + v
            for r in range(m):
                a = _slide(xf, rows_x[r] + x_at, wf,
                           rows_w[r] + e * w_ph + (WPAD + s0) * lanes + v, s1 - s0, lanes,
                           a)
    for k in range(n_out):
        vstore(ob, o_at + k * lanes, a[k])


@njit(cache=True, inline="always")
def _pad_image(stage, xb, hw, mz, my, mx):
    """The padded block from the image's channels-last ``stage`` (position-major, as the
    input): ``xb[a, b, e, i] = stage[(mz[a] * H + my[b]) * W + mx[i S + e]]`` for the
    ``S`` column phases, zeros where a map is -1 and for the columns past the padded
    width (the last tile's window reads them). Rows in zero padding are never read and
    not written."""
    lanes, phases, width = xb.shape[4], xb.shape[2], xb.shape[3]
    h_, w_ = hw[1], hw[2]
    for a in range(mz.size):
        if mz[a] < 0:
            continue
        for b in range(my.size):
            if my[b] < 0:
                continue
            base = (mz[a] * h_ + my[b]) * w_
            for e in range(phases):
                for i in range(width):
                    c = i * phases + e
                    xe = mx[c] if c < mx.size else -1
                    if xe < 0:
                        for q in range(lanes):
                            xb[a, b, e, i, q] = 0
                    else:
                        at = (base + xe) * lanes
                        for q in range(lanes):
                            xb[a, b, e, i, q] = stage[at + q]


@njit(cache=True, inline="always")
def _kernel_rows(od, oh, kd_, kh_, sd, sh, dd, dh, mz, my, x_row, w_row, rows_x,
                 rows_w):
    """The kernel rows of output row ``(od, oh)`` whose input row is not zero padding:
    their input row's and their weights' offsets in the blocks (rows ``x_row`` and
    ``w_row`` apart); returns how many."""
    m = 0
    for kd in range(kd_):
        z = od * sd + kd * dd
        if mz[z] < 0:
            continue
        for kh in range(kh_):
            yy = oh * sh + kh * dh
            if my[yy] >= 0:
                rows_x[m] = (z * my.size + yy) * x_row
                rows_w[m] = (kd * kh_ + kh) * w_row
                m += 1
    return m


@njit(cache=True, inline="always")
def _pad_weights(wt, wf, rows, kw_, ks, lanes):
    """The weights, ``(rows * kw_, lanes)`` in ``wt``, into ``wf``: each kernel row as
    its column phases (phase ``e`` holds taps ``e, e + S, ...``, ``ks[e]`` of them),
    each phase between ``WPAD`` zero vectors, room for ``ks[0]`` taps. Unsigned
    indices: with signed ones this copy took longer than RepLKNet's dw13_s4 computes
    at batch 1."""
    phases = ks.size
    seg = np.uint64((ks[0] + 2 * WPAD) * lanes)
    nl = np.uint64(lanes)
    for r in range(rows):
        for e in range(phases):
            dst = np.uint64((r * phases + e) * seg + WPAD * lanes)
            for q in range(ks[e]):
                src = np.uint64((r * kw_ + q * phases + e) * lanes)
                d = dst + np.uint64(q) * nl
                for i in range(nl):
                    wf[d + i] = wt[src + i]


@njit(cache=True, inline="always")
def _copy_rows(stage, xf, shape, hw, pads):
    """Image rows from the channels-last ``stage`` into the zero-padded block ``xf``
    (flat, of ``shape``: rows, column phases, columns, lanes), whose padding is zero
    already: at stride 1 each row one contiguous run, else one run per column."""
    _, hp, phases, width, lanes = shape
    d_, h_, w_ = hw
    pd, ph, pw = pads
    nl = np.uint64(lanes)
    for z in range(d_):
        for yy in range(h_):
            src = np.uint64((z * h_ + yy) * w_ * lanes)
            row = ((z + pd) * hp + yy + ph) * phases
            if phases == 1:
                dst = np.uint64((row * width + pw) * lanes)
                for i in range(np.uint64(w_ * lanes)):
                    xf[dst + i] = stage[src + i]
                continue
            for x in range(w_):
                c = x + pw
                if c // phases >= width:        # past every output's reach
                    break
                dst = np.uint64(((row + c % phases) * width + c // phases) * lanes)
                s0 = src + np.uint64(x) * nl
                for i in range(nl):
                    xf[dst + i] = stage[s0 + i]


@njit(cache=True, inline="always")
def _image(xf, wf, bb, of, rows_x, rows_w, mz, my, out, kd_, kh_, sd, sh, dd, dh, ks,
           los, his, x_ph, w_ph, lanes, tile):
    """One image's block of outputs into ``of`` from its padded block ``xf`` and the
    padded weight rows ``wf``; ``out`` is the output's (D, H, W)."""
    od_, oh_, ow_ = out
    phases = ks.size
    for od in range(od_):
        for oh in range(oh_):
            m = _kernel_rows(od, oh, kd_, kh_, sd, sh, dd, dh, mz, my, phases * x_ph,
                             phases * w_ph, rows_x, rows_w)
            q0 = (od * oh_ + oh) * ow_
            for j0 in range(0, ow_, tile):
                n_out = min(tile, ow_ - j0)
                for v in range(0, lanes, 16):
                    b0 = vload(bb, v)
                    o_at = (q0 + j0) * lanes + v
                    if tile == 8:
                        _phase_sums((b0, b0, b0, b0, b0, b0, b0, b0), xf, wf, rows_x,
                                    rows_w, m, j0, n_out, ks, los, his, x_ph, w_ph,
                                    lanes, v, of, o_at)
                    else:
                        _phase_sums((b0, b0, b0, b0), xf, wf, rows_x, rows_w, m, j0,
                                    n_out, ks, los, his, x_ph, w_ph, lanes, v, of, o_at)


@njit(cache=True, parallel=True)
def _slide_kernel(x, w, bias, y, mz, my, mx, kd_, kh_, kw_, sd, sh, dd, dh, ks, los, his,
                  width, zero_pad, pads, lanes, groups, tile, parts):
    """The work units, ``groups`` groups of images for every block of ``lanes``
    channels, in ``parts`` runs of consecutive units (one set of buffers each: fresh
    ones per unit cost more than RepLKNet's dw13_s4 at batch 1 computes).
    ``kd_ x kh_ x kw_`` is the kernel; ``ks``, ``los`` and ``his`` give for each column
    phase (as many as the stride along the width) its taps and the columns that hold
    input; ``width`` the columns of a phase in the block; ``zero_pad``: zero padding
    of ``pads`` (leading, per axis), the block's padding zeroed once; else the block is
    filled through the maps for every image."""
    od_, oh_, ow_ = y.shape[2], y.shape[3], y.shape[4]
    batch, chans = x.shape[0], x.shape[1]
    blocks = -(-chans // lanes)
    units = blocks * groups
    phases = ks.size
    taps, pixels, outs = kd_ * kh_ * kw_, x[0, 0].size, od_ * oh_ * ow_
    wflat, xflat, yflat = w.reshape(w.size), x.reshape(x.size), y.reshape(y.size)
    hw = (x.shape[2], x.shape[3], x.shape[4])
    x_ph, w_ph = width * lanes, (ks[0] + 2 * WPAD) * lanes
    for part in prange(parts):
        wf = np.zeros(kd_ * kh_ * phases * w_ph, dtype=np.float32)
        stage = np.empty(max(pixels, taps) * lanes, dtype=np.float32)
        xb = np.zeros((mz.size, my.size, phases, width, lanes), dtype=np.float32)
        xf = xb.reshape(xb.size)
        of = np.empty(outs * lanes, dtype=np.float32)
        bb = np.zeros(lanes, dtype=np.float32)
        rows_x = np.empty(kd_ * kh_, dtype=np.int64)
        rows_w = np.empty(kd_ * kh_, dtype=np.int64)
        for u in range(part * units // parts, (part + 1) * units // parts):
            blk, grp = u % blocks, u // blocks
            c0 = blk * lanes
            cb = min(lanes, chans - c0)
            for c in range(lanes):
                bb[c] = bias[c0 + c] if c < cb else 0
            to_lanes(wflat, c0 * taps, taps, cb, taps, stage, 0, lanes)
            _pad_weights(stage, wf, kd_ * kh_, kw_, ks, lanes)
            for n in range(grp * batch // groups, (grp + 1) * batch // groups):
                to_lanes(xflat, (n * chans + c0) * pixels, pixels, cb, pixels, stage, 0,
                         lanes)
                if zero_pad:
                    _copy_rows(stage, xf, xb.shape, hw, pads)
                else:
                    _pad_image(stage, xb, hw, mz, my, mx)
                _image(xf, wf, bb, of, rows_x, rows_w, mz, my, (od_, oh_, ow_), kd_, kh_,
                       sd, sh, dd, dh, ks, los, his, x_ph, w_ph, lanes, tile)
                from_lanes(of, 0, lanes, cb, outs, yflat, (n * chans + c0) * outs, outs)


def applies(p) -> bool:
    """float32, one output per channel, no dilation along the width, at least two taps
    in every column phase (a kernel at least twice the stride wide: a one-tap phase
    loads a whole window for one step; MobileNetV2's 3x3 stride-2 layer ran 1.1x the
    plane kernel's time), on a host whose vector registers hold 16 lanes (elsewhere
    the tile spills), and buffers within ``WORKSPACE_BYTES`` (a block holds a whole
    padded image: 16 channels of a 4096 x 4096 image would be 1 GiB)."""
    return (p.dtype == np.float32 and p.out_per_group == 1 and p.dilation[-1] == 1
            and p.kernel_size[-1] >= 2 * p.stride[-1] and full_width()
            and slide_workspace(p) <= WORKSPACE_BYTES)


class Plan(NamedTuple):
    lanes: int      #: channels per block
    groups: int     #: groups of images per block
    parts: int      #: runs of work units, one per thread at most
    tile: int       #: outputs per register tile
    ks: np.ndarray  #: per column phase (one per stride step along the width): its taps,
    los: np.ndarray  #: and its columns ``los[e]:his[e]`` that hold input
    his: np.ndarray
    width: int      #: columns of a phase in the block: the last tile's window fits
    zero_pad: bool  #: zero padding (the only rows copied are the input's)
    pads: tuple     #: leading padding per axis


def plan(p) -> Plan:
    return _plan(p, get_num_threads())


@lru_cache(maxsize=256)
def _plan(p, threads: int) -> Plan:
    """Cached per call shape and thread count: working it out took as long as
    RepLKNet's dw13_s4 computes at batch 1. Column phase ``e`` holds the padded
    columns ``e, e + S, ...`` and the taps ``e, e + S, ...``: output ``j`` reads its
    column ``j + q`` with tap ``q S + e``, a stride-1 window in each phase."""
    vectors = -(-p.in_channels // 16)
    lanes = 16 * min(max(1, -(-vectors // threads)), MAX_LANES // 16)
    blocks = -(-p.in_channels // lanes)
    groups = max(1, min(p.batch, -(-2 * threads // blocks)))
    inside = np.flatnonzero(index_maps(p)[2] >= 0)
    lo, hi, st, kw = int(inside[0]), int(inside[-1]) + 1, p.stride[-1], p.kernel_size[-1]
    phases = range(st)
    ks = np.array([max(0, -(-(kw - e) // st)) for e in phases], dtype=np.int64)
    los = np.array([max(0, -(-(lo - e) // st)) for e in phases], dtype=np.int64)
    his = np.array([max(0, -(-(hi - e) // st)) for e in phases], dtype=np.int64)
    tile = min(TILES, key=lambda t: sum(_tile_steps(p, t, ks, los, his)) *
               (t if t == 8 else 5))
    width = -(-p.output_size[-1] // tile) * tile + int(ks[0]) - 1
    pads = tuple(int(v) for v in pads3(p))
    return Plan(lanes, groups, min(blocks * groups, threads), tile, ks, los, his, width,
                p.has_zero_padding, pads)


def _tile_steps(p, tile: int, ks, los, his) -> tuple:
    """Slide steps of one kernel row over an output row in tiles of ``tile``, each
    tile and column phase sliding over whichever of its taps or input columns are
    fewer, and the slides (a tile's phase: its window loads). The tile with the fewest
    multiply-adds runs, a slide counted as one step (a step of tile 8 costs 8, of tile
    4 four and its loads: counted 5)."""
    ow = p.output_size[-1]
    steps = slides = 0
    for j0 in range(0, ow, tile):
        n_out = min(tile, ow - j0)
        for k_e, lo_e, hi_e in zip(ks, los, his):
            taps = min(k_e, hi_e - j0) - max(0, lo_e - j0 - n_out + 1)
            cols = min(hi_e, j0 + n_out - 1 + k_e) - max(lo_e, j0)
            if min(taps, cols) > 0:
                steps += min(taps, cols)
                slides += 1
    return int(steps), slides


def depthwise_slide(x, w, bias, p):
    x3, w2, b, y = depthwise_operands(x, w, bias, p)
    mz, my, mx = index_maps(p)
    (sd, sh, _), (dd, dh, _) = triple(p.stride, 1), triple(p.dilation, 1)
    pl = plan(p)
    _slide_kernel(x3, w2, b, y, mz, my, mx, *triple(p.kernel_size, 1), sd, sh, dd, dh,
                  pl.ks, pl.los, pl.his, pl.width, pl.zero_pad, pl.pads, pl.lanes,
                  pl.groups, pl.tile, pl.parts)
    return y.reshape(p.output_shape)


def slide_workspace(p) -> int:
    """Per part: the padded weight rows, the transpose stage, the padded image block
    and the output block."""
    pl = plan(p)
    kd, kh, kw = triple(p.kernel_size, 1)
    dp, hp, _ = triple(p.padded_size, 1)
    pixels, outs = prod(p.input_size), prod(p.output_size)
    st = p.stride[-1]
    return pl.parts * pl.lanes * 4 * (
        kd * kh * st * (int(pl.ks[0]) + 2 * WPAD) + max(pixels, kd * kh * kw) +
        dp * hp * st * pl.width + outs + 1)


def features(p) -> dict:
    """What the dispatcher's estimate charges: slide steps of a 16-channel vector
    (weighted by the tile: 8 multiply-adds, or 4 and their loads counted 5), elements
    moved (weights and input transposed and copied into their padded blocks, output
    transposed back), slides started (a tile's column phase over a kernel row) and one
    call."""
    pl = plan(p)
    (kd, kh, _), (sd, sh, _), (dd, dh, _) = (triple(v, 1) for v in
                                             (p.kernel_size, p.stride, p.dilation))
    mz, my, _ = index_maps(p)
    od, oh, _ = triple(p.output_size, 1)
    rows = sum(int(np.count_nonzero(mz[o * sd + np.arange(kd) * dd] >= 0))
               for o in range(od)) * \
        sum(int(np.count_nonzero(my[o * sh + np.arange(kh) * dh] >= 0)) for o in range(oh))
    blocks = -(-p.in_channels // pl.lanes)
    vectors = p.batch * blocks * pl.lanes // 16
    steps, slides = _tile_steps(p, pl.tile, pl.ks, pl.los, pl.his)
    chans = blocks * pl.lanes
    return {"steps": vectors * rows * steps * (pl.tile if pl.tile == 8 else 5),
            "copy": pl.groups * chans * 2 * p.kernel_volume +
            p.batch * chans * (2 * prod(p.input_size) + prod(p.output_size)),
            "loops": vectors * rows * slides, "call": 1}
