"""The single front door for convolution parameters.

Every public call (convolution, transposed convolution, gradients, pooling, the
scipy-style functions and ``conv_matrix``) expands and validates its arguments here,
in one fixed order, with one error style, and gets its output shape from the one
output-size function, :func:`output_size`.
"""
from __future__ import annotations

import numbers
import operator
from dataclasses import dataclass, fields
from functools import cached_property
from math import prod

import numpy as np

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
PADDING_STRINGS = ("valid", "same", "full")
SUPPORTED_DTYPES = ("float16", "float32", "float64")
#: The same as dtype objects (a set lookup: ``dtype.name`` took microseconds a call).
_SUPPORTED = frozenset(np.dtype(name) for name in SUPPORTED_DTYPES)


def fail(fname: str, text: str, exc: type[Exception] = ValueError):
    """Raise ``exc`` in the library's one message style: ``"conv2d: <text>"``."""
    raise exc(f"{fname}: {text}")


def output_size(size: int, kernel: int, stride: int, dilation: int,
                pad_before: int, pad_after: int, ceil_mode: bool = False) -> int:
    """The one output-size formula (dilation-aware), for convolution and pooling.

    ``ceil_mode`` follows torch pooling: the last window may run past the end, but
    must start inside the input or the leading padding.
    """
    span = (kernel - 1) * dilation + 1
    room = size + pad_before + pad_after - span
    if room < 0:
        return 0
    if ceil_mode:
        out = -(-room // stride) + 1
        if (out - 1) * stride >= size + pad_before:
            out -= 1
        return out
    return room // stride + 1


def _as_int(fname, argname, value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        fail(fname, f"expected {argname} to be an int or a tuple of ints, "
                    f"but got {value!r} of type {type(value).__name__}", TypeError)
    return operator.index(value)


def expand(fname: str, argname: str, value, ndim: int, minimum: int) -> tuple[int, ...]:
    """Expand an int or a length-``ndim`` sequence to a tuple, each entry >= minimum."""
    if isinstance(value, (list, tuple)):
        if len(value) == 1:
            value = tuple(value) * ndim
        if len(value) != ndim:
            fail(fname, f"expected {argname} to be a single int or {ndim} ints "
                        f"(one per spatial dimension), but got {tuple(value)!r}")
        out = tuple(_as_int(fname, argname, v) for v in value)
    else:
        out = (_as_int(fname, argname, value),) * ndim
    for v in out:
        if v < minimum:
            fail(fname, f"expected {argname} to be >= {minimum} in every dimension, "
                        f"but got {argname}={out!r}")
    return out


def _padding_pairs(fname, padding, ndim, allow_strings=True):
    """Explicit padding -> ((before, after), ...); strings are resolved later."""
    if isinstance(padding, str):
        if not allow_strings:
            fail(fname, f"padding={padding!r} is not supported here; expected an int, "
                        "a tuple of ints or a tuple of (before, after) pairs")
        if padding not in PADDING_STRINGS:
            fail(fname, f"padding={padding!r} is unknown; expected an int, a tuple, or "
                        f"one of {', '.join(map(repr, PADDING_STRINGS))}")
        return padding
    if isinstance(padding, (list, tuple)):
        items = list(padding)
        if len(items) == 1:
            items = items * ndim
        if len(items) != ndim:
            fail(fname, f"expected padding to be a single int, {ndim} ints or {ndim} "
                        f"(before, after) pairs, but got {padding!r}")
        pairs = []
        for item in items:
            if isinstance(item, (list, tuple)):
                if len(item) != 2:
                    fail(fname, f"expected each per-side padding entry to be a "
                                f"(before, after) pair, but got {item!r} in padding={padding!r}")
                pairs.append((_as_int(fname, "padding", item[0]),
                              _as_int(fname, "padding", item[1])))
            else:
                v = _as_int(fname, "padding", item)
                pairs.append((v, v))
    else:
        v = _as_int(fname, "padding", padding)
        pairs = [(v, v)] * ndim
    for b, a in pairs:
        if b < 0 or a < 0:
            fail(fname, f"expected padding to be non-negative, but got padding={padding!r}")
    return tuple(pairs)


def _resolve_padding_string(mode, size, kernel, stride, dilation):
    pairs = []
    for n, k, s, d in zip(size, kernel, stride, dilation):
        span = (k - 1) * d
        if mode == "valid":
            pairs.append((0, 0))
        elif mode == "full":
            pairs.append((span, span))
        else:  # "same", TensorFlow rule so that it also works with stride > 1
            out = -(-n // s)
            total = max((out - 1) * s + span + 1 - n, 0)
            pairs.append((total // 2, total - total // 2))
    return tuple(pairs)


def check_dtypes(fname: str, **arrays) -> np.dtype:
    """All given arrays (None skipped) share one supported floating dtype."""
    first_name, first = None, None
    for name, arr in arrays.items():
        if arr is None:
            continue
        dt = np.dtype(arr.dtype)
        if dt not in _SUPPORTED:
            fail(fname, f"expected {name} of a floating dtype "
                        f"({', '.join(SUPPORTED_DTYPES)}), but got dtype {dt.name}", TypeError)
        if first is None:
            first_name, first = name, dt
        elif dt != first:
            fail(fname, f"expected {name} to have the same dtype as {first_name} "
                        f"({first.name}), but got {dt.name}", TypeError)
    return first


def _check_ndim(fname, argname, shape, ndim, what):
    if len(shape) != ndim + 2:
        fail(fname, f"expected {argname} with {ndim + 2} dimensions {what}, but got "
                    f"{argname} of shape {tuple(shape)} ({len(shape)} dimensions)")


def _check_pad_mode(fname, mode, padding, size):
    if mode not in PADDING_MODES:
        fail(fname, f"padding_mode={mode!r} is unknown; expected one of "
                    f"{', '.join(map(repr, PADDING_MODES))}")
    if mode == "reflect":
        for (b, a), n in zip(padding, size):
            if max(b, a) >= n:
                fail(fname, f"padding_mode='reflect' needs each padding smaller than the "
                            f"input size, but got padding {(b, a)} for an input dimension of {n}")
    if mode == "circular":
        for (b, a), n in zip(padding, size):
            if max(b, a) > n:
                fail(fname, f"padding_mode='circular' needs each padding at most the "
                            f"input size, but got padding {(b, a)} for an input dimension of {n}")


def tap_spans(n: int, k: int, s: int, d: int, before: int, o: int) -> list:
    """Along one axis (input ``n``, kernel ``k``, stride ``s``, dilation ``d``, leading
    padding ``before``, output ``o``): for each tap ``t``, the outputs ``[lo, hi)`` whose
    input index ``i * s + t * d - before`` lies inside ``[0, n)`` (``lo == hi``: none)."""
    spans = []
    for t in range(k):
        lo = min(o, max(0, -(-(before - t * d) // s)))
        last = n - 1 + before - t * d
        hi = min(o, last // s + 1) if last >= 0 else 0
        spans.append((lo, max(lo, hi)))
    return spans


_INT = {int}


def _frozen(value):
    """``value`` as a hashable key that tells apart every argument the validation
    tells apart: exact ints and strings, and lists or tuples of them (validated alike);
    None for anything else (a bool, a NumPy integer: validated afresh every call)."""
    kind = type(value)
    if kind is int or kind is str:
        return value
    if kind is tuple or kind is list:
        if set(map(type, value)) <= _INT:       # the common case, without recursion
            return ("seq",) + tuple(value)
        items = tuple(map(_frozen, value))
        return None if None in items else ("seq",) + items
    return None


def _built_key(fname, ndim, input_shape, weight_shape, stride, padding, dilation, groups,
               padding_mode, dtype):
    if not isinstance(dtype, np.dtype):
        return None
    key = tuple(map(_frozen, (fname, ndim, input_shape, weight_shape, stride, padding,
                              dilation, groups, padding_mode)))
    return None if None in key else key + (dtype,)


#: Instances by ``_built_key`` (cleared when full, like the dispatcher's verdicts).
_BUILT: dict = {}
_BUILT_MAX = 1024


@dataclass(frozen=True)
class ConvParams:
    """A validated forward convolution: shapes, stride, padding, dilation, groups."""

    fname: str
    batch: int
    in_channels: int
    out_channels: int
    groups: int
    input_size: tuple[int, ...]
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    padding_mode: str
    output_size: tuple[int, ...]
    dtype: np.dtype

    def __hash__(self) -> int:
        """The fields' hash, computed once: the dispatcher's and the kernels' caches
        hash the instance several times a call."""
        h = self.__dict__.get("_hash")
        if h is None:
            h = hash(tuple(getattr(self, f.name) for f in fields(self)))
            self.__dict__["_hash"] = h
        return h

    def __getstate__(self) -> dict:
        # string hashes differ from process to process: a pickle must not carry one
        return {k: v for k, v in self.__dict__.items() if k != "_hash"}

    @classmethod
    def build(cls, fname: str, ndim: int, input_shape, weight_shape, *, stride=1,
              padding=0, dilation=1, groups=1, padding_mode="zeros", dtype=np.float64):
        """Validate in a fixed order and compute the output shape. A call whose
        arguments are plain ints, strings, tuples and lists of them gets the instance
        built for the same arguments before (``_built_key``): validating took 7 us, a
        quarter of a small layer's overhead."""
        key = _built_key(fname, ndim, input_shape, weight_shape, stride, padding,
                         dilation, groups, padding_mode, dtype)
        hit = None if key is None else _BUILT.get(key)
        if hit is None:
            hit = cls._validated(fname, ndim, input_shape, weight_shape, stride, padding,
                                 dilation, groups, padding_mode, dtype)
            if key is not None:
                if len(_BUILT) >= _BUILT_MAX:
                    _BUILT.clear()
                _BUILT[key] = hit
        return hit

    @classmethod
    def _validated(cls, fname, ndim, input_shape, weight_shape, stride, padding,
                   dilation, groups, padding_mode, dtype):
        input_shape, weight_shape = tuple(input_shape), tuple(weight_shape)
        _check_ndim(fname, "input", input_shape, ndim, "(batch, channels, *spatial)")
        _check_ndim(fname, "weight", weight_shape, ndim,
                    "(out_channels, in_channels / groups, *kernel)")
        if any(v == 0 for v in input_shape[1:]):
            fail(fname, f"expected input with non-zero channel and spatial sizes, "
                        f"but got input of shape {input_shape}")
        if any(v == 0 for v in weight_shape):
            fail(fname, f"expected weight with non-zero sizes, but got weight of shape "
                        f"{weight_shape}")
        stride = expand(fname, "stride", stride, ndim, 1)
        dilation = expand(fname, "dilation", dilation, ndim, 1)
        groups = _as_int(fname, "groups", groups)
        if groups < 1:
            fail(fname, f"expected groups >= 1, but got groups={groups}")
        n, c_in, size = input_shape[0], input_shape[1], input_shape[2:]
        c_out, c_in_g, kernel = weight_shape[0], weight_shape[1], weight_shape[2:]
        if c_in % groups:
            fail(fname, f"given groups={groups}, expected input with a multiple of "
                        f"{groups} channels, but got {c_in} channels instead")
        if c_in_g * groups != c_in:
            fail(fname, f"given groups={groups}, weight of shape {weight_shape} expects "
                        f"{c_in_g * groups} input channels, but got input of shape "
                        f"{input_shape} with {c_in} channels instead")
        if c_out % groups:
            fail(fname, f"given groups={groups}, expected weight with a multiple of "
                        f"{groups} output channels, but got {c_out} (weight shape {weight_shape})")
        pairs = _padding_pairs(fname, padding, ndim)
        if isinstance(pairs, str):
            pairs = _resolve_padding_string(pairs, size, kernel, stride, dilation)
        _check_pad_mode(fname, padding_mode, pairs, size)
        out = []
        for i in range(ndim):
            o = output_size(size[i], kernel[i], stride[i], dilation[i], *pairs[i])
            if o < 1:
                span = (kernel[i] - 1) * dilation[i] + 1
                fail(fname, f"the dilated kernel ({span} in dimension {i}: kernel "
                            f"{kernel[i]}, dilation {dilation[i]}) is larger than the padded "
                            f"input ({size[i] + sum(pairs[i])} = {size[i]} + padding "
                            f"{pairs[i]}); the output would be empty")
            out.append(o)
        return cls(fname, n, c_in, c_out, groups, tuple(size), tuple(kernel), stride,
                   dilation, pairs, padding_mode, tuple(out), np.dtype(dtype))

    @property
    def ndim(self) -> int:
        return len(self.input_size)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.batch, self.in_channels) + self.input_size

    @property
    def weight_shape(self) -> tuple[int, ...]:
        return (self.out_channels, self.in_channels // self.groups) + self.kernel_size

    @property
    def output_shape(self) -> tuple[int, ...]:
        return (self.batch, self.out_channels) + self.output_size

    @property
    def padded_size(self) -> tuple[int, ...]:
        return tuple(n + b + a for n, (b, a) in zip(self.input_size, self.padding))

    @property
    def dilated_kernel(self) -> tuple[int, ...]:
        return tuple((k - 1) * d + 1 for k, d in zip(self.kernel_size, self.dilation))

    @property
    def in_per_group(self) -> int:
        return self.in_channels // self.groups

    @property
    def out_per_group(self) -> int:
        return self.out_channels // self.groups

    @property
    def kernel_volume(self) -> int:
        return prod(self.kernel_size)

    @property
    def is_depthwise(self) -> bool:
        return self.groups == self.in_channels

    @property
    def flops(self) -> int:
        """Multiply-adds counted as two FLOPs, the convention of the benchmarks."""
        return 2 * self.batch * self.out_channels * prod(self.output_size) * \
            self.in_per_group * self.kernel_volume

    @property
    def has_zero_padding(self) -> bool:
        return self.padding_mode == "zeros" or all(p == (0, 0) for p in self.padding)

    @cached_property
    def inside_fraction(self) -> float:
        """The fraction of (output, tap) pairs whose input index is inside the input:
        the kernels that skip zero-padding taps do this fraction of ``flops``. Cached:
        several cost estimates of one call ask (the dataclass is frozen, so it holds)."""
        if not self.has_zero_padding:
            return 1.0
        frac = 1.0
        axes = zip(self.input_size, self.kernel_size, self.stride, self.dilation,
                   self.padding, self.output_size)
        for n, k, s, d, (before, _), o in axes:
            inside = sum(hi - lo for lo, hi in tap_spans(n, k, s, d, before, o))
            frac *= inside / (k * o) if o else 1.0
        return frac

    def describe(self) -> str:
        return (f"{self.fname}: input {self.input_shape}, weight {self.weight_shape}, "
                f"stride {self.stride}, padding {self.padding} ({self.padding_mode}), "
                f"dilation {self.dilation}, groups {self.groups}, dtype {self.dtype.name} "
                f"-> output {self.output_shape}")


def transpose_params(fname: str, ndim: int, input_shape, weight_shape, *, stride=1,
                     padding=0, output_padding=0, groups=1, dilation=1, dtype=np.float64):
    """Transposed convolution as the adjoint of a forward convolution.

    Returns the :class:`ConvParams` of the forward convolution whose input gradient the
    transposed convolution is: its input is the transposed convolution's output, its
    weight is the given weight read as ``(C_out_fwd, C_in_fwd / groups, *k)``.
    """
    input_shape, weight_shape = tuple(input_shape), tuple(weight_shape)
    _check_ndim(fname, "input", input_shape, ndim, "(batch, channels, *spatial)")
    _check_ndim(fname, "weight", weight_shape, ndim,
                "(in_channels, out_channels / groups, *kernel)")
    stride = expand(fname, "stride", stride, ndim, 1)
    dilation = expand(fname, "dilation", dilation, ndim, 1)
    output_padding = expand(fname, "output_padding", output_padding, ndim, 0)
    groups_i = _as_int(fname, "groups", groups)
    if groups_i < 1:
        fail(fname, f"expected groups >= 1, but got groups={groups_i}")
    c_in = input_shape[1]
    if c_in % groups_i:
        fail(fname, f"given groups={groups_i}, expected input with a multiple of "
                    f"{groups_i} channels, but got {c_in} channels instead")
    if weight_shape[0] != c_in:
        fail(fname, f"expected weight of shape (in_channels={c_in}, out_channels / groups, "
                    f"*kernel), but got weight of shape {weight_shape}")
    pairs = _padding_pairs(fname, padding, ndim, allow_strings=False)
    for i, op in enumerate(output_padding):
        if op >= stride[i] and op >= dilation[i]:
            fail(fname, f"expected output_padding smaller than either stride or dilation, "
                        f"but got output_padding={output_padding}, stride={stride}, "
                        f"dilation={dilation}")
    size = []
    for i in range(ndim):
        k = weight_shape[2 + i]
        n = (input_shape[2 + i] - 1) * stride[i] - sum(pairs[i]) + \
            (k - 1) * dilation[i] + output_padding[i] + 1
        if n < 1:
            fail(fname, f"the output would be empty: dimension {i} has size {n} for input "
                        f"size {input_shape[2 + i]}, kernel {k}, stride {stride[i]}, "
                        f"padding {pairs[i]}, dilation {dilation[i]}, output_padding "
                        f"{output_padding[i]}")
        size.append(n)
    fwd_input = (input_shape[0], weight_shape[1] * groups_i) + tuple(size)
    return ConvParams.build(fname, ndim, fwd_input, weight_shape, stride=stride,
                            padding=pairs, dilation=dilation, groups=groups_i, dtype=dtype)


@dataclass(frozen=True)
class PoolParams:
    """A validated pooling window: same expansion rules and output formula as convolution."""

    fname: str
    batch: int
    channels: int
    input_size: tuple[int, ...]
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]
    ceil_mode: bool
    output_size: tuple[int, ...]

    @classmethod
    def build(cls, fname, ndim, input_shape, kernel_size, stride=None, padding=0,
              dilation=1, ceil_mode=False):
        input_shape = tuple(input_shape)
        _check_ndim(fname, "input", input_shape, ndim, "(batch, channels, *spatial)")
        kernel = expand(fname, "kernel_size", kernel_size, ndim, 1)
        if stride is None or (isinstance(stride, (list, tuple)) and len(stride) == 0):
            stride = kernel
        stride = expand(fname, "stride", stride, ndim, 1)
        padding = expand(fname, "padding", padding, ndim, 0)
        dilation = expand(fname, "dilation", dilation, ndim, 1)
        for i in range(ndim):
            if 2 * padding[i] > kernel[i]:
                fail(fname, f"expected padding at most half of the kernel size, but got "
                            f"padding={padding} for kernel_size={kernel}")
        if any(v == 0 for v in input_shape[1:]):
            fail(fname, f"expected input with non-zero channel and spatial sizes, but got "
                        f"input of shape {input_shape}")
        out = []
        for i in range(ndim):
            o = output_size(input_shape[2 + i], kernel[i], stride[i], dilation[i],
                            padding[i], padding[i], ceil_mode)
            if o < 1:
                fail(fname, f"the output would be empty: input size {input_shape[2 + i]} in "
                            f"dimension {i} is smaller than the window "
                            f"({(kernel[i] - 1) * dilation[i] + 1}) with padding {padding[i]}")
            out.append(o)
        return cls(fname, input_shape[0], input_shape[1], input_shape[2:], kernel, stride,
                   padding, dilation, bool(ceil_mode), tuple(out))

    @property
    def ndim(self) -> int:
        return len(self.input_size)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return (self.batch, self.channels) + self.output_size
