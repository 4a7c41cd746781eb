"""Measured accuracy of every registered CPU algorithm against the float64 reference.

Draws random convolution calls (every dimension count, groups, stride, dilation,
padding; rank-1 weights for ``separable``), runs each algorithm that can run the call
in float16, float32 and float64, and reports the largest and the median relative error
``||y - ref|| / ||ref||`` next to the tolerance the algorithm states. The reference is
``direct`` in float64 on the same (rounded) inputs.

    python benchmarks/accuracy.py [--cases 300] [--json PATH]
"""
from __future__ import annotations

import argparse
import json
import statistics

import numpy as np

from cnnkern import registry
from cnnkern.functional import run_conv
from cnnkern.params import ConvParams


def random_call(rng, rank1):
    nd = int(rng.integers(1, 4))
    if rank1:
        nd = max(nd, 2)
    g = int(rng.integers(1, 4))
    cig, cog = int(rng.integers(1, 9)), int(rng.integers(1, 9))
    k = tuple(int(rng.choice([1, 2, 3, 3, 3, 5])) for _ in range(nd))
    s = tuple(int(rng.choice([1, 1, 1, 2, 3])) for _ in range(nd))
    d = tuple(int(rng.choice([1, 1, 1, 2])) for _ in range(nd))
    size = tuple(int(rng.integers(8, 33 if nd < 3 else 12)) for _ in range(nd))
    pad = tuple((int(rng.integers(0, 3)), int(rng.integers(0, 3))) for _ in range(nd))
    x = rng.standard_normal((2, cig * g) + size)
    if rank1:
        w = np.ones((cog * g, cig) + k)
        for ax in range(nd):
            shape = [cog * g, cig] + [1] * nd
            shape[2 + ax] = k[ax]
            w = w * rng.standard_normal(shape)
    else:
        w = rng.standard_normal((cog * g, cig) + k)
    return x, w, dict(stride=s, padding=pad, dilation=d, groups=g)


def measure(cases: int, seed: int):
    rng = np.random.default_rng(seed)
    errors: dict = {}
    for i in range(cases):
        x, w, kw = random_call(rng, rank1=(i % 3 == 0))
        for dt in ("float16", "float32", "float64"):
            xd, wd = x.astype(dt), w.astype(dt)
            p = ConvParams.build("accuracy", w.ndim - 2, x.shape, w.shape, dtype=dt, **kw)
            p64 = ConvParams.build("accuracy", w.ndim - 2, x.shape, w.shape,
                                   dtype=np.float64, **kw)
            ref = run_conv(p64, xd.astype(np.float64), wd.astype(np.float64), None,
                           "direct")
            for alg in registry.algorithms("conv", "numpy"):
                if alg.check(p, wd) is not None:
                    continue
                y = alg.run(xd, wd, None, p).astype(np.float64)
                err = float(np.linalg.norm(y - ref) / np.linalg.norm(ref))
                errors.setdefault((alg.name, dt), []).append(err)
    rows = []
    for (name, dt), errs in sorted(errors.items()):
        tol = registry.get("conv", "numpy", name).tolerance[dt]
        rows.append(dict(algorithm=name, dtype=dt, cases=len(errs), max=max(errs),
                         median=statistics.median(errs), tolerance=tol))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=300)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    rows = measure(args.cases, args.seed)
    print(f"{'algorithm':<20}{'dtype':<9}{'cases':>6}{'median':>11}{'max':>11}{'stated':>11}")
    for r in rows:
        print(f"{r['algorithm']:<20}{r['dtype']:<9}{r['cases']:>6}{r['median']:>11.2e}"
              f"{r['max']:>11.2e}{r['tolerance']:>11.0e}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(dict(cases=args.cases, seed=args.seed, rows=rows), fh, indent=2)


if __name__ == "__main__":
    main()
