"""Gradients of convolution, with ``torch.nn.grad`` names and semantics.

``conv{1,2,3}d_input`` is the transposed convolution (seed section 4.1, h(K, G, s)) and
runs through the forward algorithms; ``conv{1,2,3}d_weight`` reduces over batch and
output positions in a fixed order (g(G, V, s)), so it is deterministic.
"""
from __future__ import annotations

from . import dispatch
from .arrays import common_kind, wrap
from .functional import backend_arrays, input_grad, only_algorithm, resolve_backend
from .params import ConvParams, check_dtypes, fail

__all__ = ["conv1d_input", "conv2d_input", "conv3d_input",
           "conv1d_weight", "conv2d_weight", "conv3d_weight"]


def _shape(fname, argname, value, nd):
    try:
        shape = tuple(int(v) for v in value)
    except TypeError:
        fail(fname, f"expected {argname} to be a shape (a sequence of {nd + 2} ints), but "
                    f"got {value!r}", TypeError)
    if len(shape) != nd + 2:
        fail(fname, f"expected {argname} with {nd + 2} entries (batch, channels, "
                    f"*spatial), but got {shape}")
    return shape


def _check_grad_output(p, gy):
    if tuple(gy.shape) != p.output_shape:
        fail(p.fname, f"expected grad_output of shape {p.output_shape} (the output of the "
                      f"forward convolution), but got {tuple(gy.shape)}")


def _input(fname, nd, input_size, weight, grad_output, stride, padding, dilation, groups,
           algo, backend, workspace_limit):
    kind = common_kind(fname, weight=weight, grad_output=grad_output)
    backend = resolve_backend(fname, kind, backend)
    a = backend_arrays(fname, backend, weight=weight, grad_output=grad_output)
    dtype = check_dtypes(fname, grad_output=a["grad_output"], weight=a["weight"])
    p = ConvParams.build(fname, nd, _shape(fname, "input_size", input_size, nd),
                         a["weight"].shape, stride=stride, padding=padding,
                         dilation=dilation, groups=groups, dtype=dtype)
    _check_grad_output(p, a["grad_output"])
    limit = dispatch.effective_limit(fname, workspace_limit)
    return wrap(input_grad(p, a["weight"], a["grad_output"], algo, backend, limit), kind)


def _weight(fname, nd, input, weight_size, grad_output, stride, padding, dilation,
            groups, backend):
    kind = common_kind(fname, input=input, grad_output=grad_output)
    backend = resolve_backend(fname, kind, backend)
    a = backend_arrays(fname, backend, input=input, grad_output=grad_output)
    dtype = check_dtypes(fname, input=a["input"], grad_output=a["grad_output"])
    p = ConvParams.build(fname, nd, a["input"].shape,
                         _shape(fname, "weight_size", weight_size, nd), stride=stride,
                         padding=padding, dilation=dilation, groups=groups, dtype=dtype)
    _check_grad_output(p, a["grad_output"])
    alg = only_algorithm("conv_grad_weight", backend, fname)
    return wrap(alg.run(a["input"], a["grad_output"], p), kind)


def conv1d_input(input_size, weight, grad_output, stride=1, padding=0, dilation=1,
                 groups=1, *, algo="auto", backend=None, workspace_limit=None):
    """Gradient of conv1d with respect to its input (shape ``input_size``)."""
    return _input("conv1d_input", 1, input_size, weight, grad_output, stride, padding,
                  dilation, groups, algo, backend, workspace_limit)


def conv2d_input(input_size, weight, grad_output, stride=1, padding=0, dilation=1,
                 groups=1, *, algo="auto", backend=None, workspace_limit=None):
    """Gradient of conv2d with respect to its input, as ``torch.nn.grad.conv2d_input``."""
    return _input("conv2d_input", 2, input_size, weight, grad_output, stride, padding,
                  dilation, groups, algo, backend, workspace_limit)


def conv3d_input(input_size, weight, grad_output, stride=1, padding=0, dilation=1,
                 groups=1, *, algo="auto", backend=None, workspace_limit=None):
    """Gradient of conv3d with respect to its input (shape ``input_size``)."""
    return _input("conv3d_input", 3, input_size, weight, grad_output, stride, padding,
                  dilation, groups, algo, backend, workspace_limit)


def conv1d_weight(input, weight_size, grad_output, stride=1, padding=0, dilation=1,
                  groups=1, *, backend=None):
    """Gradient of conv1d with respect to its weight (shape ``weight_size``)."""
    return _weight("conv1d_weight", 1, input, weight_size, grad_output, stride, padding,
                   dilation, groups, backend)


def conv2d_weight(input, weight_size, grad_output, stride=1, padding=0, dilation=1,
                  groups=1, *, backend=None):
    """Gradient of conv2d with respect to its weight, as ``torch.nn.grad.conv2d_weight``;
    deterministic (fixed reduction order, no atomics)."""
    return _weight("conv2d_weight", 2, input, weight_size, grad_output, stride, padding,
                   dilation, groups, backend)


def conv3d_weight(input, weight_size, grad_output, stride=1, padding=0, dilation=1,
                  groups=1, *, backend=None):
    """Gradient of conv3d with respect to its weight (shape ``weight_size``)."""
    return _weight("conv3d_weight", 3, input, weight_size, grad_output, stride, padding,
                   dilation, groups, backend)
