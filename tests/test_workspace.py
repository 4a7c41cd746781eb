"""The scratch buffers the CPU backends keep between calls (backends/numpy/workspace.py)."""
import platform
import threading

import numpy as np
import pytest

import cnnkern as ck
from cnnkern.backends.numpy import _common, workspace as ws

from helpers import rel_err


@pytest.fixture(autouse=True)
def empty_pool():
    ws.release()
    yield
    ws.release()


def _buffer_of(arr):
    """The kept buffer an array is a view of."""
    while arr.base is not None:
        arr = arr.base
    return arr


def test_a_buffer_is_kept_and_reused_by_the_next_block():
    with ws.workspace((3, 1000), np.float32) as a:
        first = _buffer_of(a)
        assert a.shape == (3, 1000) and a.dtype == np.float32 and a.flags.c_contiguous
    assert ck.kept_workspace_bytes() >= 12000
    with ws.workspace((2, 1000), np.float64) as b:     # 16000 bytes: a new one
        assert _buffer_of(b) is not first
    with ws.workspace((1000,), np.float32) as c:       # the smallest that fits
        assert _buffer_of(c) is first
    ck.release_workspaces()
    assert ck.kept_workspace_bytes() == 0


def test_nested_blocks_get_distinct_buffers():
    with ws.workspace((100,), np.float32) as a, ws.workspace((100,), np.float32) as b:
        a[:] = 1
        b[:] = 2
        assert _buffer_of(a) is not _buffer_of(b)
        assert np.all(a == 1)


def test_poisoned_runs_see_nan_in_a_reused_buffer():
    with ws.workspace((64,), np.float32) as a:
        a[:] = 7
    with ws.workspace((64,), np.float32) as b:        # conftest poisons outputs
        assert _common.POISON and np.isnan(b).all()


def test_kept_bytes_stay_under_the_cap(monkeypatch):
    monkeypatch.setattr(ws, "KEEP_BYTES", 10_000)
    with ws.workspace((20_000,), np.uint8):            # over the cap: never kept
        pass
    assert ck.kept_workspace_bytes() == 0
    for n in (4000, 3000, 6000):
        with ws.workspace((n,), np.uint8):
            pass
        assert ck.kept_workspace_bytes() <= 10_000
    assert ck.kept_workspace_bytes() > 0


def test_small_buffers_are_not_kept(monkeypatch):
    monkeypatch.setattr(ws, "SMALL_BYTES", 4096)
    with ws.workspace((1023,), np.float32):
        pass
    assert ck.kept_workspace_bytes() == 0
    with ws.workspace((1024,), np.float32):
        pass
    assert ck.kept_workspace_bytes() == 4096


@pytest.mark.parametrize("variable", ws.HEAP_VARIABLES)
def test_the_heap_is_left_alone_when_the_environment_sets_it(monkeypatch, variable):
    monkeypatch.setenv(variable, "65536")
    assert ws.keep_freed_memory() is False


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_the_heap_thresholds_are_set_on_glibc(monkeypatch):
    for variable in ws.HEAP_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    assert ws.keep_freed_memory() is True


def test_each_thread_has_its_own_buffers():
    with ws.workspace((1000,), np.float32):
        pass
    seen = []
    t = threading.Thread(target=lambda: seen.append(ck.kept_workspace_bytes()))
    t.start()
    t.join()
    assert seen == [0] and ck.kept_workspace_bytes() > 0


CALLS = [  # (algorithm, input shape, weight shape, kwargs)
    ("im2col", (2, 6, 15, 13), (8, 6, 3, 3), dict(padding=1)),
    ("im2col", (1, 4, 40, 9), (5, 4, 3, 2), dict(padding=(2, 1))),
    ("tap_gemm", (2, 5, 17, 11), (7, 5, 3, 3), dict(padding=4, dilation=3)),
    ("winograd_f2x2_3x3", (2, 6, 12, 10), (8, 6, 3, 3), dict(padding=1)),
    ("depthwise", (3, 24, 9, 9), (24, 1, 3, 3), dict(padding=1, groups=24)),
]


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("algo,xs,wshape,kw", CALLS)
def test_calls_through_kept_buffers_match_the_reference(backend, algo, xs, wshape, kw):
    """Calls of different shapes in turn, each through the buffers the previous ones
    left (NaN-filled under the tests' poisoning), against the float64 reference."""
    rng = np.random.default_rng()
    probe = (rng.standard_normal(xs).astype(np.float32),
             rng.standard_normal(wshape).astype(np.float32))
    if backend not in ck.available_backends() or \
            algo not in ck.supported_algorithms(*probe, backend=backend, **kw):
        pytest.skip(f"{algo} does not run on {backend}")
    for scale in (1, 2, 1):
        shape = xs[:2] + tuple(n * scale for n in xs[2:])
        x = rng.standard_normal(shape).astype(np.float32)
        w = rng.standard_normal(wshape).astype(np.float32)
        y = ck.conv2d(x, w, algo=algo, backend=backend, **kw)
        ref = ck.conv2d(x.astype(np.float64), w.astype(np.float64), algo="direct",
                        backend="numpy", **kw)
        assert rel_err(y, ref) < 1e-5
    if algo in KEEPS.get(backend, ()):
        assert ck.kept_workspace_bytes() > 0


#: The algorithms whose scratch goes through ``workspace`` (the depthwise kernel for
#: these shapes may be the plane kernel, whose buffers live in its Numba threads).
KEEPS = {"numpy": ("im2col", "tap_gemm"),
         "numba": ("im2col", "tap_gemm", "winograd_f2x2_3x3")}
