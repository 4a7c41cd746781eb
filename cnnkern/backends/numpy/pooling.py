"""Max and average pooling, 1-D to 3-D, with torch's padding, dilation and ceil_mode."""
from __future__ import annotations

from math import prod

import numpy as np

from ._common import compute_dtype, kernel_offsets


def _padded(x, pp, fill):
    """Pad with ``fill`` far enough that every (ceil_mode) window is in bounds."""
    pads = [(0, 0), (0, 0)]
    for n, k, s, d, pad, o in zip(pp.input_size, pp.kernel_size, pp.stride, pp.dilation,
                                  pp.padding, pp.output_size):
        need = (o - 1) * s + (k - 1) * d + 1
        pads.append((pad, max(pad, need - n - pad)))
    return np.pad(x, pads, mode="constant", constant_values=fill)


def _windows(xp, pp):
    for offset in kernel_offsets(pp.kernel_size):
        index = [slice(None), slice(None)]
        for o, d, s, n in zip(offset, pp.dilation, pp.stride, pp.output_size):
            index.append(slice(o * d, o * d + (n - 1) * s + 1, s))
        yield offset, xp[tuple(index)]


def max_pool(x, pp, return_indices=False):
    xp = _padded(x, pp, -np.inf)
    stack = np.stack([win for _, win in _windows(xp, pp)])
    y = stack.max(axis=0)
    if not return_indices:
        return y
    best = stack.argmax(axis=0)                       # tap index per output
    taps = np.unravel_index(best, pp.kernel_size)
    coords = []
    for ax in range(pp.ndim):
        shape = [1] * (pp.ndim + 2)
        shape[2 + ax] = pp.output_size[ax]
        start = (np.arange(pp.output_size[ax]) * pp.stride[ax] - pp.padding[ax]).reshape(shape)
        coords.append(start + taps[ax] * pp.dilation[ax])
    flat = np.zeros(y.shape, dtype=np.int64)
    for ax in range(pp.ndim):
        flat = flat * pp.input_size[ax] + coords[ax]
    inside = _padded(np.ones((1, 1) + pp.input_size, dtype=bool), pp, False)
    seen = np.any(np.stack([win for _, win in _windows(inside, pp)]), axis=0)
    flat[np.broadcast_to(~seen, flat.shape)] = -1   # a window of padding only
    return y, flat


def _window_counts(pp, include_pad):
    """How many elements each output window averages over, as a broadcastable array."""
    counts = np.ones((1, 1) + (1,) * pp.ndim, dtype=np.float64)
    for ax in range(pp.ndim):
        n, k, s, pad = pp.input_size[ax], pp.kernel_size[ax], pp.stride[ax], pp.padding[ax]
        start = np.arange(pp.output_size[ax]) * s - pad
        end = np.minimum(start + k, n + pad)
        if not include_pad:
            start, end = np.maximum(start, 0), np.minimum(end, n)
        shape = [1] * (pp.ndim + 2)
        shape[2 + ax] = -1
        counts = counts * (end - start).reshape(shape)
    return counts


def avg_pool(x, pp, count_include_pad=True, divisor_override=None):
    cd = compute_dtype(x.dtype)
    acc = np.float64 if cd == np.float64 else np.float32
    xp = _padded(x.astype(acc, copy=False), pp, 0.0)
    total = np.zeros(pp.output_shape, dtype=acc)
    for _, win in _windows(xp, pp):
        total += win
    if divisor_override is not None:
        y = total / divisor_override
    else:
        y = total / _window_counts(pp, count_include_pad)
    return y.astype(x.dtype, copy=False)


def workspace_bytes(pp) -> int:
    return prod(pp.kernel_size) * pp.batch * pp.channels * prod(pp.output_size) * 8
