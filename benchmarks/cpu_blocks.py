"""Network blocks end to end on the CPU: consecutive layers, as a network runs them,
with ``algo="auto"``, against PyTorch on the same shapes and thread count.

    PYTHONPATH=. python benchmarks/cpu_blocks.py [rounds]

``cnnkern bench`` times one layer at a time with 0.15 s of quiet before each
contender, so it cannot see what one layer's thread pool does to the next layer's:
a Numba layer (depthwise, Winograd) next to a BLAS one (1x1 im2col) is where idle,
spinning workers of the two pools fight over the cores. Each contender runs in a
process of its own, as a program using only that library would: in one process
PyTorch and Numba share one GNU OpenMP runtime, and whichever loaded it first sets
how its workers wait (``threads.start_numba_threads``). Each round starts one
process per contender, which times every block (one warm-up, the median of 20
calls, 0.15 s of quiet before each block); the figure is the median over rounds.
The cnnkern side checks its output against the float64 reference chain.
"""
import json
import subprocess
import sys
import time

import numpy as np

#: (name, input shape, [(weight shape, conv kwargs), ...]): each layer feeds the next.
BLOCKS = [
    ("mobilenetv2 inverted residual 24-144-24, 56x56", (1, 24, 56, 56),
     [((144, 24, 1, 1), {}), ((144, 1, 3, 3), dict(padding=1, groups=144)),
      ((24, 144, 1, 1), {})]),
    ("resnet50 bottleneck 256-64-256, 56x56", (1, 256, 56, 56),
     [((64, 256, 1, 1), {}), ((64, 64, 3, 3), dict(padding=1)), ((256, 64, 1, 1), {})]),
    ("convnext-t block 96, 56x56", (1, 96, 56, 56),
     [((96, 1, 7, 7), dict(padding=3, groups=96)), ((384, 96, 1, 1), {}),
      ((96, 384, 1, 1), {})]),
]


def _arrays(xs, layers):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(xs).astype(np.float32)
    ws = [((rng.standard_normal(s) / np.sqrt(np.prod(s[1:]))).astype(np.float32), kw)
          for s, kw in layers]
    return x, ws


def _median_ms(fn, reps=20):
    from cnnkern.timing import cpu_times
    time.sleep(0.15)
    return float(np.median(cpu_times(fn, reps, warmup=1))) * 1e3


def _chain(conv, x, ws, **extra):
    def run():
        h = x
        for w, kw in ws:
            h = conv(h, w, **kw, **extra)
        return h
    return run


def side(name: str) -> dict:
    """Milliseconds per block for one contender, in this process."""
    out = {}
    if name == "cnnkern":
        import cnnkern as ck
        for block, xs, layers in BLOCKS:
            x, ws = _arrays(xs, layers)
            ref = _chain(ck.conv2d, x.astype(np.float64),
                         [(w.astype(np.float64), kw) for w, kw in ws],
                         algo="direct", backend="numpy")()
            run = _chain(ck.conv2d, x, ws)
            err = np.linalg.norm(run() - ref) / np.linalg.norm(ref)
            if not err < 1e-4:
                raise AssertionError(f"{block}: relative error {err:.1e}")
            out[block] = _median_ms(run)
    else:
        import torch
        import cnnkern as ck
        torch.set_num_threads(ck.get_num_threads())
        for block, xs, layers in BLOCKS:
            x, ws = _arrays(xs, layers)
            run = _chain(torch.nn.functional.conv2d, torch.from_numpy(x),
                         [(torch.from_numpy(w), kw) for w, kw in ws])
            with torch.no_grad():
                out[block] = _median_ms(run)
    return out


def main(rounds=3):
    times = {"cnnkern": [], "torch": []}
    for _ in range(rounds):
        for name in times:
            done = subprocess.run([sys.executable, __file__, "--side", name], check=True,
                                  capture_output=True, text=True)
            times[name].append(json.loads(done.stdout.splitlines()[-1]))
    for block, _, _ in BLOCKS:
        ours = [r[block] for r in times["cnnkern"]]
        peer = [r[block] for r in times["torch"]]
        a, b = np.median(ours), np.median(peer)
        print(f"{block}: cnnkern {a:.3f} ms, torch {b:.3f} ms, {b / a:.2f}x (rounds: "
              f"cnnkern {np.round(ours, 3).tolist()}, torch {np.round(peer, 3).tolist()})")


if __name__ == "__main__":
    if "--side" in sys.argv:
        print(json.dumps(side(sys.argv[sys.argv.index("--side") + 1])))
    else:
        main(*(int(a) for a in sys.argv[1:2]))
