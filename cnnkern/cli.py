"""``python -m cnnkern`` / ``cnnkern``: compare the algorithms on seed-network layers.

``demo`` runs every algorithm that can run each chosen layer on this machine's
backend, checks it against the float64 reference, times it (median of ``--repeat``
runs after one warm-up) and prints a table with the algorithm ``auto`` picks.
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time

import numpy as np

from . import dispatch, registry
from .arrays import NUMPY, default_backend
from .functional import run_conv
from .params import ConvParams
from .suites import SUITES


def _select_layers(spec: str):
    chosen = []
    for item in spec.split(","):
        suite, _, name = item.strip().partition("/")
        if suite not in SUITES:
            raise SystemExit(f"cnnkern demo: unknown suite {suite!r}; expected one of "
                             f"{', '.join(SUITES)}")
        found = [layer for layer in SUITES[suite] if not name or layer.name == name]
        if not found:
            raise SystemExit(f"cnnkern demo: suite {suite!r} has no layer {name!r}; it has "
                             f"{', '.join(layer.name for layer in SUITES[suite])}")
        chosen += [(suite, layer) for layer in found]
    return chosen


def _time(fn, repeat):
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def demo(args) -> int:
    backend = args.backend or default_backend(NUMPY)
    dtype = np.dtype(args.dtype)
    rng = np.random.default_rng(args.seed)
    header = f"{'layer':<26}{'algorithm':<20}{'time ms':>10}{'GFLOP/s':>9}" \
             f"{'rel err':>10}{'x best':>8}  auto"
    print(f"cnnkern demo: backend {backend}, dtype {dtype.name}, batch {args.batch}, "
          f"median of {args.repeat} runs")
    print(header)
    print("-" * len(header))
    for suite, layer in _select_layers(args.layers):
        xs, ws = layer.shapes(args.batch)
        x = rng.standard_normal(xs).astype(dtype)
        w = rng.standard_normal(ws).astype(dtype)
        p = ConvParams.build("demo", layer.ndim, xs, ws, dtype=dtype, **layer.kwargs())
        p64 = dataclasses.replace(p, dtype=np.dtype(np.float64))
        ref = run_conv(p64, x.astype(np.float64), w.astype(np.float64), None, "direct",
                       backend="numpy")
        pick = dispatch.select(p, backend, w)
        rows = []
        for alg in registry.algorithms("conv", backend):
            if alg.check(p, w) is not None:
                continue
            if args.algos and alg.name not in args.algos.split(","):
                continue
            y = alg.run(x, w, None, p)
            err = float(np.linalg.norm(y.astype(np.float64) - ref) / np.linalg.norm(ref))
            t = _time(lambda a=alg: a.run(x, w, None, p), args.repeat)
            rows.append((alg.name, t, err))
        best = min(t for _, t, _ in rows)
        for name, t, err in rows:
            print(f"{suite + '/' + layer.name:<26}{name:<20}{t * 1e3:>10.2f}"
                  f"{p.flops / t / 1e9:>9.2f}{err:>10.1e}{t / best:>8.2f}  "
                  f"{'<- auto' if name == pick else ''}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="cnnkern", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="compare the algorithms on seed-network layers")
    d.add_argument("--layers", default="resnet50/res2_3x3",
                   help="comma-separated suite or suite/layer names (suites: "
                        f"{', '.join(SUITES)}); default resnet50/res2_3x3")
    d.add_argument("--batch", type=int, default=1)
    d.add_argument("--dtype", default="float32", choices=["float16", "float32", "float64"])
    d.add_argument("--repeat", type=int, default=5)
    d.add_argument("--algos", default="", help="comma-separated algorithm names")
    d.add_argument("--backend", default=None, help="numpy (default on this machine)")
    d.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.batch < 1 or args.repeat < 1:
        parser.error("--batch and --repeat must be >= 1")
    return demo(args)


if __name__ == "__main__":
    sys.exit(main())
