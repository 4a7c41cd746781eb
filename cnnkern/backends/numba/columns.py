"""im2col's column matrix (the "windows" layout of ``backends/numpy/im2col.py``) filled
by one compiled loop, for the Numba backend's im2col.

The NumPy code copies the columns tap by tap, one strided copy of all the chunk's
channels per tap; its cost goes in the short rows (an 8-wide output row is a 32-byte
run, and NumPy's strided copy pays per run about what it pays per 50 elements). Here
each (image, channel, tap) row of the matrix is a loop of row copies
(``_layout.copy_run``, unit stride vectorized): 1.4-4.8x faster on the stride-1 suite
layers, no faster at stride 2 (docs/algorithms.md, "im2col + GEMM").

One thread, on purpose: the GEMM that follows runs on OpenBLAS's threads, and a Numba
parallel fill left OpenMP workers spinning while they started. Where PyTorch had
loaded GNU OpenMP first (with its default spin count) a call took 5-8 ms more
(googlenet/3a_5x5 at batch 1: 7.9 ms against 0.25 with this loop).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from ._layout import copy_run, triple


@njit(cache=True)
def _fill(xf, cf, geo):
    """``cf[((u * taps + t) * od + z) * oh + y) * ow + x] = xf[((u * D + iz) * H + iy)
    * W + ix]`` with ``iz = (lo_d + z) s_d + k_d d_d`` and alike along H and W, for
    ``u`` over the chunk's (image, channel) planes of the padded input and ``t`` over
    the taps ``(k_d, k_h, k_w)`` in row-major order. ``geo``: the planes, the padded
    plane (D, H, W), the output block (od, oh, ow), its first output per axis, then
    kernel size, stride and dilation per axis (all 3-D)."""
    units, dd_, hh, ww = geo[0], geo[1], geo[2], geo[3]
    od, oh, ow = geo[4], geo[5], geo[6]
    lo_d, lo_h, lo_w = geo[7], geo[8], geo[9]
    kd, kh, kw = geo[10], geo[11], geo[12]
    sd, sh, sw = geo[13], geo[14], geo[15]
    dd, dh, dw = geo[16], geo[17], geo[18]
    taps = kd * kh * kw
    positions = od * oh * ow
    # a kernel one tap wide with unit strides reads whole padded rows, each following
    # the last in the input as in the matrix: one run per (plane, tap, depth)
    whole_rows = sw == 1 and sh == 1 and ow == ww
    for q in range(units * taps):
        u, t = q // taps, q % taps
        a, b, e = t // (kh * kw), (t // kw) % kh, t % kw
        plane = u * dd_ * hh * ww
        ix = lo_w * sw + e * dw
        for z in range(od):
            iz = (lo_d + z) * sd + a * dd
            if whole_rows:
                copy_run(cf, q * positions + z * oh * ow, xf,
                         plane + (iz * hh + lo_h + b * dh) * ww, oh * ow, 1)
                continue
            for y in range(oh):
                iy = (lo_h + y) * sh + b * dh
                copy_run(cf, q * positions + (z * oh + y) * ow, xf,
                         plane + (iz * hh + iy) * ww + ix, ow, sw)


def fill(xp: np.ndarray, cols: np.ndarray, p, rows: slice) -> None:
    """``cols`` (C-contiguous, ``(images, C_in, taps, *output block)``) from ``xp``,
    the padded images of the chunk, for the output rows ``rows`` of the first output
    axis: the same matrix as the NumPy code's tap-by-tap copies."""
    xc = np.ascontiguousarray(xp, dtype=cols.dtype)
    first = (rows.start,) + (0,) * (p.ndim - 1)
    block = (rows.stop - rows.start,) + tuple(p.output_size[1:])
    geo = np.array((xc.shape[0] * xc.shape[1],) + triple(xc.shape[2:], 1) +
                   triple(block, 1) + triple(first, 0) + triple(p.kernel_size, 1) +
                   triple(p.stride, 1) + triple(p.dilation, 1), dtype=np.int64)
    _fill(xc.reshape(-1), cols.reshape(-1), geo)
