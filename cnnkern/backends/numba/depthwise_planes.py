"""Depthwise convolution on the NCHW planes themselves, for large images with few
channels, where the channels-last copy of ``depthwise.py`` costs more than the
convolution (MobileNetV2's 112x112 and stride-2 layers).

Each unit of work is one (image, input channel) plane. It is copied, padded, into a
per-thread buffer split into its stride phases: phase ``(a, b, e)`` holds the padded
positions ``(z * sd + a, r * sh + b, q * sw + e)``. In that buffer every tap of a
strided convolution becomes a unit-stride shift, and with the output laid out with the
buffer's row pitch a whole output plane is one long flat loop per tap: long enough to
vectorize fully, where a 28-pixel row is not. Eight taps share each pass over the
output (then four, then one for the rest): the running sums are loaded and stored once
for all of them. The columns past the output width that the flat loop also computes are
dropped when the plane is copied out. Any padding mode is read through the index maps
of ``_layout``; channel multipliers reuse one buffer for all outputs of a channel.
"""
from __future__ import annotations

from math import prod
from typing import NamedTuple

import numpy as np
from numba import njit, prange

from ...threads import get_num_threads
from ..numpy import _common
from ._layout import compute_dtype, copy_run, depthwise_operands, index_maps, pads3, \
    triple

# Indices in the hot loops are uint64 (no negative-index wraparound to stop
# vectorization) and strides are written ``q + q``: in Numba uint64 * int64 is a float64.


@njit(cache=True, inline="always")
def _fill(buf, xf, xp, geo, mz, my, span, edge_q, edge_src, strides):
    """The padded plane (volume) at NCDHW offset ``xp``, split into stride phases.

    ``geo`` is (phase depth, rows, row pitch, input height, input width). Along W,
    every phase reads the input directly for ``q`` in ``span = [qa, qb)`` (column
    ``q * sw + e - span[2]``); the few other positions of a row, the same ``edge_q`` in
    every phase, take column ``edge_src[e, j]`` (or 0 for -1): listed once per call, so
    that a row costs one vectorized run and a short scalar loop, whatever the padding
    mode."""
    sd, sh, sw = strides[0], strides[1], strides[2]
    dq, rq, pq = geo[0], geo[1], geo[2]
    hi, wi = geo[3], geo[4]
    phase = dq * rq * pq
    qa, qb, pw = span[0], span[1], span[2]
    one = np.uint64(1)
    for a in range(sd):
        for b in range(sh):
            base = (a * sh + b) * sw * phase
            for z in range(dq):
                pz = z * sd + a
                iz = mz[pz] if pz < mz.size else -1
                for r in range(rq):
                    py = r * sh + b
                    iy = my[py] if py < my.size else -1
                    o = base + (z * rq + r) * pq
                    if iz < 0 or iy < 0:
                        for e in range(sw):
                            for i in range(pq):
                                buf[o + e * phase + i] = 0
                        continue
                    row = xp + (iz * hi + iy) * wi
                    if qb > qa:
                        if sw == 2:
                            # both phases in one pass: an interleaved pair of loads
                            # vectorizes, one phase alone is a gather
                            o0, o1 = np.uint64(o + qa), np.uint64(o + phase + qa)
                            x0 = np.uint64(row + 2 * qa - pw)
                            for q in range(np.uint64(qb - qa)):
                                buf[o0 + q] = xf[x0 + q + q]
                                buf[o1 + q] = xf[x0 + q + q + one]
                        else:
                            for e in range(sw):
                                copy_run(buf, o + e * phase + qa, xf,
                                         row + qa * sw + e - pw, qb - qa, sw)
                    for e in range(sw):
                        oe = o + e * phase
                        for j in range(edge_q.size):
                            src = edge_src[e, j]
                            buf[oe + edge_q[j]] = xf[row + src] if src >= 0 else 0
    for i in range(sd * sh * sw * phase, buf.size):
        buf[i] = 0


@njit(cache=True, inline="always")
def _copy_inside(buf, xf, xp, di, geo, lead):
    """The input volume at NCDHW offset ``xp`` (``di`` deep) into the inside of a
    stride-1 phase buffer whose zero padding is in place already: plain row copies,
    without ``_fill``'s index maps and edge lists (3-4x as fast on 14x14 planes)."""
    rq, pq, hi, wi = geo[1], geo[2], geo[3], geo[4]
    for z in range(di):
        for r in range(hi):
            copy_run(buf, ((z + lead[0]) * rq + r + lead[1]) * pq + lead[2], xf,
                     xp + (z * hi + r) * wi, wi, 1)


@njit(cache=True, inline="always")
def _add_taps9(yb, n, buf, offs, t, wt, k):
    """``yb[i] += sum_j wt[k, t + j] * buf[offs[t + j] + i]`` for the taps ``t..t+8``:
    a 3x3 kernel in one pass (0.7-0.9x the time of eight taps and one on 28x28 and
    14x14 planes; on 7x7 kernels, passes of nine measured slower than of eight)."""
    a, b = np.uint64(offs[t]), np.uint64(offs[t + 1])
    c, d = np.uint64(offs[t + 2]), np.uint64(offs[t + 3])
    e, f = np.uint64(offs[t + 4]), np.uint64(offs[t + 5])
    g, h = np.uint64(offs[t + 6]), np.uint64(offs[t + 7])
    m = np.uint64(offs[t + 8])
    w0, w1, w2, w3 = wt[k, t], wt[k, t + 1], wt[k, t + 2], wt[k, t + 3]
    w4, w5, w6, w7 = wt[k, t + 4], wt[k, t + 5], wt[k, t + 6], wt[k, t + 7]
    w8 = wt[k, t + 8]
    for i in range(np.uint64(n)):
        yb[i] += w0 * buf[a + i] + w1 * buf[b + i] + w2 * buf[c + i] + w3 * buf[d + i] + \
            w4 * buf[e + i] + w5 * buf[f + i] + w6 * buf[g + i] + w7 * buf[h + i] + \
            w8 * buf[m + i]


@njit(cache=True, inline="always")
def _add_taps8(yb, n, buf, offs, t, wt, k):
    """``yb[i] += sum_j wt[k, t + j] * buf[offs[t + j] + i]`` for the taps ``t..t+7``."""
    a, b = np.uint64(offs[t]), np.uint64(offs[t + 1])
    c, d = np.uint64(offs[t + 2]), np.uint64(offs[t + 3])
    e, f = np.uint64(offs[t + 4]), np.uint64(offs[t + 5])
    g, h = np.uint64(offs[t + 6]), np.uint64(offs[t + 7])
    w0, w1, w2, w3 = wt[k, t], wt[k, t + 1], wt[k, t + 2], wt[k, t + 3]
    w4, w5, w6, w7 = wt[k, t + 4], wt[k, t + 5], wt[k, t + 6], wt[k, t + 7]
    for i in range(np.uint64(n)):
        yb[i] += w0 * buf[a + i] + w1 * buf[b + i] + w2 * buf[c + i] + w3 * buf[d + i] + \
            w4 * buf[e + i] + w5 * buf[f + i] + w6 * buf[g + i] + w7 * buf[h + i]


@njit(cache=True, inline="always")
def _add_taps4(yb, n, buf, offs, t, wt, k):
    """As ``_add_taps8`` for the taps ``t..t+3``."""
    a, b = np.uint64(offs[t]), np.uint64(offs[t + 1])
    c, d = np.uint64(offs[t + 2]), np.uint64(offs[t + 3])
    w0, w1, w2, w3 = wt[k, t], wt[k, t + 1], wt[k, t + 2], wt[k, t + 3]
    for i in range(np.uint64(n)):
        yb[i] += w0 * buf[a + i] + w1 * buf[b + i] + w2 * buf[c + i] + w3 * buf[d + i]


@njit(cache=True, inline="always")
def _add_tap(yb, n, buf, o0, w0):
    a = np.uint64(o0)
    for i in range(np.uint64(n)):
        yb[i] += w0 * buf[a + i]


@njit(cache=True, parallel=True, fastmath={"contract", "reassoc"})
def _planes_kernel(x, wt, bias, y, mult, offs, geo, strides, mz, my, span, edge_q,
                   edge_src, size, length, parts, lead, poison):
    """``y[n, c * mult + j]`` for every (image, channel) unit ``(n, c)``: its plane into
    the phase buffer, then per output channel the taps as flat passes (nine taps, or
    eight, four or one a pass) over the pitched output buffer ``yb``, then ``yb``
    cropped into ``y``.
    ``lead`` is the leading zero padding of a stride-1 call (else -1): each part fills
    its buffer's padding once and then copies only the inside of every plane.
    ``poison`` starts the buffers as NaN (tests: every element read was written)."""
    n_, c_ = x.shape[0], x.shape[1]
    od_, oh_, ow_ = y.shape[2], y.shape[3], y.shape[4]
    rq, pq = geo[1], geo[2]
    taps = offs.size
    xf = x.reshape(x.size)
    yf = y.reshape(y.size)
    vol = x.shape[2] * x.shape[3] * x.shape[4]
    out_vol = od_ * oh_ * ow_
    units = n_ * c_
    for part in prange(parts):
        buf = np.empty(size, dtype=x.dtype)
        yb = np.empty(length, dtype=y.dtype)
        if poison:
            buf[:] = np.nan
            yb[:] = np.nan
        first = part * units // parts
        for u in range(first, (part + 1) * units // parts):
            if u == first or lead[0] < 0:
                _fill(buf, xf, u * vol, geo, mz, my, span, edge_q, edge_src, strides)
            else:
                _copy_inside(buf, xf, u * vol, x.shape[2], geo, lead)
            for j in range(mult):
                k = (u % c_) * mult + j
                for i in range(length):
                    yb[i] = bias[k]
                t = 0
                if taps == 9:
                    _add_taps9(yb, length, buf, offs, t, wt, k)
                    t = 9
                while t + 8 <= taps:
                    _add_taps8(yb, length, buf, offs, t, wt, k)
                    t += 8
                while t + 4 <= taps:
                    _add_taps4(yb, length, buf, offs, t, wt, k)
                    t += 4
                while t < taps:
                    _add_tap(yb, length, buf, offs[t], wt[k, t])
                    t += 1
                yo = ((u // c_) * y.shape[1] + k) * out_vol
                for od in range(od_):
                    for oh in range(oh_):
                        dst = np.uint64(yo + (od * oh_ + oh) * ow_)
                        src = np.uint64((od * rq + oh) * pq)
                        for ow in range(np.uint64(ow_)):
                            yf[dst + ow] = yb[src + ow]


class Plan(NamedTuple):
    """The phase geometry of one call."""
    offsets: np.ndarray   # per tap (kd, kh, kw order), its shift into the phase buffer
    geo: np.ndarray       # phase depth, rows, row pitch; input height, width
    strides: np.ndarray
    span: np.ndarray      # W positions [qa, qb) every phase reads directly; W padding
    edge_q: np.ndarray    # the other W positions of a row
    edge_src: np.ndarray  # per W phase, their input columns (-1: zero)
    mz: np.ndarray        # source index of every padded depth and row (-1: zero)
    my: np.ndarray
    size: int             # phase buffer elements (all phases and slack)
    length: int           # elements of each flat pass (the pitched plane, rounded up)


#: The flat passes run over a multiple of this many elements: a pass's vector loop
#: takes 32 at a time, and the rest ran one by one (on a 7x7 plane's 63 elements,
#: 31 of them).
RUN_STEP = 32


def sizes(p) -> tuple[np.ndarray, int, int]:
    """(phase depth, rows, row pitch), the phase buffer's elements (all phases and
    slack: the flat loop of the last row reads up to a pitch, and the run's rounding,
    past its phase) and the elements each flat pass runs over: the pitched output
    plane, rounded up to ``RUN_STEP`` (the extra ones are never copied out); cheap
    enough for the cost model."""
    st = triple(p.stride, 1)
    sub = np.array([-(-n // s) for n, s in zip(triple(p.padded_size, 1), st)], np.int64)
    od_, oh_, _ = triple(p.output_size, 1)
    rq, pq = int(sub[1]), int(sub[2])
    length = ((od_ - 1) * rq + oh_) * pq
    run = -(-length // RUN_STEP) * RUN_STEP
    return sub, prod(st) * int(sub.prod()) + pq + run - length, run


def plan(p) -> Plan:
    st = np.array(triple(p.stride, 1), np.int64)
    sub, size, length = sizes(p)
    dq, rq, pq = (int(n) for n in sub)
    pos = np.indices(triple(p.kernel_size, 1)).reshape(3, -1).T * \
        np.array(triple(p.dilation, 1))
    ph, q = pos % st, pos // st
    phase_id = (ph[:, 0] * st[1] + ph[:, 1]) * st[2] + ph[:, 2]
    offsets = phase_id * (dq * rq * pq) + (q[:, 0] * rq + q[:, 1]) * pq + q[:, 2]
    _, hi, wi = triple(p.input_size, 1)
    pw = int(pads3(p)[2])
    sw = int(st[2])
    # q reads column q * sw + e - pw; inside the row for every phase e in [qa, qb)
    qa = min(pq, -(-pw // sw))
    qb = max(qa, min(pq, (wi + pw - sw) // sw + 1))
    edge_q = np.r_[np.arange(qa), np.arange(qb, pq)].astype(np.int64)
    mz, my, mx = index_maps(p)
    px = edge_q[None, :] * sw + np.arange(sw)[:, None]
    edge_src = np.where(px < mx.size, mx[np.minimum(px, mx.size - 1)], -1)
    return Plan(offsets.astype(np.int64), np.array([dq, rq, pq, hi, wi], np.int64), st,
                np.array([qa, qb, pw], np.int64), edge_q, edge_src.astype(np.int64), mz,
                my, size, length)


def depthwise_planes(x, w, bias, p):
    x3, wt, b, y = depthwise_operands(x, w, bias, p)
    pl = plan(p)
    parts = max(1, min(p.batch * p.in_channels, 4 * get_num_threads()))
    _planes_kernel(x3, wt, b, y, p.out_per_group, pl.offsets, pl.geo, pl.strides, pl.mz,
                   pl.my, pl.span, pl.edge_q, pl.edge_src, pl.size, pl.length, parts,
                   _inside_lead(p), _common.POISON)
    return y.reshape(p.output_shape).astype(p.dtype, copy=False)


def copies_inside(p) -> bool:
    """Whether a part fills its buffer's padding once and then copies only the inside
    of each plane: zero padding at stride 1, where the buffer is the padded plane."""
    return p.padding_mode == "zeros" and all(s == 1 for s in p.stride)


def _inside_lead(p) -> np.ndarray:
    """The leading padding per axis for ``_copy_inside``; -1s where every plane needs
    ``_fill``."""
    return pads3(p) if copies_inside(p) else np.full(3, -1, np.int64)


def planes_workspace(p) -> int:
    """A phase buffer and a pitched output plane per thread."""
    _, size, length = sizes(p)
    return get_num_threads() * (size + length) * compute_dtype(p.dtype).itemsize
