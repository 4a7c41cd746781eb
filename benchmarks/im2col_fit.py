"""Fit the Numba backend's im2col rates (``dispatch.NUMBA_RATES``: ``im2col_gemm``,
``im2col_copy``, ``im2col_call``) to its times in ``cnnkern bench`` results.

    PYTHONPATH=. python benchmarks/im2col_fit.py RESULTS.json [RESULTS.json ...]

Each layer im2col ran on gives one timing; its features are the ones the estimate
charges (``dispatch._estimate_numba``): FLOPs, column bytes times the layout factor
(the columns as the Numba backend fills them; apart for layers strided along the last
axis, whose rows copy element by element), one call. Fitted by non-negative least
squares on relative error (``nnls_fit.py``).
"""
import json
import sys

from benchmarks.nnls_fit import fit_rates, layer_params
from cnnkern import dispatch


def rows(paths):
    """(name, features, seconds) for every layer im2col ran on in the results."""
    for path in paths:
        doc = json.load(open(path))
        for layer in doc["layers"]:
            run = next((a for a in layer["algorithms"] if a["name"] == "im2col" and
                        a["status"] == "ok"), None)
            if run is None:
                continue
            p = layer_params(layer)
            copy = dispatch._column_bytes(p, 4) * dispatch._im2col_layout_factor(p)
            strided = p.stride[-1] > 1
            yield (f"{layer['id']} b{layer['input_shape'][0]}",
                   [float(p.flops), 0.0 if strided else copy, copy if strided else 0.0,
                    1.0], run["ms"] * 1e-3)


def main(paths):
    names, a, t = zip(*rows(paths))
    fit_rates(names, a, t, ["gemm", "copy", "strided_copy", "call"], "call")


if __name__ == "__main__":
    main(sys.argv[1:])
