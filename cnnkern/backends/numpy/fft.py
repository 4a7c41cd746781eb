"""FFT convolution: pointwise products in the frequency domain, any number of dimensions.

Correlation is convolution with the flipped kernel; dilation spreads the kernel with
zeros before the transform; the transform length is a fast size >= the padded input,
which is enough because only the outputs the circular wrap cannot reach are kept;
stride subsamples the result. The channel reduction per frequency is a batched complex
matrix product.
"""
from __future__ import annotations

from math import prod

import numpy as np
import scipy.fft as sfft

from ...threads import get_num_threads
from ._common import compute_dtype, finish, pad_input


def _fft_shape(p):
    return tuple(sfft.next_fast_len(n, real=True) for n in p.padded_size)


def workspace_bytes(p) -> int:
    shape = _fft_shape(p)
    bins = prod(shape[:-1]) * (shape[-1] // 2 + 1)
    csize = 2 * compute_dtype(p.dtype).itemsize
    return bins * csize * (p.batch * p.in_channels + p.out_channels * p.in_per_group
                           + 2 * p.batch * p.out_channels)


def spread_kernel(w, dilation):
    """Insert ``dilation - 1`` zeros between kernel taps."""
    if all(d == 1 for d in dilation):
        return w
    ks = w.shape[2:]
    out = np.zeros(w.shape[:2] + tuple((k - 1) * d + 1 for k, d in zip(ks, dilation)),
                   dtype=w.dtype)
    out[(Ellipsis,) + tuple(slice(None, None, d) for d in dilation)] = w
    return out


def conv(x, w, bias, p):
    cd = compute_dtype(p.dtype)
    nd, g, cig, cog = p.ndim, p.groups, p.in_per_group, p.out_per_group
    axes = tuple(range(2, 2 + nd))
    shape = _fft_shape(p)
    xp = pad_input(x, p, cd)
    wk = spread_kernel(w.astype(cd, copy=False), p.dilation)
    wk = wk[(Ellipsis,) + (slice(None, None, -1),) * nd]
    xf = sfft.rfftn(xp, s=shape, axes=axes, workers=get_num_threads())
    wf = sfft.rfftn(wk, s=shape, axes=axes, workers=get_num_threads())
    bins = xf.shape[2:]
    nb = prod(bins)
    # per frequency: (g, N, cig) @ (g, cig, cog)
    xm = np.ascontiguousarray(
        xf.reshape(p.batch, g, cig, nb).transpose(3, 1, 0, 2))
    wm = np.ascontiguousarray(
        wf.reshape(g, cog, cig, nb).transpose(3, 0, 2, 1))
    ym = np.matmul(xm, wm)                      # (nb, g, N, cog)
    yf = ym.transpose(2, 1, 3, 0).reshape((p.batch, p.out_channels) + bins)
    full = sfft.irfftn(yf, s=shape, axes=axes, workers=get_num_threads())
    index = [slice(None), slice(None)]
    for kd, s, n in zip(p.dilated_kernel, p.stride, p.output_size):
        index.append(slice(kd - 1, kd - 1 + (n - 1) * s + 1, s))
    return finish(np.array(full[tuple(index)], dtype=cd), bias, p)
