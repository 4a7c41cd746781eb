"""``--plot``: one PNG per run with two charts.

Top: per layer, each algorithm's speed relative to the peer (peer time / our time,
log scale, 1 = parity; relative to the fastest cnnkern algorithm when no peer ran).
Bottom: the roofline: arithmetic intensity (FLOP per byte of input + weight + output)
against achieved GFLOP/s, with the device's compute and bandwidth roofs.
"""
from __future__ import annotations


def matplotlib_missing() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return True
    return False


def write(doc: dict, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = doc["layers"]
    peer = doc["settings"]["peer"]
    key, label = ("vs_peer", f"speed vs {peer} (peer time / ours)") if peer else \
        ("vs_best", "speed vs the fastest cnnkern algorithm")
    names = []
    for row in rows:
        for a in row["algorithms"]:
            if a["status"] == "ok" and a["name"] not in names:
                names.append(a["name"])
    colors = {n: plt.cm.tab10(i % 10) for i, n in enumerate(names)}
    fig, (bars, roof) = plt.subplots(2, 1, figsize=(min(max(10, 0.3 * len(rows) + 4), 28), 11),
                                     gridspec_kw=dict(height_ratios=[1, 1]))
    width = 0.8 / max(len(names), 1)
    for i, name in enumerate(names):
        values = []
        for row in rows:
            entry = next((a for a in row["algorithms"] if a["name"] == name), {})
            values.append(entry.get(key) or np.nan)
        bars.bar(np.arange(len(rows)) + (i - (len(names) - 1) / 2) * width, values, width,
                 label=name, color=colors[name])
    bars.axhline(1.0, color="black", linewidth=0.8)
    bars.set_yscale("log")
    bars.set_xticks(np.arange(len(rows)), [r["id"] for r in rows], rotation=60, ha="right",
                    fontsize=8)
    bars.set_ylabel(label)
    bars.legend(fontsize=7, framealpha=0.6)
    dev = doc["device"]
    intensities = [r["gflop"] * 1e3 / r["mbytes"] for r in rows]
    lo, hi = min(intensities + [1.0]) / 2, max(intensities + [1.0]) * 2
    xs = np.geomspace(lo, hi, 200)
    roof.plot(xs, np.minimum(dev["peak_gflops"], xs * dev["peak_gbps"]), color="black",
              label=f"roof: {dev['peak_gflops']:.0f} GFLOP/s, {dev['peak_gbps']:.0f} GB/s")
    for name in names:
        pts = [(ai, a["gflops"]) for ai, row in zip(intensities, rows)
               for a in row["algorithms"] if a["name"] == name and a["status"] == "ok"]
        if pts:
            roof.scatter(*zip(*pts), color=colors[name], s=18, label=name)
    peer_pts = [(ai, q["gflops"]) for ai, row in zip(intensities, rows)
                for q in row["peers"] if q["name"] == peer and q["status"] == "ok"]
    if peer_pts:
        roof.scatter(*zip(*peer_pts), color="black", marker="x", s=24, label=peer)
    roof.set_xscale("log")
    roof.set_yscale("log")
    roof.set_xlabel("arithmetic intensity (FLOP / byte)")
    roof.set_ylabel("GFLOP/s")
    roof.legend(fontsize=7)
    st = doc["settings"]
    fig.suptitle(f"cnnkern bench: {dev['name']} ({dev['backend']}), {st['dtype']}, "
                 f"batch {st['batch']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
