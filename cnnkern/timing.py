"""Median wall time of a call after warm-up: perf_counter on the CPU, CUDA events on
the GPU (recorded on the current stream, so only the GPU work is timed)."""
from __future__ import annotations

import statistics
import time


def cpu_times(fn, repeat: int, warmup: int = 1) -> list:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def gpu_times(fn, repeat: int, warmup: int = 3) -> list:
    import cupy as cp
    for _ in range(warmup):
        fn()
    stream = cp.cuda.get_current_stream()
    start, stop = cp.cuda.Event(), cp.cuda.Event()
    times = []
    for _ in range(repeat):
        start.record(stream)
        fn()
        stop.record(stream)
        stop.synchronize()
        times.append(cp.cuda.get_elapsed_time(start, stop) / 1e3)
    return times


def summarize(times: list) -> dict:
    """Milliseconds: the median (the figure every ratio uses) and the fastest run."""
    return dict(ms=statistics.median(times) * 1e3, ms_min=min(times) * 1e3, runs=len(times))
