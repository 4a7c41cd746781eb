"""Rates for a cost model, fitted by non-negative least squares on relative error: the
shared steps of the fitting scripts (``tap_gemm_fit.py``, ``depthwise_fit.py``,
``im2col_fit.py``, ``implicit_gemm_fit.py``)."""
import numpy as np


def layer_params(layer):
    """The float32 ``ConvParams`` of one layer entry of a ``cnnkern bench`` results
    document, rebuilt from the suite table (the batch from its input shape)."""
    from cnnkern.params import ConvParams
    from cnnkern.suites import layer as layer_of
    spec = layer_of(layer["id"])
    xs, ws = spec.shapes(layer["input_shape"][0])
    return ConvParams.build(f"conv{spec.ndim}d", spec.ndim, xs, ws, dtype=np.float32,
                            **spec.kwargs())


def fit_rates(names, a, t, features, fixed) -> np.ndarray:
    """Coefficients ``c >= 0`` minimising ``sum((a @ c / t - 1)^2)``, for timings ``t``
    (seconds) of rows ``a`` of feature amounts named ``features``. Prints each as a
    rate (``fixed``, a per-call or per-step cost, as seconds), then the model over
    measured per timing and its quantiles."""
    from scipy.optimize import nnls
    a, t = np.asarray(a, dtype=float), np.asarray(t, dtype=float)
    coef, _ = nnls(a / t[:, None], np.ones(len(t)))
    print({k: (f"{c:.3g} s" if k == fixed else f"{1 / c:.3g}/s") if c else "no weight"
           for k, c in zip(features, coef)})
    ratio = a @ coef / t
    for name, r, s in zip(names, ratio, t):
        print(f"  {name:32s} {s * 1e3:9.3f} ms  model/measured {r:.2f}")
    print("model/measured quantiles (0, 0.1, 0.5, 0.9, 1):",
          np.round(np.quantile(ratio, [0, 0.1, 0.5, 0.9, 1]), 2))
    return coef
