"""What this process runs on: CPU model and threads, the current GPU's name."""
from __future__ import annotations

import os
import platform
from functools import lru_cache


@lru_cache(maxsize=None)
def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_threads() -> int:
    """The CPUs this process may run on (its affinity), which BLAS and Numba use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


@lru_cache(maxsize=None)
def gpu_name(device_id: int) -> str:
    """The board's name, e.g. "NVIDIA H100 80GB HBM3"."""
    import cupy as cp
    name = cp.cuda.runtime.getDeviceProperties(device_id)["name"]
    return name.decode() if isinstance(name, bytes) else name


def device_name(backend: str) -> str:
    """The device a backend's calls run on now, as the autotune cache keys it."""
    if backend == "cuda":
        import cupy as cp
        dev = cp.cuda.Device()
        return f"{gpu_name(dev.id)} (sm_{dev.compute_capability})"
    return f"{cpu_name()} ({cpu_threads()} threads)"
