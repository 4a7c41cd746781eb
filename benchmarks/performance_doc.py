"""Regenerate the tables of docs/performance.md from benchmarks/results/.

    python benchmarks/performance_doc.py           # rewrite the generated blocks
    python benchmarks/performance_doc.py --check   # exit 1 if the document is stale

Each block is delimited by ``<!-- generated: <results file> -->`` and
``<!-- end generated -->``; the text between is replaced by the table rendered from
that file, everything else (the analysis) is left as written.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOC = ROOT / "docs" / "performance.md"
BLOCK = re.compile(r"(<!-- generated: (?P<file>\S+) -->\n)(?P<body>.*?)(<!-- end generated -->)",
                   re.S)


def _f(value, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _table(header: list, rows: list) -> list:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + \
        ["| " + " | ".join(map(str, r)) + " |" for r in rows]


def render_bench(doc: dict, name: str) -> list:
    """A ``cnnkern-bench/1`` document: one row per layer, the fastest algorithm."""
    dev, st, s = doc["device"], doc["settings"], doc["summary"]
    where = f"{dev['sm_count']} SMs" if dev["kind"] == "gpu" else f"{dev['threads']} threads"
    lines = [f"`benchmarks/results/{name}`: {dev['name']} ({where}, backend "
             f"`{dev['backend']}`), {st['dtype']}, batch {st['batch']}, {doc['date'][:10]}, "
             f"commit {doc['commit'] or 'unknown'}, `{doc['command']}`. Roofs "
             f"{dev['peak_gflops']:.0f} GFLOP/s and {dev['peak_gbps']:.0f} GB/s "
             f"({dev['roof_source']}).", ""]
    peer = st["peer"]
    header = ["layer", "GFLOP", "fastest", "ms", "GFLOP/s", "% roof"]
    if peer:
        header += [f"{peer} ms", f"x {peer}"]
    header += ["auto", "auto / fastest"]
    rows = []
    for row in doc["layers"]:
        best = next((a for a in row["algorithms"] if a["name"] == row["best"]), {})
        q = next((q for q in row["peers"] if q["name"] == peer and q["status"] == "ok"), {})
        cells = [row["id"], f"{row['gflop']:.3f}", row["best"] or "none",
                 _f(best.get("ms"), ".3f"), _f(best.get("gflops"), ".1f"),
                 _f(best.get("roof_pct"), ".1f")]
        if peer:
            cells += [_f(q.get("ms"), ".3f"), _f(row["best_vs_peer"], ".2f")]
        cells += [row["auto"], _f(row["auto_vs_best"], ".2f")]
        rows.append(cells)
    lines += _table(header, rows)
    lines.append("")
    summary = f"auto picked the fastest on {s['auto_fastest']} of {s['auto_timed']} " \
              f"layers and was within 10% on {s['auto_within_10pct']}."
    if peer:
        summary = f"Geomean of the fastest cnnkern algorithm vs {peer}: " \
                  f"**{_f(s['geomean_best_vs_peer'], '.2f')}x**; " + summary
    if s["wrong"]:
        summary += f" Wrong results: {', '.join(s['wrong'])}."
    lines.append(summary)
    return lines


def render(name: str) -> str:
    doc = json.loads((RESULTS / name).read_text())
    if not doc.get("schema", "").startswith("cnnkern-bench/"):
        raise ValueError(f"{name}: not a cnnkern-bench results file")
    lines = render_bench(doc, name)
    return "\n".join(lines) + "\n"


def regenerate(text: str) -> str:
    return BLOCK.sub(lambda m: m.group(1) + render(m.group("file")) + m.group(4), text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if the document is stale")
    args = ap.parse_args(argv)
    text = DOC.read_text()
    new = regenerate(text)
    if args.check:
        if new != text:
            print("docs/performance.md is out of date: run python "
                  "benchmarks/performance_doc.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
