"""How fast a layer could be if everything but its BLAS GEMM were free, next to PyTorch.

    PYTHONPATH=. python benchmarks/cpu_gemm_bound.py resnet50/conv1,alexnet/conv3 \\
        [batch] [rounds]

For each 2-D layer, interleaved as in ``cpu_interleaved.py`` (each round runs every
contender after 0.15 s of quiet, one warm-up and three timed calls; the figure is the
fastest timed call):

- ``torch``: ``torch.nn.functional.conv2d`` (oneDNN) on the same arrays and threads;
- ``auto``: ``cnnkern.conv2d`` as a user calls it;
- ``gemm``: the im2col GEMM alone, one NumPy matmul per group of the weight matrix
  with a ready column matrix for the whole batch (no column building, no copy of the
  result): the floor of im2col, im2col_blocks and tap_gemm on this BLAS;
- ``wino2`` / ``wino4`` (3x3, stride 1, no dilation, one group): the batched GEMM
  stage alone of Winograd F(2x2,3x3) (16 products of the transformed weights
  ``(C_out, C_in)`` with ``(C_in, tiles)``) and of F(4x4,3x3) (36 such products): the
  floor of a Winograd whose transforms cost nothing.

Prints the times and each floor's ratio to PyTorch (``torch / floor``): a layer whose
best floor reads under a target cannot reach that target with a GEMM from this BLAS,
whatever the code around it does.
"""
import sys

import numpy as np
import torch

import cnnkern as ck
from benchmarks.cpu_interleaved import fastest
from cnnkern.params import ConvParams
from cnnkern.suites import layer


def _floors(spec, batch, rng):
    """name -> callable running one GEMM-only floor of the layer."""
    x_shape, w_shape = spec.shapes(batch)
    g = spec.groups
    cog, cig = w_shape[0] // g, w_shape[1]
    kv = int(np.prod(spec.kernel))
    outs = ConvParams.build("conv2d", 2, x_shape, w_shape, **spec.kwargs()).output_size
    positions = batch * int(np.prod(outs))
    wm = rng.standard_normal((g, cog, cig * kv), dtype=np.float32)
    cols = rng.standard_normal((g, cig * kv, positions), dtype=np.float32)
    floors = {"gemm": lambda: np.matmul(wm, cols)}
    if spec.kernel == (3, 3) and spec.stride == 1 and spec.dilation == 1 and g == 1:
        for name, m in (("wino2", 2), ("wino4", 4)):
            tiles = batch * int(np.prod([-(-o // m) for o in outs]))
            u = rng.standard_normal(((m + 2) ** 2, w_shape[0], cig), dtype=np.float32)
            v = rng.standard_normal(((m + 2) ** 2, cig, tiles), dtype=np.float32)
            floors[name] = (lambda u=u, v=v: np.matmul(u, v))
    return floors


def main(refs, batch=1, rounds=5):
    torch.set_num_threads(ck.get_num_threads())
    rng = np.random.default_rng(0)
    for ref in refs:
        spec = layer(ref)
        if spec.ndim != 2:
            raise SystemExit(f"{ref}: only 2-D layers (got {spec.ndim}-D)")
        xs, ws = spec.shapes(batch)
        x = rng.standard_normal(xs, dtype=np.float32)
        w = rng.standard_normal(ws, dtype=np.float32)
        xt, wt, kw = torch.from_numpy(x), torch.from_numpy(w), spec.kwargs()
        fns = {"torch": lambda: torch.nn.functional.conv2d(xt, wt, **kw),
               "auto": lambda: ck.conv2d(x, w, **kw)}
        fns.update(_floors(spec, batch, rng))
        best = fastest(fns, rounds)
        peer = best["torch"]
        row = f"{ref:26s} torch {peer * 1e3:8.3f} ms"
        for k, t in best.items():
            if k != "torch":
                row += f" | {k} {t * 1e3:8.3f} ms {peer / t:5.2f}x"
        print(row, flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    main(args[0].split(","), *(int(a) for a in args[1:3]))
