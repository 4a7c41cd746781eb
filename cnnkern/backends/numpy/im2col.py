"""im2col + GEMM: unfold input windows into a column matrix, then one matmul per group.

Two layouts of the columns (``layout_for``; the cost model picks):

**windows**, the textbook one: a row per (input channel, tap), a column per output
position, copied tap by tap from strided windows of the padded input.

**wide**, for layers with stride 1 on every axis: the columns run over the flat index
of the padded input instead, from the first output to the last. A (channel, tap) row is
then one contiguous run of the padded image, shifted by the tap's offset, and the
whole matrix a single strided copy; the GEMM also computes the positions between the
rows' ends and the next rows' starts (the padding's and the kernel's width: 12% of a
28-wide image under a 5x5 kernel), which are dropped when the result is copied into
the output. Building the columns of googlenet/3a_5x5 this way took 0.03 ms against
0.12 ms tap by tap, next to a 0.13 ms GEMM.

The column matrix is built in chunks (whole images, then rows of the first output
dimension) so that it and the padded copy of the chunk's images never exceed
``chunk_bytes``; several images share a chunk only up to ``GROUP_BYTES``, so that the
columns are still in the cache when the GEMM reads them. Whole images in the windows
layout are multiplied straight into the output; a part of an image, or the wide
layout, goes through a temporary GEMM result, counted in the chunk. The GEMM runs in
the compute dtype (float32 for float16/float32 inputs) through NumPy's BLAS.
"""
from __future__ import annotations

from functools import lru_cache
from math import prod

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ._common import alloc, compute_dtype, finish, kernel_offsets, pad_input, tap_slices
from .workspace import prefix, workspace

#: Upper bound on one chunk's column matrix and padded images.
CHUNK_BYTES = 64 * 2**20
#: Images share a chunk (one column copy per tap, one matmul call: a GEMM per image)
#: only while the chunk stays within this, a quarter of the 2-core EPYC's 32 MiB L3, so
#: that each image's columns are still in the cache when its GEMM reads them. Chunks
#: of up to ``CHUNK_BYTES`` had batch-8 layers up to 1.7x slower (resnet50/res2_3x3
#: 29.5 -> 17.6 ms, res3_3x3_s2 24.4 -> 17.9 ms; docs/performance.md).
GROUP_BYTES = 8 * 2**20


def pointwise(p) -> bool:
    """A 1x1 layer with stride 1 and no padding: its columns are its input."""
    return p.kernel_volume == 1 and all(s == 1 for s in p.stride) and \
        all(pair == (0, 0) for pair in p.padding)


def wide_possible(p) -> bool:
    """Stride 1 on every axis (so that neighbouring outputs read neighbouring inputs),
    and not pointwise (whose columns need no copy at all)."""
    return all(s == 1 for s in p.stride) and not pointwise(p)


def layout_for(p, filled: bool = False) -> str:
    """"wide" or "windows": the one the cost model (``dispatch.im2col_layout``) finds
    cheaper where both can run; ``filled``: the windows' columns come from the Numba
    backend's compiled fill."""
    if not wide_possible(p):
        return "windows"
    from ...dispatch import im2col_layout
    return im2col_layout(p, filled)


def flat_strides(p) -> tuple[int, ...]:
    """Elements between neighbours along each axis of a padded image, flattened."""
    pad = p.padded_size
    return tuple(prod(pad[i + 1:]) for i in range(p.ndim))


def wide_span(p, rows: int) -> int:
    """Columns of the wide layout for ``rows`` rows of the first output dimension: the
    flat distance from their first output to their last, plus one."""
    fs = flat_strides(p)
    return (rows - 1) * fs[0] + sum((n - 1) * s for n, s in
                                    zip(p.output_size[1:], fs[1:])) + 1


def _bytes_per_position(p, itemsize, with_block: bool = False):
    """Column-matrix bytes per output position; ``with_block`` adds the GEMM's result,
    a temporary when the chunk is part of an image (whole images are multiplied
    straight into the output). A pointwise layer's columns are its input."""
    columns = 0 if pointwise(p) else p.in_channels * p.kernel_volume
    return (columns + with_block * p.out_channels) * itemsize


def _padded_image_bytes(p, itemsize) -> int:
    """One image's padded (or cast) copy: the chunk's columns are cut from it."""
    return p.in_channels * prod(p.padded_size) * itemsize


def _plan(p, chunk_bytes, itemsize, layout):
    """(whole images per chunk, 0) or (1, output rows per chunk), and the chunk's bytes:
    its columns, the padded copy of its images and, for part of an image or the wide
    layout, the GEMM's result."""
    return _cached_plan(p, chunk_bytes, itemsize, layout, GROUP_BYTES)


@lru_cache(maxsize=256)
def _cached_plan(p, chunk_bytes, itemsize, layout, group_bytes):
    """``_plan`` per call shape and bounds (a small layer's call is tens of
    microseconds, and the plan took a few of them)."""
    image = _padded_image_bytes(p, itemsize)
    if layout == "wide":
        per_column = _bytes_per_position(p, itemsize, True)
        per_image = per_column * wide_span(p, p.output_size[0]) + image
    else:
        per_image = _bytes_per_position(p, itemsize) * prod(p.output_size) + image
    if per_image <= chunk_bytes:
        step = min(p.batch, max(1, min(chunk_bytes, group_bytes) // per_image))
        return step, 0, step * per_image
    if layout == "wide":                        # a row adds at most a padded row
        per_row = per_column * flat_strides(p)[0]
        rows = min(p.output_size[0], max(1, (chunk_bytes - image) // per_row))
        return 1, rows, per_column * wide_span(p, rows) + image
    per_row = _bytes_per_position(p, itemsize, True) * prod(p.output_size[1:])
    rows = min(p.output_size[0], max(1, (chunk_bytes - image) // per_row))
    return 1, rows, rows * per_row + image


def workspace_bytes(p, chunk_bytes: int = CHUNK_BYTES, fill=None) -> int:
    return _plan(p, chunk_bytes, compute_dtype(p.dtype).itemsize,
                 layout_for(p, fill is not None))[2]


def _chunks(p, chunk_bytes, itemsize, layout="windows"):
    """(image range, output-row range) pairs whose columns (and GEMM result, for a part
    of an image or the wide layout) fit in ``chunk_bytes``."""
    return _planned_chunks(p, *_plan(p, chunk_bytes, itemsize, layout)[:2])


def _planned_chunks(p, images, rows):
    """The chunks of ``images`` whole images, or of ``rows`` output rows of one image
    (``rows`` > 0)."""
    n_rows = p.output_size[0]
    if rows == 0:
        for n0 in range(0, p.batch, images):
            yield slice(n0, min(n0 + images, p.batch)), slice(0, n_rows)
    else:
        for n in range(p.batch):
            for r0 in range(0, n_rows, rows):
                yield slice(n, n + 1), slice(r0, min(r0 + rows, n_rows))


@lru_cache(maxsize=256)
def _buffer_sizes(p, images, rows, layout):
    """Elements of the largest chunk's padded (or cast) images, columns and GEMM result
    (0 where the chunk needs none)."""
    nr = rows or p.output_size[0]
    copied = compute_dtype(p.dtype) != p.dtype or any(b or a for b, a in p.padding)
    padded = images * p.in_channels * prod(p.padded_size) if copied else 0
    if layout == "wide":
        span = wide_span(p, nr)
        return padded, images * p.in_channels * p.kernel_volume * span, \
            images * p.out_channels * span
    positions = nr * prod(p.output_size[1:])
    columns = 0 if pointwise(p) else images * p.in_channels * p.kernel_volume * positions
    return padded, columns, (p.out_channels * positions if rows else 0)


def conv(x, w, bias, p, chunk_bytes: int = CHUNK_BYTES, fill=None):
    """``fill(xp, cols, p, rows)``, where given, builds the windows layout's column
    matrix (of the padded images ``xp``, for the output rows ``rows``) instead of the
    tap-by-tap NumPy copies: the Numba backend's compiled fill
    (``backends/numba/columns.py``). The layout is chosen for the fill that runs."""
    cd = compute_dtype(p.dtype)
    layout = layout_for(p, fill is not None)
    wm = w.astype(cd, copy=False).reshape(p.groups, p.out_per_group, -1)
    y = alloc((p.batch, p.groups, p.out_per_group) + p.output_size, dtype=cd)
    images, rows, _ = _plan(p, chunk_bytes, cd.itemsize, layout)
    sizes = _buffer_sizes(p, images, rows, layout)
    with workspace((sizes[0],), cd) as pad_buf, workspace((sizes[1],), cd) as col_buf, \
            workspace((sizes[2],), cd) as gemm_buf:
        _chunked_gemm(x, wm, y, p, cd, layout, (pad_buf, col_buf, gemm_buf),
                      _planned_chunks(p, images, rows), fill)
    return finish(y.reshape(p.output_shape), bias, p)


def _chunked_gemm(x, wm, y, p, cd, layout, buffers, chunks, fill):
    """Each chunk's columns (in ``buffers``: flat workspaces for the padded images, the
    columns and the GEMM result; built by ``fill`` where given) times the weight
    matrices, into ``y``."""
    pad_buf, col_buf, gemm_buf = buffers
    g, cig, cog = p.groups, p.in_per_group, p.out_per_group
    xp_images, xp = None, None                  # the padded copy of these images
    for images, rows in chunks:
        nb, nr = images.stop - images.start, rows.stop - rows.start
        if xp_images != images:                 # pad the chunk's images only
            xp_images = images
            shape = (nb, p.in_channels) + p.padded_size
            out = prefix(pad_buf, shape) if pad_buf.size else None
            xp = pad_input(x[images], p, cd, out)
            if layout == "wide":                # (a cast keeps a transposed layout)
                xp = np.ascontiguousarray(xp)
        out_sz = (nr,) + p.output_size[1:]
        if layout == "wide":
            y[images, :, :, rows] = _wide_gemm(xp, wm, p, rows, col_buf, gemm_buf)
            continue
        if pointwise(p):                        # the columns are the input itself
            cols = xp[:, :, rows].reshape(nb, g, cig, prod(out_sz))
        else:
            cols = _columns(xp, p, rows, out_sz, col_buf, fill)
        if nr == p.output_size[0]:              # whole images: y[images] is contiguous
            np.matmul(wm, cols, out=y.reshape(p.batch, g, cog, -1)[images])
        else:
            block = prefix(gemm_buf, (1, g, cog, prod(out_sz)))
            np.matmul(wm, cols, out=block)
            y[images, :, :, rows] = block.reshape((nb, g, cog) + out_sz)


def _columns(xp, p, rows, out_sz, col_buf, fill):
    """The column matrix ``(images, groups, C_in / groups * taps, positions)`` of the
    output rows ``rows`` of the images in ``xp`` (padded), in the workspace
    ``col_buf``: by ``fill``, or tap by tap."""
    spans = [(rows.start, rows.stop)] + [(0, n) for n in p.output_size[1:]]
    cols = prefix(col_buf, (xp.shape[0], p.in_channels, p.kernel_volume) + out_sz)
    if fill is not None:
        fill(xp, cols, p, rows)
    else:
        for t, offset in enumerate(kernel_offsets(p.kernel_size)):
            cols[:, :, t] = xp[(slice(None), slice(None)) + tap_slices(offset, p, spans)]
    return cols.reshape(xp.shape[0], p.groups, p.in_per_group * p.kernel_volume,
                        prod(out_sz))


def _wide_gemm(xp, wm, p, rows, col_buf, gemm_buf):
    """The outputs ``(images, groups, C_out / groups, rows, ...)`` of the output rows
    ``rows`` of the images in ``xp`` (padded, C-contiguous), through the wide layout,
    a view of the workspace ``gemm_buf``.

    Row (c, tap) of the columns is the flat padded image from the tap's offset on: a
    view with one stride per kernel axis (the dilated step along that axis) and unit
    stride along the columns. Its last element is the last padded element of the
    chunk's last input row, so the view stays inside the image."""
    nb, nr, isz = xp.shape[0], rows.stop - rows.start, xp.itemsize
    fs = flat_strides(p)
    span = wide_span(p, nr)
    src = xp[:, :, rows.start:]
    windows = as_strided(src, src.shape[:2] + tuple(p.kernel_size) + (span,),
                         src.strides[:2] + tuple(d * s * isz for d, s in
                                                 zip(p.dilation, fs)) + (isz,),
                         writeable=False)
    cols = prefix(col_buf, windows.shape)
    np.copyto(cols, windows)
    res = prefix(gemm_buf, (nb, p.groups, wm.shape[1], span))
    np.matmul(wm, cols.reshape(nb, p.groups, -1, span), out=res)
    return as_strided(res, res.shape[:3] + (nr,) + p.output_size[1:],
                      res.strides[:3] + tuple(s * isz for s in fs), writeable=False)
