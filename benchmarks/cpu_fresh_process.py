"""Each suite layer in a process of its own, as a script that calls one layer in a loop
would: the median time of an ``algo="auto"`` call and the page faults it takes.

    PYTHONPATH=. python benchmarks/cpu_fresh_process.py BATCH OUT.json [TREE_B]

``cnnkern bench`` runs every layer in one long process, whose heap has long been
grown by the layers before; a fresh process has not, and there a call whose scratch
memory glibc maps afresh pays a page fault per 4 KiB on every call (about 2 us each on
the 2-core VM; docs/performance.md, "Page faults"). With a second source tree
``TREE_B`` (a checkout of another commit) the layers run A B B A in alternation, A
being this tree, and each side's figure is the mean over its two processes. Each
process: two warm-up calls, then calls until 20 or 1.5 s (at least 3), page faults
from ``getrusage`` (minor faults: memory mapped afresh).
"""
import json
import os
import subprocess
import sys

CHILD = r'''
import resource, sys, time
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
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
times = []
start = time.perf_counter()
while len(times) < 20 and (len(times) < 3 or time.perf_counter() - start < 1.5):
    t0 = time.perf_counter()
    conv(x, w, algo={algo!r}, **kw)
    times.append(time.perf_counter() - t0)
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
print(float(np.median(times)) * 1e3, faults / len(times))
'''


def run(root: str, suite: str, name: str, batch: int,
        algo: str = "auto") -> tuple[float, float]:
    """(median ms, page faults per call) of ``algo`` on the layer in a fresh process on
    ``root``."""
    code = CHILD.format(root=root, ref=f"{suite}/{name}", batch=batch, algo=algo)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True).stdout.split()
    return float(out[0]), float(out[1])


def main(batch: int, out: str, tree_b: str = None):
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path.insert(0, here)
    from cnnkern.suites import SUITES
    roots = {"A": here} if tree_b is None else {"A": here, "B": tree_b}
    order = "A" if tree_b is None else "ABBA"
    rows = {}
    for suite, table in SUITES.items():
        if suite == "long1d":
            continue
        for spec in table:
            got = {t: [] for t in roots}
            for tree in order:
                got[tree].append(run(roots[tree], suite, spec.name, batch))
            row = {t: [sum(v[i] for v in got[t]) / len(got[t]) for i in (0, 1)]
                   for t in roots}
            rows[f"{suite}/{spec.name}"] = row
            line = " | ".join(f"{t} {ms:9.3f} ms {flt:8.0f} faults"
                              for t, (ms, flt) in row.items())
            if tree_b is not None:
                line += f" | A/B {row['A'][0] / row['B'][0]:.2f}"
            print(f"{suite + '/' + spec.name:30s} {line}", flush=True)
    with open(out, "w") as f:
        json.dump(dict(command=" ".join(["python"] + sys.argv), batch=batch, trees=roots,
                       layers=rows), f, indent=1)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(int(sys.argv[1]), sys.argv[2], *sys.argv[3:4])
