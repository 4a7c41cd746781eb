"""Fit the Numba backend's implicit_gemm rates (``dispatch.NUMBA_RATES["igemm_*"]``) to
its times in ``cnnkern bench`` results.

    PYTHONPATH=. python benchmarks/implicit_gemm_fit.py RESULTS.json [RESULTS.json ...]

Each layer implicit_gemm ran on gives one timing (depthwise layers left out: one lane
in 32 does work there, 10-100x slower than the depthwise kernels, so their fit does
not matter and would pull the rest); its features are the ones the
estimate charges (``implicit_gemm.features``: FLOPs run over the busy share of the
threads, packed weight bytes, padded input bytes, output bytes) and one call. Fitted
by non-negative least squares on relative error (``nnls_fit.py``). The thread count
is the one this process sees, which must be the one the results were taken with.
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


if __name__ == "__main__":
    main(sys.argv[1:])
