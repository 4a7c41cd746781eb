"""Which machine a benchmark runs on, and its roofs (peak FLOP/s and memory bandwidth).

GPU roofs come from the vendor's datasheet for the boards we know (non-tensor-core
FP32/FP64 and HBM bandwidth); for any other GPU, and always on the CPU, they are
measured here: the best of a few large GEMMs (BLAS or cuBLAS) and of a large copy.
The source of the figures goes into the results file.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from .. import registry, timing
from ..arrays import NUMPY, default_backend
from ..machine import cpu_name, cpu_threads, gpu_name

#: name substring -> (FP32 FLOP/s, FP64 FLOP/s, bytes/s), datasheet figures
GPU_DATASHEETS = {
    "H100 PCIe": (51.2e12, 25.6e12, 2.0e12),
    "H100 NVL": (60.0e12, 30.0e12, 3.9e12),
    "H100": (66.9e12, 33.5e12, 3.35e12),       # SXM5 (HBM3)
    "H200": (66.9e12, 33.5e12, 4.8e12),
    "A100": (19.5e12, 9.7e12, 2.0e12),         # SXM4 80GB
}


@dataclass
class Device:
    kind: str                    # "cpu" or "gpu"
    name: str
    backend: str                 # the cnnkern backend the run uses
    threads: int
    cores: Optional[int] = None
    sm_count: Optional[int] = None
    peak_gflops: float = 0.0
    peak_gbps: float = 0.0
    roof_source: str = ""

    def as_json(self) -> dict:
        return asdict(self)


def gpu_unavailable_reason() -> Optional[str]:
    return registry.load_backend("cuda")


def pick(requested: str, dtype: np.dtype) -> Device:
    """``requested`` is "auto" (GPU if usable, else CPU), "cpu" or "gpu"."""
    if requested not in ("auto", "cpu", "gpu"):
        raise ValueError(f"device={requested!r} is unknown; expected 'auto', 'cpu' or 'gpu'")
    if requested == "gpu" or (requested == "auto" and gpu_unavailable_reason() is None):
        reason = gpu_unavailable_reason()
        if reason is not None:
            raise ValueError(f"device='gpu' cannot be used: {reason}")
        return _gpu(dtype)
    return _cpu(dtype)


def measure_roofs(xp, dtype, clock=timing.cpu_times, n: int = 2048, copy_mib: int = 256):
    """(FLOP/s of an n x n x n GEMM, bytes/s of a copy) with array module ``xp``, each
    the best of 5 runs of ``clock`` (``timing.gpu_times`` for CuPy)."""
    dtype = np.dtype(np.float32 if dtype == np.float16 else dtype)
    a = xp.ones((n, n), dtype=dtype)
    c = xp.empty((n, n), dtype=dtype)
    gemm = min(clock(lambda: xp.matmul(a, a, out=c), 5))
    src = xp.ones(copy_mib * 2**20 // 4, dtype=np.float32)
    dst = xp.empty_like(src)
    copy = min(clock(lambda: xp.copyto(dst, src), 5))
    return 2.0 * n ** 3 / gemm, 2.0 * src.nbytes / copy


def _cpu(dtype) -> Device:
    flops, bw = measure_roofs(np, dtype)
    return Device("cpu", cpu_name(), default_backend(NUMPY), cpu_threads(),
                  cores=os.cpu_count(), peak_gflops=flops / 1e9, peak_gbps=bw / 1e9,
                  roof_source=f"measured: best of 5 NumPy {np.dtype(dtype).name} 2048^3 "
                              f"matmuls and 256 MiB copies")


def _gpu(dtype) -> Device:
    import cupy as cp
    dev = cp.cuda.Device()
    name = gpu_name(dev.id)
    for key, (fp32, fp64, bw) in GPU_DATASHEETS.items():
        if key in name:
            flops = fp64 if np.dtype(dtype) == np.float64 else fp32
            source = f"datasheet ({key}: FP32 {fp32 / 1e12:.1f} / FP64 {fp64 / 1e12:.1f} " \
                     f"TFLOP/s without tensor cores, {bw / 1e12:.2f} TB/s)"
            break
    else:
        flops, bw = measure_roofs(cp, dtype, timing.gpu_times, n=8192, copy_mib=1024)
        source = "measured: best of 5 cuBLAS 8192^3 GEMMs and 1 GiB copies"
    sm_count = cp.cuda.runtime.getDeviceProperties(dev.id)["multiProcessorCount"]
    return Device("gpu", name, "cuda", threads=1, sm_count=sm_count,
                  peak_gflops=flops / 1e9, peak_gbps=bw / 1e9, roof_source=source)
