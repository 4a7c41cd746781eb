"""The first CUDA kernel (kernels/direct.cu) loaded through CuPy, and its benchmark
against PyTorch's cuDNN path.

Until the CUDA backend lands (cnnkern/backends/cuda), this module is how the GPU
check script compiles, launches and measures the kernel. Run on a GPU machine:
``PYTHONPATH=. python3 benchmarks/cuda_direct.py --json OUT.json``.
"""
from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import statistics
import subprocess
from pathlib import Path

import numpy as np

KERNEL_DIR = Path(__file__).resolve().parents[1] / "kernels"
_CTYPE = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
GEOMETRY = np.dtype([
    ("batch", "<i4"), ("c_in", "<i4"), ("c_out", "<i4"), ("groups", "<i4"),
    ("in_", "<i4", 3), ("out", "<i4", 3), ("kernel", "<i4", 3), ("stride", "<i4", 3),
    ("dilation", "<i4", 3), ("pad_before", "<i4", 3)])


def _name(dtype, index):
    return f"cnnkern::conv_direct<{_CTYPE[np.dtype(dtype)]}, {index}>"


@functools.lru_cache(maxsize=None)
def _module(device_id: int):
    import cupy as cp
    names = [_name(t, i) for t in _CTYPE for i in ("int", "long long")]
    src = (KERNEL_DIR / "direct.cu").read_text()
    with cp.cuda.Device(device_id):
        return cp.RawModule(code=src, options=("-std=c++17", f"-I{KERNEL_DIR}"),
                            name_expressions=names)


def _geometry(p):
    pad3 = lambda vals, fill: list(vals) + [fill] * (3 - len(vals))  # noqa: E731
    g = np.zeros((), dtype=GEOMETRY)
    g["batch"], g["c_in"], g["c_out"], g["groups"] = (p.batch, p.in_channels,
                                                      p.out_channels, p.groups)
    g["in_"] = pad3(p.input_size, 1)
    g["out"] = pad3(p.output_size, 1)
    g["kernel"] = pad3(p.kernel_size, 1)
    g["stride"] = pad3(p.stride, 1)
    g["dilation"] = pad3(p.dilation, 1)
    g["pad_before"] = pad3([b for b, _ in p.padding], 0)
    return g[()]


def conv_direct(x, w, bias, p, out=None):
    """Launch the direct kernel for validated ConvParams ``p`` (zero padding)."""
    import cupy as cp
    if p.padding_mode != "zeros":
        raise ValueError("conv_direct: the kernel pads with zeros only")
    y = out if out is not None else cp.empty(p.output_shape, dtype=x.dtype)
    extent = max(x.nbytes, y.nbytes, w.nbytes)
    index = "int" if extent < 2**31 else "long long"
    kern = _module(cp.cuda.Device().id).get_function(_name(x.dtype, index))
    threads = 256
    blocks = min(-(-y.size // threads), 65535 * 8)
    kern((blocks,), (threads,), (cp.ascontiguousarray(x), cp.ascontiguousarray(w),
                                 bias if bias is not None else np.uint64(0), y,
                                 _geometry(p)))
    return y


def _median_ms(fn, repeat=20, warmup=3):
    import cupy as cp
    for _ in range(warmup):
        fn()
    start, stop = cp.cuda.Event(), cp.cuda.Event()
    times = []
    for _ in range(repeat):
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(cp.cuda.get_elapsed_time(start, stop))
    return statistics.median(times)


LAYERS = [("resnet50", "res2_3x3"), ("resnet50", "res4_3x3"), ("mobilenetv2", "dw_112"),
          ("deeplab_aspp", "rate6"), ("lenet5", "c3")]


def main(argv=None):
    import cupy as cp
    import torch

    from cnnkern.params import ConvParams
    from cnnkern.suites import SUITES
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    rows = []
    for suite, name in LAYERS:
        layer = next(l for l in SUITES[suite] if l.name == name)
        xs, ws = layer.shapes(args.batch)
        p = ConvParams.build("bench", layer.ndim, xs, ws, dtype=np.float32, **layer.kwargs())
        x = cp.random.standard_normal(xs, dtype=cp.float32)
        w = cp.random.standard_normal(ws, dtype=cp.float32)
        y = cp.full(p.output_shape, cp.nan, dtype=cp.float32)
        xt, wt = torch.from_dlpack(x), torch.from_dlpack(w)
        pads = tuple(b for b, _ in p.padding)
        ours = _median_ms(lambda: conv_direct(x, w, None, p, out=y))
        ref = torch.nn.functional.conv2d(xt, wt, None, p.stride, pads, p.dilation, p.groups)
        err = float(cp.linalg.norm(y - cp.from_dlpack(ref)) / cp.linalg.norm(cp.from_dlpack(ref)))
        cudnn = _median_ms(lambda: torch.nn.functional.conv2d(
            xt, wt, None, p.stride, pads, p.dilation, p.groups))
        rows.append(dict(layer=f"{suite}/{name}", batch=args.batch, direct_ms=ours,
                         cudnn_ms=cudnn, speedup_vs_cudnn=cudnn / ours,
                         direct_tflops=p.flops / ours / 1e9, rel_err_vs_cudnn=err))
        print(f"{suite}/{name:<10} direct {ours:9.3f} ms  cuDNN {cudnn:9.3f} ms  "
              f"ratio (cuDNN time / ours) {cudnn / ours:6.3f}  ({p.flops / ours / 1e9:.2f} "
              f"TFLOP/s)  rel err vs cuDNN {err:.1e}", flush=True)
    if args.json:
        props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
        git = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
        commit = os.environ.get("CNNKERN_COMMIT") or (
            git.stdout.strip() if git.returncode == 0 else "unknown (no .git here)")
        Path(args.json).write_text(json.dumps(dict(
            device=props["name"].decode(), sm_count=props["multiProcessorCount"],
            date=datetime.datetime.now(datetime.timezone.utc).isoformat(),
            commit=commit, torch=torch.__version__, cupy=cp.__version__,
            cudnn=torch.backends.cudnn.version(), dtype="float32", allow_tf32=False,
            command="PYTHONPATH=. python3 benchmarks/cuda_direct.py --json ...",
            rows=rows), indent=2))


if __name__ == "__main__":
    main()
