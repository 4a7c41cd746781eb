"""A 1x1 layer (im2col: NumPy's BLAS) and a depthwise 3x3 layer (Numba) called in
turn, as in a MobileNetV2 block, against each called alone: how much OpenBLAS's idle
worker, spinning after every matmul, costs the Numba kernel that follows.

    PYTHONPATH=. python benchmarks/cpu_blas_spin.py [batch] [pairs]
    OPENBLAS_THREAD_TIMEOUT=4 PYTHONPATH=. python benchmarks/cpu_blas_spin.py

Prints the median time of each call alone and in alternation (ms).
"""
import os
import sys
import time

import numpy as np

import cnnkern as ck


def main(batch=8, pairs=100):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 384, 14, 14), dtype=np.float32)
    w = rng.standard_normal((384, 1, 3, 3), dtype=np.float32)
    xp = rng.standard_normal((batch, 64, 14, 14), dtype=np.float32)
    wp = rng.standard_normal((384, 64, 1, 1), dtype=np.float32)
    calls = {"depthwise": lambda: ck.conv2d(x, w, padding=1, groups=384),
             "1x1": lambda: ck.conv2d(xp, wp)}
    times = {}
    for name, fn in calls.items():
        fn()
        fn()
        times[name] = []
        for _ in range(pairs):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    alternating = {name: [] for name in calls}
    for _ in range(pairs):
        for name in ("1x1", "depthwise"):
            t0 = time.perf_counter()
            calls[name]()
            alternating[name].append(time.perf_counter() - t0)
    timeout = os.environ.get("OPENBLAS_THREAD_TIMEOUT")
    print(f"batch {batch}, OPENBLAS_THREAD_TIMEOUT={timeout}")
    for name in calls:
        print(f"  {name:9s} alone {np.median(times[name]) * 1e3:.3f} ms, in turn "
              f"{np.median(alternating[name]) * 1e3:.3f} ms")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
