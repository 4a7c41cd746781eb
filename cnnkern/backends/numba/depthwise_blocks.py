"""Depthwise convolution (one output per channel) by tap lists, for small images whose
weights outweigh their input: one parallel pass per (image, block of channels).

The tap-list kernel of ``depthwise.py`` first transposes the whole input and the whole
weight tensor channels last, each in its own pass, and then every output pixel reads
its taps' weight vectors across all channels. Where the weights are as large as the
input (batch 1 of ConvNeXt's and RepLKNet's last stages) the weight transpose costs as
much as the convolution (1024 channels of 13x13 took 130-200 us at 4-7 GB/s), and each
pixel streams the whole filter (692 KB there) from L2.

Here each work unit copies its block of ``block_lanes`` channels, channels last, into a
per-thread buffer, transposes its block of weights into another, sums every output
pixel's taps over them (listed once per call shape in a table of the taps inside the
input) and writes its block of the NCHW output. With the whole filter transposed once
and reused by every image, larger batches are faster through ``depthwise.py``
(``applies``). Measured on the 2-core EPYC at batch 1 against that kernel: ConvNeXt's
dw7_s4 128-139 -> 88-95 us, RepLKNet's dw13_s4 279-471 -> 229-372 us; at batch 8 it
took 1.15-1.5x that kernel's time.

The channel loop is the innermost and its index a uint64 like the offsets: in Numba a
uint64 plus an int64 is a float64, and with an int64 channel index the kernel ran 4-7x
slower.
"""
from __future__ import annotations

from functools import lru_cache
from math import prod

import numpy as np
from numba import njit, prange

from ...threads import get_num_threads
from ._layout import compute_dtype, depthwise_operands, index_maps, triple

#: Widest block: 128 channels of a 13x13 filter are 87 KB, in L2 beside the image.
MAX_LANES = 128
#: Largest tap table (pixel x tap entries) this kernel builds.
MAX_TABLE = 64 * 1024


@njit(cache=True, inline="always")
def _load_block(x, n, c0, xb, wb, w, mz, my, mx):
    """``xb[a, b, e, c] = x[n, c0 + c, mz[a], my[b], mx[e]]`` (0 where a map is -1) and
    ``wb[t, c] = w[c0 + c, t]``; lanes past the last channel are 0. Channels innermost:
    with the channel loop outside, the weight block's writes (a lane-wide stride apart)
    took 2.7x as long."""
    lanes = xb.shape[3]
    cb = min(lanes, x.shape[1] - c0)
    for a in range(mz.size):
        za = mz[a]
        for b in range(my.size):
            yb = my[b]
            for e in range(mx.size):
                xe = mx[e]
                if za < 0 or yb < 0 or xe < 0:
                    for c in range(lanes):
                        xb[a, b, e, c] = 0
                else:
                    for c in range(cb):
                        xb[a, b, e, c] = x[n, c0 + c, za, yb, xe]
                    for c in range(cb, lanes):
                        xb[a, b, e, c] = 0
    for t in range(w.shape[1]):
        for c in range(cb):
            wb[t, c] = w[c0 + c, t]
        for c in range(cb, lanes):
            wb[t, c] = 0


@njit(cache=True, inline="always")
def _store_block(y, n, c0, ab, bias):
    """``y[n, c0 + c] = ab[:, c] + bias[c0 + c]`` for the block's real channels."""
    yf = y.reshape(y.shape[0], y.shape[1], y.shape[2] * y.shape[3] * y.shape[4])
    for c in range(min(ab.shape[1], y.shape[1] - c0)):
        b = bias[c0 + c]
        for q in range(ab.shape[0]):
            yf[n, c0 + c, q] = ab[q, c] + b


@njit(cache=True, parallel=True, fastmath={"contract", "reassoc"})
def _blocks_taps(x, w, bias, y, mz, my, mx, starts, xo, wo, lanes):
    """Output pixel ``q`` of every block sums the taps ``starts[q]:starts[q + 1]`` of
    the table: tap ``wo[i]`` of ``wb`` times position ``xo[i]`` of ``xb`` (flat, in
    vectors of ``lanes`` channels)."""
    blocks = -(-x.shape[1] // lanes)
    pix = starts.size - 1
    nl = np.uint64(lanes)
    for u in prange(x.shape[0] * blocks):
        n, c0 = u // blocks, (u % blocks) * lanes
        xb = np.empty((mz.size, my.size, mx.size, lanes), dtype=x.dtype)
        wb = np.empty((w.shape[1], lanes), dtype=x.dtype)
        ab = np.empty((pix, lanes), dtype=x.dtype)
        _load_block(x, n, c0, xb, wb, w, mz, my, mx)
        xf, wf, af = xb.reshape(xb.size), wb.reshape(wb.size), ab.reshape(ab.size)
        for q in range(pix):
            o = np.uint64(q * lanes)
            for c in range(nl):
                af[o + c] = 0
            i, end = starts[q], starts[q + 1]
            while i + 2 <= end:
                x0, x1 = np.uint64(xo[i] * lanes), np.uint64(xo[i + 1] * lanes)
                w0, w1 = np.uint64(wo[i] * lanes), np.uint64(wo[i + 1] * lanes)
                for c in range(nl):
                    af[o + c] += wf[w0 + c] * xf[x0 + c] + wf[w1 + c] * xf[x1 + c]
                i += 2
            while i < end:
                x0, w0 = np.uint64(xo[i] * lanes), np.uint64(wo[i] * lanes)
                for c in range(nl):
                    af[o + c] += wf[w0 + c] * xf[x0 + c]
                i += 1
        _store_block(y, n, c0, ab, bias)


def _tap_table(in_size, padding, out_size, kernel, stride, dilation):
    """Per output pixel (row-major), the taps inside the (unpadded) input: CSR starts,
    the flat input position each reads and the tap's index."""
    pos = np.indices(out_size).reshape(len(out_size), -1).T          # (pixels, 3)
    taps = np.indices(kernel).reshape(len(kernel), -1).T            # (taps, 3)
    src = pos[:, None, :] * np.array(stride) + taps[None] * np.array(dilation) - \
        np.array([b for b, _ in padding])
    inside = np.all((src >= 0) & (src < np.array(in_size)), axis=2)
    flat = np.ravel_multi_index(tuple(np.moveaxis(np.where(inside[..., None], src, 0),
                                                  2, 0)), in_size)
    pixel, tap = np.nonzero(inside)
    starts = np.r_[0, np.cumsum(inside.sum(axis=1))].astype(np.int64)
    return starts, flat[pixel, tap].astype(np.int64), tap.astype(np.int64)


def block_lanes(p) -> int:
    """Channels per work unit: whole vectors of 16, at most ``MAX_LANES``, in a number
    of units that is a multiple of the thread count (a last unit short of work would
    leave a thread idle for a whole unit's time)."""
    threads = get_num_threads()
    vectors = -(-p.in_channels // 16)
    units = threads
    while -(-vectors // units) * 16 > MAX_LANES and units < vectors:
        units += threads
    return 16 * -(-vectors // units)


@lru_cache(maxsize=256)
def applies(p) -> bool:
    """Whether ``depthwise.py``'s tap-list kernel should hand the call over: one output
    per channel, weights at least as large as the input (the whole-filter transpose
    is not paid back) and a tap table within ``MAX_TABLE``. Cached per call shape:
    ``inside_fraction`` alone took 20 us a call."""
    return p.out_per_group == 1 and \
        p.out_channels * p.kernel_volume >= p.batch * p.in_channels * prod(p.input_size) \
        and prod(p.output_size) * p.kernel_volume * p.inside_fraction <= MAX_TABLE


@lru_cache(maxsize=64)
def _maps_and_table(p):
    """The block copy's index maps (the unpadded input under zero padding, whose taps
    the table skips; the padded one otherwise) and the tap table. Cached per call
    shape (the kernel only reads them): the maps had been rebuilt every call."""
    if p.has_zero_padding:
        maps = [np.arange(n, dtype=np.int64) for n in triple(p.input_size, 1)]
        size, padding = triple(p.input_size, 1), triple(p.padding, (0, 0))
    else:
        maps = index_maps(p)
        size, padding = triple(p.padded_size, 1), ((0, 0),) * 3
    return maps, _tap_table(size, padding, triple(p.output_size, 1),
                            triple(p.kernel_size, 1), triple(p.stride, 1),
                            triple(p.dilation, 1))


def depthwise_blocks(x, w, bias, p):
    x3, w2, b, y = depthwise_operands(x, w, bias, p)
    maps, table = _maps_and_table(p)
    _blocks_taps(x3, w2, b, y, *maps, *table, block_lanes(p))
    return y.reshape(p.output_shape).astype(p.dtype, copy=False)


def blocks_workspace(p) -> int:
    """An image block, a weight block and an output block per thread."""
    size = prod(p.input_size if p.has_zero_padding else p.padded_size)
    return get_num_threads() * block_lanes(p) * compute_dtype(p.dtype).itemsize * \
        (size + p.kernel_volume + prod(p.output_size))
