"""``tap_gemm`` timed on the suites' dense and grouped layers with more than one tap and
zero padding, and the Numba-backend rates of ``dispatch.NUMBA_RATES`` ("tap_*")
fitted to the timings.

    PYTHONPATH=. python benchmarks/tap_gemm_fit.py measure 1 3e9 out_b1.json
    PYTHONPATH=. python benchmarks/tap_gemm_fit.py measure 8 2.5e9 out_b8.json
    PYTHONPATH=. python benchmarks/tap_gemm_fit.py fit out_b1.json out_b8.json

``measure <batch> <max FLOP>`` skips layers above the FLOP bound (to keep batch 8
short), checks every result against PyTorch in float64 (relative error under 1e-4)
and times each layer as ``cnnkern bench`` does: 0.15 s of quiet, one warm-up, the
median of up to seven calls within 1.5 s. ``fit`` solves non-negative least squares
on relative error for the rates of ``tap_gemm.features`` and prints them with the
model's ratio to each measured time.
"""
import json
import sys
import time

import numpy as np

FEATURES = ("gemm", "weights", "cols", "adds", "steps")


def _median_s(fn, budget=1.5, reps=7):
    from cnnkern.bench.runner import COOL_DOWN_S
    from cnnkern.timing import cpu_times
    time.sleep(COOL_DOWN_S)
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    return float(np.median(cpu_times(fn, max(1, min(reps, int(budget / first))), 0)))


def _layers(batch, max_flops):
    from cnnkern.backends.numpy import tap_gemm
    from cnnkern.params import ConvParams
    from cnnkern.suites import SUITES
    for suite, layers in SUITES.items():
        for spec in layers:
            xs, ws = spec.shapes(batch)
            p = ConvParams.build("conv", spec.ndim, xs, ws, dtype=np.float32,
                                 **spec.kwargs())
            if tap_gemm.can_implement(p) is None and not p.is_depthwise and \
                    p.flops <= max_flops:
                yield f"{suite}/{spec.name}", spec, p


def measure(batch, max_flops, path):
    import torch
    import cnnkern as ck
    from cnnkern.backends.numpy import tap_gemm
    torch.set_num_threads(ck.get_num_threads())
    conv = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d}
    rng = np.random.default_rng(0)
    rows = []
    for ref, spec, p in _layers(batch, max_flops):
        x = rng.standard_normal(p.input_shape, dtype=np.float32)
        w = rng.standard_normal(p.weight_shape, dtype=np.float32)
        exact = conv[p.ndim](torch.from_numpy(x).double(), torch.from_numpy(w).double(),
                             **spec.kwargs()).numpy()
        fn = (lambda: tap_gemm.conv(x, w, None, p))
        err = np.linalg.norm(fn() - exact) / np.linalg.norm(exact)
        if not err < 1e-4:
            raise AssertionError(f"{ref}: rel err {err:.1e}")
        rows.append(dict(id=ref, batch=batch, seconds=_median_s(fn)))
        print(ref, f"{rows[-1]['seconds'] * 1e3:.3f} ms", flush=True)
    with open(path, "w") as fh:
        json.dump(dict(schema="cnnkern-tap-gemm-fit/1", threads=ck.get_num_threads(),
                       max_flops=max_flops, date=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                       layers=rows), fh, indent=1)


def fit(paths):
    from cnnkern.backends.numpy import tap_gemm
    from benchmarks.nnls_fit import fit_rates
    names, a, t = [], [], []
    for path in paths:
        with open(path) as fh:
            data = json.load(fh)
        batch = data["layers"][0]["batch"]
        params = {ref: p for ref, _, p in _layers(batch, data["max_flops"])}
        for row in data["layers"]:
            f = tap_gemm.features(params[row["id"]])
            names.append(f"{row['id']} b{batch}")
            a.append([f[k] for k in FEATURES])
            t.append(row["seconds"])
    fit_rates(names, a, t, FEATURES, "steps")

if __name__ == "__main__":
    if sys.argv[1] == "measure":
        measure(int(sys.argv[2]), float(sys.argv[3]), sys.argv[4])
    else:
        fit(sys.argv[2:])
