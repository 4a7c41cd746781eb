"""One GEMM per kernel tap, over only the outputs where that tap reads the input.

im2col multiplies every tap with every output position, the zero padding included: a
3x3 layer dilated by 18 on a 33x33 image (DeepLab's ASPP) has 60% of its (output, tap)
pairs in the padding. Here each tap gathers the input its outputs read, ``X_t``
(``C_in / g`` x the outputs it reaches: a box, the per-axis spans of
``params.tap_spans``), and adds ``W_t X_t`` (``W_t``: ``C_out / g`` x ``C_in / g``)
into that box of the output. The GEMMs do ``flops * inside_fraction``, each with
``K = C_in / g``, and every tap adds its product into the output: it pays where the
padding is a large share of the taps and the channels are many; the cost model
decides. Zero padding only (the other modes read their padding).

Memory: the weights laid out tap-major (one copy of them), and per step the gathered
input and the product of one tap for a chunk of images, or of output rows of one
image, within ``chunk_bytes``.
"""
from __future__ import annotations

from math import prod

import numpy as np

from ...params import tap_spans
from ._common import compute_dtype, finish, kernel_offsets, tap_slices
from .workspace import prefix, workspace

#: Upper bound on one step's gathered input and product: a share of the last-level
#: cache, since every tap reads and writes them again (steps of 64 MiB made a batch of
#: 8 long 1-D signals 4x slower than the cache-sized steps of one image).
CHUNK_BYTES = 8 * 2**20


def can_implement(p, weight=None):
    if not p.has_zero_padding:
        return f"needs zero padding (padding_mode={p.padding_mode!r} reads the padding)"
    if p.kernel_volume == 1:
        return "needs a kernel larger than 1 tap (one tap is im2col's single GEMM)"
    return None


def _per_row_bytes(p, itemsize) -> int:
    """A step's buffers per output row (first spatial axis) of one image: the gathered
    input and the product, at their largest (a tap that reaches every output)."""
    return (p.in_channels + p.out_channels) * prod(p.output_size[1:]) * itemsize


def _plan(p, chunk_bytes, itemsize):
    """(images per step, output rows per step) and the step's bytes."""
    per_row = _per_row_bytes(p, itemsize)
    per_image = per_row * p.output_size[0]
    if per_image <= chunk_bytes:
        images = min(max(p.batch, 1), max(1, chunk_bytes // per_image))
        return images, p.output_size[0], images * per_image
    rows = min(p.output_size[0], max(1, chunk_bytes // per_row))
    return 1, rows, rows * per_row


def workspace_bytes(p, chunk_bytes: int = CHUNK_BYTES) -> int:
    itemsize = compute_dtype(p.dtype).itemsize
    weights = p.out_channels * p.in_per_group * p.kernel_volume * itemsize
    return weights + _plan(p, chunk_bytes, itemsize)[2]


def features(p, chunk_bytes: int = CHUNK_BYTES) -> dict:
    """What the call does, for the cost model: GEMM FLOPs, bytes of weight matrices
    read (every step reads each tap's), of gathered input, of products added into the
    output, and the number of per-tap steps (a GEMM and its gather and add each)."""
    itemsize = compute_dtype(p.dtype).itemsize
    images, rows, _ = _plan(p, chunk_bytes, itemsize)
    steps = -(-max(p.batch, 1) // images) * -(-p.output_size[0] // rows)
    taps = sum(1 for _ in boxes(p))
    # (output, tap) pairs inside the input: the boxes' sizes summed over the taps
    positions = p.batch * prod(p.output_size) * p.kernel_volume * p.inside_fraction
    return dict(gemm=p.flops * p.inside_fraction,
                weights=taps * steps * p.out_channels * p.in_per_group * itemsize,
                cols=positions * p.in_channels * itemsize,
                adds=positions * p.out_channels * itemsize,
                steps=taps * steps)


def boxes(p):
    """Per tap that reaches any output: (tap index, its per-axis kernel offsets, the
    per-axis output spans ``(lo, hi)`` it reaches)."""
    axes = zip(p.input_size, p.kernel_size, p.stride, p.dilation, p.padding,
               p.output_size)
    spans = [tap_spans(n, k, s, d, before, o) for n, k, s, d, (before, _), o in axes]
    for t, offsets in enumerate(kernel_offsets(p.kernel_size)):
        box = [spans[a][k] for a, k in enumerate(offsets)]
        if all(hi > lo for lo, hi in box):
            yield t, offsets, box


def conv(x, w, bias, p, chunk_bytes: int = CHUNK_BYTES):
    cd = compute_dtype(p.dtype)
    g, cig, cog = p.groups, p.in_per_group, p.out_per_group
    y = np.zeros((p.batch, g, cog) + p.output_size, dtype=cd)   # the taps add into it
    images, rows, _ = _plan(p, chunk_bytes, cd.itemsize)
    # one buffer each for the gathered input and the product, reused by every tap: a
    # fresh array a tap (megabytes for a stem layer) cost more in page faults than
    # its GEMM
    most = images * rows * prod(p.output_size[1:])
    with workspace((p.kernel_volume, g, cog, cig), cd) as wt, \
            workspace((most * p.in_channels,), cd) as col_buf, \
            workspace((most * p.out_channels,), cd) as out_buf:
        # (taps, g, C_out/g, C_in/g): each tap's weight matrices contiguous for the GEMM
        np.copyto(wt, np.moveaxis(w.reshape(g, cog, cig, p.kernel_volume), 3, 0))
        _accumulate(x, wt, y, p, images, rows, col_buf, out_buf)
    return finish(y.reshape(p.output_shape), bias, p)


def _accumulate(x, wt, y, p, images, rows, col_buf, out_buf):
    """Add every tap's GEMM into ``y``, a chunk of ``images`` images and ``rows`` output
    rows at a time."""
    g, cig, cog = p.groups, p.in_per_group, p.out_per_group
    taps = list(boxes(p))
    for n0 in range(0, p.batch, images):
        part = slice(n0, min(n0 + images, p.batch))
        nb = part.stop - part.start
        for r0 in range(0, p.output_size[0], rows):
            r1 = min(r0 + rows, p.output_size[0])
            for t, offsets, box in taps:
                band = (max(box[0][0], r0), min(box[0][1], r1))
                if band[1] <= band[0]:
                    continue
                box = [band] + box[1:]
                src = tap_slices(offsets, p, box, padded=False)
                dst = tuple(slice(lo, hi) for lo, hi in box)
                size = tuple(hi - lo for lo, hi in box)
                cols = prefix(col_buf, (nb, p.in_channels) + size)
                np.copyto(cols, x[(part, slice(None)) + src])       # float16: cast here
                out = prefix(out_buf, (nb, g, cog, prod(size)))
                np.matmul(wt[t], cols.reshape(nb, g, cig, prod(size)), out=out)
                y[(part, slice(None), slice(None)) + dst] += \
                    out.reshape((nb, g, cog) + size)
