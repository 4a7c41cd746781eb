"""The results document as a terminal table: rich when installed, plain text otherwise.

One row per algorithm and peer per layer. Ratios are speeds: ``vs best`` is the
fastest cnnkern algorithm's time over this one's (1.00 for the fastest), ``vs <peer>``
is the peer's time over this one's (> 1: cnnkern is faster). ``% roof`` is the
achieved FLOP/s over the roofline bound ``min(peak FLOP/s, intensity x bandwidth)``.
"""
from __future__ import annotations

import sys



def peer_names(doc: dict) -> list:
    names = []
    for row in doc["layers"]:
        for q in row["peers"]:
            if q["name"] not in names:
                names.append(q["name"])
    return names


def columns(doc: dict) -> tuple:
    return ("layer", "algorithm", "ms", "GFLOP/s", "GB/s", "% roof", "vs best") + \
        tuple(f"vs {name}" for name in peer_names(doc)) + ("note",)


def _fmt(value, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _note(row: dict, entry: dict, is_peer: bool) -> str:
    status = entry["status"]
    if status == "wrong":
        return f"WRONG: rel err {entry['rel_err']:.1e} > {entry['tolerance']:.0e}, not timed"
    if status == "failed":
        return f"FAILED: {entry['error']}"
    if is_peer:
        return entry.get("label", "")
    notes = []
    if entry["name"] == row["best"]:
        notes.append("fastest")
    if entry["name"] == row["auto"]:
        notes.append("auto")
    if entry["name"] == row.get("autotune"):
        notes.append("autotune")
    return ", ".join(notes)


def rows(doc: dict) -> list:
    """Table rows (strings) and a style per row: "" or "peer" or "bad"."""
    out = []
    names = peer_names(doc)
    for row in doc["layers"]:
        first = True
        entries = [(a, False) for a in row["algorithms"] if a["status"] != "cannot"]
        entries += [(q, True) for q in row["peers"]]
        for entry, is_peer in entries:
            cells = (row["id"] if first else "", entry["name"], _fmt(entry.get("ms"), ".3f"),
                     _fmt(entry.get("gflops"), ".1f"), _fmt(entry.get("gbps"), ".1f"),
                     _fmt(entry.get("roof_pct"), ".1f"), _fmt(entry.get("vs_best"), ".2f")) + \
                tuple(_fmt(entry.get(f"vs_{name}"), ".2f") for name in names) + \
                (_note(row, entry, is_peer),)
            style = "bad" if entry["status"] in ("wrong", "failed") else \
                ("peer" if is_peer else "")
            out.append((cells, style))
            first = False
    return out


def title(doc: dict) -> str:
    dev, st = doc["device"], doc["settings"]
    where = f"{dev['sm_count']} SMs" if dev["kind"] == "gpu" else \
        f"{dev['threads']} threads"
    return (f"cnnkern bench on {dev['name']} ({dev['kind']}, {where}, backend "
            f"{dev['backend']}): {st['dtype']}, batch {st['batch']}, median of "
            f"{st['repeat']} runs")


def footer(doc: dict) -> list:
    s, st, dev = doc["summary"], doc["settings"], doc["device"]
    lines = [f"roofs: {dev['peak_gflops']:.0f} GFLOP/s, {dev['peak_gbps']:.0f} GB/s "
             f"({dev['roof_source']})"]
    if st["peer"]:
        gm = s["geomean_best_vs_peer"]
        lines.append(f"vs <peer> = the peer's time / this time (> 1: cnnkern faster); "
                     f"geomean over layers of the fastest cnnkern algorithm vs "
                     f"{st['peer']}: "
                     f"{'n/a' if gm is None else format(gm, '.2f') + 'x'}")
    else:
        lines.append("no peer comparison (--no-compare, or torch not installed)")
    lines.append(f"auto picked the fastest on {s['auto_fastest']} of {s['auto_timed']} "
                 f"layers, within 10% on {s['auto_within_10pct']}")
    if s["autotune_fastest"] is not None:
        lines.append(f"autotune picked the fastest on {s['autotune_fastest']} of "
                     f"{s['layers']} layers, within 10% on {s['autotune_within_10pct']}")
    if s["wrong"]:
        lines.append(f"WRONG results (not timed): {', '.join(s['wrong'])}")
    if s["failed"]:
        lines.append(f"failed: {', '.join(s['failed'])}")
    return lines


def render_plain(doc: dict, file=None) -> None:
    file = file or sys.stdout
    cols = columns(doc)
    table = [cols] + [cells for cells, _ in rows(doc)]
    widths = [max(len(r[i]) for r in table) for i in range(len(cols) - 1)]
    print(title(doc), file=file)
    for n, r in enumerate(table):
        line = "  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(r, widths)))
        print(f"{line}  {r[-1]}".rstrip(), file=file)
        if n == 0:
            print("-" * (sum(widths) + 2 * len(widths) + 4), file=file)
    for line in footer(doc):
        print(line, file=file)


def render_rich(doc: dict, console) -> None:
    from rich.table import Table
    table = Table(title=title(doc), title_justify="left", show_lines=False)
    cols = columns(doc)
    for i, col in enumerate(cols):
        table.add_column(col, justify="left" if i in (0, 1, len(cols) - 1) else "right",
                         no_wrap=i < len(cols) - 1)
    styles = {"": None, "peer": "dim", "bad": "bold red"}
    last_layer = None
    for cells, style in rows(doc):
        if cells[0] and last_layer is not None:
            table.add_section()
        last_layer = cells[0] or last_layer
        table.add_row(*cells, style=styles[style])
    console.print(table)
    for line in footer(doc):
        console.print(line, highlight=False, markup=False)


def console(stderr: bool = False):
    """A rich Console (wide when not a terminal, so tables do not wrap in logs), or
    None when rich is not installed."""
    try:
        from rich.console import Console
    except ImportError:
        return None
    con = Console(stderr=stderr)
    if not con.is_terminal:
        con = Console(stderr=stderr, width=max(con.width, 160))
    return con


def render(doc: dict, plain: bool = False) -> None:
    con = None if plain else console()
    if con is None:
        render_plain(doc)
    else:
        render_rich(doc, con)
