"""Direct convolution: the float64 oracle every other algorithm is tested against.

A sum over kernel taps of strided windows of the padded input, each contracted with
that tap's weights over the input channels of its group. Written from the definition
and sharing no code with the other algorithms beyond padding and window slicing.
"""
from __future__ import annotations

import numpy as np

from ._common import alloc, finish, kernel_offsets, pad_input, window


def conv(x, w, bias, p):
    g = p.groups
    xp = pad_input(x, p, np.float64)
    wg = w.astype(np.float64).reshape((g, p.out_per_group, p.in_per_group) + p.kernel_size)
    y = np.zeros((p.batch, g, p.out_per_group) + p.output_size, dtype=np.float64)
    for offset in kernel_offsets(p.kernel_size):
        win = window(xp, offset, p).reshape((p.batch, g, p.in_per_group) + p.output_size)
        y += np.einsum("ngc...,goc->ngo...", win, wg[(Ellipsis,) + offset], optimize=True)
    return finish(y.reshape(p.output_shape), bias, p)


def grad_weight(x, grad_output, p):
    """dL/dW[o, c, k] = sum over batch and output positions of dy[o] * x_padded[c, o*s + k*d].

    Seed section 4.1's g(G, V, s), with dilation, padding and groups; reduced in a fixed
    order (deterministic).
    """
    g = p.groups
    xp = pad_input(x, p, np.float64)
    gy = grad_output.astype(np.float64).reshape(
        (p.batch, g, p.out_per_group) + p.output_size)
    gw = alloc((g, p.out_per_group, p.in_per_group) + p.kernel_size, dtype=np.float64)
    for offset in kernel_offsets(p.kernel_size):
        win = window(xp, offset, p).reshape((p.batch, g, p.in_per_group) + p.output_size)
        gw[(Ellipsis,) + offset] = np.einsum("ngc...,ngo...->goc", win, gy, optimize=True)
    return gw.reshape(p.weight_shape).astype(p.dtype, copy=False)
