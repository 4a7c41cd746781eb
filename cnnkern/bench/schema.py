"""The results document of ``cnnkern bench --json``: its fields and a validator.

A spec is a type (or tuple of types; ``None`` allowed where a value may be missing),
a dict (an object with exactly these required keys; extra keys are allowed), or a
one-element list (an array of that spec). ``docs/benchmarks.md`` documents every
field named here (a test keeps the two in step).
"""
from __future__ import annotations

SCHEMA = "cnnkern-bench/1"

NUM = (int, float)
OPT_NUM = (int, float, type(None))
OPT_STR = (str, type(None))
OPT_INT = (int, type(None))

DEVICE = dict(kind=str, name=str, backend=str, threads=int, cores=(int, type(None)),
              sm_count=(int, type(None)), peak_gflops=NUM, peak_gbps=NUM, roof_source=str)

SETTINGS = dict(layers=[str], dtype=str, batch=int, repeat=int, budget_s=NUM, seed=int,
                compare=bool, autotune=bool, algorithms=(list, type(None)), peer=OPT_STR)

#: fields of an algorithm or peer entry, by status
ENTRY = dict(name=str, status=str)
BY_STATUS = {
    "ok": dict(rel_err=NUM, tolerance=NUM, ms=NUM, ms_min=NUM, runs=int, gflops=NUM,
               gbps=NUM, roof_pct=NUM),
    "wrong": dict(rel_err=NUM, tolerance=NUM),
    "failed": dict(error=str),
    "cannot": dict(reason=str),
}
ALGORITHM_OK = dict(workspace_bytes=int, vs_best=NUM, vs_peer=OPT_NUM)

LAYER = dict(id=str, suite=str, name=str, input_shape=[int], weight_shape=[int],
             output_shape=[int], stride=[int], padding=[[int]], dilation=[int], groups=int,
             gflop=NUM, mbytes=NUM, reference=str, auto=str, best=OPT_STR,
             auto_is_fastest=bool, auto_vs_best=OPT_NUM, best_vs_peer=OPT_NUM,
             autotune=OPT_STR, autotune_vs_best=OPT_NUM,
             algorithms=[ENTRY], peers=[ENTRY])

SUMMARY = dict(layers=int, geomean_best_vs_peer=OPT_NUM, auto_fastest=int,
               auto_within_10pct=int, auto_timed=int, autotune_fastest=OPT_INT,
               autotune_within_10pct=OPT_INT, wrong=[str], failed=[str])

DOCUMENT = dict(schema=str, date=str, command=str, commit=OPT_STR, cnnkern=str,
                device=DEVICE, versions=dict, settings=SETTINGS, layers=[LAYER],
                summary=SUMMARY)


def _check(value, spec, path: str) -> None:
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            raise ValueError(f"{path}: expected an object, got {type(value).__name__}")
        for key, sub in spec.items():
            if key not in value:
                raise ValueError(f"{path}: missing field {key!r}")
            _check(value[key], sub, f"{path}.{key}")
    elif isinstance(spec, list):
        if not isinstance(value, list):
            raise ValueError(f"{path}: expected an array, got {type(value).__name__}")
        for i, item in enumerate(value):
            _check(item, spec[0], f"{path}[{i}]")
    else:
        types = spec if isinstance(spec, tuple) else (spec,)
        # JSON has no int/bool distinction worth keeping: a bool is not a number here
        if isinstance(value, bool) and bool not in types:
            raise ValueError(f"{path}: expected {_names(types)}, got bool")
        if not isinstance(value, types):
            raise ValueError(f"{path}: expected {_names(types)}, got "
                             f"{type(value).__name__} {value!r}")


def _names(types) -> str:
    return " or ".join("null" if t is type(None) else t.__name__ for t in types)


def validate(doc: dict) -> dict:
    """Return ``doc`` if it follows the schema, else raise ``ValueError`` naming the
    first offending field."""
    _check(doc, DOCUMENT, "$")
    if doc["schema"] != SCHEMA:
        raise ValueError(f"$.schema: expected {SCHEMA!r}, got {doc['schema']!r}")
    for i, row in enumerate(doc["layers"]):
        for group in ("algorithms", "peers"):
            for j, entry in enumerate(row[group]):
                path = f"$.layers[{i}].{group}[{j}]"
                status = entry["status"]
                if status not in BY_STATUS:
                    raise ValueError(f"{path}.status: expected one of "
                                     f"{', '.join(BY_STATUS)}, got {status!r}")
                _check(entry, BY_STATUS[status], path)
                if group == "algorithms" and status == "ok":
                    _check(entry, ALGORITHM_OK, path)
    return doc


def field_names() -> set:
    """Every field name the schema defines (for the documentation check)."""
    names: set = set()

    def walk(spec):
        if isinstance(spec, dict):
            for key, sub in spec.items():
                names.add(key)
                walk(sub)
        elif isinstance(spec, list):
            walk(spec[0])
    for spec in (DOCUMENT, ENTRY, ALGORITHM_OK, *BY_STATUS.values()):
        walk(spec)
    return names
