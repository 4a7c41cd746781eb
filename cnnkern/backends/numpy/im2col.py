"""im2col + GEMM: unfold input windows into a column matrix, then one matmul per group.

The column matrix is built in chunks (whole images, then rows of the first output
dimension) so that it never exceeds ``chunk_bytes``; the GEMM runs in the compute dtype
(float32 for float16/float32 inputs) through NumPy's BLAS.
"""
from __future__ import annotations

from math import prod

import numpy as np

from ._common import alloc, compute_dtype, finish, kernel_offsets, pad_input

#: Upper bound on the column matrix of one chunk.
CHUNK_BYTES = 64 * 2**20


def _bytes_per_position(p, itemsize):
    return p.in_channels * p.kernel_volume * itemsize


def workspace_bytes(p, chunk_bytes: int = CHUNK_BYTES) -> int:
    itemsize = compute_dtype(p.dtype).itemsize
    per_row = _bytes_per_position(p, itemsize) * prod(p.output_size[1:])
    full = per_row * p.output_size[0] * p.batch
    return min(full, max(per_row, chunk_bytes))


def _chunks(p, chunk_bytes, itemsize):
    """(image range, output-row range) pairs whose columns fit in ``chunk_bytes``."""
    per_row = _bytes_per_position(p, itemsize) * prod(p.output_size[1:])
    rows = p.output_size[0]
    per_image = per_row * rows
    if per_image <= chunk_bytes:
        step = max(1, chunk_bytes // per_image)
        for n0 in range(0, p.batch, step):
            yield slice(n0, min(n0 + step, p.batch)), slice(0, rows)
    else:
        step = max(1, chunk_bytes // per_row)
        for n in range(p.batch):
            for r0 in range(0, rows, step):
                yield slice(n, n + 1), slice(r0, min(r0 + step, rows))


def conv(x, w, bias, p, chunk_bytes: int = CHUNK_BYTES):
    cd = compute_dtype(p.dtype)
    g, cig, cog = p.groups, p.in_per_group, p.out_per_group
    xp = pad_input(x, p, cd)
    wm = w.astype(cd, copy=False).reshape(g, cog, cig * p.kernel_volume)
    y = alloc((p.batch, g, cog) + p.output_size, dtype=cd)
    s0, d0 = p.stride[0], p.dilation[0]
    for images, rows in _chunks(p, chunk_bytes, cd.itemsize):
        nb, nr = images.stop - images.start, rows.stop - rows.start
        out_sz = (nr,) + p.output_size[1:]
        cols = alloc((nb, p.in_channels, p.kernel_volume) + out_sz, dtype=cd)
        for t, offset in enumerate(kernel_offsets(p.kernel_size)):
            start = rows.start * s0 + offset[0] * d0
            index = [images, slice(None), slice(start, start + (nr - 1) * s0 + 1, s0)]
            for o, d, s, n in zip(offset[1:], p.dilation[1:], p.stride[1:],
                                  p.output_size[1:]):
                index.append(slice(o * d, o * d + (n - 1) * s + 1, s))
            cols[:, :, t] = xp[tuple(index)]
        cols = cols.reshape(nb, g, cig * p.kernel_volume, prod(out_sz))
        block = np.matmul(wm, cols)  # (nb, g, cog, positions)
        y[images, :, :, rows] = block.reshape((nb, g, cog) + out_sz)
    return finish(y.reshape(p.output_shape), bias, p)
