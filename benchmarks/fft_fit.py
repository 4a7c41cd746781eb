"""The Numba backend's FFT rates (``dispatch.NUMBA_RATES``: ``fft_bytes``,
``fft_transforms``, ``fft_cgemm``, ``fft_call``): FFT timed on random shapes, and the
rates fitted to those timings and to FFT's in ``cnnkern bench`` results.

    PYTHONPATH=. python benchmarks/fft_fit.py measure SEED COUNT out.json
    PYTHONPATH=. python benchmarks/fft_fit.py fit [--within 20] FILE.json [...]

``measure`` draws COUNT float32 shapes where FFT can contend (1-3-D, kernels of 5 to
127 taps along an axis, dense or depthwise, batch 1-8, stride 1-2, under 1 GFLOP),
checks FFT against PyTorch in float64 (relative error under 1e-4) and times it as
``cnnkern bench`` does (0.15 s of quiet, one warm-up, the least of five calls).

``fit`` reads such files and ``cnnkern bench`` results. From the latter, only layers
where FFT ran within ``--within`` times the fastest algorithm enter: there it is a
contender, and dense layers hundreds of times slower by FFT would otherwise pull the
rates to fit what the rule never has to decide. Features: ``fft.features`` (spectrum
bytes, transforms, reduction FLOPs) and one call, fitted by non-negative least squares
on relative error (``nnls_fit.py``).
"""
import json
import sys
import time

import numpy as np

FEATURES = ("spectra", "transforms", "reduce")


def _params(xs, ws, stride, padding, groups):
    from cnnkern.params import ConvParams
    nd = len(xs) - 2
    return ConvParams.build(f"conv{nd}d", nd, tuple(xs), tuple(ws), dtype=np.float32,
                            stride=stride, padding=padding, groups=groups)


def _draw(rng):
    """(input shape, weight shape, stride, padding, groups) of one random layer."""
    nd = int(rng.choice([1, 2, 2, 3]))
    low, high = {1: (256, 40000), 2: (8, 160), 3: (6, 36)}[nd]
    size = tuple(int(n) for n in rng.integers(low, high, nd))
    k = min(int(rng.choice({1: [5, 15, 31, 63, 127], 2: [5, 7, 9, 15, 21, 31],
                            3: [5, 7]}[nd])), min(size))
    c = int(rng.choice([1, 3, 8, 16, 32, 64, 128]))
    depthwise = rng.random() < 0.3
    cout = c if depthwise else int(rng.choice([1, 8, 16, 32, 64]))
    groups = c if depthwise else 1
    xs = (int(rng.choice([1, 2, 8])), c) + size
    ws = (cout, c // groups) + (k,) * nd
    return xs, ws, int(rng.choice([1, 1, 2])), int(rng.choice([0, k // 2])), groups


def measure(seed, count, path):
    import torch
    import cnnkern as ck
    from cnnkern.backends.numpy import fft
    from cnnkern.bench.runner import COOL_DOWN_S
    from cnnkern.timing import cpu_times
    torch.set_num_threads(ck.get_num_threads())
    rng = np.random.default_rng(seed)
    rows = []
    while len(rows) < count:
        xs, ws, stride, padding, groups = _draw(rng)
        p = _params(xs, ws, stride, padding, groups)
        if p.flops > 1e9:
            continue
        x = rng.standard_normal(xs, dtype=np.float32)
        w = rng.standard_normal(ws, dtype=np.float32)
        conv = getattr(torch.nn.functional, f"conv{p.ndim}d")
        exact = conv(torch.from_numpy(x).double(), torch.from_numpy(w).double(),
                     stride=stride, padding=padding, groups=groups).numpy()
        fn = (lambda: fft.conv(x, w, None, p))
        err = np.linalg.norm(fn() - exact) / np.linalg.norm(exact)
        if not err < 1e-4:
            raise AssertionError(f"{xs} {ws}: rel err {err:.1e}")
        time.sleep(COOL_DOWN_S)
        times = cpu_times(fn, 5, warmup=1)
        rows.append(dict(input_shape=xs, weight_shape=ws, stride=stride, padding=padding,
                         groups=groups, seconds=min(times)))
        print(xs, ws, stride, padding, groups, f"{min(times) * 1e3:.3f} ms", flush=True)
    with open(path, "w") as fh:
        json.dump(dict(schema="cnnkern-fft-fit/1", threads=ck.get_num_threads(),
                       seed=seed, date=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                       layers=rows), fh, indent=1)


def rows(paths, within):
    """(name, features, seconds) of every timing in the files: each measured shape, and
    each bench layer FFT ran on within ``within`` times the fastest algorithm."""
    from benchmarks.nnls_fit import layer_params
    from cnnkern.backends.numpy import fft
    for path in paths:
        for layer in json.load(open(path))["layers"]:
            if "seconds" in layer:
                p = _params(layer["input_shape"], layer["weight_shape"], layer["stride"],
                            layer["padding"], layer["groups"])
                name = f"{tuple(layer['input_shape'])} k{layer['weight_shape'][2]}"
                seconds = layer["seconds"]
            else:
                done = [a for a in layer["algorithms"] if a["status"] == "ok"]
                run = next((a for a in done if a["name"] == "fft"), None)
                if run is None or run["ms"] > within * min(a["ms"] for a in done):
                    continue
                p = layer_params(layer)
                name = f"{layer['id']} b{layer['input_shape'][0]}"
                seconds = run["ms"] * 1e-3
            f = fft.features(p)
            yield name, [float(f[k]) for k in FEATURES] + [1.0], seconds


def fit(args):
    from benchmarks.nnls_fit import fit_rates
    within = 20.0
    if args[:1] == ["--within"]:
        within, args = float(args[1]), args[2:]
    names, a, t = zip(*rows(args, within))
    fit_rates(names, a, t, ["fft_bytes", "fft_transforms", "fft_cgemm", "fft_call"],
              "fft_call")


if __name__ == "__main__":
    if sys.argv[1] == "measure":
        measure(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    else:
        fit(sys.argv[2:])
