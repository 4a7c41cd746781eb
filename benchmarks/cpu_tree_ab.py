"""One algorithm on chosen suite layers in two source trees, each run a fresh process,
in A B B A order: what a change to one algorithm's code did, with the slow drifts of a
noisy machine falling on both sides alike.

    PYTHONPATH=. python benchmarks/cpu_tree_ab.py TREE_B BATCH suite/layer:algo[,...]

A is this tree, B another checkout (``git worktree add /tmp/old HEAD``). Each process
makes two warm-up calls (its first may load or compile Numba code), then 25 timed ones;
the figure is the mean of a side's two medians. Prints B / A (> 1: A faster).
"""
import os
import subprocess
import sys

CHILD = r'''
import sys, time
import numpy as np
sys.path.insert(0, {root!r})
import cnnkern as ck
from cnnkern.suites import layer
spec = layer({ref!r})
rng = np.random.default_rng(0)
xs, ws = spec.shapes({batch})
x = rng.standard_normal(xs, dtype=np.float32)
w = rng.standard_normal(ws, dtype=np.float32)
conv = getattr(ck, f"conv{{spec.ndim}}d")
kw = spec.kwargs()
conv(x, w, algo={algo!r}, **kw)
conv(x, w, algo={algo!r}, **kw)
times = []
for _ in range(25):
    t0 = time.perf_counter()
    conv(x, w, algo={algo!r}, **kw)
    times.append(time.perf_counter() - t0)
print(float(np.median(times)) * 1e3)
'''


def run(root: str, ref: str, algo: str, batch: int) -> float:
    """Median ms of ``algo`` on layer ``ref`` in a fresh process on tree ``root``."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = CHILD.format(root=root, ref=ref, algo=algo, batch=batch)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True).stdout
    return float(out.split()[-1])


def main(tree_b: str, batch: int, items: str):
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    roots = {"A": here, "B": tree_b}
    for item in items.split(","):
        ref, algo = item.split(":")
        got = {"A": [], "B": []}
        for side in "ABBA":
            got[side].append(run(roots[side], ref, algo, batch))
        a, b = (sum(got[s]) / 2 for s in "AB")
        print(f"{ref:26s} {algo:18s} A {a:9.3f} ms  B {b:9.3f} ms  B/A {b / a:.2f}  "
              f"(A {got['A'][0]:.3f}, {got['A'][1]:.3f}; B {got['B'][0]:.3f}, "
              f"{got['B'][1]:.3f})", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
