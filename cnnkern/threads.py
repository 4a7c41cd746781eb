"""One knob for the CPU thread count: Numba's parallel regions, the BLAS behind NumPy's
matmul, and scipy.fft's workers all follow ``set_num_threads``.

The CPU algorithms never nest one pool inside another (no BLAS call inside a Numba
parallel loop), so each stage runs with exactly this many threads and a 2-core machine
is never oversubscribed. The BLAS is reached through its own C entry point
(OpenBLAS's ``*_set_num_threads``), found among the shared libraries loaded in this
process; where none is found (another BLAS, another OS) the BLAS keeps its own
setting and ``blas_threads_controlled()`` says so.
"""
from __future__ import annotations

import ctypes
import os
import sys
import threading
from typing import Optional

_LOCK = threading.Lock()
_STATE: dict = {"threads": None, "blas": None, "pinned": False}

#: Entry points of the OpenBLAS builds NumPy and SciPy ship (plain and prefixed).
_BLAS_SETTERS = ("openblas_set_num_threads", "scipy_openblas_set_num_threads64_",
                 "scipy_openblas_set_num_threads", "openblas_set_num_threads64_")


def cpu_count() -> int:
    """The CPUs this process may run on (its affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _loaded_libraries() -> list[str]:
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            paths = {line.split()[-1] for line in fh if "openblas" in line.lower()}
    except OSError:
        return []
    return sorted(p for p in paths if p.startswith("/"))


def _blas_setters() -> dict:
    """Path -> thread setter of every OpenBLAS loaded now (NumPy's is loaded with NumPy,
    SciPy's with scipy.linalg, which Numba uses for ``np.dot``)."""
    import numpy  # noqa: F401  (loads NumPy's BLAS before the maps are read)
    paths = _loaded_libraries()
    if _STATE["blas"] is None or set(paths) != set(_STATE["blas"]):
        setters = {}
        for path in paths:
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            for name in _BLAS_SETTERS:
                fn = getattr(lib, name, None)
                if fn is not None:
                    fn.restype = None
                    fn.argtypes = [ctypes.c_int]
                    setters[path] = fn
                    break
        _STATE["blas"] = setters
    return _STATE["blas"]


def _is_scipy_blas(path: str) -> bool:
    return "scipy.libs" in path or \
        ("scipy_openblas-" in os.path.basename(path) and "numpy" not in path)


def pin_numba_blas() -> None:
    """SciPy's BLAS (the one Numba's ``np.dot`` calls) to one thread: the Numba backend
    calls it from inside its parallel loops, where BLAS threads of its own would
    oversubscribe the cores. NumPy's BLAS keeps ``get_num_threads()``."""
    import scipy.linalg.cython_blas  # noqa: F401  (the library Numba binds to)
    _STATE["pinned"] = True
    for path, fn in _blas_setters().items():
        fn(1 if _is_scipy_blas(path) else get_num_threads())


#: The environment variables by which a user says how GNU OpenMP's workers wait; if
#: either is set, ``start_numba_threads`` leaves the choice alone.
WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


#: Spins of an idle GNU OpenMP worker before it sleeps, for Numba's pool (libgomp's
#: default: 300000). On the 2-core machine 10000 kept single layers as fast as the
#: default and cut a MobileNetV2 block from 8.0 to 1.9 ms; passive workers (no spin)
#: cut it to 0.9 ms but made single Numba layers 1.5-2.4x slower (docs/architecture.md).
SPIN_COUNT = 10000


def start_numba_threads() -> None:
    """Start Numba's thread pool (once, before its first parallel loop) with GNU
    OpenMP's idle workers spinning ``SPIN_COUNT`` times before they sleep, unless
    ``WAIT_VARIABLES`` are set or the pool runs already.

    By default they spin far longer, and OpenBLAS's workers spin after each GEMM too:
    on the 2-core machine a Numba layer next to a BLAS one (a depthwise 3x3 then a 1x1,
    MobileNet's pattern) took 8.0 ms a pair against 0.45 + 0.2 ms apart, each pool's
    spinning workers holding the cores the other needed. The variable is set only
    while Numba loads OpenMP, which reads it then. A library that loads GNU OpenMP
    later in the process (PyTorch) shares that runtime and its setting; one loaded
    earlier keeps its own, and Numba binds to it (README, docs/architecture.md)."""
    import numba
    from numba.np.ufunc import parallel
    if getattr(parallel, "_is_initialized", False):
        return
    ours = not set(WAIT_VARIABLES) & set(os.environ)
    if ours:
        os.environ["GOMP_SPINCOUNT"] = str(SPIN_COUNT)
    try:
        numba.get_num_threads()                 # launches the pool
    finally:
        if ours:
            del os.environ["GOMP_SPINCOUNT"]


def blas_threads_controlled() -> bool:
    """Whether ``set_num_threads`` reaches the BLAS behind NumPy (OpenBLAS on Linux)."""
    return bool(_blas_setters())


def set_num_threads(n: Optional[int]) -> None:
    """Threads for the CPU backends (Numba, BLAS, scipy.fft); None: all CPUs of this
    process. Applies to the whole process, like ``torch.set_num_threads``."""
    if n is not None and (isinstance(n, bool) or not isinstance(n, int)):
        raise TypeError(f"set_num_threads: expected n to be None or an int, but got {n!r}")
    limit = cpu_count()
    if n is not None and not 1 <= n <= limit:
        raise ValueError(f"set_num_threads: expected 1 <= n <= {limit} (the CPUs this "
                         f"process may use), but got n={n}")
    with _LOCK:
        _STATE["threads"] = n
        _apply(limit if n is None else n)


def get_num_threads() -> int:
    """The thread count every CPU stage uses now."""
    n = _STATE["threads"]
    return cpu_count() if n is None else n


def _apply(n: int) -> None:
    for path, fn in _blas_setters().items():
        fn(1 if _STATE["pinned"] and _is_scipy_blas(path) else n)
    if "numba" in sys.modules:
        import numba
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))


def sync_numba() -> None:
    """Called by the Numba backend before its parallel loops: Numba's thread count is
    per calling thread, so a caller thread that never saw ``set_num_threads`` gets it
    here."""
    import numba
    want = min(get_num_threads(), numba.config.NUMBA_NUM_THREADS)
    if numba.get_num_threads() != want:
        numba.set_num_threads(want)
