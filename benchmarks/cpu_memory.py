"""Peak extra resident memory of one CPU convolution call, per suite layer.

    PYTHONPATH=. python benchmarks/cpu_memory.py [suite|all] [batch] [--json FILE]

Measures what the operating system sees, so Numba's allocations count as well as
NumPy's: the peak resident set (``VmHWM``) during one call minus the resident set
just before it, with the peak reset through ``/proc/self/clear_refs`` (Linux only).
The process must start with ``MALLOC_MMAP_THRESHOLD_`` small (the script re-executes
itself with 65536 when it is not set) so that every large buffer is mapped fresh and
unmapped when freed; otherwise glibc keeps freed memory and a call reuses it
unseen. Each layer runs once to warm up (JIT, caches), then once measured, with
``algo="auto"``, after ``ck.release_workspaces()``: the scratch buffers the backends
keep between calls would otherwise be in the resident set already and go unseen.
The target of issue 9: extra <= output size + 64 MiB.
"""
import json
import os
import sys

import numpy as np

import cnnkern as ck
from cnnkern import functional as F
from cnnkern.suites import SUITES, layers

LIMIT = 64 * 2**20


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    raise RuntimeError(f"no {key} in /proc/self/status")


def peak_extra(fn) -> int:
    """Bytes by which the resident set rose above its level before ``fn()``, at peak."""
    before = _status_kib("VmRSS:")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")                            # reset VmHWM to the current RSS
    out = fn()
    peak = _status_kib("VmHWM:")
    del out
    return (peak - before) * 1024


def measure(suite: str, batch: int):
    rng = np.random.default_rng(0)
    rows = []
    for spec in layers(suite):
        xs, ws = spec.shapes(batch)
        x = rng.standard_normal(xs, dtype=np.float32)
        w = rng.standard_normal(ws, dtype=np.float32)
        conv = getattr(F, f"conv{spec.ndim}d")
        kw = spec.kwargs()
        y = conv(x, w, **kw)
        out_bytes = y.nbytes
        del y
        ck.release_workspaces()
        extra = peak_extra(lambda: conv(x, w, **kw))
        algo = ck.explain(x, w, **kw).choice
        rows.append(dict(id=f"{suite}/{spec.name}", algo=algo, output_bytes=out_bytes,
                         extra_bytes=extra,
                         over_target_bytes=max(0, extra - out_bytes - LIMIT)))
        r = rows[-1]
        print(f"{r['id']:28s} {algo:18s} output {out_bytes / 2**20:8.2f} MiB  "
              f"extra {extra / 2**20:8.2f} MiB  "
              f"{'OK' if r['over_target_bytes'] == 0 else 'OVER'}", flush=True)
    return rows


def main(argv):
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") is None:
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
        os.execve(sys.executable, [sys.executable] + argv, env)
    args = argv[1:]
    out = None
    if "--json" in args:
        i = args.index("--json")
        out = args[i + 1]
        del args[i:i + 2]
    suite = args[0] if args else "all"
    batch = int(args[1]) if len(args) > 1 else 1
    suites = list(SUITES) if suite == "all" else [suite]
    rows = [r for s in suites for r in measure(s, batch)]
    over = [r["id"] for r in rows if r["over_target_bytes"]]
    print(f"{len(rows)} layers, batch {batch}, threads {ck.get_num_threads()}: "
          f"{len(rows) - len(over)} within output + 64 MiB; over: {over or 'none'}")
    if out:
        with open(out, "w") as f:
            json.dump(dict(command=" ".join(["python"] + argv), batch=batch,
                           threads=ck.get_num_threads(), limit_extra_bytes=LIMIT,
                           layers=rows), f, indent=1)


if __name__ == "__main__":
    main(sys.argv)
