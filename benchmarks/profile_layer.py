"""Run one layer once with one CUDA algorithm, for profilers (ncu) to look at.

    ncu --section SpeedOfLight ... python3 benchmarks/profile_layer.py vgg16/conv4_2 implicit_gemm
"""
from __future__ import annotations

import sys

import numpy as np


def main(argv=None):
    import cupy as cp

    from cnnkern import registry
    from cnnkern.params import ConvParams
    from cnnkern.suites import SUITES
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2:
        raise SystemExit("usage: profile_layer.py SUITE/LAYER ALGO [BATCH]")
    (suite, name), algo = argv[0].split("/"), argv[1]
    batch = int(argv[2]) if len(argv) > 2 else 32
    layer = next(layer for layer in SUITES[suite] if layer.name == name)
    xs, ws = layer.shapes(batch)
    p = ConvParams.build("profile", layer.ndim, xs, ws, dtype=np.float32, **layer.kwargs())
    x = cp.random.standard_normal(xs, dtype=cp.float32)
    w = cp.random.standard_normal(ws, dtype=cp.float32)
    registry.get("conv", "cuda", algo).run(x, w, None, p)
    cp.cuda.Device().synchronize()


if __name__ == "__main__":
    main()
