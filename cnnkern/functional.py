"""The public convolution calls, with torch.nn.functional names and semantics.

Each call: arrays in (any supported kind) -> ConvParams -> backend -> dispatcher ->
the registered algorithm -> the result in the caller's array kind.
"""
from __future__ import annotations

import threading
import warnings
from typing import Optional

import numpy as np

from . import dispatch, registry
from .arrays import Kind, array_module, common_kind, default_backend, to_device, to_host, wrap
from .params import ConvParams, check_dtypes, fail, transpose_params

CPU_BACKENDS = ("numpy", "numba")


class BackendUnavailableError(RuntimeError):
    """The requested backend cannot run on this machine (e.g. no CuPy or no GPU)."""


# ---- plumbing shared by every public call ------------------------------------------

def resolve_backend(fname: str, kind: Kind, backend: Optional[str]) -> str:
    if backend is None:
        backend = default_backend(kind)
    elif not isinstance(backend, str):
        fail(fname, f"expected backend to be None or a string, but got {backend!r}", TypeError)
    if backend not in registry.BACKEND_MODULES:
        fail(fname, f"backend={backend!r} is unknown; expected None or one of "
                    f"{', '.join(map(repr, registry.BACKEND_MODULES))}")
    reason = registry.load_backend(backend)
    if reason is not None:
        hint = "; pass backend='numpy' to run on the host" if kind.on_gpu else ""
        raise BackendUnavailableError(f"{fname}: {reason}{hint}")
    if backend == "cuda" and not kind.on_gpu:
        fail(fname, f"backend='cuda' needs GPU arrays (CuPy, or torch/JAX on a CUDA "
                    f"device), but got {kind.library} arrays on the CPU", TypeError)
    return backend


def backend_arrays(fname: str, backend: str, **arrays) -> dict:
    """The arrays as the backend takes them: NumPy for the CPU backends, CuPy for cuda."""
    convert = to_device if backend == "cuda" else to_host
    return {k: (None if v is None else convert(fname, k, v)) for k, v in arrays.items()}


def host_arrays(fname: str, **arrays) -> dict:
    return backend_arrays(fname, "numpy", **arrays)


def only_algorithm(op: str, backend: str, fname: str):
    """The single registered implementation of a non-convolution op on a backend."""
    algs = registry.algorithms(op, backend)
    if not algs:
        raise BackendUnavailableError(
            f"{fname}: no algorithm for this operation on backend {backend!r} yet; pass "
            f"backend='numpy' to run it on the host")
    return algs[0]


def batched(fname: str, x: np.ndarray, nd: int, argname: str = "input"):
    """Accept torch's unbatched form (C, *spatial); return (batched x, was_unbatched)."""
    if x.ndim == nd + 1:
        return x[None], True
    if x.ndim != nd + 2:
        fail(fname, f"expected {argname} with {nd + 1} (unbatched) or {nd + 2} (batched) "
                    f"dimensions, but got {argname} of shape {tuple(x.shape)}")
    return x, False


def check_bias(fname: str, bias, channels: int):
    if bias is not None and tuple(bias.shape) != (channels,):
        fail(fname, f"expected bias of shape ({channels},) (one value per output "
                    f"channel), but got bias of shape {tuple(bias.shape)}")


_WARNED_LIMIT: set = set()
_WARNED_LOCK = threading.Lock()


def _warn_excluded(p: ConvParams, backend: str, choice: dispatch.Choice, limit) -> None:
    """Once per call signature: the workspace limit excluded the best estimate."""
    key = (backend, p, limit)
    with _WARNED_LOCK:
        if key in _WARNED_LIMIT:
            return
        _WARNED_LIMIT.add(key)
    ex = choice.excluded
    warnings.warn(f"{p.fname}: {ex.name} would be fastest by the cost model "
                  f"(estimated {ex.estimate_s * 1e3:.3f} ms) but needs "
                  f"{ex.workspace_bytes} bytes of workspace, over workspace_limit={limit}; "
                  f"running {choice.name} instead", dispatch.PerformanceWarning, stacklevel=5)


def _pick(p: ConvParams, algo, backend: str, x, w, bias, limit=None):
    if not isinstance(algo, str):
        fail(p.fname, f"expected algo to be a string, but got {algo!r}", TypeError)
    if algo == "auto" and dispatch.get_autotune() and p.batch > 0:
        algo = "autotune"
    if algo in ("auto", "autotune"):
        # "auto" asks the cached verdict; autotune needs the candidates themselves
        cands = dispatch.candidates(p, backend, w, limit) if algo == "autotune" else None
        choice = dispatch.auto_choice(p, backend, w, limit) if cands is None else \
            dispatch.choose(cands)
        if choice.name is None:
            fail(p.fname, f"{choice.why} on backend {backend!r}"
                          + (f" (workspace_limit={limit})" if limit is not None else ""))
        if choice.excluded is not None:
            _warn_excluded(p, backend, choice, limit)
        name = choice.name
        if algo == "autotune" and p.batch > 0:
            name = dispatch.autotune(p, backend, x, w, bias, limit, cands=cands)
        return registry.get("conv", backend, name)
    alg = registry.get("conv", backend, algo)
    reason = None if alg is None else alg.check(p, w)
    if alg is not None and reason is None and limit is not None \
            and alg.workspace_bytes(p) > limit:
        reason = f"it needs {alg.workspace_bytes(p)} bytes of workspace, over " \
                 f"workspace_limit={limit}"
    if alg is not None and reason is None:
        return alg
    # only a failing request pays for listing the alternatives
    cands = dispatch.candidates(p, backend, w, limit)
    able = ", ".join(c.name for c in cands if c.usable)
    if alg is None:
        fail(p.fname, f"algo={algo!r} is unknown on backend {backend!r}; known: "
                      f"{', '.join(c.name for c in cands)}; able to run this call: {able}")
    fail(p.fname, f"algo={algo!r} cannot run this call: {reason}; algorithms that can: "
                  f"{able}")


def run_conv(p: ConvParams, x, w, bias, algo="auto", backend: str = "numpy",
             workspace_limit=None):
    """Run a validated forward convolution on backend arrays.

    With ``algo`` "auto" or "autotune", an out-of-memory error falls back to the other
    algorithms that can run the call, least workspace first, with a
    ``PerformanceWarning``; a named algorithm's error is raised as it is.
    """
    alg = _pick(p, algo, backend, x, w, bias, workspace_limit)
    if p.batch == 0:
        return array_module(x).zeros(p.output_shape, dtype=p.dtype)
    tried = []
    while True:
        try:
            if backend == "cuda":
                with x.device:
                    return alg.run(x, w, bias, p)
            return alg.run(x, w, bias, p)
        except Exception as exc:
            if algo not in ("auto", "autotune") or not dispatch.is_out_of_memory(exc):
                raise
            tried.append(alg.name)
            rest = [n for n in dispatch.fallbacks(p, backend, w, workspace_limit, alg.name)
                    if n not in tried]
            if not rest:
                raise
            warnings.warn(f"{p.fname}: {alg.name} ran out of memory ({exc}); falling back "
                          f"to {rest[0]}", dispatch.PerformanceWarning, stacklevel=3)
            alg = registry.get("conv", backend, rest[0])


def _conv(fname, nd, input, weight, bias, stride, padding, dilation, groups,
          padding_mode, algo, backend, workspace_limit):
    kind = common_kind(fname, input=input, weight=weight, bias=bias)
    backend = resolve_backend(fname, kind, backend)
    a = backend_arrays(fname, backend, input=input, weight=weight, bias=bias)
    dtype = check_dtypes(fname, input=a["input"], weight=a["weight"], bias=a["bias"])
    x, unbatched = batched(fname, a["input"], nd)
    p = ConvParams.build(fname, nd, x.shape, a["weight"].shape, stride=stride,
                         padding=padding, dilation=dilation, groups=groups,
                         padding_mode=padding_mode, dtype=dtype)
    check_bias(fname, a["bias"], p.out_channels)
    limit = dispatch.effective_limit(fname, workspace_limit)
    y = run_conv(p, x, a["weight"], a["bias"], algo, backend, limit)
    return wrap(y[0] if unbatched else y, kind)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           padding_mode="zeros", algo="auto", backend=None,
           workspace_limit=None):
    """1-D convolution (cross-correlation) over ``(N, C_in, L)``; see :func:`conv2d`."""
    return _conv("conv1d", 1, input, weight, bias, stride, padding, dilation, groups,
                 padding_mode, algo, backend, workspace_limit)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           padding_mode="zeros", algo="auto", backend=None,
           workspace_limit=None):
    """2-D convolution (cross-correlation), as ``torch.nn.functional.conv2d``.

    input ``(N, C_in, H, W)`` (or unbatched ``(C_in, H, W)``), weight
    ``(C_out, C_in / groups, kH, kW)``, bias ``(C_out,)``. ``padding``: an int, one int
    per dimension, ``(before, after)`` pairs per dimension, ``"valid"``, ``"same"``
    (also with stride > 1, TensorFlow rule) or ``"full"``. ``padding_mode``:
    ``"zeros"``, ``"reflect"``, ``"replicate"``, ``"circular"``. ``algo``: ``"auto"``,
    ``"autotune"`` or an algorithm name (see :func:`supported_algorithms`).
    ``workspace_limit``: bytes of scratch memory the algorithm may use (default: the
    global :func:`cnnkern.set_workspace_limit`, else no limit); see docs/dispatch.md.
    """
    return _conv("conv2d", 2, input, weight, bias, stride, padding, dilation, groups,
                 padding_mode, algo, backend, workspace_limit)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           padding_mode="zeros", algo="auto", backend=None,
           workspace_limit=None):
    """3-D convolution (cross-correlation) over ``(N, C_in, D, H, W)``; see :func:`conv2d`."""
    return _conv("conv3d", 3, input, weight, bias, stride, padding, dilation, groups,
                 padding_mode, algo, backend, workspace_limit)


# ---- transposed convolution = input gradient ---------------------------------------

def input_grad(p: ConvParams, w, grad_output, algo="auto", backend="numpy",
               workspace_limit=None):
    """dL/dx of the forward convolution ``p``, as a stride-1 convolution.

    Seed section 4.1's h(K, G, s): the gradient is spread by the stride (zeros between
    entries), padded by ``d*(k-1) - pad_before`` before and to the input's length after
    (negative pads crop), and correlated with the weight flipped in space and
    transposed in channels. ``grad_output`` may be shorter than ``p.output_size``
    (a transposed convolution with output_padding >= stride).
    """
    nd, g = p.ndim, p.groups
    gy = grad_output
    xp = array_module(gy)
    spread = tuple((m - 1) * s + 1 for m, s in zip(gy.shape[2:], p.stride))
    if any(s > 1 for s in p.stride):
        z = xp.zeros(gy.shape[:2] + spread, dtype=gy.dtype)
        z[(Ellipsis,) + tuple(slice(None, None, s) for s in p.stride)] = gy
    else:
        z = gy
    crop, pads = [slice(None), slice(None)], []
    for i in range(nd):
        span = (p.kernel_size[i] - 1) * p.dilation[i]
        lo = span - p.padding[i][0]
        hi = p.input_size[i] + p.padding[i][0] - spread[i]
        start, stop = max(-lo, 0), spread[i] - max(-hi, 0)
        if stop <= start:  # every window lies in the padding: nothing flows back
            return xp.zeros(p.input_shape, dtype=p.dtype)
        crop.append(slice(start, stop))
        pads.append((max(lo, 0), max(hi, 0)))
    z = z[tuple(crop)]
    wt = w.reshape((g, p.out_per_group, p.in_per_group) + p.kernel_size).swapaxes(1, 2)
    wt = wt.reshape((p.in_channels, p.out_per_group) + p.kernel_size)
    wt = wt[(Ellipsis,) + (slice(None, None, -1),) * nd]
    q = ConvParams.build(p.fname, nd, z.shape, wt.shape, stride=1, padding=tuple(pads),
                         dilation=p.dilation, groups=g, dtype=p.dtype)
    return run_conv(q, z, wt, None, algo, backend, workspace_limit)


def _conv_transpose(fname, nd, input, weight, bias, stride, padding, output_padding,
                    groups, dilation, algo, backend, workspace_limit):
    kind = common_kind(fname, input=input, weight=weight, bias=bias)
    backend = resolve_backend(fname, kind, backend)
    a = backend_arrays(fname, backend, input=input, weight=weight, bias=bias)
    dtype = check_dtypes(fname, input=a["input"], weight=a["weight"], bias=a["bias"])
    x, unbatched = batched(fname, a["input"], nd)
    p = transpose_params(fname, nd, x.shape, a["weight"].shape, stride=stride,
                         padding=padding, output_padding=output_padding, groups=groups,
                         dilation=dilation, dtype=dtype)
    check_bias(fname, a["bias"], p.in_channels)
    limit = dispatch.effective_limit(fname, workspace_limit)
    if p.batch == 0:
        _pick(p, algo, backend, None, a["weight"], None, limit)
        y = array_module(x).zeros(p.input_shape, dtype=dtype)
    else:
        y = input_grad(p, a["weight"], x, algo, backend, limit)
        if a["bias"] is not None:
            y = y + a["bias"].reshape((1, -1) + (1,) * nd).astype(dtype)
    return wrap(y[0] if unbatched else y, kind)


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1, *, algo="auto", backend=None,
                     workspace_limit=None):
    """1-D transposed convolution; see :func:`conv_transpose2d`."""
    return _conv_transpose("conv_transpose1d", 1, input, weight, bias, stride, padding,
                           output_padding, groups, dilation, algo, backend,
                           workspace_limit)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1, *, algo="auto", backend=None,
                     workspace_limit=None):
    """2-D transposed convolution, as ``torch.nn.functional.conv_transpose2d``.

    weight ``(C_in, C_out / groups, kH, kW)``. It is the input gradient of the forward
    convolution with that weight, so the forward algorithms run it; ``algo`` names the
    algorithm of that stride-1 convolution.
    """
    return _conv_transpose("conv_transpose2d", 2, input, weight, bias, stride, padding,
                           output_padding, groups, dilation, algo, backend,
                           workspace_limit)


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1, *, algo="auto", backend=None,
                     workspace_limit=None):
    """3-D transposed convolution; see :func:`conv_transpose2d`."""
    return _conv_transpose("conv_transpose3d", 3, input, weight, bias, stride, padding,
                           output_padding, groups, dilation, algo, backend,
                           workspace_limit)


# ---- questions about a call --------------------------------------------------------

def _params_for(fname, input, weight, stride, padding, dilation, groups, padding_mode,
                backend):
    kind = common_kind(fname, input=input, weight=weight)
    backend = resolve_backend(fname, kind, backend)
    a = backend_arrays(fname, backend, input=input, weight=weight)
    dtype = check_dtypes(fname, input=a["input"], weight=a["weight"])
    nd = a["weight"].ndim - 2
    if nd not in (1, 2, 3):
        fail(fname, f"expected weight with 3, 4 or 5 dimensions, but got weight of shape "
                    f"{tuple(a['weight'].shape)}")
    x, _ = batched(fname, a["input"], nd)
    p = ConvParams.build(fname, nd, x.shape, a["weight"].shape, stride=stride,
                         padding=padding, dilation=dilation, groups=groups,
                         padding_mode=padding_mode, dtype=dtype)
    return p, a["weight"], backend


def supported_algorithms(input, weight, stride=1, padding=0, dilation=1, groups=1, *,
                         padding_mode="zeros", backend=None,
                         workspace_limit=None) -> list[str]:
    """Names of the algorithms that can run this convolution on that backend (within
    ``workspace_limit`` bytes of workspace when one is given)."""
    p, w, backend = _params_for("supported_algorithms", input, weight, stride, padding,
                                dilation, groups, padding_mode, backend)
    limit = dispatch.check_workspace_limit("supported_algorithms", workspace_limit)
    return [c.name for c in dispatch.candidates(p, backend, w, limit) if c.usable]


def explain(input, weight, stride=1, padding=0, dilation=1, groups=1, *,
            padding_mode="zeros", backend=None, workspace_limit=None) -> dispatch.Explanation:
    """Every candidate algorithm with its reason, or its estimated cost and workspace
    (and measured time once autotuned), the choice and why.

    ``str()`` of the result is a readable report, ``.as_dict()`` the same as data. The
    workspace limit is the per-call one if given, else the global one.
    """
    p, w, backend = _params_for("explain", input, weight, stride, padding, dilation,
                                groups, padding_mode, backend)
    return dispatch.explain(p, backend, w, dispatch.effective_limit("explain",
                                                                    workspace_limit))
