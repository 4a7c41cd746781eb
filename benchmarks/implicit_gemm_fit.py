"""Fit the Numba backend's implicit_gemm rates (``dispatch.NUMBA_RATES["igemm_*"]``) to
its times in ``cnnkern bench`` results.

    PYTHONPATH=. python benchmarks/implicit_gemm_fit.py RESULTS.json [RESULTS.json ...]
    PYTHONPATH=. python benchmarks/implicit_gemm_fit.py --refit fma32 RESULTS.json

Each layer implicit_gemm ran on gives one timing (depthwise layers left out: one lane
in 32 does work there, 10-100x slower than the depthwise kernels, so their fit does
not matter and would pull the rest); its features are the ones the
estimate charges (``implicit_gemm.features``: FLOPs run over the busy share of the
threads, packed weight bytes, padded input bytes, output bytes) and one call. Fitted
by non-negative least squares on relative error (``nnls_fit.py``). The thread count
is the one this process sees, which must be the one the results were taken with.

``--refit NAME`` fits the one rate ``igemm_NAME`` on the layers that charge it, the
other rates held at ``dispatch.NUMBA_RATES``' values (least squares on relative
error, closed form): for a kernel change that touches one term only.
"""
import json
import sys

from benchmarks.nnls_fit import fit_rates, layer_params
from cnnkern.backends.numba.implicit_gemm import features

FEATURES = ["fma", "fma32", "fma_dilated", "pack", "pad", "out"]


def rows(paths):
    """(name, features, seconds) for every layer implicit_gemm ran on in the results."""
    for path in paths:
        doc = json.load(open(path))
        for layer in doc["layers"]:
            run = next((a for a in layer["algorithms"] if a["name"] == "implicit_gemm"
                        and a["status"] == "ok"), None)
            if run is None:
                continue
            p = layer_params(layer)
            if p.groups == p.in_channels > 1:
                continue            # depthwise: 1 of 32 lanes busy, never a contender
            f = features(p)
            yield (f"{layer['id']} b{layer['input_shape'][0]}",
                   [float(f[k]) for k in FEATURES] + [1.0], run["ms"] * 1e-3)


def main(paths):
    names, a, t = zip(*rows(paths))
    fit_rates(names, a, t, FEATURES + ["call"], "call")


def refit(name, paths):
    """The rate of feature ``name`` alone, the others held."""
    import numpy as np
    from cnnkern.dispatch import NUMBA_RATES
    col = FEATURES.index(name)
    layers, amount, other, t = [], [], [], []
    for layer, f, seconds in rows(paths):
        if f[col]:
            layers.append(layer)
            amount.append(f[col])
            other.append(NUMBA_RATES["igemm_call"] + sum(
                v / NUMBA_RATES[f"igemm_{k}"] for k, v in zip(FEATURES, f) if k != name))
            t.append(seconds)
    amount, other, t = (np.array(v) for v in (amount, other, t))
    inverse = np.sum(amount / t * (1 - other / t)) / np.sum((amount / t) ** 2)
    print(f"igemm_{name}: {1 / inverse:.3g}/s on {len(t)} layers")
    for layer, ratio, s in zip(layers, (amount * inverse + other) / t, t):
        print(f"  {layer:34s} {s * 1e3:8.3f} ms  model/measured {ratio:.2f}")


if __name__ == "__main__":
    if sys.argv[1] == "--refit":
        refit(sys.argv[2], sys.argv[3:])
    else:
        main(sys.argv[1:])
