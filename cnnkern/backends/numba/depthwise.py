"""Depthwise convolution in Numba (groups == input channels, any channel multiplier).

Six kernels; ``kernel_for`` runs the one the dispatcher's cost model rates cheapest.
Float32 calls with kernels 7 wide and wider mostly go to ``depthwise_slide.py``
(channels last, sums in registers under a sliding window), 3x3 ones at stride 1
under zero padding to ``depthwise_flat.py`` (NCHW planes,
one unrolled flat loop per kernel row), other strides and padding modes on large
images to ``depthwise_planes.py`` (NCHW planes split by stride phase); small images
whose weights outweigh them, where the tap-list kernel would be chosen, to
``depthwise_blocks.py``, which transposes nothing whole. The other two work channels
last: the innermost loop runs over channels, long and
unit-stride however small the image is. They share the layout (a channels-last copy
of a batch chunk, weights as one channel vector per tap, output rows accumulated per
thread and written NCHW):

- the row kernel, for the common small kernels (width 3, 5 or 7, stride 1 or 2 along
  the rows, no dilation along them, one output per channel): the chunk is copied with
  its padding, every tap is inside, and four output pixels are computed together with
  the kernel width a compile-time constant (one specialisation per width and stride), so
  the taps unroll, each weight vector is loaded once for the four pixels and their
  accumulators stay in registers;
- the tap-list kernel, for everything else (large kernels, dilation, multipliers):
  zero padding stays implicit and each pixel lists its taps inside the input, so a
  31x31 kernel on a 14x14 image costs only the taps that touch it.
"""
from __future__ import annotations

from math import prod

import numpy as np
from numba import njit, prange

from ...threads import get_num_threads
from ..numpy.workspace import workspace
from ._layout import compute_dtype, depthwise_operands, index_maps, pads3, triple
from .depthwise_blocks import applies as blocks_apply
from .depthwise_blocks import blocks_workspace, depthwise_blocks
from .depthwise_flat import depthwise_flat, flat_workspace
from .depthwise_planes import depthwise_planes, planes_workspace
from .depthwise_slide import depthwise_slide, slide_workspace


@njit(cache=True, parallel=True)
def _channels_last(x, n0, xt, mz, my, mx):
    """``xt[i, a, b, e, c] = x[n0 + i, c, mz[a], my[b], mx[e]]``, 0 where a map is -1.

    The maps give the source of every position of ``xt``: the identity where the
    tap-list kernel skips zero padding, the padding mode's source indices otherwise.
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


@njit(cache=True, parallel=True)
def _weights_last(w2):
    """``(K, taps)`` weights as ``(taps, K)``: one channel vector per tap. Blocks of 16
    channels, so that neither side is walked with a large stride alone; the blocks in
    parallel (1024 channels of 13x13 took as long as the layer's kernel)."""
    k_, taps = w2.shape
    wt = np.empty((taps, k_), dtype=w2.dtype)
    for blk in prange((k_ + 15) // 16):
        k0 = blk * 16
        k1 = min(k0 + 16, k_)
        for t in range(taps):
            for k in range(k0, k1):
                wt[t, k] = w2[k, t]
    return wt


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


@njit(cache=True, inline="always")
def _row_of(r, od_, oh_):
    """Image, depth and height index of output row ``r``."""
    return r // (od_ * oh_), (r // oh_) % od_, r % oh_


@njit(cache=True, inline="always")
def _write_row(y, acc, n0, i, od, oh):
    """The ``(OW, K)`` row buffer into the NCHW output."""
    for k in range(acc.shape[1]):
        for ow in range(acc.shape[0]):
            y[n0 + i, k, od, oh, ow] = acc[ow, k]


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
            i, od, oh = _row_of(r, od_, oh_)
            for ow in range(ow_):
                for k in range(k_):
                    acc[ow, k] = bias[k]
                n = _list_taps(xs, ws, xt, wt, i, od, oh, ow, pad, stride, dil)
                if mult == 1:
                    _sum_taps(xf, wf, accf, ow * k_, xs, ws, n, c_)
                else:
                    _sum_taps_mult(xf, wf, accf, ow * k_, xs, ws, n, c_, mult)
            _write_row(y, acc, n0, i, od, oh)


@njit(cache=True, parallel=True, fastmath={"contract", "reassoc"})
def _depthwise_rows(xt, wt, bias, y, n0, stride, dil, width, step, parts):
    """Depthwise, one output per channel, from the padded channels-last ``xt (N, D, H, W,
    C)`` and ``wt (KD, KH, KW, C)`` into the NCHW ``y[n0:n0 + N]``. ``width`` and ``step``
    are tuples whose lengths are the kernel width and the stride along W: constants to
    the compiler, so the tap loop unrolls inside the vectorized channel loop. Four output
    pixels share each weight vector and keep their sums in registers."""
    kw_ = len(width)
    sw = len(step)
    c_ = xt.shape[4]
    kd_, kh_ = wt.shape[0], wt.shape[1]
    od_, oh_, ow_ = y.shape[2], y.shape[3], y.shape[4]
    rows = xt.shape[0] * od_ * oh_
    for part in prange(parts):
        acc = np.empty((ow_, c_), dtype=y.dtype)
        for r in range(part * rows // parts, (part + 1) * rows // parts):
            i, od, oh = _row_of(r, od_, oh_)
            for ow in range(ow_):
                for c in range(c_):
                    acc[ow, c] = bias[c]
            for kd in range(kd_):
                iz = od * stride[0] + kd * dil[0]
                for kh in range(kh_):
                    iy = oh * stride[1] + kh * dil[1]
                    ow = 0
                    while ow + 4 <= ow_:
                        x0 = ow * sw
                        for c in range(c_):
                            a0, a1 = acc[ow, c], acc[ow + 1, c]
                            a2, a3 = acc[ow + 2, c], acc[ow + 3, c]
                            for j in range(kw_):
                                wv = wt[kd, kh, j, c]
                                a0 += wv * xt[i, iz, iy, x0 + j, c]
                                a1 += wv * xt[i, iz, iy, x0 + sw + j, c]
                                a2 += wv * xt[i, iz, iy, x0 + 2 * sw + j, c]
                                a3 += wv * xt[i, iz, iy, x0 + 3 * sw + j, c]
                            acc[ow, c], acc[ow + 1, c] = a0, a1
                            acc[ow + 2, c], acc[ow + 3, c] = a2, a3
                        ow += 4
                    while ow < ow_:
                        x0 = ow * sw
                        for c in range(c_):
                            a0 = acc[ow, c]
                            for j in range(kw_):
                                a0 += wt[kd, kh, j, c] * xt[i, iz, iy, x0 + j, c]
                            acc[ow, c] = a0
                        ow += 1
            _write_row(y, acc, n0, i, od, oh)


#: Kernel widths and strides along W that have a row-kernel specialisation (each pair
#: compiles once per dtype; anything else takes the tap-list kernel).
ROW_WIDTHS = (3, 5, 7)
ROW_STRIDES = (1, 2)
#: The row kernel computes the padding's taps too; below this fraction of taps inside
#: the input the tap-list kernel's skipping wins.
ROW_MIN_INSIDE = 0.6


def uses_row_kernel(p) -> bool:
    return (p.out_per_group == 1 and p.kernel_size[-1] in ROW_WIDTHS
            and p.stride[-1] in ROW_STRIDES and p.dilation[-1] == 1
            and p.inside_fraction >= ROW_MIN_INSIDE)


#: Upper bound on the channels-last input copy of one batch chunk. Small enough that
#: a chunk is still in cache when the kernel reads it: at batch 8, with 2 MiB instead
#: of 32, the row kernel took 0.68-0.93x the time on MobileNetV2 dw_112 and dw_56_s2
#: and ConvNeXt dw7_s1 and dw7_s2 (56x56-112x112 inputs, 5-40 MB copied), and the same
#: on the small layers (benchmarks/results/2026-11-23-cpu-depthwise-chunk-ab.txt).
CHUNK_BYTES = 2 * 2**20


def _copies_padding(p, rows_kernel: bool) -> bool:
    """Whether the channels-last copy includes the padding: always but for the tap-list
    kernel under zero padding, which skips it."""
    return rows_kernel or not p.has_zero_padding


def _image_bytes(p, padded: bool) -> int:
    """The channels-last input of one image."""
    size = p.padded_size if padded else p.input_size
    return compute_dtype(p.dtype).itemsize * p.in_channels * prod(size)


def _images_per_chunk(p, padded: bool) -> int:
    return max(1, min(p.batch, CHUNK_BYTES // _image_bytes(p, padded)))


#: The kernels of their own modules, which read the NCHW input as it is: name ->
#: (run, workspace bytes).
NCHW_KERNELS = {"flat": (depthwise_flat, flat_workspace),
                "planes": (depthwise_planes, planes_workspace),
                "blocks": (depthwise_blocks, blocks_workspace),
                "slide": (depthwise_slide, slide_workspace)}


def kernel_for(p) -> str:
    """The kernel for the call by the dispatcher's cost model: ``slide``
    (``depthwise_slide.py``), ``flat`` (``depthwise_flat.py``), ``planes``
    (``depthwise_planes.py``), ``rows`` or ``taps``; ``taps`` becomes ``blocks``
    (``depthwise_blocks.py``) where the weights outweigh the input."""
    from ...dispatch import depthwise_kernel
    kernel = depthwise_kernel(p, compute_dtype(p.dtype).itemsize)
    return "blocks" if kernel == "taps" and blocks_apply(p) else kernel


def depthwise(x, w, bias, p):
    """Depthwise convolution by the kernel ``kernel_for`` picks. The channels-last
    kernels go a batch chunk at a time: the chunk is copied channels last through the
    index maps (padded, or unpadded for the tap-list kernel under zero padding), then
    the kernel writes the NCHW output."""
    kernel = kernel_for(p)
    if kernel in NCHW_KERNELS:
        return NCHW_KERNELS[kernel][0](x, w, bias, p)
    x3, w2, b, y = depthwise_operands(x, w, bias, p)
    cd = x3.dtype
    wt = _weights_last(w2).reshape(triple(p.kernel_size, 1) + (p.out_channels,))
    stride, dil = np.array(triple(p.stride, 1)), np.array(triple(p.dilation, 1))
    rows_kernel = kernel == "rows"
    padded = _copies_padding(p, rows_kernel)
    if padded:
        pad = np.zeros(3, dtype=np.int64)
        maps = index_maps(p)
    else:
        pad = pads3(p)
        maps = [np.arange(n, dtype=np.int64) for n in x3.shape[2:]]
    step = _images_per_chunk(p, padded)
    rows = prod(y.shape[2:4])
    with workspace((step,) + tuple(m.size for m in maps) + (p.in_channels,), cd) as chunk:
        for n0 in range(0, p.batch, step):
            nb = min(step, p.batch - n0)
            xt = chunk[:nb]
            _channels_last(x3, n0, xt, *maps)
            parts = max(1, min(nb * rows, 4 * get_num_threads()))
            if rows_kernel:
                _depthwise_rows(xt, wt, b, y, n0, stride, dil, (0,) * p.kernel_size[-1],
                                (0,) * p.stride[-1], parts)
            else:
                _depthwise_kernel(xt, wt, b, y, n0, p.out_per_group, pad, stride, dil,
                                  parts)
    return y.reshape(p.output_shape).astype(p.dtype, copy=False)


def depthwise_workspace(p) -> int:
    """The workspace of the kernel ``kernel_for`` picks: the buffers of
    ``depthwise_slide`` or ``depthwise_flat``, the phase buffers of
    ``depthwise_planes``, the blocks of ``depthwise_blocks``, or the channels-last input
    copy of one batch chunk and a row buffer per thread."""
    kernel = kernel_for(p)
    if kernel in NCHW_KERNELS:
        return NCHW_KERNELS[kernel][1](p)
    padded = _copies_padding(p, kernel == "rows")
    row = p.out_channels * p.output_size[-1] * compute_dtype(p.dtype).itemsize
    return _images_per_chunk(p, padded) * _image_bytes(p, padded) + \
        get_num_threads() * row
