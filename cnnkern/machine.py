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
def _gpu_name(device_id: int) -> str:
    import cupy as cp
    props = cp.cuda.runtime.getDeviceProperties(device_id)
    name = props["name"]
    name = name.decode() if isinstance(name, bytes) else name
    return f"{name} (sm_{cp.cuda.Device(device_id).compute_capability})"


def device_name(backend: str) -> str:
    """The device a backend's calls run on now, as the autotune cache keys it."""
    if backend == "cuda":
        import cupy as cp
        return _gpu_name(cp.cuda.Device().id)
    return f"{cpu_name()} ({cpu_threads()} threads)"
