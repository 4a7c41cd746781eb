"""FFT convolution: pointwise products in the frequency domain, any number of dimensions.

Correlation is convolution with the flipped kernel; dilation spreads the kernel with
zeros before the transform; the transform length is a fast size >= the padded input,
which is enough because only the outputs the circular wrap cannot reach are kept;
stride subsamples the result. The channel reduction per frequency is a batched complex
matrix product, or a broadcast product when each group has one input channel
(depthwise and channel multipliers), which needs no transposed copies.

Memory: the weight spectrum is computed once and kept; the images go through in
chunks, and each chunk's outputs in blocks of channels, so that the input spectrum,
the products and the inverse transform of one step stay within ``chunk_bytes``. Zero
padding is not materialised: the transform's own zero fill at the end of each axis
serves as the padding on both sides, and the crop shifts by the leading pad.
"""
from __future__ import annotations

from math import prod

import numpy as np
import scipy.fft as sfft

from ...threads import get_num_threads
from ._common import alloc, compute_dtype, finish, pad_input

#: Upper bound on the per-step buffers (input spectrum, products, inverse transform).
CHUNK_BYTES = 64 * 2**20

#: Smallest transform (real elements, the whole batch of it) given more than one worker
#: thread. On the 2-core CI-class machine two workers made 64 16x16 transforms 1.5x
#: slower, 16k elements (at 65k: 1.2-1.3x faster; docs/dispatch.md): starting and
#: joining a thread costs more than a small transform.
THREADED_ELEMENTS = 1 << 16


def _workers(a, shape) -> int:
    """Worker threads for transforming ``a`` (or producing it) at ``shape``."""
    elements = prod(a.shape[:a.ndim - len(shape)]) * prod(shape)
    return get_num_threads() if elements >= THREADED_ELEMENTS else 1


def _fft_shape(p):
    return tuple(sfft.next_fast_len(n, real=True) for n in p.padded_size)


def _n_bins(shape) -> int:
    return prod(shape[:-1]) * (shape[-1] // 2 + 1)


def _implicit_padding(p) -> bool:
    """Zero padding can come from the transform's zero fill when no output reads a
    wrapped index, i.e. no leading pad exceeds the dilated kernel's extent - 1."""
    return p.padding_mode == "zeros" and all(
        lo <= kd - 1 for (lo, _), kd in zip(p.padding, p.dilated_kernel))


def _plan(p, chunk_bytes):
    """(images per chunk, output channels per block, weight-spectrum bytes, bytes of one
    step's buffers)."""
    shape = _fft_shape(p)
    isz = compute_dtype(p.dtype).itemsize
    spec = _n_bins(shape) * 2 * isz              # one channel's spectrum
    w_bytes = p.out_channels * p.in_per_group * spec
    # per image: its padded (or cast) copy, its spectrum and the transposed spectrum
    per_image = p.in_channels * (prod(p.padded_size) * isz + 2 * spec)
    # per image and output channel: the product, the inverse transform's input copy,
    # its real output and the cropped copy
    per_out = 2 * spec + prod(shape) * isz + prod(p.output_size) * isz
    budget = max(chunk_bytes, 1)
    images = max(1, min(p.batch, budget // 2 // per_image))     # 1 for an empty batch
    left = budget - images * per_image
    channels = max(1, min(p.out_channels, left // (images * per_out)))
    return images, channels, w_bytes, images * (per_image + channels * per_out)


def workspace_bytes(p, chunk_bytes: int = CHUNK_BYTES) -> int:
    _, _, w_bytes, step = _plan(p, chunk_bytes)
    return w_bytes + step


def features(p) -> dict:
    """What the call does, for the cost model: bytes of the spectra it makes and reads
    (the weights', the images' and the products', complex at the compute precision),
    the number of transforms (forward and inverse, one per channel each), and the
    complex FLOPs of the per-frequency channel reduction (a matrix product where a
    group has several input channels; with one, the broadcast product is in the
    bytes)."""
    bins = _n_bins(_fft_shape(p))
    n, cig = p.batch, p.in_per_group
    spectra = p.out_channels * cig + n * p.in_channels + n * p.out_channels
    return dict(spectra=spectra * bins * 2 * compute_dtype(p.dtype).itemsize,
                transforms=spectra,
                reduce=8 * n * p.out_channels * cig * bins if cig > 1 else 0)


def spread_kernel(w, dilation):
    """Insert ``dilation - 1`` zeros between kernel taps."""
    if all(d == 1 for d in dilation):
        return w
    ks = w.shape[2:]
    out = np.zeros(w.shape[:2] + tuple((k - 1) * d + 1 for k, d in zip(ks, dilation)),
                   dtype=w.dtype)
    out[(Ellipsis,) + tuple(slice(None, None, d) for d in dilation)] = w
    return out


def _blocks(groups, per_group, channels):
    """(first group, last group + 1, first channel in group, last + 1) blocks of at most
    ``channels`` output channels: whole groups together when a group fits, else parts of
    one group. Each block's output channels are contiguous."""
    if channels >= per_group:
        step = channels // per_group
        for g0 in range(0, groups, step):
            yield g0, min(g0 + step, groups), 0, per_group
    else:
        for g in range(groups):
            for o0 in range(0, per_group, channels):
                yield g, g + 1, o0, min(o0 + channels, per_group)


def _weight_spectrum(w, p, shape, cd, blocks):
    """Spectra of the flipped, spread kernel: (g, cog, bins) when each group has one input
    channel, else (bins, g, cig, cog) for the per-frequency GEMM; transformed one block
    of output channels at a time so that no second full-size copy exists."""
    nd, g, cig, cog = p.ndim, p.groups, p.in_per_group, p.out_per_group
    axes = tuple(range(2, 2 + nd))
    wk = spread_kernel(w.astype(cd, copy=False), p.dilation)
    wk = wk[(Ellipsis,) + (slice(None, None, -1),) * nd]
    nb = _n_bins(shape)
    if cig == 1:
        return sfft.rfftn(wk, s=shape, axes=axes, workers=_workers(wk, shape)) \
            .reshape(g, cog, nb)
    wm = np.empty((nb, g, cig, cog), dtype=np.result_type(cd, np.complex64))
    for g0, g1, o0, o1 in blocks:
        rows = wk.reshape((g, cog) + wk.shape[1:])[g0:g1, o0:o1]
        rows = rows.reshape((-1,) + wk.shape[1:])
        wf = sfft.rfftn(rows, s=shape, axes=axes, workers=_workers(rows, shape))
        wm[:, g0:g1, :, o0:o1] = wf.reshape(g1 - g0, o1 - o0, cig, nb).transpose(3, 0, 2, 1)
    return wm


def conv(x, w, bias, p, chunk_bytes: int = CHUNK_BYTES):
    cd = compute_dtype(p.dtype)
    nd, g, cig, cog = p.ndim, p.groups, p.in_per_group, p.out_per_group
    axes = tuple(range(2, 2 + nd))
    shape = _fft_shape(p)
    nb = _n_bins(shape)
    bins = shape[:-1] + (shape[-1] // 2 + 1,)
    images, channels, _, _ = _plan(p, chunk_bytes)
    blocks = list(_blocks(g, cog, channels))
    wspec = _weight_spectrum(w, p, shape, cd, blocks)
    implicit = _implicit_padding(p)
    crop = [slice(None), slice(None)]
    for (lo, _), kd, s, n in zip(p.padding, p.dilated_kernel, p.stride, p.output_size):
        start = kd - 1 - (lo if implicit else 0)
        crop.append(slice(start, start + (n - 1) * s + 1, s))
    crop = tuple(crop)
    y = alloc(p.output_shape, dtype=cd)
    for n0 in range(0, p.batch, images):
        part = slice(n0, min(n0 + images, p.batch))
        nimg = part.stop - part.start
        xin = x[part].astype(cd, copy=False) if implicit else pad_input(x[part], p, cd)
        xf = sfft.rfftn(xin, s=shape, axes=axes, workers=_workers(xin, shape))
        del xin
        if cig == 1:
            xf = xf.reshape(nimg, g, 1, nb)
        else:                                   # per frequency: (g, nimg, cig)
            xf = np.ascontiguousarray(xf.reshape(nimg, g, cig, nb).transpose(3, 1, 0, 2))
        for g0, g1, o0, o1 in blocks:
            if cig == 1:
                yf = xf[:, g0:g1] * wspec[g0:g1, o0:o1]           # (nimg, gb, ob, nb)
            else:
                ym = np.matmul(xf[:, g0:g1], wspec[:, g0:g1, :, o0:o1])
                yf = ym.transpose(2, 1, 3, 0)                      # (nimg, gb, ob, nb)
                del ym
            yf = yf.reshape((nimg, (g1 - g0) * (o1 - o0)) + bins)
            full = sfft.irfftn(yf, s=shape, axes=axes, workers=_workers(yf, shape))
            del yf
            c0 = g0 * cog + o0
            y[part, c0:c0 + full.shape[1]] = full[crop]
            del full
    return finish(y, bias, p)
