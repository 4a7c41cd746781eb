"""``scipy.signal.correlate2d`` / ``convolve2d`` over the convolution machinery.

The boundary is applied as explicit padding (``fill`` with ``fillvalue``, ``wrap``,
``symm``), then a single-channel valid correlation runs through ConvParams and the
dispatcher like any other call.
"""
from __future__ import annotations

import numpy as np

from . import dispatch
from .arrays import array_module, common_kind, wrap
from .functional import backend_arrays, resolve_backend, run_conv
from .params import ConvParams, fail

_MODES = ("full", "valid", "same")
_BOUNDARIES = {"fill": "constant", "pad": "constant", "wrap": "wrap", "circular": "wrap",
               "symm": "symmetric", "symmetric": "symmetric"}


def _float_pair(fname, in1, in2):
    dt = np.result_type(in1.dtype, in2.dtype)
    if dt.name not in ("float16", "float32", "float64"):
        bad = in1 if in1.dtype.kind not in "f" else in2
        fail(fname, f"expected floating inputs (float16, float32, float64), but got "
                    f"dtype {bad.dtype.name}", TypeError)
    return dt


def _correlate(fname, in1, in2, mode, boundary, fillvalue, flip, backend):
    kind = common_kind(fname, in1=in1, in2=in2)
    backend = resolve_backend(fname, kind, backend)
    a = backend_arrays(fname, backend, in1=in1, in2=in2)
    x, k = a["in1"], a["in2"]
    if x.ndim != 2 or k.ndim != 2:
        fail(fname, f"expected in1 and in2 to be 2-D arrays, but got shapes "
                    f"{tuple(x.shape)} and {tuple(k.shape)}")
    if mode not in _MODES:
        fail(fname, f"mode={mode!r} is unknown; expected one of {', '.join(map(repr, _MODES))}")
    if boundary not in _BOUNDARIES:
        fail(fname, f"boundary={boundary!r} is unknown; expected one of "
                    f"{', '.join(map(repr, _BOUNDARIES))}")
    if x.size == 0 or k.size == 0:
        fail(fname, f"expected non-empty inputs, but got shapes {x.shape} and {k.shape}")
    dt = _float_pair(fname, x, k)
    swapped = False
    if mode == "valid":
        bigger1 = all(a >= b for a, b in zip(x.shape, k.shape))
        bigger2 = all(a >= b for a, b in zip(k.shape, x.shape))
        if not (bigger1 or bigger2):
            fail(fname, f"mode='valid' needs one input at least as large as the other in "
                        f"every dimension, but got shapes {x.shape} and {k.shape}")
        if not bigger1:
            x, k, swapped = k, x, True
    if flip:
        k = k[::-1, ::-1]
    if mode == "valid":
        pads = ((0, 0), (0, 0))
    else:
        full = [s - 1 for s in k.shape]
        if mode == "full":
            pads = tuple((f, f) for f in full)
        else:  # "same": the centre of the full result, scipy's placement
            start = [f // 2 if flip else (f + 1) // 2 for f in full]
            pads = tuple((f - s0, s0) for f, s0 in zip(full, start))
        npmode = _BOUNDARIES[boundary]
        kw = {"constant_values": fillvalue} if npmode == "constant" else {}
        x = array_module(x).pad(x, pads, mode=npmode, **kw)
    xb = x.astype(dt, copy=False)[None, None]
    wb = k.astype(dt, copy=False)[None, None]
    p = ConvParams.build(fname, 2, xb.shape, wb.shape, dtype=dt)
    y = run_conv(p, xb, wb, None, "auto", backend, dispatch.get_workspace_limit())[0, 0]
    if swapped and not flip:
        y = y[::-1, ::-1]
    return wrap(array_module(y).ascontiguousarray(y), kind)


def correlate2d(in1, in2, mode="full", boundary="fill", fillvalue=0, *, backend=None):
    """2-D cross-correlation, as ``scipy.signal.correlate2d`` (floating inputs)."""
    return _correlate("correlate2d", in1, in2, mode, boundary, fillvalue, False, backend)


def convolve2d(in1, in2, mode="full", boundary="fill", fillvalue=0, *, backend=None):
    """2-D convolution, as ``scipy.signal.convolve2d`` (floating inputs)."""
    return _correlate("convolve2d", in1, in2, mode, boundary, fillvalue, True, backend)
