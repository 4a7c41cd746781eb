"""Max and average pooling with ``torch.nn.functional`` names and semantics."""
from __future__ import annotations

from .arrays import common_kind, wrap
from .functional import backend_arrays, batched, only_algorithm, resolve_backend
from .params import PoolParams, check_dtypes, fail


def _prepare(fname, nd, input, backend, kernel_size, stride, padding, dilation, ceil_mode):
    kind = common_kind(fname, input=input)
    backend = resolve_backend(fname, kind, backend)
    x = backend_arrays(fname, backend, input=input)["input"]
    check_dtypes(fname, input=x)
    x, unbatched = batched(fname, x, nd)
    pp = PoolParams.build(fname, nd, x.shape, kernel_size, stride, padding, dilation,
                          ceil_mode)
    return kind, backend, x, unbatched, pp


def _max(fname, nd, input, kernel_size, stride, padding, dilation, ceil_mode,
         return_indices, backend):
    kind, backend, x, unbatched, pp = _prepare(fname, nd, input, backend, kernel_size,
                                               stride, padding, dilation, ceil_mode)
    alg = only_algorithm("max_pool", backend, fname)
    res = alg.run(x, pp, return_indices=bool(return_indices))
    outs = res if return_indices else (res,)
    outs = tuple(wrap(o[0] if unbatched else o, kind) for o in outs)
    return outs if return_indices else outs[0]


def _avg(fname, nd, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
         divisor_override, backend):
    kind, backend, x, unbatched, pp = _prepare(fname, nd, input, backend, kernel_size,
                                               stride, padding, 1, ceil_mode)
    if divisor_override is not None and (isinstance(divisor_override, bool)
                                         or not isinstance(divisor_override, int)
                                         or divisor_override == 0):
        fail(fname, f"expected divisor_override to be None or a non-zero int, but got "
                    f"{divisor_override!r}")
    alg = only_algorithm("avg_pool", backend, fname)
    y = alg.run(x, pp, count_include_pad=bool(count_include_pad),
                divisor_override=divisor_override)
    return wrap(y[0] if unbatched else y, kind)


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False, *, backend=None):
    """1-D max pooling; see :func:`max_pool2d`."""
    return _max("max_pool1d", 1, input, kernel_size, stride, padding, dilation, ceil_mode,
                return_indices, backend)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False, *, backend=None):
    """2-D max pooling, as ``torch.nn.functional.max_pool2d`` (stride defaults to the
    kernel size; padding is -inf and at most half the kernel; indices index the
    flattened spatial input of each (n, c) plane)."""
    return _max("max_pool2d", 2, input, kernel_size, stride, padding, dilation, ceil_mode,
                return_indices, backend)


def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False, *, backend=None):
    """3-D max pooling; see :func:`max_pool2d`."""
    return _max("max_pool3d", 3, input, kernel_size, stride, padding, dilation, ceil_mode,
                return_indices, backend)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None, *, backend=None):
    """1-D average pooling; see :func:`avg_pool2d`."""
    return _avg("avg_pool1d", 1, input, kernel_size, stride, padding, ceil_mode,
                count_include_pad, divisor_override, backend)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None, *, backend=None):
    """2-D average pooling, as ``torch.nn.functional.avg_pool2d`` (the divisor counts
    padding when ``count_include_pad``, never the ceil_mode overhang)."""
    return _avg("avg_pool2d", 2, input, kernel_size, stride, padding, ceil_mode,
                count_include_pad, divisor_override, backend)


def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None, *, backend=None):
    """3-D average pooling; see :func:`avg_pool2d`."""
    return _avg("avg_pool3d", 3, input, kernel_size, stride, padding, ceil_mode,
                count_include_pad, divisor_override, backend)
