"""Algorithm records: what each implementation is, when it can run and what it costs.

A backend package registers its algorithms when it is imported; the registry imports
a backend package the first time that backend is asked for, so the package itself
imports without CuPy or Numba.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable, Optional

#: The operations an algorithm can implement.
OPS = ("conv", "conv_grad_weight", "max_pool", "avg_pool")

#: Backend name -> module that registers its algorithms on import.
BACKEND_MODULES = {
    "numpy": "cnnkern.backends.numpy",
    "numba": "cnnkern.backends.numba",
    "cuda": "cnnkern.backends.cuda",
}


def _no_workspace(params) -> int:
    return 0


def _always(params, weight=None) -> Optional[str]:
    return None


@dataclass(frozen=True)
class Algorithm:
    """One implementation of one operation on one backend.

    ``can_implement(params, weight)`` returns None when the algorithm can run the call,
    else the reason it cannot, from the call's shape alone; ``value_check(weight)``,
    for an algorithm that also depends on the weight values (``separable``), does the
    same from the values (``weight`` None: it says it needs them). The dispatcher
    caches what depends on the shape and runs ``value_check`` only when it matters.
    ``tolerance`` maps a dtype name to the largest relative error
    ``||y - ref|| / ||ref||`` against the float64 reference that the tests accept.
    """

    name: str
    backend: str
    op: str
    run: Callable
    can_implement: Callable = _always
    workspace_bytes: Callable = _no_workspace
    tolerance: dict = field(default_factory=dict)
    summary: str = ""
    #: The oracle the others are tested against: run only when asked for by name, or
    #: when nothing else can run the call.
    reference: bool = False
    value_check: Optional[Callable] = None

    def check(self, params, weight=None) -> Optional[str]:
        reason = self.can_implement(params, weight)
        if reason is None and self.value_check is not None:
            reason = self.value_check(weight)
        return reason


_ALGORITHMS: dict[tuple[str, str], dict[str, Algorithm]] = {}
_LOADED: dict[str, Optional[str]] = {}


def register(alg: Algorithm) -> Algorithm:
    if alg.op not in OPS:
        raise ValueError(f"register: unknown op {alg.op!r}; expected one of {OPS}")
    table = _ALGORITHMS.setdefault((alg.op, alg.backend), {})
    if alg.name in table:
        raise ValueError(f"register: algorithm {alg.name!r} is already registered for "
                         f"op {alg.op!r} on backend {alg.backend!r}")
    table[alg.name] = alg
    return alg


def load_backend(backend: str) -> Optional[str]:
    """Import a backend's package; return None if it loaded, else why it cannot."""
    if backend not in BACKEND_MODULES:
        return (f"backend {backend!r} is unknown; expected one of "
                f"{', '.join(map(repr, BACKEND_MODULES))}")
    if backend not in _LOADED:
        try:
            module = importlib.import_module(BACKEND_MODULES[backend])
            _LOADED[backend] = getattr(module, "unavailable_reason", lambda: None)()
        except ModuleNotFoundError as exc:
            if exc.name == BACKEND_MODULES[backend]:
                _LOADED[backend] = (f"backend {backend!r} is not available: this version "
                                    f"of cnnkern does not include it")
            else:
                _LOADED[backend] = (f"backend {backend!r} is not available: its "
                                    f"dependency {exc.name!r} is not installed")
        except ImportError as exc:
            _LOADED[backend] = f"backend {backend!r} is not available: {exc}"
    return _LOADED[backend]


def algorithms(op: str, backend: str) -> list[Algorithm]:
    """The algorithms registered for ``op`` on ``backend``, in registration order."""
    load_backend(backend)
    return list(_ALGORITHMS.get((op, backend), {}).values())


def get(op: str, backend: str, name: str) -> Optional[Algorithm]:
    load_backend(backend)
    return _ALGORITHMS.get((op, backend), {}).get(name)
