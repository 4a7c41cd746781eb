"""PyTorch on the same arrays, the peer every ratio is taken against.

CPU: ``torch.nn.functional.conv{1,2,3}d`` (oneDNN) with ``torch.set_num_threads`` set
to the thread count cnnkern uses. GPU: cuDNN with ``cudnn.benchmark = True``, once
with ``allow_tf32 = False`` (exact float32, the target comparison) and once with
PyTorch's default (TF32 allowed). Padding that is not symmetric is applied with
``F.pad`` inside the timed call.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

from ..params import ConvParams

#: the peer the "vs torch" ratios use, per device kind
PRIMARY = {"cpu": "torch", "gpu": "cudnn"}


class Peer(NamedTuple):
    name: str
    label: str
    run: Callable


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _conv_call(p: ConvParams, xt, wt):
    import torch.nn.functional as F
    fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[p.ndim]
    symmetric = all(before == after for before, after in p.padding)
    pads = tuple(before for before, _ in p.padding)
    flat = [v for pair in reversed(p.padding) for v in pair]
    if p.padding_mode != "zeros":
        raise ValueError("the benchmark peer supports zero padding only")

    def call():
        if symmetric:
            return fn(xt, wt, None, p.stride, pads, p.dilation, p.groups)
        return fn(F.pad(xt, flat), wt, None, p.stride, 0, p.dilation, p.groups)
    return call


def torch_peers(device_kind: str, p: ConvParams, x, w, threads: int) -> list:
    """The PyTorch calls to compare against, on tensors sharing ``x``'s and ``w``'s
    memory (DLPack)."""
    import torch
    xt, wt = torch.from_dlpack(x), torch.from_dlpack(w)
    call = _conv_call(p, xt, wt)
    if device_kind == "cpu":
        torch.set_num_threads(threads)
        return [Peer("torch", f"torch {torch.__version__} CPU", call)]
    cudnn = torch.backends.cudnn
    cudnn.benchmark = True

    def exact():
        cudnn.allow_tf32 = False
        return call()

    def tf32():
        cudnn.allow_tf32 = True
        try:
            return call()
        finally:
            cudnn.allow_tf32 = False
    return [Peer("cudnn", f"cuDNN {cudnn.version()} exact", exact),
            Peer("cudnn_tf32", f"cuDNN {cudnn.version()} TF32", tf32)]


def to_numpy(y):
    """A peer's output on the host, for the reference check."""
    return y.detach().cpu().numpy()
