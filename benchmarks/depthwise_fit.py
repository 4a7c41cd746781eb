"""The Numba ``depthwise`` algorithm's kernels timed on the suites' 2-D depthwise
layers, and the rates of ``dispatch.NUMBA_RATES`` of the plane kernel ("phase_*"),
the flat-row kernel ("flat_*") or the sliding-window kernel ("slide_*") fitted to them.

    PYTHONPATH=. python benchmarks/depthwise_fit.py measure 1 out_b1.json
    PYTHONPATH=. python benchmarks/depthwise_fit.py measure 8 out_b8.json
    PYTHONPATH=. python benchmarks/depthwise_fit.py fit planes|flat|slide out_b1.json out_b8.json

``measure <batch>`` runs every kernel that can take each layer (``planes``; ``rows``
or ``taps``; ``blocks`` where ``depthwise_blocks.applies``; ``flat`` where
``depthwise_flat.applies``; ``slide`` where ``depthwise_slide.applies``), checks it
against
PyTorch in float64 (relative error under 1e-4) and times the kernels in turn, back to
back after two warm-up calls: the median of up to 15 calls within 1.5 s, in three
rounds, keeping each kernel's lowest median (the machine's noise moves a median by
up to 2x between runs). ``fit`` solves non-negative least squares on relative error
for the kernel's rates (``dispatch.planes_features``, ``depthwise_flat.features``,
``depthwise_slide.features``),
prints them with the
model's ratio to each measured time, then the kernel the model picks with those rates
against the fastest measured.
"""
import json
import sys
import time
from unittest import mock

import numpy as np

#: Per kernel: its features (the estimate's amounts) and the rates they fit, in order.
FEATURES = {
    "planes": (("fill", "copy", "taps", "passes", "loops", "call"),
               ("phase_fill", "phase_copy", "phase_tap", "phase_pass", "phase_loop",
                "phase_call")),
    "flat": (("taps", "copy", "loops", "call"),
             ("flat_tap", "flat_copy", "flat_loop", "flat_call")),
    "slide": (("steps", "copy", "loops", "call"),
              ("slide_step", "slide_copy", "slide_loop", "slide_call")),
}


def _features(kernel, p):
    from cnnkern import dispatch
    from cnnkern.backends.numba import depthwise_flat, depthwise_slide
    if kernel == "flat":
        return depthwise_flat.features(p, 4)
    if kernel == "slide":
        return depthwise_slide.features(p)
    return dispatch.planes_features(p, 4)


def _median_s(fn, budget=1.5, reps=15):
    from cnnkern.timing import cpu_times
    fn()
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    return float(np.median(cpu_times(fn, max(1, min(reps, int(budget / first))), 0)))


def _layers(batch):
    from cnnkern.params import ConvParams
    from cnnkern.suites import SUITES
    for suite, layers in SUITES.items():
        for spec in layers:
            xs, ws = spec.shapes(batch)
            p = ConvParams.build("conv", spec.ndim, xs, ws, dtype=np.float32,
                                 **spec.kwargs())
            if p.is_depthwise and p.ndim == 2:      # long1d's are FFT's (3-10x)
                yield f"{suite}/{spec.name}", spec, p


def _kernels(p):
    from cnnkern.backends.numba.depthwise import uses_row_kernel
    from cnnkern.backends.numba import depthwise_flat, depthwise_slide
    from cnnkern.backends.numba.depthwise_blocks import applies
    names = ["planes", "rows" if uses_row_kernel(p) else "taps"]
    return names + (["blocks"] if names[1] == "taps" and applies(p) else []) + \
        (["flat"] if depthwise_flat.applies(p) else []) + \
        (["slide"] if depthwise_slide.applies(p) else [])


def measure(batch, path):
    import torch
    import cnnkern as ck
    from cnnkern.backends.numba import depthwise
    torch.set_num_threads(ck.get_num_threads())
    conv = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d}
    rng = np.random.default_rng(0)
    rows = []
    for ref, spec, p in _layers(batch):
        x = rng.standard_normal(p.input_shape, dtype=np.float32)
        w = rng.standard_normal(p.weight_shape, dtype=np.float32)
        exact = conv[p.ndim](torch.from_numpy(x).double(), torch.from_numpy(w).double(),
                             **spec.kwargs()).numpy()
        fns = {}
        for name in _kernels(p):
            def fn(name=name):
                with mock.patch.object(depthwise, "kernel_for", lambda _p: name):
                    return depthwise.depthwise(x, w, None, p)
            err = np.linalg.norm(fn() - exact) / np.linalg.norm(exact)
            if not err < 1e-4:
                raise AssertionError(f"{ref} {name}: rel err {err:.1e}")
            fns[name] = fn
        seconds = {name: min(_median_s(fn) for _ in range(3)) for name, fn in fns.items()}
        rows.append(dict(id=ref, batch=batch, seconds=seconds))
        print(ref, {k: f"{v * 1e3:.3f} ms" for k, v in seconds.items()}, flush=True)
    with open(path, "w") as fh:
        json.dump(dict(schema="cnnkern-depthwise-fit/1", threads=ck.get_num_threads(),
                       date=time.strftime("%Y-%m-%dT%H:%M:%S%z"), layers=rows), fh,
                  indent=1)


def fit(kernel, paths):
    from cnnkern import dispatch
    from cnnkern.backends.numba import depthwise
    from benchmarks.nnls_fit import fit_rates
    features, rate_names = FEATURES[kernel]
    names, a, t, rows = [], [], [], []
    for path in paths:
        with open(path) as fh:
            data = json.load(fh)
        batch = data["layers"][0]["batch"]
        params = {ref: p for ref, _, p in _layers(batch)}
        for row in data["layers"]:
            p = params[row["id"]]
            rows.append((f"{row['id']} b{batch}", p, row["seconds"]))
            if kernel not in row["seconds"]:
                continue
            f = _features(kernel, p)
            names.append(rows[-1][0])
            a.append([f[k] for k in features])
            t.append(row["seconds"][kernel])
    coef = fit_rates(names, a, t, features, "call")
    rates = {name: (1 / c if c else float("inf")) for name, c in
             zip(rate_names[:-1], coef[:-1])}
    rates[rate_names[-1]] = coef[-1]
    print("picks with these rates (kernel run / fastest, time ratio):")
    with mock.patch.dict(dispatch.NUMBA_RATES, rates):
        for name, p, seconds in rows:
            dispatch.depthwise_kernel_seconds.cache_clear()
            pick = depthwise.kernel_for(p)
            best = min(seconds, key=seconds.get)
            print(f"  {name:32s} {pick:6s} / {best:6s} {seconds[pick] / seconds[best]:.2f}")
    dispatch.depthwise_kernel_seconds.cache_clear()


if __name__ == "__main__":
    if sys.argv[1] == "measure":
        measure(int(sys.argv[2]), sys.argv[3])
    else:
        fit(sys.argv[2], sys.argv[3:])
