"""``python -m cnnkern`` / ``cnnkern``: the benchmark suite and the layer tables.

``bench`` picks the device (GPU when usable, else CPU), checks every algorithm that
can run each chosen layer against the float64 reference, times it (median after
warm-up; CUDA events on the GPU) next to PyTorch when installed, and prints a table
with the algorithm ``auto`` picks. ``suites`` lists the layer tables.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys

import numpy as np

from . import registry
from .suites import QUICK, SOURCES, SUITES


def _progress(enabled: bool):
    """A factory for runner progress: a rich bar on a terminal, one line per layer on
    stderr otherwise, nothing when disabled."""
    if not enabled:
        return None

    def factory(total):
        if sys.stderr.isatty():
            try:
                from rich.progress import Progress
            except ImportError:
                pass
            else:
                bar = Progress(transient=True)
                bar.start()
                task = bar.add_task("bench", total=total)

                def tick(label, done):
                    bar.update(task, description=label, advance=1 if done else 0)
                    if done and bar.tasks[task].completed >= total:
                        bar.stop()
                return tick
        count = [0]

        def tick(label, done):
            if done:
                count[0] += 1
                print(f"[{count[0]}/{total}] {label}", file=sys.stderr, flush=True)
        return tick
    return factory


def _check_output_path(parser, option: str, path):
    if path is None:
        return
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        parser.error(f"{option} {path!r}: directory {parent!r} does not exist")


def bench(args, parser) -> int:
    from .bench import device as devices
    from .bench import peers, plot, report
    from .bench.runner import run_suite, select_layers
    from .bench.schema import validate

    try:
        chosen = select_layers(args.suite, args.layers)
    except ValueError as exc:
        parser.error(str(exc))
    _check_output_path(parser, "--json", args.json)
    _check_output_path(parser, "--plot", args.plot)
    if args.plot and plot.matplotlib_missing():
        parser.error("--plot needs matplotlib, which is not installed "
                     "(pip install 'cnnkern[bench]')")
    if not args.no_compare:
        # PyTorch first: its OpenMP runtime then keeps its own spin setting, which a
        # Numba backend started earlier would have set for both (threads.py)
        peers.torch_available()
    dtype = np.dtype(args.dtype)
    try:
        device = devices.pick(args.device, dtype)
    except ValueError as exc:
        parser.error(f"--device: {exc}")
    algos = [a.strip() for a in args.algos.split(",") if a.strip()]
    known = [a.name for a in registry.algorithms("conv", device.backend)]
    unknown = [a for a in algos if a not in known]
    if unknown:
        parser.error(f"--algos: {', '.join(map(repr, unknown))} not registered on backend "
                     f"{device.backend!r}; known: {', '.join(known)}")
    if not args.budget > 0:
        parser.error(f"--budget: expected a positive number of seconds, got {args.budget}")
    batch = args.batch or (32 if device.kind == "gpu" else 1)
    repeat = args.repeat or (20 if device.kind == "gpu" else 5)
    command = "cnnkern " + " ".join(shlex.quote(a) for a in args.argv)
    doc = run_suite(chosen, device, dtype, batch, repeat, algos, not args.no_compare,
                    args.seed, command, _progress(not args.quiet), args.budget,
                    args.autotune)
    validate(doc)
    report.render(doc, plain=args.plain)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
        print(f"results: {args.json}")
    if args.plot:
        plot.write(doc, args.plot)
        print(f"plot: {args.plot}")
    return 1 if doc["summary"]["wrong"] and args.strict else 0


def suites(args, parser) -> int:
    print(f"quick: {', '.join(QUICK)}")
    for name, table in SUITES.items():
        print(f"{name}: {', '.join(layer.name for layer in table)}")
        print(f"    source: {SOURCES[name]}")
    return 0


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="cnnkern", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("bench", help="check and time every algorithm on seed-network layers",
                       description=__doc__.split("\n\n")[1])
    b.add_argument("--suite", default="quick",
                   help="comma-separated suites: quick (default, about a minute on 2 CPU "
                        f"cores), all, or {', '.join(SUITES)}")
    b.add_argument("--layers", default="",
                   help="comma-separated layers: suite/name, or a name within --suite")
    b.add_argument("--algos", default="", help="comma-separated algorithm names (default: "
                                                "every registered algorithm)")
    b.add_argument("--dtype", default="float32", choices=["float16", "float32", "float64"])
    b.add_argument("--batch", type=_positive, default=None,
                   help="batch size (default 1 on the CPU, 32 on the GPU)")
    b.add_argument("--device", default="auto", choices=["auto", "cpu", "gpu"],
                   help="auto: the GPU when the cuda backend can run, else the CPU")
    b.add_argument("--repeat", type=_positive, default=None,
                   help="timed runs per measurement (default 5 on the CPU, 20 on the GPU)")
    b.add_argument("--budget", type=float, default=2.0, metavar="SECONDS",
                   help="CPU: a slow algorithm gets fewer timed runs, about this many "
                        "seconds' worth (at least one); default 2")
    b.add_argument("--json", metavar="PATH", help="write the results document here")
    b.add_argument("--plot", metavar="PATH", help="write a PNG (speed bars and roofline)")
    b.add_argument("--no-compare", action="store_true", help="do not run PyTorch")
    b.add_argument("--autotune", action="store_true",
                   help="also record what algo='autotune' picks per layer (timed afresh)")
    b.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    b.add_argument("--plain", action="store_true", help="plain-text table, even with rich")
    b.add_argument("--quiet", action="store_true", help="no progress output")
    b.add_argument("--strict", action="store_true",
                   help="exit with status 1 when any result is wrong")
    sub.add_parser("suites", help="list the layer tables and their sources")
    args = parser.parse_args(argv)
    args.argv = argv
    if args.command == "bench":
        return bench(args, b)
    return suites(args, parser)


if __name__ == "__main__":
    sys.exit(main())
