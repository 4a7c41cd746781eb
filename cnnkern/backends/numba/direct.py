"""Direct convolution in Numba: the algorithm for depthwise, small-channel and
large-kernel layers, where a GEMM has too little to reduce over.

Work is split over (image, group, block of output channels), one unit per thread at a
time. Each unit accumulates into its output planes, which stay in cache while every
input channel of the group and every kernel tap is added; the innermost loop runs
along an output row with a unit stride (vectorized). Zero padding is never
materialized: per output row and per tap the loop bounds are clipped to the taps that
land inside the input, so a 31x31 kernel on a 14x14 image costs only the taps that
touch it. Other padding modes copy one padded input plane per channel into a
per-unit buffer through the index maps of ``_layout``.
"""
from __future__ import annotations

from math import prod

import numpy as np
from numba import njit, prange

from ...threads import get_num_threads

from ._layout import (as3d, bias_or_zeros, compute_dtype, index_maps, pads3, sync_numba,
                      triple)


@njit(cache=True, inline="always")
def _first(pad: int, k_off: int, stride: int) -> int:
    """The first output index whose input index ``o * stride + k_off - pad`` is >= 0."""
    num = pad - k_off
    if num <= 0:
        return 0
    return (num + stride - 1) // stride


@njit(cache=True)
def _plane(src, sn, sc, w, o, c, y, n, pad, stride, dil):
    """``y[n, o] += correlate(src[sn, sc], w[o, c])`` with implicit zero padding ``pad``
    (leading) around the source plane.

    Indices only, no array views: a view in a hot loop costs two atomic reference
    count updates on the parent array, which the threads then fight over. The inner
    index is unsigned so that Numba emits no negative-index wraparound, which would
    stop the loop from vectorizing.
    """
    sd, sh, sw = stride[0], stride[1], stride[2]
    dd, dh, dw = dil[0], dil[1], dil[2]
    pd, ph, pw = pad[0], pad[1], pad[2]
    di, hi, wi = src.shape[2], src.shape[3], src.shape[4]
    kd_, kh_, kw_ = w.shape[2], w.shape[3], w.shape[4]
    od_, oh_, ow_ = y.shape[2], y.shape[3], y.shape[4]
    step = np.uint64(sw)
    for od in range(od_):
        for kd in range(kd_):
            iz = od * sd + kd * dd - pd
            if iz < 0 or iz >= di:
                continue
            for oh in range(oh_):
                for kh in range(kh_):
                    iy = oh * sh + kh * dh - ph
                    if iy < 0 or iy >= hi:
                        continue
                    for kw in range(kw_):
                        off = kw * dw - pw
                        lo = _first(pw, kw * dw, sw)
                        # one past the last ow with ow * sw + off <= wi - 1
                        top = (wi - 1 - off) // sw + 1 if wi - 1 - off >= 0 else 0
                        if top > ow_:
                            top = ow_
                        if top <= lo:
                            continue
                        wv = w[o, c, kd, kh, kw]
                        y0 = np.uint64(lo)
                        s0 = np.uint64(lo * sw + off)
                        if sw == 1:
                            for i in range(np.uint64(top - lo)):
                                y[n, o, od, oh, y0 + i] += wv * src[sn, sc, iz, iy, s0 + i]
                        else:
                            for i in range(np.uint64(top - lo)):
                                y[n, o, od, oh, y0 + i] += \
                                    wv * src[sn, sc, iz, iy, s0 + i * step]


@njit(cache=True, parallel=True)
def _conv_kernel(x, w, bias, y, pad, stride, dil, groups, block, remap, mz, my, mx):
    n_ = x.shape[0]
    k_, cig = w.shape[0], w.shape[1]
    cog = k_ // groups
    nblk = (cog + block - 1) // block
    units = n_ * groups * nblk
    zero = np.zeros(3, dtype=np.int64)
    shape = (1, 1, mz.size, my.size, mx.size) if remap else (1, 1, 0, 0, 0)
    for u in prange(units):
        n = u // (groups * nblk)
        g = (u // nblk) % groups
        o0 = g * cog + (u % nblk) * block
        o1 = min(o0 + block, g * cog + cog)
        for o in range(o0, o1):
            y[n, o] = bias[o]
        buf = np.empty(shape, dtype=x.dtype)
        for c in range(cig):
            ci = g * cig + c
            if remap:
                for a in range(mz.size):
                    for b in range(my.size):
                        for e in range(mx.size):
                            buf[0, 0, a, b, e] = x[n, ci, mz[a], my[b], mx[e]]
                for o in range(o0, o1):
                    _plane(buf, 0, 0, w, o, c, y, n, zero, stride, dil)
            else:
                for o in range(o0, o1):
                    _plane(x, n, ci, w, o, c, y, n, pad, stride, dil)


def _block(p, threads: int) -> int:
    """Output channels per unit: enough units for every thread (4 each), and output
    planes that fit in a 256 KiB cache share together."""
    plane = prod(p.output_size) * 4
    block = max(1, min(p.out_per_group, (256 * 1024) // max(plane, 1)))
    while block > 1 and p.batch * p.groups * -(-p.out_per_group // block) < 4 * threads:
        block //= 2
    return block


def workspace_bytes(p) -> int:
    """A padded plane per thread for padding modes other than zeros."""
    if p.has_zero_padding:
        return 0
    return get_num_threads() * prod(p.padded_size) * compute_dtype(p.dtype).itemsize


def conv(x, w, bias, p):
    sync_numba()
    cd = compute_dtype(p.dtype)
    x3 = as3d(x, cd)
    w3 = as3d(w, cd)
    b = bias_or_zeros(bias, p, cd)
    y = np.empty((p.batch, p.out_channels) + triple(p.output_size, 1), dtype=cd)
    remap = not p.has_zero_padding
    mz, my, mx = index_maps(p)
    _conv_kernel(x3, w3, b, y, pads3(p), np.array(triple(p.stride, 1)),
                 np.array(triple(p.dilation, 1)), p.groups,
                 _block(p, get_num_threads()), remap, mz, my, mx)
    return y.reshape(p.output_shape).astype(p.dtype, copy=False)


# ---- depthwise, channels last ------------------------------------------------------

@njit(cache=True, parallel=True)
def _channels_last(x, n0, xt, mz, my, mx):
    """``xt[i, a, b, e, c] = x[n0 + i, c, mz[a], my[b], mx[e]]``, 0 where a map is -1.

    The maps give the source of every position of ``xt``: the identity for zero
    padding (which the kernel skips), the padding mode's source indices otherwise.
    (Blocking the channels by 128 measured 1.5-2x slower than this plain loop.)"""
    nb, dp, hp, wp, c_ = xt.shape
    for r in prange(nb * dp * hp):
        i = r // (dp * hp)
        a = (r // hp) % dp
        b = r % hp
        za, yb = mz[a], my[b]
        for e in range(wp):
            xe = mx[e]
            if za < 0 or yb < 0 or xe < 0:
                for c in range(c_):
                    xt[i, a, b, e, c] = 0
            else:
                for c in range(c_):
                    xt[i, a, b, e, c] = x[n0 + i, c, za, yb, xe]


@njit(cache=True)
def _weights_last(w):
    """``(K, 1, KD, KH, KW)`` weights as ``(KD, KH, KW, K)``: one channel vector per tap.
    Blocks of 16 channels, so that neither side is walked with a large stride alone."""
    k_ = w.shape[0]
    taps = w.shape[2] * w.shape[3] * w.shape[4]
    src = w.reshape(k_, taps)
    wt = np.empty((taps, k_), dtype=w.dtype)
    for k0 in range(0, k_, 16):
        k1 = min(k0 + 16, k_)
        for t in range(taps):
            for k in range(k0, k1):
                wt[t, k] = src[k, t]
    return wt.reshape(w.shape[2], w.shape[3], w.shape[4], k_)


@njit(cache=True, inline="always")
def _list_taps(xs, ws, xt, wt, i, od, oh, ow, pad, stride, dil):
    """The taps of output pixel ``(od, oh, ow)`` of image ``i`` that fall inside the
    input, as flat offsets: of their channel vector in ``xt`` into ``xs``, of their
    weight vector in ``wt`` into ``ws``; returns how many."""
    di, hi, wi, c_ = xt.shape[1], xt.shape[2], xt.shape[3], xt.shape[4]
    kd_, kh_, kw_, k_ = wt.shape
    n = 0
    for kd in range(kd_):
        iz = od * stride[0] + kd * dil[0] - pad[0]
        if iz < 0 or iz >= di:
            continue
        for kh in range(kh_):
            iy = oh * stride[1] + kh * dil[1] - pad[1]
            if iy < 0 or iy >= hi:
                continue
            for kw in range(kw_):
                ix = ow * stride[2] + kw * dil[2] - pad[2]
                if ix < 0 or ix >= wi:
                    continue
                xs[n] = (((i * di + iz) * hi + iy) * wi + ix) * c_
                ws[n] = ((kd * kh_ + kh) * kw_ + kw) * k_
                n += 1
    return n


@njit(cache=True, inline="always")
def _sum_taps(xf, wf, accf, yo, xs, ws, n, c_):
    """``acc[yo + c] += sum_t w[ws[t] + c] * x[xs[t] + c]`` over the ``n`` listed taps,
    two taps per pass over the channels: the accumulator is loaded and stored once per
    two taps. Unsigned indices: no negative-index wraparound to stop vectorization."""
    y0 = np.uint64(yo)
    nc = np.uint64(c_)
    t = 0
    while t + 2 <= n:
        x0, x1 = np.uint64(xs[t]), np.uint64(xs[t + 1])
        w0, w1 = np.uint64(ws[t]), np.uint64(ws[t + 1])
        for c in range(nc):
            accf[y0 + c] += wf[w0 + c] * xf[x0 + c] + wf[w1 + c] * xf[x1 + c]
        t += 2
    if t < n:
        x0, w0 = np.uint64(xs[t]), np.uint64(ws[t])
        for c in range(nc):
            accf[y0 + c] += wf[w0 + c] * xf[x0 + c]


@njit(cache=True, inline="always")
def _sum_taps_mult(xf, wf, accf, yo, xs, ws, n, c_, mult):
    """As ``_sum_taps`` with ``mult`` outputs per input channel (``k = c * mult + j``
    reads input channel ``c``), one tap per pass."""
    m = np.uint64(mult)
    y0 = np.uint64(yo)
    for t in range(n):
        x0, w0 = np.uint64(xs[t]), np.uint64(ws[t])
        for j in range(m):
            for c in range(np.uint64(c_)):
                accf[y0 + c * m + j] += wf[w0 + c * m + j] * xf[x0 + c]


@njit(cache=True, parallel=True)
def _depthwise_kernel(xt, wt, bias, y, n0, mult, pad, stride, dil, parts):
    """Depthwise (groups == input channels, ``mult`` outputs per input channel) from
    channels-last ``xt (N, D, H, W, C)`` and ``wt (KD, KH, KW, C * mult)`` into the
    NCHW output ``y[n0:n0 + N]``. The innermost loop runs over channels, long and
    unit-stride however small the image is. Each output row is accumulated in a
    per-thread ``(OW, K)`` buffer that stays in cache, then written out transposed;
    each pixel lists its taps inside the input, so zero padding costs nothing."""
    c_ = xt.shape[4]
    k_, od_, oh_, ow_ = y.shape[1], y.shape[2], y.shape[3], y.shape[4]
    xf = xt.reshape(xt.size)
    wf = wt.reshape(wt.size)
    rows = xt.shape[0] * od_ * oh_
    for part in prange(parts):
        acc = np.empty((ow_, k_), dtype=y.dtype)
        accf = acc.reshape(acc.size)
        xs = np.empty(wt.size // k_, dtype=np.int64)
        ws = np.empty(wt.size // k_, dtype=np.int64)
        for r in range(part * rows // parts, (part + 1) * rows // parts):
            i = r // (od_ * oh_)
            od = (r // oh_) % od_
            oh = r % oh_
            for ow in range(ow_):
                for k in range(k_):
                    acc[ow, k] = bias[k]
                n = _list_taps(xs, ws, xt, wt, i, od, oh, ow, pad, stride, dil)
                if mult == 1:
                    _sum_taps(xf, wf, accf, ow * k_, xs, ws, n, c_)
                else:
                    _sum_taps_mult(xf, wf, accf, ow * k_, xs, ws, n, c_, mult)
            for k in range(k_):
                for ow in range(ow_):
                    y[n0 + i, k, od, oh, ow] = acc[ow, k]


#: Upper bound on the channels-last input copy of one batch chunk.
CHUNK_BYTES = 32 * 2**20


def _image_bytes(p) -> int:
    """The channels-last input of one image (padded for modes other than zeros)."""
    size = p.padded_size if not p.has_zero_padding else p.input_size
    return compute_dtype(p.dtype).itemsize * p.in_channels * prod(size)


def _images_per_chunk(p) -> int:
    return max(1, min(p.batch, CHUNK_BYTES // _image_bytes(p)))


def depthwise(x, w, bias, p):
    """Depthwise convolution through the channels-last kernel, a batch chunk at a time:
    the chunk is copied channels last (padded through the index maps for modes other
    than zeros; zero padding stays implicit), the kernel writes the NCHW output."""
    sync_numba()
    cd = compute_dtype(p.dtype)
    x3 = as3d(x, cd)
    wt = _weights_last(as3d(w, cd))
    b = bias_or_zeros(bias, p, cd)
    stride, dil = np.array(triple(p.stride, 1)), np.array(triple(p.dilation, 1))
    y = np.empty((p.batch, p.out_channels) + triple(p.output_size, 1), dtype=cd)
    if p.has_zero_padding:
        pad = pads3(p)
        maps = [np.arange(n, dtype=np.int64) for n in x3.shape[2:]]
    else:
        pad = np.zeros(3, dtype=np.int64)
        maps = index_maps(p)
    step = _images_per_chunk(p)
    rows = prod(y.shape[2:4])
    for n0 in range(0, p.batch, step):
        nb = min(step, p.batch - n0)
        xt = np.empty((nb,) + tuple(m.size for m in maps) + (p.in_channels,), dtype=cd)
        _channels_last(x3, n0, xt, *maps)
        parts = max(1, min(nb * rows, 4 * get_num_threads()))
        _depthwise_kernel(xt, wt, b, y, n0, p.out_per_group, pad, stride, dil, parts)
    return y.reshape(p.output_shape).astype(p.dtype, copy=False)


def depthwise_workspace(p) -> int:
    """The channels-last input copy of one batch chunk (padded for padding modes other
    than zeros) and a row buffer per thread."""
    row = p.out_channels * p.output_size[-1] * compute_dtype(p.dtype).itemsize
    return _images_per_chunk(p) * _image_bytes(p) + get_num_threads() * row
