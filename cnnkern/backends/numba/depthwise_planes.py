"""Depthwise convolution on the NCHW planes themselves, for large images with few
channels, where the channels-last copy of ``depthwise.py`` costs more than the
convolution (MobileNetV2's 112x112 and stride-2 layers).

Each unit of work is one (image, input channel) plane. It is copied, padded, into a
per-thread buffer split into its stride phases: phase ``(a, b, e)`` holds the padded
positions ``(z * sd + a, r * sh + b, q * sw + e)``. In that buffer every tap of a
strided convolution becomes a unit-stride shift, and with the output laid out with the
buffer's row pitch a whole output plane is one long flat loop per tap: long enough to
vectorize fully, where a 28-pixel row is not. Four taps share each pass over the
output. The columns past the output width that the flat loop also computes are
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
from ._layout import as3d, bias_or_zeros, compute_dtype, index_maps, sync_numba, triple

# Indices in the hot loops are uint64 (no negative-index wraparound to stop
# vectorization) and strides are written ``q + q``: in Numba uint64 * int64 is a float64.


@njit(cache=True, inline="always")
def _copy_run(buf, bo, xf, xo, n, sw):
    """``buf[bo + q] = xf[xo + q * sw]`` for ``q < n``."""
    b0, x0 = np.uint64(bo), np.uint64(xo)
    if sw == 1:
        for q in range(np.uint64(n)):
            buf[b0 + q] = xf[x0 + q]
    elif sw == 2:
        for q in range(np.uint64(n)):
            buf[b0 + q] = xf[x0 + q + q]
    else:
        st = np.uint64(sw)
        for q in range(np.uint64(n)):
            buf[b0 + q] = xf[x0 + st * q]


@njit(cache=True, inline="always")
def _copy_edges(buf, o, xf, row, mx, q_from, q_to, sw, e):
    """Phase ``e``'s positions ``q_from <= q < q_to`` of one padded row, through the
    W index map (padding, or past the padded width: 0)."""
    for q in range(q_from, q_to):
        px = q * sw + e
        src = mx[px] if px < mx.size else -1
        buf[o + q] = xf[row + src] if src >= 0 else 0


@njit(cache=True, inline="always")
def _fill(buf, xf, xp, geo, mz, my, mx, runs, strides):
    """The padded plane (volume) at NCDHW offset ``xp``, split into stride phases.

    ``geo`` is (phase depth, rows, row pitch, input height, input width); ``runs[e]``
    is phase ``e``'s interior along W: ``q`` in ``[q0, q1)`` reads input column
    ``s0 + (q - q0) * sw`` of the row, with ``runs[e, 3]`` the leading W padding."""
    sd, sh, sw = strides[0], strides[1], strides[2]
    dq, rq, pq = geo[0], geo[1], geo[2]
    hi, wi = geo[3], geo[4]
    phase = dq * rq * pq
    # a stride-2 row fills both of its W phases in one pass (a pair of interleaved
    # loads, which vectorizes; one phase alone is a gather)
    qa = max(runs[0, 0], runs[sw - 1, 0])
    qb = min(runs[0, 1], runs[sw - 1, 1])
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
                    paired = sw == 2 and qb > qa
                    if paired:
                        o0, o1 = np.uint64(o + qa), np.uint64(o + phase + qa)
                        x0 = np.uint64(row + 2 * qa - runs[0, 3])
                        for q in range(np.uint64(qb - qa)):
                            buf[o0 + q] = xf[x0 + q + q]
                            buf[o1 + q] = xf[x0 + q + q + one]
                    for e in range(sw):
                        oe = o + e * phase
                        q0, q1, s0 = runs[e, 0], runs[e, 1], runs[e, 2]
                        _copy_edges(buf, oe, xf, row, mx, 0, q0, sw, e)
                        if paired:
                            _copy_run(buf, oe + q0, xf, row + s0, qa - q0, sw)
                            _copy_run(buf, oe + qb, xf, row + s0 + (qb - q0) * sw,
                                      q1 - qb, sw)
                        else:
                            _copy_run(buf, oe + q0, xf, row + s0, q1 - q0, sw)
                        _copy_edges(buf, oe, xf, row, mx, q1, pq, sw, e)
    for i in range(sd * sh * sw * phase, buf.size):
        buf[i] = 0


@njit(cache=True, inline="always")
def _add_taps4(yb, n, buf, o0, o1, o2, o3, w0, w1, w2, w3):
    a, b, c, d = np.uint64(o0), np.uint64(o1), np.uint64(o2), np.uint64(o3)
    for i in range(np.uint64(n)):
        yb[i] += w0 * buf[a + i] + w1 * buf[b + i] + w2 * buf[c + i] + w3 * buf[d + i]


@njit(cache=True, inline="always")
def _add_tap(yb, n, buf, o0, w0):
    a = np.uint64(o0)
    for i in range(np.uint64(n)):
        yb[i] += w0 * buf[a + i]


@njit(cache=True, parallel=True, fastmath={"contract", "reassoc"})
def _planes_kernel(x, wt, bias, y, mult, offs, geo, strides, mz, my, mx, runs, size,
                   length, parts, poison):
    """``y[n, c * mult + j]`` for every (image, channel) unit ``(n, c)``: its plane into
    the phase buffer, then per output channel every tap as one flat pass (four taps a
    pass) over the pitched output buffer ``yb``, then ``yb`` cropped into ``y``.
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
        for u in range(part * units // parts, (part + 1) * units // parts):
            _fill(buf, xf, u * vol, geo, mz, my, mx, runs, strides)
            for j in range(mult):
                k = (u % c_) * mult + j
                for i in range(length):
                    yb[i] = bias[k]
                t = 0
                while t + 4 <= taps:
                    _add_taps4(yb, length, buf, offs[t], offs[t + 1], offs[t + 2],
                               offs[t + 3], wt[k, t], wt[k, t + 1], wt[k, t + 2],
                               wt[k, t + 3])
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
    runs: np.ndarray      # per W phase: q0, q1, first input column, leading W padding
    size: int             # phase buffer elements (all phases and one row of slack)
    length: int           # pitched output elements of one plane


def sizes(p) -> tuple[np.ndarray, int, int]:
    """(phase depth, rows, row pitch), the phase buffer's elements (all phases and a
    row of slack: the flat loop of the last row reads up to a pitch past its phase) and
    the pitched output plane's elements; cheap enough for the cost model."""
    st = triple(p.stride, 1)
    sub = np.array([-(-n // s) for n, s in zip(triple(p.padded_size, 1), st)], np.int64)
    od_, oh_, _ = triple(p.output_size, 1)
    rq, pq = int(sub[1]), int(sub[2])
    return sub, prod(st) * int(sub.prod()) + pq, ((od_ - 1) * rq + oh_) * pq


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
    pw = triple([before for before, _ in p.padding], 0)[2]
    sw = int(st[2])
    runs = np.zeros((sw, 4), np.int64)
    for e in range(sw):
        q0 = max(0, -(-(pw - e) // sw))
        q1 = max(q0, min(pq, (wi - 1 + pw - e) // sw + 1))
        runs[e] = (q0, q1, q0 * sw + e - pw, pw)
    return Plan(offsets.astype(np.int64), np.array([dq, rq, pq, hi, wi], np.int64), st,
                runs, size, length)


def depthwise_planes(x, w, bias, p):
    sync_numba()
    cd = compute_dtype(p.dtype)
    x3 = as3d(x, cd)
    wt = np.ascontiguousarray(w, dtype=cd).reshape(p.out_channels, p.kernel_volume)
    b = bias_or_zeros(bias, p, cd)
    pl = plan(p)
    y = _common.alloc((p.batch, p.out_channels) + triple(p.output_size, 1), dtype=cd)
    parts = max(1, min(p.batch * p.in_channels, 4 * get_num_threads()))
    _planes_kernel(x3, wt, b, y, p.out_per_group, pl.offsets, pl.geo, pl.strides,
                   *index_maps(p), pl.runs, pl.size, pl.length, parts, _common.POISON)
    return y.reshape(p.output_shape).astype(p.dtype, copy=False)


def planes_workspace(p) -> int:
    """A phase buffer and a pitched output plane per thread."""
    _, size, length = sizes(p)
    return get_num_threads() * (size + length) * compute_dtype(p.dtype).itemsize
