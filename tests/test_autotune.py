"""autotune (in memory and on disk), workspace limits, out-of-memory fallback, threads."""
import json
import os
import subprocess
import sys
import textwrap
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

import cnnkern as ck
from cnnkern import dispatch, registry
from cnnkern.params import ConvParams

ROOT = Path(__file__).resolve().parents[1]


def data(rng, xs=(1, 4, 12, 12), ws=(4, 4, 3, 3)):
    return rng.standard_normal(xs), rng.standard_normal(ws)


@pytest.fixture
def fake_timer(monkeypatch):
    """Deterministic autotune: each algorithm 'takes' the seconds given in ``times``
    (default 1.0); a value that is an exception instance is raised instead."""
    calls = []
    times = {}

    def fake(alg, p, backend, x, weight, bias, repeat, bound):
        calls.append(alg.name)
        t = times.get(alg.name, 1.0)
        if isinstance(t, BaseException):
            raise t
        return t
    monkeypatch.setattr(dispatch, "time_algorithm", fake)
    return times, calls


def cache_file() -> Path:
    return dispatch._disk().path


# ---- autotune with a fake timer -----------------------------------------------------

def test_autotune_takes_the_fastest_and_measures_once(rng, fake_timer):
    times, calls = fake_timer
    x, w = data(rng)
    able = ck.supported_algorithms(x, w, padding=1)
    times.update({name: 1.0 for name in able}, fft=0.25, im2col=0.5)
    y = ck.conv2d(x, w, padding=1, algo="autotune")
    assert sorted(calls) == sorted(able)
    np.testing.assert_allclose(y, ck.conv2d(x, w, padding=1, algo="direct"), rtol=1e-10,
                               atol=1e-12)
    ck.conv2d(x, w, padding=1, algo="autotune")
    assert len(calls) == len(able)                     # the second call did not time
    e = ck.explain(x, w, padding=1)
    assert e.choice == "fft" and e.source == "autotune"
    assert e.why == "measured fastest by autotune"
    assert {c.name: c.measured_s for c in e.candidates if c.reason is None} == \
        {n: times[n] for n in able}
    assert "measured 250.000 ms" in str(e)


def test_failing_candidates_score_infinity(rng, fake_timer):
    times, _ = fake_timer
    x, w = data(rng)
    times.update(fft=MemoryError("no memory"), im2col=RuntimeError("compile error"),
                 direct=2.0)
    ck.conv2d(x, w, padding=1, algo="autotune")
    e = ck.explain(x, w, padding=1)
    measured = {c.name: c.measured_s for c in e.candidates if c.reason is None}
    assert measured["fft"] is None and measured["im2col"] is None
    assert e.choice not in ("fft", "im2col") and measured[e.choice] == 1.0


def test_every_candidate_failing_is_a_clear_error(rng, fake_timer):
    times, _ = fake_timer
    x, w = data(rng)
    for name in ck.supported_algorithms(x, w):
        times[name] = RuntimeError("broken")
    with pytest.raises(RuntimeError, match="conv2d: autotune: every candidate failed"):
        ck.conv2d(x, w, algo="autotune")


def test_global_switch_makes_auto_measure(rng, fake_timer):
    _, calls = fake_timer
    x, w = data(rng)
    ck.conv2d(x, w)
    assert calls == [] and not ck.get_autotune()
    ck.set_autotune(True)
    ck.conv2d(x, w)
    assert calls and ck.explain(x, w).source == "autotune"
    with pytest.raises(TypeError, match="set_autotune: expected enabled to be a bool, but "
                                        "got 'yes'"):
        ck.set_autotune("yes")


def test_key_separates_weights_that_change_what_can_run(rng, fake_timer):
    """separable depends on the weight values: a tuned 'separable' must not be reused
    for a filter that is not rank 1."""
    times, _ = fake_timer
    times["separable"] = 0.01
    x = rng.standard_normal((1, 2, 16, 16))
    rank1 = rng.standard_normal((2, 1, 5, 1)) * rng.standard_normal((2, 1, 1, 5))
    full = rng.standard_normal((2, 1, 5, 5))
    ck.conv2d(x, rank1, groups=2, algo="autotune")
    assert ck.explain(x, rank1, groups=2).choice == "separable"
    y = ck.conv2d(x, full, groups=2, algo="autotune")
    assert ck.explain(x, full, groups=2).choice != "separable"
    np.testing.assert_allclose(y, ck.conv2d(x, full, groups=2, algo="direct"), rtol=1e-10,
                               atol=1e-12)


def test_key_names_device_version_sources_and_limit(rng):
    x, w = data(rng)
    p = ConvParams.build("conv2d", 2, x.shape, w.shape, dtype=np.float64)
    cands = dispatch.candidates(p, "numpy", w)
    key = dispatch.tune_key(p, "numpy", cands, None)
    assert key.startswith(f"cnnkern {ck.__version__} sources ")
    fields = json.loads(key.split("|", 1)[1])
    assert fields["device"].endswith("threads)") and fields["dtype"] == "float64"
    assert fields["input"] == [1, 4, 12, 12] and fields["workspace_limit"] is None
    assert key != dispatch.tune_key(p, "numpy", cands, 1024)


# ---- real timing --------------------------------------------------------------------

def test_autotune_with_real_timing_on_the_cpu(rng):
    x, w = data(rng, (1, 8, 24, 24), (8, 8, 3, 3))
    y = ck.conv2d(x.astype(np.float32), w.astype(np.float32), padding=1, algo="autotune")
    ref = ck.conv2d(x, w, padding=1, algo="direct")
    assert np.linalg.norm(y - ref) / np.linalg.norm(ref) < 1e-5
    e = ck.explain(x.astype(np.float32), w.astype(np.float32), padding=1)
    measured = {c.name: c.measured_s for c in e.candidates if c.measured_s is not None}
    assert set(measured) == set(ck.supported_algorithms(x, w, padding=1))
    assert all(0 < t < 10 for t in measured.values())
    assert e.choice == min(measured, key=measured.get)


# ---- the disk cache -----------------------------------------------------------------

def test_cache_file_is_readable_json(rng, fake_timer):
    fake_timer[0]["im2col"] = 0.1
    x, w = data(rng)
    ck.conv2d(x, w, algo="autotune")
    doc = json.loads(cache_file().read_text())
    assert doc["format"] == "cnnkern-autotune/1"
    (key, record), = doc["entries"].items()
    assert key.startswith(dispatch.key_prefix()) and record["choice"] == "im2col"
    assert record["times_s"]["im2col"] == 0.1 and "date" in record


def _run(code: str, cache: Path, timeout=120):
    env = dict(os.environ, CNNKERN_CACHE_DIR=str(cache), PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                         capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr
    return out.stdout


TUNE_SCRIPT = """
import numpy as np, cnnkern as ck
rng = np.random.default_rng(0)
for c in {channels}:
    x = rng.standard_normal((1, c, 10, 10)); w = rng.standard_normal((c, c, 3, 3))
    ck.conv2d(x, w, padding=1, algo="autotune")
"""


def test_cache_persists_across_processes(tmp_path):
    cache = tmp_path / "shared"
    _run(TUNE_SCRIPT.format(channels=[3]), cache)
    out = _run("""
        import numpy as np, cnnkern as ck
        from cnnkern import dispatch
        def no_timing(*a, **k):
            raise AssertionError("timed although the disk cache has the answer")
        dispatch.time_algorithm = no_timing
        rng = np.random.default_rng(0)
        x = rng.standard_normal((1, 3, 10, 10)); w = rng.standard_normal((3, 3, 3, 3))
        ck.conv2d(x, w, padding=1, algo="autotune")
        print(ck.explain(x, w, padding=1).why)
    """, cache)
    assert out.strip() == "measured fastest by autotune, read from the on-disk cache"


def test_concurrent_processes_keep_every_entry(tmp_path):
    cache = tmp_path / "shared"
    env = dict(os.environ, CNNKERN_CACHE_DIR=str(cache), PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([sys.executable, "-c", TUNE_SCRIPT.format(channels=[i, 9])],
                              env=env, stderr=subprocess.PIPE, text=True)
             for i in range(1, 5)]
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
    doc = json.loads((cache / "autotune.json").read_text())
    shapes = sorted({json.loads(k.split("|", 1)[1])["input"][1] for k in doc["entries"]})
    assert shapes == [1, 2, 3, 4, 9]
    assert not list(cache.glob(".autotune-*"))          # no temporary file left behind


@pytest.mark.parametrize("content", ["{not json", '{"format": "cnnkern-autotune/1", "entr',
                                     '{"format": "something-else/9", "entries": {}}', "[]"])
def test_corrupt_or_foreign_cache_is_ignored_with_a_warning_and_rebuilt(rng, fake_timer,
                                                                       content):
    cache_file().parent.mkdir(parents=True, exist_ok=True)
    cache_file().write_text(content)
    x, w = data(rng)
    with pytest.warns(ck.CacheWarning, match="ignored and rebuilt on the next write"):
        ck.conv2d(x, w, algo="autotune")
    doc = json.loads(cache_file().read_text())
    assert doc["format"] == "cnnkern-autotune/1" and len(doc["entries"]) == 1


def test_entries_of_another_version_are_ignored_and_dropped(rng, fake_timer):
    _, calls = fake_timer
    x, w = data(rng)
    ck.conv2d(x, w, algo="autotune")
    doc = json.loads(cache_file().read_text())
    (key, record), = doc["entries"].items()
    stale = key.replace(dispatch.key_prefix(), "cnnkern 0.0.1 sources 0123456789abcdef|")
    record["choice"] = "direct"
    cache_file().write_text(json.dumps(dict(format=doc["format"], entries={stale: record})))
    ck.set_cache_dir(cache_file().parent)             # a new process, in effect
    before = len(calls)
    ck.conv2d(x, w, algo="autotune")
    assert len(calls) > before                          # timed again: the entry was stale
    assert list(json.loads(cache_file().read_text())["entries"]) == [key]


def test_unwritable_cache_dir_warns_and_tunes_in_memory(rng, fake_timer, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    ck.set_cache_dir(blocker / "cache")
    x, w = data(rng)
    with pytest.warns(ck.CacheWarning, match="could not be written"):
        y = ck.conv2d(x, w, algo="autotune")
    assert y.shape == (1, 4, 10, 10) and ck.explain(x, w).source == "autotune"


def test_threads_tune_consistently(rng):
    shapes = [(1, c, 9, 9) for c in (2, 3, 4)]
    cases = []
    for xs in shapes:
        x = rng.standard_normal(xs).astype(np.float32)
        w = rng.standard_normal((xs[1], xs[1], 3, 3)).astype(np.float32)
        cases.append((x, w, ck.conv2d(x.astype(np.float64), w.astype(np.float64),
                                       padding=1, algo="direct")))
    errors, results = [], []

    def work(i):
        try:
            for j in range(3):
                x, w, ref = cases[(i + j) % len(cases)]
                y = ck.conv2d(x, w, padding=1, algo="autotune")
                results.append(float(np.linalg.norm(y - ref) / np.linalg.norm(ref)))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 24 and max(results) < 1e-5
    doc = json.loads(cache_file().read_text())
    assert len(doc["entries"]) == len(shapes)
    for x, w, _ in cases:
        e = ck.explain(x, w, padding=1)
        key = dispatch.tune_key(ConvParams.build("conv2d", 2, x.shape, w.shape, padding=1,
                                                 dtype=np.float32), "numpy",
                                dispatch.candidates(ConvParams.build(
                                    "conv2d", 2, x.shape, w.shape, padding=1,
                                    dtype=np.float32), "numpy", w), None)
        assert doc["entries"][key]["choice"] == e.choice


# ---- workspace limits ---------------------------------------------------------------

def fft_favoured(rng):
    """A depthwise 9x9 call where the rules pick fft, which needs workspace."""
    x = rng.standard_normal((1, 8, 40, 40)).astype(np.float32)
    w = rng.standard_normal((8, 1, 9, 9)).astype(np.float32)
    return x, w, dict(padding=4, groups=8)


def test_limit_skips_algorithms_and_warns_once(rng):
    x, w, kw = fft_favoured(rng)
    e = ck.explain(x, w, **kw)
    assert e.choice == "fft"
    fft_ws = next(c.workspace_bytes for c in e.candidates if c.name == "fft")
    limit = fft_ws - 1
    assert "fft" not in ck.supported_algorithms(x, w, workspace_limit=limit, **kw)
    with pytest.warns(ck.PerformanceWarning, match=r"conv2d: fft would be fastest by the "
                      rf"cost model .* needs {fft_ws} bytes of workspace, over "
                      rf"workspace_limit={limit}; running \w+ instead"):
        y = ck.conv2d(x, w, workspace_limit=limit, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # once per call signature
        ck.conv2d(x, w, workspace_limit=limit, **kw)
    ref = ck.conv2d(x.astype(np.float64), w.astype(np.float64), algo="direct", **kw)
    assert np.linalg.norm(y - ref) / np.linalg.norm(ref) < 1e-5
    e = ck.explain(x, w, workspace_limit=limit, **kw)
    assert e.choice != "fft" and "over the workspace limit" in e.why
    assert "fft" in str(e) and "(skipped: over the workspace limit)" in str(e)


def test_global_limit_and_zero_limit(rng):
    x, w, kw = fft_favoured(rng)
    ck.set_workspace_limit(0)
    assert ck.get_workspace_limit() == 0
    assert ck.supported_algorithms(x, w, **kw) != ["direct"]   # per-call: no global
    assert ck.explain(x, w, **kw).choice == "direct"
    with pytest.warns(ck.PerformanceWarning):
        y = ck.conv2d(x, w, **kw)
    assert y.shape == (1, 8, 40, 40)
    # a per-call limit overrides the global one
    assert ck.explain(x, w, workspace_limit=2**40, **kw).choice == "fft"


def test_forced_algorithm_over_the_limit_is_a_value_error(rng):
    x, w, kw = fft_favoured(rng)
    with pytest.raises(ValueError, match=r"conv2d: algo='fft' cannot run this call: it "
                                         r"needs \d+ bytes of workspace, over "
                                         r"workspace_limit=1000; algorithms that can: direct"):
        ck.conv2d(x, w, algo="fft", workspace_limit=1000, **kw)


@pytest.mark.parametrize("limit,exc,message", [
    (-1, ValueError, "conv2d: expected workspace_limit >= 0 bytes, but got "
                     "workspace_limit=-1"),
    (1.5, TypeError, "conv2d: expected workspace_limit to be None or an int number of "
                     "bytes, but got 1.5"),
    (True, TypeError, "but got True"),
])
def test_bad_limits(rng, limit, exc, message):
    x, w = data(rng)
    with pytest.raises(exc, match=message):
        ck.conv2d(x, w, workspace_limit=limit)
    with pytest.raises(exc, match=message.replace("conv2d", "set_workspace_limit")):
        ck.set_workspace_limit(limit)


def test_limits_reach_transposed_and_gradient_calls(rng):
    x, w, kw = fft_favoured(rng)
    gy = rng.standard_normal((1, 8, 40, 40)).astype(np.float32)
    with pytest.warns(ck.PerformanceWarning, match="conv2d_input: fft would be fastest"):
        ck.grad.conv2d_input(x.shape, w, gy, workspace_limit=0, **kw)
    with pytest.warns(ck.PerformanceWarning, match="conv_transpose2d: fft would be"):
        ck.conv_transpose2d(gy, w.transpose(1, 0, 2, 3).reshape(8, 1, 9, 9),
                            workspace_limit=0, **kw)


# ---- out of memory ------------------------------------------------------------------

@pytest.fixture
def fft_out_of_memory():
    alg = registry.get("conv", "numpy", "fft")
    saved = alg.run

    def oom(*args):
        raise MemoryError("Unable to allocate 1.00 TiB for an array")
    object.__setattr__(alg, "run", oom)         # records are frozen dataclasses
    yield
    object.__setattr__(alg, "run", saved)


def test_out_of_memory_falls_back_with_a_warning(rng, fft_out_of_memory):
    x, w, kw = fft_favoured(rng)
    with pytest.warns(ck.PerformanceWarning, match=r"conv2d: fft ran out of memory "
                      r"\(Unable to allocate 1.00 TiB for an array\); falling back to \w+"):
        y = ck.conv2d(x, w, **kw)
    ref = ck.conv2d(x.astype(np.float64), w.astype(np.float64), algo="direct", **kw)
    assert np.linalg.norm(y - ref) / np.linalg.norm(ref) < 1e-5


def test_forced_algorithm_out_of_memory_is_raised(rng, fft_out_of_memory):
    x, w, kw = fft_favoured(rng)
    with pytest.raises(MemoryError, match="Unable to allocate"):
        ck.conv2d(x, w, algo="fft", **kw)
