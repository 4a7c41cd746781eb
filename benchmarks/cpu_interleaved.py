"""Interleaved CPU comparison of cnnkern algorithms with PyTorch on suite layers.

    PYTHONPATH=. python benchmarks/cpu_interleaved.py vgg16/conv3_2,resnet50/res2_3x3 \\
        winograd_f4x4_3x3,im2col [batch] [rounds]

Each round runs every contender in turn (0.15 s of quiet, one warm-up, three timed
calls), so slow drifts of a noisy machine hit all of them alike; the figure is the
fastest of all timed calls (rounds x 3). ``cnnkern bench`` times each contender in
one block, which a noise burst can land on alone. Prints torch's time and each
algorithm's time and ratio (> 1: cnnkern faster); an error over 1e-4 against the
float64 result is printed next to the ratio. ``depthwise:KERNEL`` runs the Numba
``depthwise`` algorithm with that kernel forced (flat, planes, rows, taps or blocks),
``im2col:LAYOUT`` im2col with that column layout (windows or wide),
``im2col_group:MIB`` im2col with several images per chunk only up to MIB MiB,
``winograd_f4x4_3x3:PLAN`` (or F(2x2)) Winograd with that plan (tiles or channels).
``bare:NAME`` runs the Numba backend's algorithm NAME (``bare:auto``: the one ``auto``
picks) on arguments validated beforehand, without the front door (argument checks,
dispatch, array conversion): against ``auto``, what a call costs on top of the
algorithm.
"""
import sys
import time

import numpy as np
import torch

import cnnkern as ck
from cnnkern import dispatch, registry
from cnnkern import functional as F
from cnnkern.backends.numba import depthwise, winograd
from cnnkern.backends.numpy import im2col
from cnnkern.params import ConvParams
from cnnkern.suites import layer


#: algorithm -> (module, its function that picks the kernel, layout or plan for a call)
CHOOSERS = {"depthwise": (depthwise, "kernel_for"), "im2col": (im2col, "layout_for"),
            "winograd_f2x2_3x3": (winograd, "plan_for"),
            "winograd_f4x4_3x3": (winograd, "plan_for")}


def patched(call, module, attr, value):
    """``call`` with ``module.attr`` set to ``value`` while it runs."""
    def run():
        kept = getattr(module, attr)
        setattr(module, attr, value)
        try:
            return call()
        finally:
            setattr(module, attr, kept)
    return run


def forced(call, name, choice):
    """``call`` with algorithm ``name``'s kernel, layout or plan ``choice`` forced."""
    module, attr = CHOOSERS[name]
    return patched(call, module, attr, lambda *args: choice)


def bare(name, x, w, nd, kw):
    """The Numba backend's algorithm ``name`` on a prebuilt ``ConvParams``."""
    p = ConvParams.build(f"conv{nd}d", nd, x.shape, w.shape, dtype=x.dtype, **kw)
    if name == "auto":
        name = dispatch.select(p, "numba", w)
    run = registry.get("conv", "numba", name).run
    return lambda: run(x, w, None, p)


def fastest(fns, rounds) -> dict:
    """name -> the fastest of ``rounds`` x 3 timed calls of ``fns[name]``, the
    contenders taking turns each round after 0.15 s of quiet and one warm-up."""
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            time.sleep(0.15)
            f()
            for _ in range(3):
                t0 = time.perf_counter()
                f()
                times[k].append(time.perf_counter() - t0)
    return {k: min(v) for k, v in times.items()}


def main(refs, algos, batch=1, rounds=5):
    torch.set_num_threads(ck.get_num_threads())
    rng = np.random.default_rng(0)
    peers = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d}
    for ref in refs:
        spec = layer(ref)
        xs, ws = spec.shapes(batch)
        x = rng.standard_normal(xs, dtype=np.float32)
        w = rng.standard_normal(ws, dtype=np.float32)
        xt, wt, kw = torch.from_numpy(x), torch.from_numpy(w), spec.kwargs()
        conv = getattr(F, f"conv{spec.ndim}d")
        fns = {"torch": lambda: peers[spec.ndim](xt, wt, **kw)}
        for a in algos:
            name, _, kernel = a.partition(":")
            fns[a] = (lambda name=name: conv(x, w, algo=name, **kw))
            if name == "bare":
                fns[a] = bare(kernel, x, w, spec.ndim, kw)
            elif name == "im2col_group":
                fns[a] = patched(lambda: conv(x, w, algo="im2col", **kw), im2col,
                                 "GROUP_BYTES", int(float(kernel) * 2**20))
            elif kernel:
                fns[a] = forced(fns[a], name, kernel)
        exact = peers[spec.ndim](xt.double(), wt.double(), **kw).numpy()
        errs = {k: np.linalg.norm(np.asarray(f()) - exact) / np.linalg.norm(exact)
                for k, f in fns.items()}
        best = fastest(fns, rounds)
        peer = best["torch"]
        row = f"{ref:24s} torch {peer * 1e3:8.3f} ms"
        for a in algos:
            t = best[a]
            row += f" | {a} {t * 1e3:8.3f} ms {peer / t:5.2f}x"
            if errs[a] > 1e-4:
                row += f" (rel err {errs[a]:.1e})"
        print(row, flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    main(args[0].split(","), args[1].split(","), *(int(a) for a in args[2:4]))
