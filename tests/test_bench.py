"""The benchmark CLI and suite: arguments, errors, the results schema, the plot, and
that a wrong kernel is reported as wrong instead of timed."""
import json
import re
from pathlib import Path

import numpy as np
import pytest

import cnnkern as ck
from cnnkern import cli, registry
from cnnkern.arrays import NUMPY, default_backend
from cnnkern.bench import device as devices
from cnnkern.bench import runner, schema
from cnnkern.params import ConvParams
from cnnkern.registry import Algorithm
from cnnkern.suites import QUICK, SOURCES, SUITES, layer

DOCS = Path(__file__).resolve().parents[1] / "docs"
SMALL = ["bench", "--layers", "lenet5/c3", "--repeat", "2", "--quiet"]


@pytest.fixture(autouse=True)
def fixed_roofs(monkeypatch):
    """Roof measurement costs seconds; the CLI tests do not need real figures."""
    monkeypatch.setattr(devices, "measure_roofs", lambda *a, **k: (1e11, 2e10))


def run_cli(args, capsys):
    code = cli.main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def cli_error(args, capsys) -> str:
    with pytest.raises(SystemExit) as info:
        cli.main(args)
    assert info.value.code == 2
    return capsys.readouterr().err


# ---- suites -------------------------------------------------------------------------

def test_every_suite_layer_is_a_valid_call_with_a_source():
    assert set(SOURCES) == set(SUITES)
    for suite, table in SUITES.items():
        assert len({lay.name for lay in table}) == len(table), suite
        for lay in table:
            xs, ws = lay.shapes(2)
            p = ConvParams.build("conv", lay.ndim, xs, ws, dtype=np.float32, **lay.kwargs())
            assert p.flops > 0 and all(n > 0 for n in p.output_size), (suite, lay.name)
    assert all(layer(ref) for ref in QUICK)


def test_select_layers():
    quick = runner.select_layers("quick")
    assert [f"{s}/{lay.name}" for s, lay in quick] == list(QUICK)
    assert len(runner.select_layers("all")) == sum(map(len, SUITES.values()))
    picked = runner.select_layers("resnet50,vgg16", "res2_3x3,vgg16/conv1_1")
    assert [(s, lay.name) for s, lay in picked] == [("resnet50", "res2_3x3"),
                                                   ("vgg16", "conv1_1")]
    # a suite/layer item needs no --suite, and duplicates collapse
    assert len(runner.select_layers("quick", "long1d/k31,long1d/k31")) == 1


@pytest.mark.parametrize("suites,names,message", [
    ("nope", "", "--suite: unknown suite 'nope'; expected quick, all or one of lenet5"),
    ("resnet50", "conv9", "--layers: no layer 'conv9' in the chosen suites; they have"),
    ("quick", "vgg16/conv9_9", "--layers: suite 'vgg16' has no layer 'conv9_9'"),
    ("quick", "nosuite/conv1", "--layers: unknown suite 'nosuite'"),
    (",", "", "--suite: no layers chosen"),
])
def test_select_layers_errors(suites, names, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        runner.select_layers(suites, names)


def test_suites_command_lists_tables_and_sources(capsys):
    code, out, _ = run_cli(["suites"], capsys)
    assert code == 0
    assert "replknet31b: dw31_s1, dw29_s2, dw31_s3, dw13_s4" in out
    assert "source: Ding et al. 2022" in out and out.startswith("quick: lenet5/c3")


# ---- a full CLI run: table, JSON, plot ----------------------------------------------

@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """One CLI run over two small layers with JSON and plot (shared by several tests)."""
    out = tmp_path_factory.mktemp("bench")
    js, png = out / "r.json", out / "r.png"
    mp = pytest.MonkeyPatch()
    mp.setattr(devices, "measure_roofs", lambda *a, **k: (1e11, 2e10))
    import io
    import contextlib
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            code = cli.main(["bench", "--layers", "lenet5/c3,inception_v3/1x7", "--repeat",
                             "2", "--json", str(js), "--plot", str(png), "--quiet",
                             "--device", "cpu"])
    finally:
        mp.undo()
    return code, buf.getvalue(), json.loads(js.read_text()), png


def test_cli_run_writes_a_valid_document(small_run):
    code, out, doc, _ = small_run
    assert code == 0
    schema.validate(doc)
    assert doc["settings"]["layers"] == ["lenet5/c3", "inception_v3/1x7"]
    assert doc["settings"]["batch"] == 1 and doc["settings"]["repeat"] == 2
    assert not doc["settings"]["autotune"] and doc["summary"]["autotune_fastest"] is None
    assert all(r["autotune"] is None for r in doc["layers"])
    assert doc["device"]["kind"] == "cpu" and doc["device"]["backend"] in ("numpy", "numba")
    assert doc["command"].startswith("cnnkern bench --layers lenet5/c3,inception_v3/1x7")
    for row in doc["layers"]:
        runnable = {a.name for a in registry.algorithms("conv", doc["device"]["backend"])
                    if a.check(ConvParams.build("c", 2, row["input_shape"],
                                                row["weight_shape"], stride=row["stride"],
                                                padding=[tuple(p) for p in row["padding"]],
                                                dtype=np.float32)) is None}
        ok = [a for a in row["algorithms"] if a["status"] == "ok"]
        assert {a["name"] for a in ok} >= runnable - {"separable"}
        best = min(ok, key=lambda a: a["ms"])
        assert row["best"] == best["name"] and best["vs_best"] == 1.0
        for a in ok:
            assert a["rel_err"] <= a["tolerance"] and a["runs"] >= 1
            assert a["gflops"] == pytest.approx(row["gflop"] / (a["ms"] / 1e3))
            assert 0 < a["vs_best"] <= 1.0
        assert row["auto"] in {a["name"] for a in row["algorithms"]}
        assert row["auto_is_fastest"] == (row["auto"] == row["best"])
    assert f"{doc['summary']['auto_timed']}" in out
    assert "lenet5/c3" in out and "inception_v3/1x7" in out and "im2col" in out
    assert "auto" in out and "% roof" in out


def test_cli_compares_with_torch_when_installed(small_run):
    pytest.importorskip("torch")
    _, out, doc, _ = small_run
    assert doc["settings"]["peer"] == "torch"
    for row in doc["layers"]:
        (peer,) = row["peers"]
        assert peer["status"] == "ok" and peer["rel_err"] < 1e-4
        for a in row["algorithms"]:
            if a["status"] == "ok":
                assert a["vs_peer"] == pytest.approx(peer["ms"] / a["ms"])
                assert a["vs_torch"] == a["vs_peer"]
    assert "vs torch" in out and "geomean" in out


def test_plot_is_a_png(small_run):
    pytest.importorskip("matplotlib")
    png = small_run[3]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_plain_table_and_no_compare(capsys):
    x, w = layer("lenet5/c3").shapes(1)
    auto = ck.explain(np.zeros(x, np.float32), np.zeros(w, np.float32)).choice
    algos = list(dict.fromkeys(["direct", "im2col", auto]))
    code, out, _ = run_cli(SMALL + ["--plain", "--no-compare", "--algos", ",".join(algos)],
                           capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[1].split()[:3] == ["layer", "algorithm", "ms"] and "vs torch" not in out
    assert re.search(r"^lenet5/c3\s+direct\s+\d", out, re.M)
    assert re.search(rf"^(lenet5/c3)?\s+{auto}\s+\d.*auto", out, re.M)
    assert "fft" not in out and "no peer comparison" in out


def test_autotune_picks_are_recorded(tmp_path, capsys):
    js = tmp_path / "r.json"
    code, out, _ = run_cli(SMALL + ["--no-compare", "--autotune", "--plain", "--json",
                                    str(js)], capsys)
    doc = schema.validate(json.loads(js.read_text()))
    row, s = doc["layers"][0], doc["summary"]
    assert code == 0 and doc["settings"]["autotune"]
    assert row["autotune"] in {a["name"] for a in row["algorithms"] if a["status"] == "ok"}
    assert s["autotune_fastest"] == int(row["autotune"] == row["best"])
    assert f"autotune picked the fastest on {s['autotune_fastest']} of 1 layers" in out
    assert re.search(r"\s(fastest, )?(auto, )?autotune$", out, re.M)


def test_float64_and_batch(tmp_path, capsys):
    js = tmp_path / "r.json"
    code, _, _ = run_cli(SMALL + ["--dtype", "float64", "--batch", "3", "--no-compare",
                                  "--json", str(js)], capsys)
    doc = schema.validate(json.loads(js.read_text()))
    assert code == 0 and doc["settings"]["dtype"] == "float64"
    assert doc["layers"][0]["input_shape"] == [3, 6, 14, 14]
    assert all(a["rel_err"] < 1e-10 for a in doc["layers"][0]["algorithms"]
               if a["status"] == "ok")


# ---- a wrong or failing kernel is reported, not timed ------------------------------

def _broken(x, w, b, p):
    from cnnkern.backends.numpy import direct
    y = direct.conv(x, w, b, p)
    y.reshape(-1)[::7] += 1.0          # off by one on every 7th output
    return y


def _raises(x, w, b, p):
    raise MemoryError("workspace of 1 TiB")


@pytest.fixture
def bad_algorithms(monkeypatch):
    backend = default_backend(NUMPY)          # what `--device cpu` runs on
    table = registry._ALGORITHMS[("conv", backend)]
    monkeypatch.setitem(table, "broken", Algorithm("broken", backend, "conv", _broken,
                                                   tolerance={"float32": 1e-4}))
    monkeypatch.setitem(table, "raises", Algorithm("raises", backend, "conv", _raises))


def test_wrong_kernel_is_reported_not_timed(bad_algorithms, tmp_path, capsys):
    js = tmp_path / "r.json"
    args = SMALL + ["--device", "cpu", "--no-compare", "--algos", "im2col,broken,raises",
                    "--json", str(js)]
    code, out, _ = run_cli(args + ["--plain"], capsys)
    assert code == 0
    doc = schema.validate(json.loads(js.read_text()))
    entries = {a["name"]: a for a in doc["layers"][0]["algorithms"]}
    assert entries["broken"]["status"] == "wrong" and entries["broken"]["rel_err"] > 1e-3
    assert "ms" not in entries["broken"] and "vs_best" not in entries["broken"]
    assert entries["raises"] == dict(name="raises", workspace_bytes=0, tolerance=1e-4,
                                     status="failed",
                                     error="MemoryError: workspace of 1 TiB")
    assert entries["im2col"]["status"] == "ok" and doc["layers"][0]["best"] == "im2col"
    assert doc["summary"]["wrong"] == ["lenet5/c3:broken"]
    assert doc["summary"]["failed"] == ["lenet5/c3:raises"]
    assert re.search(r"broken\s+WRONG: rel err \S+ > 1e-04, not timed", out)
    assert "FAILED: MemoryError: workspace of 1 TiB" in out
    assert "WRONG results (not timed): lenet5/c3:broken" in out
    assert cli.main(args + ["--strict"]) == 1        # --strict turns it into a failure


# ---- bad arguments ------------------------------------------------------------------

@pytest.mark.parametrize("extra,message", [
    (["--suite", "nope"], "--suite: unknown suite 'nope'"),
    (["--layers", "resnet50/conv9"], "--layers: suite 'resnet50' has no layer 'conv9'"),
    (["--batch", "0"], "argument --batch: expected a positive integer, got 0"),
    (["--repeat", "x"], "argument --repeat: expected a positive integer, got 'x'"),
    (["--dtype", "int8"], "argument --dtype: invalid choice: 'int8'"),
    (["--device", "tpu"], "argument --device: invalid choice: 'tpu'"),
    (["--algos", "im2col,magic"], "--algos: 'magic' not registered on backend"),
    (["--json", "/nonexistent/dir/r.json"], "--json '/nonexistent/dir/r.json': directory "
                                            "'/nonexistent/dir' does not exist"),
    (["--plot", "/nonexistent/p.png"], "--plot '/nonexistent/p.png': directory"),
    (["--budget", "0"], "--budget: expected a positive number of seconds, got 0.0"),
])
def test_bad_arguments_exit_2_with_a_clear_message(extra, message, capsys):
    err = cli_error(["bench"] + extra, capsys)
    assert message in err and err.startswith("usage: cnnkern bench")


def test_gpu_request_without_a_gpu_is_a_clear_error(capsys, monkeypatch):
    monkeypatch.setattr(devices, "gpu_unavailable_reason", lambda: "no CUDA device found")
    err = cli_error(["bench", "--device", "gpu"], capsys)
    assert "--device: device='gpu' cannot be used: no CUDA device found" in err
    assert devices.pick("auto", np.dtype(np.float32)).kind == "cpu"


def test_plot_without_matplotlib_is_a_clear_error(capsys, monkeypatch):
    from cnnkern.bench import plot
    monkeypatch.setattr(plot, "matplotlib_missing", lambda: True)
    err = cli_error(SMALL + ["--plot", "p.png"], capsys)
    assert "--plot needs matplotlib, which is not installed" in err


def test_rich_missing_falls_back_to_plain(monkeypatch, capsys):
    from cnnkern.bench import report
    monkeypatch.setattr(report, "console", lambda stderr=False: None)
    code, out, _ = run_cli(SMALL + ["--no-compare", "--algos", "im2col"], capsys)
    assert code == 0 and re.search(r"^lenet5/c3\s+im2col", out, re.M)


# ---- the schema ---------------------------------------------------------------------

def test_schema_rejects_bad_documents(small_run):
    doc = json.loads(json.dumps(small_run[2]))
    del doc["device"]["sm_count"]
    with pytest.raises(ValueError, match=r"\$.device: missing field 'sm_count'"):
        schema.validate(doc)
    doc = json.loads(json.dumps(small_run[2]))
    doc["layers"][0]["algorithms"][0]["status"] = "fast"
    with pytest.raises(ValueError, match=r"algorithms\[0\].status: expected one of ok"):
        schema.validate(doc)
    doc = json.loads(json.dumps(small_run[2]))
    ok = next(a for a in doc["layers"][1]["algorithms"] if a["status"] == "ok")
    ok["ms"] = "fast"
    with pytest.raises(ValueError, match=r"\.ms: expected int or float, got str 'fast'"):
        schema.validate(doc)
    doc = json.loads(json.dumps(small_run[2]))
    doc["settings"]["compare"] = 1
    with pytest.raises(ValueError, match=r"settings.compare: expected bool, got int"):
        schema.validate(doc)
    doc["schema"] = "cnnkern-bench/0"
    doc["settings"]["compare"] = True
    with pytest.raises(ValueError, match=r"\$.schema: expected 'cnnkern-bench/1'"):
        schema.validate(doc)


def test_every_schema_field_is_documented():
    text = (DOCS / "benchmarks.md").read_text()
    missing = sorted(n for n in schema.field_names() if f"`{n}`" not in text)
    assert not missing, f"docs/benchmarks.md does not document {missing}"


def test_cpu_roofs_are_measured(monkeypatch):
    monkeypatch.undo()                 # the real measurement, on small arrays
    import numpy
    flops, bw = devices.measure_roofs(numpy, np.dtype(np.float32), n=256, copy_mib=8)
    assert 1e8 < flops < 1e14 and 1e8 < bw < 1e13


def _performance_doc():
    import importlib.util
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "performance_doc.py"
    spec = importlib.util.spec_from_file_location("performance_doc", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_performance_doc_tables_are_generated_from_the_results():
    module = _performance_doc()
    assert module.main(["--check"]) == 0, "run: python benchmarks/performance_doc.py"
    blocks = module.BLOCK.findall(module.DOC.read_text())
    assert len(blocks) >= 2
    for _, name, body, _ in blocks:
        assert (module.RESULTS / name).is_file() and body.count("\n|") >= 3


def test_performance_doc_renders_a_fresh_run(small_run):
    lines = _performance_doc().render_bench(small_run[2], "x.json")
    table = [line for line in lines if line.startswith("| ")]
    assert len(table) == 1 + len(small_run[2]["layers"])
    assert table[1].startswith("| lenet5/c3 | ")


def test_a_first_call_that_compiled_does_not_cut_the_runs(monkeypatch):
    """A checked run slowed by a one-off cost (Numba compiling a specialisation) is
    followed by a second call: the layer still gets its ``repeat`` timed runs, not the
    single cold one that the first call's time alone would allow."""
    from types import SimpleNamespace
    monkeypatch.setattr(runner, "COOL_DOWN_S", 0.0)
    p = ConvParams.build("c", 2, (1, 2, 6, 6), (3, 2, 3, 3), dtype=np.float32)
    ref = np.ones(3)
    lay = SimpleNamespace(ref=ref, p=p, bytes=1000)
    device = devices.Device(kind="cpu", name="test", backend="numpy", threads=1,
                            peak_gflops=1.0, peak_gbps=1.0)
    calls = []

    def run():
        calls.append(1)
        if len(calls) == 1:
            import time
            time.sleep(0.3)
        return ref

    entry = runner._measure(run, lay, device, 1e-6, 5, 0.5, to_host=lambda y: y)
    assert entry["status"] == "ok" and entry["runs"] == 5
    assert entry["ms"] < 100
