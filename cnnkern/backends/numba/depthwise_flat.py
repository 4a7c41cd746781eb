"""Depthwise convolution at stride 1 under zero padding, on the NCHW planes, for the
small images of the networks' last stages (7x7 to 28x28), where the channels-last
kernels of ``depthwise.py`` spend more time transposing than convolving.

Each unit of work is one (image, input channel) plane, copied into a per-thread buffer
whose rows are ``pitch`` = W + max(left, right padding) apart (input row ``r`` at
``left + (top + r) * pitch``): the zeros after a row are the right padding of that row
and the left padding of the next, and the zero rows above and below the plane are
written once per thread and never again. With the output laid out at the same pitch
(``q = oh * pitch + ow``), every kernel row is one flat loop over the output rows it
reaches, whatever the image's width:

    out[q] += sum_j w[kh, j] * buf[q + kh * dh * pitch + j * dw]

The kernel width is a compile-time constant (a tuple's length; up to ``GROUP`` taps,
wider kernels in groups of that width and one narrower group), so the taps unroll,
their weights stay in registers and the loop over ``q`` vectorizes with one load per
tap. Kernel rows whose taps fall wholly in the padding are skipped, which matters
when the kernel is as large as the image (RepLKNet's 13x13 on 7x7). Each loop runs
over a whole number of ``VECTOR`` elements: the extra positions are columns past the
output width or rows that kernel row does not reach, whose reads are zeros of the
buffer, so no element is computed by a scalar tail; the copy-out drops the columns
past the output width. Channel multipliers reuse one buffer for all outputs of a
channel.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit, prange

from ...threads import get_num_threads
from ._layout import compute_dtype, copy_run, depthwise_operands, triple

#: Widest group of taps unrolled in one loop: its weights and the running sum fill
#: 17 of the 32 vector registers.
GROUP = 16
#: Elements per vector iteration of the flat loops (16 float32 lanes of AVX-512).
VECTOR = 16


@njit(cache=True, inline="always")
def _add_row(yb, buf, wt, k, w0, q0, n, src, dw, width):
    """``yb[q0 + i] += sum_j wt[k, w0 + j] * buf[src + i + j * dw]`` for ``i < n``,
    ``j < len(width)``. Undilated rows apart: a run-time ``dw`` in the offsets made
    the 13-wide loop take twice as long."""
    g = len(width)
    y0, s0 = np.uint64(q0), np.uint64(src)
    if dw == 1:
        for i in range(np.uint64(n)):
            a = yb[y0 + i]
            for j in range(g):
                a += wt[k, w0 + j] * buf[s0 + i + np.uint64(j)]
            yb[y0 + i] = a
    else:
        step = np.uint64(dw)
        for i in range(np.uint64(n)):
            a = yb[y0 + i]
            for j in range(g):
                a += wt[k, w0 + j] * buf[s0 + i + np.uint64(j) * step]
            yb[y0 + i] = a


@njit(cache=True, parallel=True, fastmath={"contract", "reassoc"})
def _flat_kernel(x, wt, bias, y, mult, geo, runs, width, tail, parts):
    """``y[n, c * mult + j]`` for every (image, channel) unit ``(n, c)`` of the
    ``(N, C, H, W)`` input ``x``. ``geo``: top and left padding, pitch, column
    dilation, kernel width, buffer and output-buffer elements (``plan``).
    ``runs[kh]``: first output row, elements and first buffer element of kernel row
    ``kh``'s flat loop (no elements: skipped)."""
    n_, c_, hi, wi = x.shape
    oh_, ow_ = y.shape[2], y.shape[3]
    top, left, pitch, dw, kw_, size, length = geo[0], geo[1], geo[2], geo[3], geo[4], \
        geo[5], geo[6]
    g, gt = len(width), len(tail)
    kh_ = runs.shape[0]
    units = n_ * c_
    xf = x.reshape(x.size)
    yf = y.reshape(y.size)
    for part in prange(parts):
        buf = np.zeros(size, dtype=x.dtype)
        yb = np.empty(length, dtype=y.dtype)
        for u in range(part * units // parts, (part + 1) * units // parts):
            for r in range(hi):
                copy_run(buf, left + (top + r) * pitch, xf, (u * hi + r) * wi, wi, 1)
            for m in range(mult):
                k = (u % c_) * mult + m
                for i in range(length):
                    yb[i] = bias[k]
                for kh in range(kh_):
                    q0, n, src = runs[kh, 0] * pitch, runs[kh, 1], runs[kh, 2]
                    if n == 0:
                        continue
                    w0 = kh * kw_
                    j0 = 0
                    while j0 + g <= kw_:
                        _add_row(yb, buf, wt, k, w0 + j0, q0, n, src + j0 * dw, dw, width)
                        j0 += g
                    if gt > 0:
                        _add_row(yb, buf, wt, k, w0 + j0, q0, n, src + j0 * dw, dw, tail)
                out = ((u // c_) * y.shape[1] + k) * oh_
                for r in range(oh_):
                    copy_run(yf, (out + r) * ow_, yb, r * pitch, ow_, 1)


def applies(p) -> bool:
    """Stride 1 under zero padding, one or two spatial axes."""
    return p.ndim <= 2 and p.padding_mode == "zeros" and all(s == 1 for s in p.stride)


def _plane(p):
    """The call as one 2-D plane: (H, W), (KH, KW), dilations, ((top, bottom),
    (left, right)), (OH, OW)."""
    return (triple(p.input_size, 1)[1:], triple(p.kernel_size, 1)[1:],
            triple(p.dilation, 1)[1:], triple(p.padding, (0, 0))[1:],
            triple(p.output_size, 1)[1:])


@lru_cache(maxsize=256)
def plan(p):
    """(geo, runs, group width, tail width) of ``_flat_kernel`` for the call. The
    buffer holds the plane, two zero rows and a vector's worth of slack below it (the
    loops' rounding and the taps past the last row's end read zeros there); the
    output buffer the pitched output plane and the same slack."""
    (hi, wi), (kh_, kw_), (dh, dw), ((top, _), (left, right)), (oh_, ow_) = _plane(p)
    pitch = wi + max(left, right)
    runs = np.zeros((kh_, 3), np.int64)
    for kh in range(kh_):
        lo = max(0, top - kh * dh)                 # output rows whose input row exists
        hi_ = min(oh_, hi + top - kh * dh)
        if hi_ > lo:
            n = (hi_ - 1 - lo) * pitch + ow_
            runs[kh] = lo, -(-n // VECTOR) * VECTOR, (lo + kh * dh) * pitch
    groups = -(-kw_ // GROUP)
    g = min(kw_, GROUP)
    size = left + (top + hi + 2) * pitch + VECTOR + kw_ * dw
    geo = np.array([top, left, pitch, dw, kw_, size, oh_ * pitch + VECTOR], np.int64)
    return geo, runs, g, kw_ - (groups - 1) * g if kw_ % g else 0


def features(p, itemsize: int) -> dict:
    """What the estimate charges: taps summed over the flat loops' elements (compute
    itemsize scaled), elements copied in, initialised and copied out, loops started
    (copied rows, kernel rows, tap groups) and one call."""
    geo, runs, g, _ = plan(p)
    (hi, wi), _, _, _, (oh_, ow_) = _plane(p)
    units, planes = p.batch * p.in_channels, p.batch * p.out_channels
    kw_ = int(geo[4])
    groups = -(-kw_ // g)
    active = int(np.count_nonzero(runs[:, 1]))
    return {"taps": planes * int(runs[:, 1].sum()) * kw_ * itemsize / 4,
            "copy": units * hi * wi + planes * (oh_ * int(geo[2]) + oh_ * ow_),
            "loops": units * hi + planes * (active * groups + oh_), "call": 1}


def depthwise_flat(x, w, bias, p):
    x3, w2, b, y = depthwise_operands(x, w, bias, p)      # (N, C, 1, H, W)
    geo, runs, g, gt = plan(p)
    parts = max(1, min(p.batch * p.in_channels, 4 * get_num_threads()))
    _flat_kernel(x3[:, :, 0], w2, b, y[:, :, 0], p.out_per_group, geo, runs, (0,) * g,
                 (0,) * gt, parts)
    return y.reshape(p.output_shape).astype(p.dtype, copy=False)


def flat_workspace(p) -> int:
    """A plane buffer and a pitched output plane per thread."""
    geo = plan(p)[0]
    return get_num_threads() * int(geo[5] + geo[6]) * compute_dtype(p.dtype).itemsize
