"""Winograd F(m, 3) convolution for 1-D and 2-D inputs, stride 1, dilation 1.

Input tiles of ``alpha = m + 2`` overlapping by 2 are transformed with ``B^T`` along
each spatial axis, filters with ``G``, the products are summed over input channels as a
batched GEMM (one per transform point and group), and ``A^T`` maps each transformed
tile back to ``m`` outputs per axis. The matrices come from :mod:`cnnkern.winograd`.
"""
from __future__ import annotations

from math import prod

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ...winograd import float_transforms
from ._common import compute_dtype, finish, pad_input

R = 3


def tiles(p, m):
    return tuple(-(-n // m) for n in p.output_size)


def workspace_bytes(p, m) -> int:
    alpha = m + R - 1
    pts = alpha ** p.ndim
    t = prod(tiles(p, m))
    itemsize = compute_dtype(p.dtype).itemsize
    return itemsize * pts * (p.batch * t * (p.in_channels + p.out_channels)
                             + p.out_channels * p.in_per_group)


def _along(arr, axis, mat):
    """Apply ``mat`` (rows x len) to ``arr`` along ``axis``."""
    return np.moveaxis(np.moveaxis(arr, axis, -1) @ mat.T, -1, axis)


def conv(x, w, bias, p, m):
    cd = compute_dtype(p.dtype)
    at, gm, bt = (a.astype(cd) for a in float_transforms(m, R))
    nd, g, cig, cog = p.ndim, p.groups, p.in_per_group, p.out_per_group
    alpha = m + R - 1
    nt = tiles(p, m)
    xp = pad_input(x, p, cd)
    extra = [t * m + R - 1 - n for t, n in zip(nt, p.padded_size)]
    xp = np.pad(xp, ((0, 0), (0, 0)) + tuple((0, e) for e in extra))
    v = xp
    for ax in range(nd):  # tiles along each axis, then B^T on the new trailing dim
        win = sliding_window_view(v, alpha, axis=2 + ax)
        index = [slice(None)] * win.ndim
        index[2 + ax] = slice(None, None, m)
        v = win[tuple(index)] @ bt.T
    # v: (N, C, t_1..t_nd, alpha_1..alpha_nd)
    u = w.astype(cd, copy=False)
    for ax in range(nd):
        u = _along(u, 2 + ax, gm)
    pts, ntile = alpha ** nd, prod(nt)
    vm = v.reshape(p.batch, g, cig, ntile, pts).transpose(4, 1, 2, 0, 3)
    vm = vm.reshape(pts, g, cig, p.batch * ntile)
    um = u.reshape(g, cog, cig, pts).transpose(3, 0, 1, 2)
    mm = np.matmul(um, vm)                           # (pts, g, cog, N * ntile)
    mm = mm.reshape((alpha,) * nd + (p.out_channels, p.batch) + nt)
    for ax in range(nd):
        mm = _along(mm, ax, at)                      # alpha -> m on each point axis
    # (m_1..m_nd, C_out, N, t_1..t_nd) -> (N, C_out, t_1, m_1, ..., t_nd, m_nd)
    order = [nd + 1, nd]
    for ax in range(nd):
        order += [nd + 2 + ax, ax]
    y = mm.transpose(order).reshape((p.batch, p.out_channels) +
                                    tuple(t * m for t in nt))
    y = y[(Ellipsis,) + tuple(slice(0, n) for n in p.output_size)]
    return finish(np.array(y, dtype=cd), bias, p)
