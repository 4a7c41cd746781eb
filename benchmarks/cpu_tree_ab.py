"""One algorithm on chosen suite layers in two source trees, each run a fresh process,
in A B B A order: what a change to one algorithm's code did, with the slow drifts of a
noisy machine falling on both sides alike.

    PYTHONPATH=. python benchmarks/cpu_tree_ab.py TREE_B BATCH suite/layer:algo[,...]

A is this tree, B another checkout (``git worktree add /tmp/old HEAD``). Each process
times the call as ``cpu_fresh_process.py`` does (two warm-up calls, which load or
compile the Numba code, then up to 20 calls or 1.5 s); the figure is the mean of a
side's two medians. Prints B / A (> 1: A faster).
"""
import os
import sys

from benchmarks.cpu_fresh_process import run


def main(tree_b: str, batch: int, items: str):
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    roots = {"A": here, "B": tree_b}
    for item in items.split(","):
        ref, algo = item.split(":")
        suite, name = ref.split("/")
        got = {"A": [], "B": []}
        for side in "ABBA":
            got[side].append(run(roots[side], suite, name, batch, algo)[0])
        a, b = (sum(got[s]) / 2 for s in "AB")
        print(f"{ref:26s} {algo:18s} A {a:9.3f} ms  B {b:9.3f} ms  B/A {b / a:.2f}  "
              f"(A {got['A'][0]:.3f}, {got['A'][1]:.3f}; B {got['B'][0]:.3f}, "
              f"{got['B'][1]:.3f})", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
