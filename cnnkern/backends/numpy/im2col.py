"""im2col + GEMM: unfold input windows into a column matrix, then one matmul per group.

The column matrix is built in chunks (whole images, then rows of the first output
dimension) so that it and the padded copy of the chunk's images never exceed
``chunk_bytes``. Whole images are multiplied
straight into the output; a part of an image goes through a temporary GEMM result,
counted in the chunk. The GEMM runs in the compute dtype (float32 for float16/float32
inputs) through NumPy's BLAS.
"""
from __future__ import annotations

from math import prod

import numpy as np

from ._common import alloc, compute_dtype, finish, kernel_offsets, pad_input, tap_slices

#: Upper bound on one chunk's column matrix and padded images.
CHUNK_BYTES = 64 * 2**20


def _bytes_per_position(p, itemsize, with_block: bool = False):
    """Column-matrix bytes per output position; ``with_block`` adds the GEMM's result,
    a temporary when the chunk is part of an image (whole images are multiplied
    straight into the output). A pointwise layer's columns are its input."""
    columns = 0 if pointwise(p) else p.in_channels * p.kernel_volume
    return (columns + with_block * p.out_channels) * itemsize


def _padded_image_bytes(p, itemsize) -> int:
    """One image's padded (or cast) copy: the chunk's columns are cut from it."""
    return p.in_channels * prod(p.padded_size) * itemsize


def _plan(p, chunk_bytes, itemsize):
    """(whole images per chunk, 0) or (1, output rows per chunk), and the chunk's bytes:
    its columns, the padded copy of its images and, for part of an image, the GEMM's
    result."""
    image = _padded_image_bytes(p, itemsize)
    per_image = _bytes_per_position(p, itemsize) * prod(p.output_size) + image
    if per_image <= chunk_bytes:
        step = min(p.batch, max(1, chunk_bytes // per_image))
        return step, 0, step * per_image
    per_row = _bytes_per_position(p, itemsize, True) * prod(p.output_size[1:])
    rows = min(p.output_size[0], max(1, (chunk_bytes - image) // per_row))
    return 1, rows, rows * per_row + image


def workspace_bytes(p, chunk_bytes: int = CHUNK_BYTES) -> int:
    return _plan(p, chunk_bytes, compute_dtype(p.dtype).itemsize)[2]


def _chunks(p, chunk_bytes, itemsize):
    """(image range, output-row range) pairs whose columns (and GEMM result, for a part
    of an image) fit in ``chunk_bytes``."""
    images, rows, _ = _plan(p, chunk_bytes, itemsize)
    n_rows = p.output_size[0]
    if rows == 0:
        for n0 in range(0, p.batch, images):
            yield slice(n0, min(n0 + images, p.batch)), slice(0, n_rows)
    else:
        for n in range(p.batch):
            for r0 in range(0, n_rows, rows):
                yield slice(n, n + 1), slice(r0, min(r0 + rows, n_rows))


def conv(x, w, bias, p, chunk_bytes: int = CHUNK_BYTES):
    cd = compute_dtype(p.dtype)
    g, cig, cog = p.groups, p.in_per_group, p.out_per_group
    wm = w.astype(cd, copy=False).reshape(g, cog, cig * p.kernel_volume)
    y = alloc((p.batch, g, cog) + p.output_size, dtype=cd)
    xp_images, xp = None, None                  # the padded copy of these images
    for images, rows in _chunks(p, chunk_bytes, cd.itemsize):
        if xp_images != images:                 # pad the chunk's images only, after
            xp = None                           # letting the last chunk's copy go
            xp_images, xp = images, pad_input(x[images], p, cd)
        nb, nr = images.stop - images.start, rows.stop - rows.start
        out_sz = (nr,) + p.output_size[1:]
        cols = None                             # let the last chunk's columns go first
        if pointwise(p):                        # the columns are the input itself
            cols = xp[:, :, rows].reshape(nb, g, cig, prod(out_sz))
        else:
            cols = _columns(xp, p, rows, out_sz, cd)
        if nr == p.output_size[0]:              # whole images: y[images] is contiguous
            np.matmul(wm, cols, out=y.reshape(p.batch, g, cog, -1)[images])
        else:
            block = np.matmul(wm, cols)         # (1, g, cog, positions)
            y[images, :, :, rows] = block.reshape((nb, g, cog) + out_sz)
    return finish(y.reshape(p.output_shape), bias, p)


def pointwise(p) -> bool:
    """A 1x1 layer with stride 1 and no padding: its columns are its input."""
    return p.kernel_volume == 1 and all(s == 1 for s in p.stride) and \
        all(pair == (0, 0) for pair in p.padding)


def _columns(xp, p, rows, out_sz, cd):
    """The column matrix ``(images, groups, C_in / groups * taps, positions)`` of the
    output rows ``rows`` of the images in ``xp`` (padded)."""
    spans = [(rows.start, rows.stop)] + [(0, n) for n in p.output_size[1:]]
    cols = alloc((xp.shape[0], p.in_channels, p.kernel_volume) + out_sz, dtype=cd)
    for t, offset in enumerate(kernel_offsets(p.kernel_size)):
        cols[:, :, t] = xp[(slice(None), slice(None)) + tap_slices(offset, p, spans)]
    return cols.reshape(xp.shape[0], p.groups, p.in_per_group * p.kernel_volume,
                        prod(out_sz))
