"""Choosing an algorithm: pure rules (``algo="auto"``), measurement (``"autotune"``),
and ``explain``.

``select`` is a pure function of the parameters (and, for ``separable``, the weight
values): it never runs a convolution. The rules are a cost model, documented in
``docs/dispatch.md``; ``algo="autotune"`` measures every candidate once per call
signature instead and remembers the fastest.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from math import log2, prod
from typing import Optional

from . import registry
from .params import ConvParams, fail

#: Throughputs of the NumPy backend's building blocks, in operations per second,
#: fitted to single-image float32 runs of the seed-network layers on the 2-core
#: CI-class machine (2026-11-22; method and pick rate in docs/dispatch.md).
RATES = {
    "gemm": 8.0e10,        # float32 BLAS FLOP/s (float64: half)
    "einsum": 2.0e10,      # float64 FLOP/s of the per-tap contractions of ``direct``
    "copy": 5.0e9,         # bytes/s of strided window copies (im2col columns)
    "fft": 5.0e9,          # "2.5 N log2 N" operations/s of batched scipy.fft transforms
    "cgemm": 2.0e10,       # complex FLOP/s of the per-frequency batched matmuls
    "elementwise": 1.0e9,  # multiply-adds/s of the separable passes
    "transform": 1.5e9,    # multiply-adds/s of the Winograd tile and filter transforms
}


#: The CUDA kernels' throughputs on the lent H100 (2026-11-22, batch-32 ResNet-50 and
#: VGG-16 layers, benchmarks/results/2026-11-22-h100-gpu-bench.json).
GPU_RATES = {
    "gemm": 1.5e13,        # FP32 FLOP/s of conv_gemm (implicit: 4-27 TFLOP/s, median ~11)
    "direct": 1.0e12,      # FLOP/s of the one-thread-per-output direct kernel
    "hbm": 2.5e12,         # bytes/s for writing and reading the im2col columns
}


def _fft_len(n: int) -> int:
    import scipy.fft
    return scipy.fft.next_fast_len(n, real=True)


def estimate_seconds(name: str, p: ConvParams, backend: str = "numpy") -> float:
    """The cost model behind ``algo="auto"``."""
    itemsize = 8 if p.dtype.name == "float64" else 4
    if backend == "cuda":
        return _estimate_gpu(name, p, itemsize)
    out_vol, in_vol = prod(p.output_size), prod(p.padded_size)
    if name == "direct":
        return p.flops / RATES["einsum"] + \
            p.kernel_volume * p.batch * p.in_channels * out_vol * 8 / RATES["copy"]
    if name == "im2col":
        cols = p.batch * p.in_channels * p.kernel_volume * out_vol * itemsize
        return p.flops / RATES["gemm"] * (itemsize / 4) + cols / RATES["copy"]
    if name == "fft":
        shape = [_fft_len(n) for n in p.padded_size]
        n_fft = prod(shape)
        bins = n_fft // shape[-1] * (shape[-1] // 2 + 1)
        transforms = p.batch * p.in_channels + p.out_channels * p.in_per_group + \
            p.batch * p.out_channels
        fft_ops = transforms * 2.5 * n_fft * log2(max(n_fft, 2))
        reduce_ops = 8 * p.batch * p.out_channels * p.in_per_group * bins
        return fft_ops / RATES["fft"] + reduce_ops / RATES["cgemm"] * (itemsize / 4)
    if name.startswith("winograd_"):
        m, r = int(name.split("_")[1][1]), 3
        alpha = m + r - 1
        tiles = prod(-(-n // m) for n in p.output_size)
        pts = alpha ** p.ndim
        gemm = 2 * p.batch * tiles * pts * p.out_channels * p.in_per_group
        data = p.batch * tiles * pts * (p.in_channels + p.out_channels) * alpha * p.ndim
        filters = p.out_channels * p.in_per_group * pts * r * p.ndim
        return gemm / RATES["gemm"] * (itemsize / 4) + (data + filters) / RATES["transform"]
    if name == "separable":
        passes = p.batch * p.out_channels * p.in_per_group * sum(
            prod(p.padded_size[:i]) * prod(p.output_size[i:]) * p.kernel_size[i]
            for i in range(p.ndim))
        return passes / RATES["elementwise"]
    return float(p.flops) / RATES["einsum"]


def _estimate_gpu(name: str, p: ConvParams, itemsize: int) -> float:
    scale = 2.0 if itemsize == 8 else 1.0          # FP64 runs at half the FP32 rate
    if name == "direct":
        return p.flops / GPU_RATES["direct"] * scale
    gemm = p.flops / GPU_RATES["gemm"] * scale
    if name == "im2col":
        cols = p.batch * p.in_channels * p.kernel_volume * prod(p.output_size) * itemsize
        return gemm + 2 * cols / GPU_RATES["hbm"]
    return gemm


@dataclass
class Candidate:
    name: str
    reason: Optional[str]           # why it cannot run, None if it can
    estimate_s: Optional[float] = None
    workspace_bytes: Optional[int] = None
    measured_s: Optional[float] = None


@dataclass
class Explanation:
    """What ``explain`` returns: every candidate, the choice, and why."""

    params: ConvParams
    backend: str
    candidates: list = field(default_factory=list)
    choice: Optional[str] = None
    why: str = ""

    def __str__(self) -> str:
        lines = [self.params.describe(), f"backend: {self.backend}", "candidates:"]
        for c in self.candidates:
            if c.reason is not None:
                lines.append(f"  {c.name:<20} cannot run: {c.reason}")
                continue
            text = f"  {c.name:<20} estimated {c.estimate_s * 1e3:10.3f} ms, " \
                   f"workspace {c.workspace_bytes / 2**20:8.2f} MiB"
            if c.measured_s is not None:
                text += f", measured {c.measured_s * 1e3:.3f} ms"
            lines.append(text)
        lines.append(f"choice: {self.choice} ({self.why})")
        return "\n".join(lines)


def candidates(p: ConvParams, backend: str, weight=None) -> list[Candidate]:
    out = []
    for alg in registry.algorithms("conv", backend):
        reason = alg.check(p, weight)
        cand = Candidate(alg.name, reason)
        if reason is None:
            cand.estimate_s = estimate_seconds(alg.name, p, backend)
            cand.workspace_bytes = alg.workspace_bytes(p)
        out.append(cand)
    return out


def _choose(cands: list[Candidate]) -> tuple[Optional[str], str]:
    able = [c for c in cands if c.reason is None]
    if not able:
        return None, "no registered algorithm can run this call"
    # ``direct`` is the oracle, not a contender, unless nothing else can run
    contenders = [c for c in able if c.name != "direct"] or able
    best = min(contenders, key=lambda c: c.estimate_s)
    runner_up = sorted((c for c in contenders if c is not best), key=lambda c: c.estimate_s)
    why = f"lowest estimated time ({best.estimate_s * 1e3:.3f} ms)"
    if runner_up:
        why += f"; next {runner_up[0].name} at {runner_up[0].estimate_s * 1e3:.3f} ms"
    return best.name, why


def select(p: ConvParams, backend: str, weight=None) -> str:
    """The algorithm ``algo="auto"`` runs for this call: pure, no measurement."""
    name, why = _choose(candidates(p, backend, weight))
    if name is None:
        fail(p.fname, f"{why} on backend {backend!r}")
    return name


def explain(p: ConvParams, backend: str, weight=None) -> Explanation:
    cands = candidates(p, backend, weight)
    tuned = _TUNED.get(_tune_key(p, backend))
    for c in cands:
        if tuned and c.name in tuned[1]:
            c.measured_s = tuned[1][c.name]
    if tuned:
        choice, why = tuned[0], "measured fastest by autotune"
    else:
        choice, why = _choose(cands)
    return Explanation(p, backend, cands, choice, why)


# ---- autotune: measure once per call signature, keep the fastest ------------------

_TUNED: dict = {}
_TUNE_LOCK = threading.Lock()


def _tune_key(p: ConvParams, backend: str):
    return (backend, p.dtype.name, p.input_shape, p.weight_shape, p.stride, p.padding,
            p.padding_mode, p.dilation, p.groups)


def autotune(p: ConvParams, backend: str, x, weight, bias, repeat: int = 3) -> str:
    """Time every algorithm that can run the call (best of ``repeat``), remember the
    fastest for this signature; an algorithm that raises scores infinity."""
    key = _tune_key(p, backend)
    with _TUNE_LOCK:
        if key in _TUNED:
            return _TUNED[key][0]
    times = {}
    for alg in registry.algorithms("conv", backend):
        if alg.check(p, weight) is not None:
            continue
        best = float("inf")
        for _ in range(repeat):
            try:
                t0 = time.perf_counter()
                alg.run(x, weight, bias, p)
                best = min(best, time.perf_counter() - t0)
            except (MemoryError, RuntimeError, ValueError):
                best = float("inf")
                break
        times[alg.name] = best
    if not times:
        fail(p.fname, f"no registered algorithm can run this call on backend {backend!r}")
    choice = min(times, key=times.get)
    with _TUNE_LOCK:
        _TUNED.setdefault(key, (choice, times))
        return _TUNED[key][0]
