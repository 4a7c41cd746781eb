"""The convolution as a sparse matrix (the Toeplitz / doubly block Toeplitz form).

``conv_matrix(w, x.shape, ...) @ x.ravel() == conv(x, w, ...).ravel()``. Padding modes
are linear maps too: every padded position reads one input position (or none, for
zeros), so the matrix composes them by index, duplicates summed.
"""
from __future__ import annotations

from math import prod

import numpy as np
import scipy.sparse as sp

from .arrays import common_kind
from .backends.numpy._common import NP_PAD_MODES
from .functional import host_arrays
from .params import ConvParams, check_dtypes, fail


def _source_index(n, before, after, mode):
    """For each padded position, the input position it reads, or -1 (zero padding)."""
    idx = np.arange(n)
    if mode == "zeros":
        return np.pad(idx, (before, after), mode="constant", constant_values=-1)
    return np.pad(idx, (before, after), mode=NP_PAD_MODES[mode])


def conv_matrix(weight, input_shape, stride=1, padding=0, dilation=1, groups=1, *,
                padding_mode="zeros"):
    """Sparse CSR matrix ``M`` of the convolution of inputs of ``input_shape``.

    ``input_shape`` is ``(C_in, *spatial)`` or ``(N, C_in, *spatial)``; ``M`` has
    ``prod(output_shape)`` rows and ``prod(input_shape)`` columns, block diagonal over
    the batch. Bias is not part of the linear map.
    """
    fname = "conv_matrix"
    common_kind(fname, weight=weight)
    w = host_arrays(fname, weight=weight)["weight"]
    dtype = check_dtypes(fname, weight=w)
    nd = w.ndim - 2
    if nd not in (1, 2, 3):
        fail(fname, f"expected weight with 3, 4 or 5 dimensions, but got weight of shape "
                    f"{tuple(w.shape)}")
    try:
        shape = tuple(int(v) for v in input_shape)
    except TypeError:
        fail(fname, f"expected input_shape to be a sequence of ints, but got "
                    f"{input_shape!r}", TypeError)
    if len(shape) == nd + 1:
        shape = (1,) + shape
        batch = None
    elif len(shape) == nd + 2:
        batch = shape[0]
    else:
        fail(fname, f"expected input_shape with {nd + 1} or {nd + 2} entries for a "
                    f"{nd}-D weight, but got {tuple(input_shape)}")
    p = ConvParams.build(fname, nd, (1,) + shape[1:], w.shape, stride=stride,
                         padding=padding, dilation=dilation, groups=groups,
                         padding_mode=padding_mode, dtype=dtype)
    cig, cog = p.in_per_group, p.out_per_group
    # per dimension: (out, k) -> input position or -1
    src = []
    for i in range(nd):
        table = _source_index(p.input_size[i], *p.padding[i], p.padding_mode)
        pos = (np.arange(p.output_size[i])[:, None] * p.stride[i] +
               np.arange(p.kernel_size[i])[None, :] * p.dilation[i])
        src.append(table[pos])
    # broadcast to (out_1..out_nd, k_1..k_nd)
    flat = np.zeros((1,) * (2 * nd), dtype=np.int64)
    valid = np.ones((1,) * (2 * nd), dtype=bool)
    for i in range(nd):
        shape_i = [1] * (2 * nd)
        shape_i[i], shape_i[nd + i] = p.output_size[i], p.kernel_size[i]
        s = src[i].reshape(shape_i)
        flat = flat * p.input_size[i] + np.maximum(s, 0)
        valid = valid & (s >= 0)
    out_vol, k_vol, in_vol = prod(p.output_size), p.kernel_volume, prod(p.input_size)
    flat = np.broadcast_to(flat, p.output_size + p.kernel_size).reshape(out_vol, k_vol)
    valid = np.broadcast_to(valid, p.output_size + p.kernel_size).reshape(out_vol, k_vol)
    co = np.arange(p.out_channels)[:, None, None, None]
    ci = np.arange(cig)[None, :, None, None]
    rows = co * out_vol + np.arange(out_vol)[None, None, :, None]
    cols = ((co // cog) * cig + ci) * in_vol + flat[None, None]
    vals = w.reshape(p.out_channels, cig, 1, k_vol)
    shape4 = (p.out_channels, cig, out_vol, k_vol)
    keep = np.broadcast_to(valid[None, None], shape4)
    rows = np.broadcast_to(rows, shape4)[keep]
    cols = np.broadcast_to(cols, shape4)[keep]
    vals = np.broadcast_to(vals, shape4)[keep]
    m = sp.coo_array((vals, (rows, cols)),
                     shape=(p.out_channels * out_vol, p.in_channels * in_vol)).tocsr()
    m.sum_duplicates()
    if batch is None:
        return m
    return sp.kron(sp.eye_array(batch, dtype=dtype), m, format="csr")
