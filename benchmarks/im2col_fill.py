"""im2col's windows column matrix built tap by tap by NumPy against the Numba
backend's compiled fill (``backends/numba/columns.py``), on the suite's dense layers
with more than one tap, then the fill's rates for ``dispatch.im2col_layout``
(``fill_bytes``, ``fill_runs``) fitted on the stride-1 ones (the only ones with a
wide layout to compare against).

    PYTHONPATH=. python benchmarks/im2col_fill.py

Each copy: the fastest of 9 after one warm-up, whole images, batch 1 and 8 (matrices
over 64 MB left out: im2col chunks them).
"""
from math import prod

import numpy as np

from benchmarks.nnls_fit import fit_rates
from cnnkern.backends.numba import columns
from cnnkern.backends.numpy import im2col
from cnnkern.params import ConvParams
from cnnkern.suites import SUITES
from cnnkern.timing import cpu_times


def main():
    rng = np.random.default_rng(1)
    names, feats, seconds = [], [], []
    for batch in (1, 8):
        for suite, layers in SUITES.items():
            for spec in layers:
                xs, ws = spec.shapes(batch)
                p = ConvParams.build(f"conv{spec.ndim}d", spec.ndim, xs, ws,
                                     dtype=np.float32, **spec.kwargs())
                if p.kernel_volume == 1 or p.groups == p.in_channels:
                    continue
                size = batch * p.in_channels * p.kernel_volume * prod(p.output_size)
                if size * 4 > 64e6:
                    continue
                xp = rng.standard_normal((batch, xs[1]) + p.padded_size,
                                         dtype=np.float32)
                rows, buf = slice(0, p.output_size[0]), np.empty(size, np.float32)
                t_np, t_nb = (min(cpu_times(lambda f=f: im2col._columns(
                    xp, p, rows, p.output_size, buf, f), 9)) for f in (None, columns.fill))
                runs = batch * p.in_channels * p.kernel_volume * prod(p.output_size[:-1])
                name = f"{suite}/{spec.name} b{batch}"
                print(f"{name:32s} {size * 4e-6:6.1f} MB runs {runs:7d} numpy "
                      f"{t_np * 1e3:7.3f} numba {t_nb * 1e3:7.3f} x{t_np / t_nb:.2f}",
                      flush=True)
                if all(s == 1 for s in p.stride):
                    names.append(name)
                    feats.append([size * 4.0, float(runs), 1.0])
                    seconds.append(t_nb)
    fit_rates(names, feats, seconds, ["bytes", "runs", "call"], "call")


if __name__ == "__main__":
    main()
