import atexit
import os
import shutil
import tempfile
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from cnnkern import functional, registry
from cnnkern.arrays import NUMPY, default_backend
from cnnkern.backends.numpy import _common, workspace

# nothing in the test session may touch the user's autotune cache; the directory goes
# with the session (each run used to leave one behind in the temp folder)
_SESSION_CACHE = tempfile.mkdtemp(prefix="cnnkern-test-cache-")
os.environ["CNNKERN_CACHE_DIR"] = _SESSION_CACHE
atexit.register(shutil.rmtree, _SESSION_CACHE, ignore_errors=True)

settings.register_profile(
    "default", max_examples=int(os.environ.get("CNNKERN_HYPOTHESIS_EXAMPLES", "150")),
    deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile("default")


@pytest.fixture(autouse=True)
def poison_outputs(monkeypatch):
    """Fresh output buffers start as NaN: an element left unwritten fails the test. So
    do scratch buffers, every one of which goes through the kept-buffer pool (however
    small), so that a call reusing an earlier call's buffer reads no stale value."""
    monkeypatch.setattr(_common, "POISON", True)
    monkeypatch.setattr(workspace, "SMALL_BYTES", 0)
    try:
        from cnnkern.backends.cuda import module as cuda_module
    except ImportError:
        return
    monkeypatch.setattr(cuda_module, "POISON", True)


@pytest.fixture(autouse=True)
def fresh_dispatch_state(tmp_path, monkeypatch):
    """Each test: an empty autotune cache in its own directory (never the user's), and
    the global settings back to their defaults afterwards."""
    from cnnkern import dispatch
    monkeypatch.setenv("CNNKERN_CACHE_DIR", str(tmp_path / "cnnkern-cache"))
    dispatch.set_cache_dir(tmp_path / "cnnkern-cache")
    yield
    dispatch.set_autotune(False)
    dispatch.set_workspace_limit(None)
    dispatch.set_cache_dir(None)


#: The CPU backends this machine can run: every test of the public API runs on each.
CPU_BACKENDS = [b for b in ("numpy", "numba") if registry.load_backend(b) is None]

#: Modules that test machinery around the backends, not the convolutions, run on one
#: backend: the dispatcher's limits and fallbacks are written against the NumPy
#: backend's algorithms; the benchmark and the GPU tests take the default.
ONE_BACKEND = {"test_autotune": ["numpy"], "test_bench": [], "test_cuda": [],
               "test_numba_backend": ["numba"],
               "test_algorithms": []}    # (parametrized over (backend, algorithm) itself)


def pytest_generate_tests(metafunc):
    backends = ONE_BACKEND.get(metafunc.module.__name__.split(".")[-1], CPU_BACKENDS)
    if backends:
        metafunc.parametrize("cpu_backend", backends, indirect=True)


@pytest.fixture(autouse=True)
def cpu_backend(request, monkeypatch):
    """The backend NumPy arrays get when a call names none (the parametrized one)."""
    backend = getattr(request, "param", None)
    if backend is None:
        return default_backend(NUMPY)
    monkeypatch.setattr(functional, "default_backend",
                        lambda kind: default_backend(kind) if kind.on_gpu else backend)
    return backend


@pytest.fixture
def rng(request):
    """A generator seeded from the test's id (fixed, different per test), printed."""
    seed = zlib.crc32(request.node.nodeid.encode())
    print(f"seed={seed}")
    return np.random.default_rng(seed)
