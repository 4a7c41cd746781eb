"""Every CUDA algorithm against PyTorch's cuDNN path on the ResNet-50 and VGG-16 conv
layers (batch 32), on the same tensors.

cuDNN runs with ``cudnn.benchmark = True`` twice: ``allow_tf32 = False`` (exact
float32, the comparison the targets use) and PyTorch's default. Times are medians of
CUDA-event timings after warm-up. Each algorithm's output is checked against cuDNN's
exact-float32 output first; a wrong result is reported, not timed.

    PYTHONPATH=. python3 benchmarks/gpu_bench.py --json OUT.json [--suites resnet50,vgg16]
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import statistics
import sys
from pathlib import Path

import numpy as np

FP32_ROOF_TFLOPS = 67.0   # H100 SXM dense FP32 (non-tensor) peak


def median_ms(fn, repeat, warmup=3):
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


def main(argv=None):
    import cupy as cp
    import torch

    import cnnkern as ck
    from cnnkern import registry
    from cnnkern.params import ConvParams
    from cnnkern.suites import SUITES
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suites", default="resnet50,vgg16")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--algos", default="")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    torch.backends.cudnn.benchmark = True
    algos = [a.name for a in registry.algorithms("conv", "cuda")
             if not args.algos or a.name in args.algos.split(",")]
    rows = []
    for suite in args.suites.split(","):
        for layer in SUITES[suite]:
            xs, ws = layer.shapes(args.batch)
            p = ConvParams.build("bench", layer.ndim, xs, ws, dtype=np.float32,
                                 **layer.kwargs())
            x = cp.random.standard_normal(xs, dtype=cp.float32)
            w = cp.random.standard_normal(ws, dtype=cp.float32)
            xt, wt = torch.from_dlpack(x), torch.from_dlpack(w)
            pads = tuple(b for b, _ in p.padding)
            conv = lambda: torch.nn.functional.conv2d(  # noqa: E731
                xt, wt, None, p.stride, pads, p.dilation, p.groups)
            torch.backends.cudnn.allow_tf32 = False
            ref = cp.from_dlpack(conv())
            cudnn = median_ms(conv, args.repeat)
            torch.backends.cudnn.allow_tf32 = True
            cudnn_tf32 = median_ms(conv, args.repeat)
            torch.backends.cudnn.allow_tf32 = False
            row = dict(layer=f"{suite}/{layer.name}", batch=args.batch, gflop=p.flops / 1e9,
                       cudnn_ms=cudnn, cudnn_tf32_ms=cudnn_tf32, algos={})
            for name in algos:
                alg = registry.get("conv", "cuda", name)
                if alg.check(p, w) is not None:
                    continue
                y = alg.run(x, w, None, p)
                err = float(cp.linalg.norm(y - ref) / cp.linalg.norm(ref))
                entry = dict(rel_err_vs_cudnn=err)
                if err < 1e-4:
                    t = median_ms(lambda: alg.run(x, w, None, p), args.repeat)
                    entry.update(ms=t, tflops=p.flops / t / 1e9,
                                 roof_pct=100 * p.flops / t / 1e9 / FP32_ROOF_TFLOPS,
                                 vs_cudnn=cudnn / t, vs_cudnn_tf32=cudnn_tf32 / t)
                row["algos"][name] = entry
                del y
            timed = {k: v for k, v in row["algos"].items() if "ms" in v}
            if timed:
                best = min(timed, key=lambda k: timed[k]["ms"])
                row.update(best=best, best_vs_cudnn=timed[best]["vs_cudnn"],
                           best_vs_cudnn_tf32=timed[best]["vs_cudnn_tf32"])
            rows.append(row)
            print(f"{row['layer']:<22} cuDNN {cudnn:8.3f} ms (tf32 {cudnn_tf32:8.3f}) " +
                  " ".join(f"{k} {v.get('ms', float('nan')):8.3f} ms" for k, v in
                           row["algos"].items()), flush=True)
    ratios = [r["best_vs_cudnn"] for r in rows if "best_vs_cudnn" in r]
    geomean = math.exp(sum(map(math.log, ratios)) / len(ratios)) if ratios else float("nan")
    print()
    print(f"{'layer':<22}{'GFLOP':>8}{'cuDNN ms':>10}{'best':>15}{'ms':>9}{'TFLOP/s':>9}"
          f"{'% roof':>8}{'x cuDNN':>9}{'x tf32':>8}")
    for r in rows:
        b = r.get("best")
        e = r["algos"].get(b, {})
        print(f"{r['layer']:<22}{r['gflop']:>8.1f}{r['cudnn_ms']:>10.3f}{str(b):>15}"
              f"{e.get('ms', float('nan')):>9.3f}{e.get('tflops', float('nan')):>9.2f}"
              f"{e.get('roof_pct', float('nan')):>8.1f}{e.get('vs_cudnn', float('nan')):>9.3f}"
              f"{e.get('vs_cudnn_tf32', float('nan')):>8.3f}")
    print(f"geomean of best/cuDNN (exact fp32): {geomean:.3f}")
    if args.json:
        props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
        Path(args.json).write_text(json.dumps(dict(
            device=props["name"].decode(), sm_count=props["multiProcessorCount"],
            date=datetime.datetime.now(datetime.timezone.utc).isoformat(),
            commit=os.environ.get("CNNKERN_COMMIT", "unknown"),
            command="PYTHONPATH=. python3 " + " ".join(sys.argv),
            torch=torch.__version__, cupy=cp.__version__,
            cudnn=torch.backends.cudnn.version(), cnnkern=ck.__version__,
            fp32_roof_tflops=FP32_ROOF_TFLOPS, geomean_best_vs_cudnn=geomean,
            rows=rows), indent=2))


if __name__ == "__main__":
    main()
