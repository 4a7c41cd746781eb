"""Both plans of the Numba Winograd, F2 and F4, timed on the suites' dense stride-1 3x3
layers, and the cost-model rates of ``dispatch.NUMBA_RATES`` fitted to the timings.

    PYTHONPATH=. python benchmarks/winograd_plans.py measure 1 out_b1.json
    PYTHONPATH=. python benchmarks/winograd_plans.py measure 8 out_b8.json
    PYTHONPATH=. python benchmarks/winograd_plans.py fit out_b1.json out_b8.json

``measure`` forces each plan in turn (``winograd.plan_for``), checks every result
against PyTorch in float64 (relative error under 1e-4), and times each contender as
``cnnkern bench`` does: 0.15 s of quiet, one warm-up, the median of ten calls.
``fit`` solves non-negative least squares on relative error for the rates of each
plan's terms (``winograd.plan_features``) and prints them, how far the model is from
the measured times, and how often it picks the faster plan.
"""
import json
import sys
import time

import numpy as np


def _median_ms(fn, reps=10):
    from cnnkern.bench.runner import COOL_DOWN_S
    from cnnkern.timing import cpu_times
    time.sleep(COOL_DOWN_S)
    return float(np.median(cpu_times(fn, reps))) * 1e3


def _layers(batch):
    from cnnkern.params import ConvParams
    from cnnkern.suites import SUITES
    for suite, layers in SUITES.items():
        for spec in layers:
            if spec.ndim != 2 or tuple(spec.kernel) != (3, 3):
                continue
            xs, ws = spec.shapes(batch)
            p = ConvParams.build("conv2d", 2, xs, ws, dtype=np.float32, **spec.kwargs())
            if p.stride == (1, 1) and p.dilation == (1, 1) and p.groups < p.in_channels:
                yield f"{suite}/{spec.name}", spec, p


def measure(batch, path):
    import torch
    import cnnkern as ck
    from cnnkern.backends.numba import winograd
    torch.set_num_threads(ck.get_num_threads())
    rng = np.random.default_rng(0)
    rows, forced = [], winograd.plan_for
    for ref, spec, p in _layers(batch):
        x = rng.standard_normal(p.input_shape, dtype=np.float32)
        w = rng.standard_normal(p.weight_shape, dtype=np.float32)
        xt, wt, kw = torch.from_numpy(x), torch.from_numpy(w), spec.kwargs()
        times = {"torch": _median_ms(lambda: torch.nn.functional.conv2d(xt, wt, **kw))}
        exact = torch.nn.functional.conv2d(xt.double(), wt.double(), **kw).numpy()
        try:
            for m in (2, 4):
                for plan in ("tiles", "channels"):
                    winograd.plan_for = (lambda p_, m_, plan=plan: plan)
                    fn = (lambda m=m: winograd.conv(x, w, None, p, m))
                    err = np.linalg.norm(fn() - exact) / np.linalg.norm(exact)
                    if not err < 1e-4:
                        raise AssertionError(f"{ref} F{m} {plan}: rel err {err:.1e}")
                    times[f"{plan}_f{m}"] = _median_ms(fn)
        finally:
            winograd.plan_for = forced
        rows.append(dict(id=ref, batch=batch, ms=times))
        print(ref, {k: round(v, 3) for k, v in times.items()}, flush=True)
    with open(path, "w") as fh:
        json.dump(dict(schema="cnnkern-winograd-plans/1", threads=ck.get_num_threads(),
                       date=time.strftime("%Y-%m-%dT%H:%M:%S%z"), layers=rows), fh,
                  indent=1)


def fit(paths):
    from scipy.optimize import nnls
    from cnnkern.backends.numba import winograd
    points = []
    for path in paths:
        with open(path) as fh:
            data = json.load(fh)
        params = {ref: p for ref, _, p in _layers(data["layers"][0]["batch"])}
        for row in data["layers"]:
            p = params[row["id"]]
            for m in (2, 4):
                for plan in ("tiles", "channels"):
                    points.append((row["id"], row["batch"], m, plan,
                                   winograd.plan_features(p, m, plan),
                                   row["ms"][f"{plan}_f{m}"] / 1e3))
    model = {}
    for plan in ("tiles", "channels"):
        pts = [q for q in points if q[3] == plan]
        names = [n for n in pts[0][4] if n != "call"]
        a = np.array([[q[4][n] for n in names] for q in pts])
        t = np.array([q[5] for q in pts])
        coef, _ = nnls(a / t[:, None], np.ones(len(t)))
        model[plan] = dict(zip(names, coef))
        ratio = a @ coef / t
        print(plan, {n: f"{1 / c:.3g}" if c else "no weight" for n, c in model[plan].items()},
              "model/measured", np.round(np.quantile(ratio, [0, 0.5, 1]), 2))
    picks, loss = 0, []
    for key in {q[:3] for q in points}:
        got = {q[3]: q for q in points if q[:3] == key}
        est = {pl: sum(c * got[pl][4][n] for n, c in model[pl].items()) for pl in got}
        fastest = min(got, key=lambda pl: got[pl][5])
        chosen = min(est, key=est.get)
        picks += chosen == fastest
        loss.append(got[chosen][5] / got[fastest][5])
    print(f"faster plan picked {picks}/{len(loss)}; time lost, geomean "
          f"{np.exp(np.mean(np.log(loss))):.3f}x, worst {max(loss):.2f}x")


if __name__ == "__main__":
    if sys.argv[1] == "measure":
        measure(int(sys.argv[2]), sys.argv[3])
    else:
        fit(sys.argv[2:])
