"""Check, then time, every algorithm on every chosen layer; build the results document.

For each layer: random normal input and weight (fresh per layer, seeded), the float64
``direct`` reference of the NumPy backend on the first sample of the batch, then for
each algorithm that can run the call: one run whose first sample is compared with the
reference (a result outside the algorithm's tolerance is reported as ``wrong`` and not
timed), then ``repeat`` timed runs after warm-up. PyTorch, when installed, is checked
and timed the same way on the same arrays.
"""
from __future__ import annotations

import datetime
import math
import os
import platform
import sys
import time
from math import prod
from typing import Callable, Optional

import numpy as np

from .. import __version__, dispatch, registry, timing
from ..params import ConvParams
from ..suites import QUICK, SUITES, layer as suite_layer
from . import peers
from .device import Device
from .schema import SCHEMA

#: relative error allowed when an algorithm states no tolerance for the dtype
DEFAULT_TOLERANCE = {"float16": 1e-2, "float32": 1e-4, "float64": 1e-10}


def select_layers(suites: str, names: str = "") -> list:
    """``(suite, Layer)`` pairs for ``--suite`` and ``--layers``.

    ``suites``: comma-separated suite names, ``quick`` or ``all``. ``names``:
    comma-separated items, each ``suite/layer`` (taken as is) or a bare layer name
    (kept from the chosen suites); empty keeps every layer of the suites.
    """
    chosen = []
    for suite in [s.strip() for s in suites.split(",") if s.strip()]:
        if suite == "quick":
            chosen += [tuple(ref.split("/")) for ref in QUICK]
        elif suite == "all":
            chosen += [(s, layer.name) for s in SUITES for layer in SUITES[s]]
        elif suite in SUITES:
            chosen += [(suite, layer.name) for layer in SUITES[suite]]
        else:
            raise ValueError(f"--suite: unknown suite {suite!r}; expected quick, all or "
                             f"one of {', '.join(SUITES)}")
    items = [n.strip() for n in names.split(",") if n.strip()]
    if items:
        picked = []
        for item in items:
            if "/" in item:
                try:
                    suite_layer(item)
                except ValueError as exc:
                    raise ValueError(f"--layers: {exc}") from None
                picked.append(tuple(item.split("/", 1)))
                continue
            found = [pair for pair in chosen if pair[1] == item]
            if not found:
                raise ValueError(f"--layers: no layer {item!r} in the chosen suites; they "
                                 f"have {', '.join(sorted({n for _, n in chosen}))}")
            picked += found
        chosen = picked
    unique = list(dict.fromkeys(chosen))
    if not unique:
        raise ValueError("--suite: no layers chosen")
    return [(s, suite_layer(f"{s}/{n}")) for s, n in unique]


def rel_err(y, ref) -> float:
    y = np.asarray(y, dtype=np.float64)
    denom = np.linalg.norm(ref)
    diff = np.linalg.norm(y - ref)
    if not np.isfinite(diff):
        return float("inf")
    return float(diff / denom) if denom else float(diff)


def first_sample(y) -> np.ndarray:
    y0 = y[:1]
    return y0.get() if hasattr(y0, "get") else np.asarray(y0)


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]


class LayerCase:
    """One layer's arrays (on the device), its float64 reference on the first sample,
    parameters and byte count."""

    def __init__(self, suite, layer, device: Device, dtype, batch, rng):
        self.id = f"{suite}/{layer.name}"
        self.suite, self.layer = suite, layer
        xs, ws = layer.shapes(batch)
        self.p = ConvParams.build("bench", layer.ndim, xs, ws, dtype=dtype, **layer.kwargs())
        x = rng.standard_normal(xs, dtype=np.float32).astype(dtype)
        w = rng.standard_normal(ws, dtype=np.float32).astype(dtype)
        if device.kind == "gpu":
            import cupy as cp
            self.x, self.w = cp.asarray(x), cp.asarray(w)
        else:
            self.x, self.w = x, w
        p1 = ConvParams.build("bench", layer.ndim, (1,) + xs[1:], ws, dtype=np.float64,
                              **layer.kwargs())
        direct = registry.get("conv", "numpy", "direct")
        self.ref = direct.run(x[:1].astype(np.float64), w.astype(np.float64), None, p1)
        itemsize = np.dtype(dtype).itemsize
        self.bytes = itemsize * (prod(xs) + prod(ws) + prod(self.p.output_shape))

    def describe(self) -> dict:
        layer, p = self.layer, self.p
        return dict(id=self.id, suite=self.suite, name=layer.name,
                    input_shape=list(p.input_shape), weight_shape=list(p.weight_shape),
                    output_shape=list(p.output_shape), stride=list(p.stride),
                    padding=[list(pair) for pair in p.padding], dilation=list(p.dilation),
                    groups=p.groups, gflop=p.flops / 1e9, mbytes=self.bytes / 1e6)


def _figures(entry: dict, lay: LayerCase, device: Device) -> None:
    seconds = entry["ms"] / 1e3
    gflops = lay.p.flops / seconds / 1e9
    gbps = lay.bytes / seconds / 1e9
    intensity = lay.p.flops / lay.bytes
    attainable = min(device.peak_gflops, intensity * device.peak_gbps)
    entry.update(gflops=gflops, gbps=gbps, roof_pct=100.0 * gflops / attainable)


#: Seconds of quiet before each CPU measurement: OpenBLAS workers spin about 0.1 s
#: after a call, OpenMP workers a little less.
COOL_DOWN_S = 0.15
#: A checked run longer than this gets a second call before the timed ones (it may
#: have compiled); a call still this slow is not warmed up again.
SLOW_FIRST_S = 0.1


def _measure(run: Callable, lay: LayerCase, device: Device, tolerance: float, repeat: int,
             budget: float, to_host=first_sample) -> dict:
    entry: dict = dict(tolerance=tolerance)
    try:
        t0 = time.perf_counter()
        y = run()
        first = time.perf_counter() - t0
        entry["rel_err"] = rel_err(to_host(y), lay.ref)
        del y
    except Exception as exc:  # noqa: BLE001 - a failing algorithm is a result, not a crash
        entry.update(status="failed", error=_one_line(exc))
        return entry
    if not entry["rel_err"] <= tolerance:
        entry["status"] = "wrong"
        return entry
    try:
        if device.kind == "gpu":
            times = timing.gpu_times(run, repeat)
        else:
            # let the previous contender's idle threads (OpenBLAS, OpenMP) stop spinning,
            # or they steal this one's cores
            time.sleep(COOL_DOWN_S)
            if first > SLOW_FIRST_S:
                # the checked run may have compiled a kernel (Numba's JIT, seconds the
                # first time a machine sees a specialisation): a second call says how
                # slow the call is, and warms it up
                t0 = time.perf_counter()
                run()
                first = min(first, time.perf_counter() - t0)
            # a slow call gets fewer runs (at least one)
            runs = max(1, min(repeat, int(budget / max(first, 1e-9))))
            times = timing.cpu_times(run, runs, warmup=0 if first > SLOW_FIRST_S else 1)
        entry.update(timing.summarize(times), status="ok")
    except Exception as exc:  # noqa: BLE001
        entry.update(status="failed", error=_one_line(exc))
        return entry
    _figures(entry, lay, device)
    return entry


def tolerance(alg, dtype) -> float:
    return float(alg.tolerance.get(dtype.name, DEFAULT_TOLERANCE[dtype.name]))


def _run_layer(lay: LayerCase, device: Device, dtype, repeat, budget, algos, compare,
               tick, autotune=False) -> dict:
    p = lay.p
    row = lay.describe()
    row["reference"] = "numpy direct, float64, first sample of the batch"
    row["auto"] = dispatch.select(p, device.backend, lay.w)
    row["algorithms"], row["peers"] = [], []
    for alg in registry.algorithms("conv", device.backend):
        if algos and alg.name not in algos:
            continue
        reason = alg.check(p, lay.w)
        if reason is not None:
            row["algorithms"].append(dict(name=alg.name, status="cannot", reason=reason))
            continue
        tick(f"{lay.id} {alg.name}", False)
        run = (lambda a=alg: a.run(lay.x, lay.w, None, p))
        entry = dict(name=alg.name, workspace_bytes=int(alg.workspace_bytes(p)))
        entry.update(_measure(run, lay, device, tolerance(alg, dtype), repeat,
                              budget))
        row["algorithms"].append(entry)
    if compare:
        # the peers pick their own algorithms (FFT and Winograd among them)
        tol = 10 * DEFAULT_TOLERANCE[dtype.name]
        try:
            peer_list = peers.torch_peers(device.kind, p, lay.x, lay.w, device.threads)
        except Exception as exc:  # noqa: BLE001
            row["peers"].append(dict(name=peers.PRIMARY[device.kind], status="failed",
                                     error=_one_line(exc)))
            peer_list = []
        for peer in peer_list:
            tick(f"{lay.id} {peer.name}", False)
            # TF32 is a different precision: checked against a looser bound
            ptol = 5e-3 if peer.name == "cudnn_tf32" else tol
            entry = dict(name=peer.name, label=peer.label)
            entry.update(_measure(peer.run, lay, device, ptol, repeat, budget,
                                  to_host=lambda y: peers.to_numpy(y[:1])))
            row["peers"].append(entry)
    _ratios(row, device)
    row["autotune"] = row["autotune_vs_best"] = None
    if autotune:
        tick(f"{lay.id} autotune", False)
        row["autotune"] = _autotune_pick(lay, device, algos)
        entry = next((a for a in row["algorithms"] if a["name"] == row["autotune"]), {})
        row["autotune_vs_best"] = entry.get("vs_best")
    tick(lay.id, True)
    return row


def _autotune_pick(lay: LayerCase, device: Device, algos) -> Optional[str]:
    """What ``algo="autotune"`` would choose, timed afresh (no cache, in or out)."""
    cands = [c for c in dispatch.candidates(lay.p, device.backend, lay.w)
             if not algos or c.name in algos]
    return dispatch.fastest(dispatch.measure(lay.p, device.backend, lay.x, lay.w, None,
                                             cands))


def _ratios(row: dict, device: Device) -> None:
    timed = [a for a in row["algorithms"] if a.get("status") == "ok"]
    best = min(timed, key=lambda a: a["ms"]) if timed else None
    row["best"] = best["name"] if best else None
    primary = next((q for q in row["peers"]
                    if q["name"] == peers.PRIMARY[device.kind] and q.get("status") == "ok"),
                   None)
    for a in timed:
        a["vs_best"] = best["ms"] / a["ms"]
        for q in row["peers"]:
            if q.get("status") == "ok":
                a[f"vs_{q['name']}"] = q["ms"] / a["ms"]
        a["vs_peer"] = primary["ms"] / a["ms"] if primary else None
    auto = next((a for a in timed if a["name"] == row["auto"]), None)
    row["auto_is_fastest"] = bool(best and auto is best)
    row["auto_vs_best"] = auto["vs_best"] if auto else None
    row["best_vs_peer"] = best["vs_peer"] if best else None


def _geomean(values) -> Optional[float]:
    values = [v for v in values if v]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else None


def summarize(rows: list) -> dict:
    picks = [r for r in rows if r["auto_vs_best"] is not None]
    tuned = [r for r in rows if r["autotune_vs_best"] is not None]
    return dict(
        autotune_fastest=sum(r["autotune"] == r["best"] for r in tuned) if tuned else None,
        autotune_within_10pct=sum(r["autotune_vs_best"] >= 1 / 1.1 for r in tuned)
        if tuned else None,
        layers=len(rows),
        geomean_best_vs_peer=_geomean(r["best_vs_peer"] for r in rows),
        auto_fastest=sum(r["auto_is_fastest"] for r in picks),
        auto_within_10pct=sum(r["auto_vs_best"] >= 1 / 1.1 for r in picks),
        auto_timed=len(picks),
        wrong=[f"{r['id']}:{a['name']}" for r in rows for a in r["algorithms"] + r["peers"]
               if a.get("status") == "wrong"],
        failed=[f"{r['id']}:{a['name']}" for r in rows for a in r["algorithms"] + r["peers"]
                if a.get("status") == "failed"],
    )


def _versions() -> dict:
    out = dict(python=platform.python_version(), numpy=np.__version__)
    for name in ("scipy", "numba", "cupy", "torch"):
        module = sys.modules.get(name)
        if module is None:
            try:
                module = __import__(name)
            except ImportError:
                continue
        out[name] = getattr(module, "__version__", "unknown")
    if "torch" in sys.modules and sys.modules["torch"].backends.cudnn.is_available():
        out["cudnn"] = str(sys.modules["torch"].backends.cudnn.version())
    return out


def _commit() -> Optional[str]:
    """``$CNNKERN_COMMIT``, else the checkout's commit (``-dirty`` with uncommitted
    changes to tracked files), else None (an installed copy)."""
    if os.environ.get("CNNKERN_COMMIT"):
        return os.environ["CNNKERN_COMMIT"]
    import subprocess
    here = os.path.dirname(os.path.abspath(__file__))

    def git(*args):
        out = subprocess.run(["git", "-C", here, *args], capture_output=True, text=True,
                             timeout=10)
        return out.stdout.strip() if out.returncode == 0 else None
    try:
        sha = git("rev-parse", "--short", "HEAD")
        if not sha:
            return None
        return sha + ("-dirty" if git("status", "--porcelain", "--untracked-files=no")
                      else "")
    except (OSError, subprocess.SubprocessError):
        return None


def run_suite(chosen: list, device: Device, dtype, batch: int, repeat: int,
              algos=(), compare: bool = True, seed: int = 0, command: str = "",
              progress=None, budget: float = 2.0, autotune: bool = False) -> dict:
    """Run the layers ``chosen`` (from ``select_layers``); return the results document.

    On the CPU a measurement whose checked run took longer than ``budget / repeat``
    seconds gets ``budget / that`` timed runs (at least one; ``runs`` in the entry);
    a checked run over ``SLOW_FIRST_S`` is followed by one more call, and the faster of
    the two counts (the first may have compiled the kernel).
    ``autotune`` also records what ``algo="autotune"`` picks, timed afresh.
    ``progress(total_layers)``, if given, returns ``tick(label, layer_done)``, called
    before each measurement and after each layer."""
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    compare = compare and peers.torch_available()
    tick = progress(len(chosen)) if progress else (lambda label, done: None)
    rows = []
    for suite, layer in chosen:
        lay = LayerCase(suite, layer, device, dtype, batch, rng)
        rows.append(_run_layer(lay, device, dtype, repeat, budget, set(algos), compare,
                               tick, autotune))
        del lay
    return dict(
        schema=SCHEMA,
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        command=command, commit=_commit(), cnnkern=__version__,
        device=device.as_json(), versions=_versions(),
        settings=dict(layers=[f"{s}/{layer.name}" for s, layer in chosen], dtype=dtype.name,
                      batch=batch, repeat=repeat, budget_s=budget, seed=seed,
                      compare=compare, autotune=autotune,
                      algorithms=sorted(algos) if algos else None,
                      peer=peers.PRIMARY[device.kind] if compare else None),
        layers=rows, summary=summarize(rows))

