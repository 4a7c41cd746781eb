"""pytest-benchmark entry points over the layer tables, for developers.

    python -m pytest benchmarks/bench_conv.py --benchmark-only
    CNNKERN_BENCH_SUITE=resnet50,vgg16 CNNKERN_BENCH_BATCH=8 \\
        python -m pytest benchmarks/bench_conv.py --benchmark-only

One benchmark per (layer, algorithm) that can run it on the default CPU backend (and
the cuda backend when a GPU is usable), plus PyTorch as ``torch`` when installed. Each
checks its output against the float64 reference before it is timed. The user-facing
benchmark with tables, ratios and plots is ``python -m cnnkern bench``.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from cnnkern import registry
from cnnkern.arrays import NUMPY, default_backend
from cnnkern.bench.device import Device, gpu_unavailable_reason, measure_roofs
from cnnkern.machine import cpu_threads
from cnnkern.bench.runner import LayerCase, first_sample, rel_err, select_layers, tolerance

SUITE = os.environ.get("CNNKERN_BENCH_SUITE", "quick")
BATCH = int(os.environ.get("CNNKERN_BENCH_BATCH", "1"))
DTYPE = np.dtype(os.environ.get("CNNKERN_BENCH_DTYPE", "float32"))


def _devices():
    out = [Device("cpu", "cpu", default_backend(NUMPY), cpu_threads())]
    if gpu_unavailable_reason() is None:
        out.append(Device("gpu", "gpu", "cuda", 1))
    return out


_CASES: dict = {}


@pytest.fixture(scope="module", autouse=True)
def warm_blas():
    """The same start as ``cnnkern bench``, whose roof measurement runs large GEMMs
    first: OpenBLAS runs some later calls several times faster after one (measured:
    the float64 einsum of ``direct`` on long1d/k255, 0.6 s cold, 0.1 s warm)."""
    measure_roofs(np, DTYPE, n=1024, copy_mib=64)


def case(device: Device, suite: str, layer) -> LayerCase:
    """Arrays and reference built once per (device, layer) and shared by its benchmarks."""
    key = (device.backend, suite, layer.name)
    if key not in _CASES:
        _CASES[key] = LayerCase(suite, layer, device, DTYPE, BATCH,
                                np.random.default_rng(0))
    return _CASES[key]


def _params():
    for device in _devices():
        for suite, layer in select_layers(SUITE):
            ident = f"{device.backend}-{suite}/{layer.name}"
            for alg in registry.algorithms("conv", device.backend):
                yield pytest.param(device, suite, layer, alg.name, id=f"{ident}-{alg.name}")
            yield pytest.param(device, suite, layer, "torch", id=f"{ident}-torch")


def _synchronized(fn, device: Device):
    if device.kind != "gpu":
        return fn
    import cupy as cp

    def call():
        fn()
        cp.cuda.get_current_stream().synchronize()
    return call


@pytest.mark.parametrize("device,suite,layer,algo", list(_params()))
def test_conv(benchmark, device, suite, layer, algo):
    c = case(device, suite, layer)
    if algo == "torch":
        pytest.importorskip("torch")
        from cnnkern.bench.peers import to_numpy, torch_peers
        peer = torch_peers(device.kind, c.p, c.x, c.w, device.threads)[0]
        run, tol, to_host = peer.run, 1e-3, (lambda y: to_numpy(y[:1]))
    else:
        alg = registry.get("conv", device.backend, algo)
        reason = alg.check(c.p, c.w)
        if reason is not None:
            pytest.skip(reason)
        run, tol, to_host = (lambda: alg.run(c.x, c.w, None, c.p)), tolerance(alg, DTYPE), \
            first_sample
    err = rel_err(to_host(run()), c.ref)
    assert err <= tol, f"{algo} is wrong on {suite}/{layer.name}: rel err {err:.2e} > {tol}"
    benchmark.extra_info.update(gflop=c.p.flops / 1e9, layer=f"{suite}/{layer.name}")
    benchmark(_synchronized(run, device))
