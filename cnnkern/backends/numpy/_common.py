"""Helpers shared by the NumPy algorithms: padding, window slices, dtypes."""
from __future__ import annotations

import itertools

import numpy as np

#: padding_mode (torch names) -> numpy.pad mode
NP_PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge",
                "circular": "wrap"}


#: When True (the tests set it), fresh output buffers are filled with NaN so that an
#: element an algorithm forgets to write cannot pass for a result.
POISON = False


def alloc(shape, dtype) -> np.ndarray:
    """An output buffer every element of which the caller will write."""
    if POISON:
        return np.full(shape, np.nan, dtype=dtype)
    return np.empty(shape, dtype=dtype)


def compute_dtype(dtype) -> np.dtype:
    """float16 is computed in float32; float32 and float64 in themselves."""
    dtype = np.dtype(dtype)
    return np.dtype(np.float32) if dtype == np.float16 else dtype


def pad_input(x: np.ndarray, p, dtype=None, out=None) -> np.ndarray:
    """The input with ``p.padding`` applied in ``p.padding_mode``, cast to ``dtype``;
    ``x`` itself where that changes nothing. ``out`` (an array of the padded shape and
    ``dtype``, such as a workspace) receives the copy under zero padding or a plain
    cast, instead of a fresh array."""
    dtype = x.dtype if dtype is None else np.dtype(dtype)
    unpadded = all(pair == (0, 0) for pair in p.padding)
    if unpadded and (x.dtype == dtype or out is None):
        return x.astype(dtype, copy=False)
    if p.padding_mode == "zeros" or unpadded:   # np.pad took 25-40 us on a small layer
        shape = x.shape[:2] + (p.input_size if unpadded else p.padded_size)
        if out is None:
            out = np.zeros(shape, dtype=dtype)
        elif not unpadded:
            out.fill(0)
        out[(slice(None),) * 2 + tuple(slice(b, b + n) for n, (b, _) in
                                       zip(p.input_size, p.padding))] = x
        return out
    pads = ((0, 0), (0, 0)) + tuple(p.padding)
    return np.pad(x.astype(dtype, copy=False), pads, mode=NP_PAD_MODES[p.padding_mode])


def kernel_offsets(kernel_size):
    """Every kernel tap as a tuple of per-dimension indices, in row-major order."""
    return itertools.product(*(range(k) for k in kernel_size))


def tap_slices(offset, p, spans=None, padded: bool = True) -> tuple:
    """Per spatial axis, the slice of the input that kernel tap ``offset`` reads for the
    outputs ``spans`` (``(lo, hi)`` per axis; every output by default): of the padded
    input, or with ``padded=False`` of the unpadded one (where the tap lands inside)."""
    index = []
    for a, (o, d, s, n) in enumerate(zip(offset, p.dilation, p.stride, p.output_size)):
        lo, hi = (0, n) if spans is None else spans[a]
        start = lo * s + o * d - (0 if padded else p.padding[a][0])
        index.append(slice(start, start + (hi - lo - 1) * s + 1, s))
    return tuple(index)


def window(xp: np.ndarray, offset, p, lead: int = 2) -> np.ndarray:
    """The strided view of the padded input that kernel tap ``offset`` multiplies."""
    return xp[(slice(None),) * lead + tap_slices(offset, p)]


def add_bias(y: np.ndarray, bias) -> np.ndarray:
    if bias is not None:
        y += np.asarray(bias, dtype=y.dtype).reshape((1, -1) + (1,) * (y.ndim - 2))
    return y


def finish(y: np.ndarray, bias, p) -> np.ndarray:
    """Add the bias and return the result in the input's dtype."""
    return add_bias(y, bias).astype(p.dtype, copy=False)
