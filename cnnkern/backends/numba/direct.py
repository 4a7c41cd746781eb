"""Direct convolution in Numba: the algorithm for small-channel and large-kernel dense
or grouped layers, where a GEMM has too little to reduce over (depthwise layers have
their own kernels, ``depthwise.py``).

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
