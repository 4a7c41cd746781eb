"""Choosing an algorithm: pure rules (``algo="auto"``), measurement (``"autotune"``),
workspace limits, and ``explain``.

``select`` is a pure function of the parameters (and, for ``separable``, the weight
values): it never runs a convolution. The rules are a cost model, documented in
``docs/dispatch.md``; ``algo="autotune"`` measures every candidate once per call
signature instead and remembers the fastest, in memory and in the on-disk cache of
``tune_cache``.
"""
from __future__ import annotations

import datetime
import json
import platform
import threading
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from math import log2, prod
from pathlib import Path
from types import MappingProxyType
from typing import Mapping, Optional

from . import registry, timing
from ._sources import implementation_hash
from .machine import device_name
from .params import ConvParams, fail
from .threads import get_num_threads
from .tune_cache import CacheWarning, DiskCache, default_dir  # noqa: F401 (re-exported)


class PerformanceWarning(UserWarning):
    """A call runs a slower algorithm than it could: the workspace limit excluded the
    best one, or it ran out of memory and fell back."""


# ---- global settings (like torch.backends.cudnn.benchmark) --------------------------

_SETTINGS = {"autotune": False, "workspace_limit": None}
_SETTINGS_LOCK = threading.Lock()


def set_autotune(enabled: bool) -> None:
    """Make ``algo="auto"`` measure (as ``algo="autotune"``) for every call."""
    if not isinstance(enabled, bool):
        raise TypeError(f"set_autotune: expected enabled to be a bool, but got {enabled!r}")
    with _SETTINGS_LOCK:
        _SETTINGS["autotune"] = enabled


def get_autotune() -> bool:
    return _SETTINGS["autotune"]


def check_workspace_limit(fname: str, limit) -> Optional[int]:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int):
        fail(fname, f"expected workspace_limit to be None or an int number of bytes, but "
                    f"got {limit!r}", TypeError)
    if limit < 0:
        fail(fname, f"expected workspace_limit >= 0 bytes, but got workspace_limit={limit}")
    return limit


def set_workspace_limit(limit: Optional[int]) -> None:
    """The default ``workspace_limit`` (bytes; None for no limit) of every call."""
    limit = check_workspace_limit("set_workspace_limit", limit)
    with _SETTINGS_LOCK:
        _SETTINGS["workspace_limit"] = limit


def get_workspace_limit() -> Optional[int]:
    return _SETTINGS["workspace_limit"]


def effective_limit(fname: str, limit) -> Optional[int]:
    """The per-call limit if given, else the global one."""
    limit = check_workspace_limit(fname, limit)
    return get_workspace_limit() if limit is None else limit

#: Throughputs of the NumPy backend's building blocks, in operations per second,
#: fitted to single-image float32 runs of the seed-network layers on the 2-core
#: CI-class machine (2026-11-22; method and pick rate in docs/dispatch.md).
RATES = {
    "gemm": 8.0e10,        # float32 BLAS FLOP/s (float64: half)
    "einsum": 2.0e10,      # float64 FLOP/s of the per-tap contractions of ``direct``
    "copy": 5.0e9,         # bytes/s of strided window copies (im2col columns)
    "fft": 5.0e9,          # "2.5 N log2 N" operations/s of batched scipy.fft transforms
    "cgemm": 2.0e10,       # complex FLOP/s of the per-frequency batched matmuls
    "elementwise": 1.0e9,  # multiply-adds/s of the separable passes
    "transform": 1.5e9,    # multiply-adds/s of the Winograd tile and filter transforms
    "fft_call": 4.5e-5,    # seconds of fixed cost per FFT call (planning, three
                           # transforms, the crop; 1-16 channel calls, 2026-11-23)
}


#: The CUDA kernels' throughputs on the lent H100 (2026-11-22, batch-32 ResNet-50 and
#: VGG-16 layers, benchmarks/results/2026-11-22-h100-gpu-bench.json).
GPU_RATES = {
    "gemm": 1.5e13,        # FP32 FLOP/s of conv_gemm (implicit: 4-27 TFLOP/s, median ~11)
    "direct": 1.0e12,      # FLOP/s of the one-thread-per-output direct kernel
    "hbm": 2.5e12,         # bytes/s for writing and reading the im2col columns
}


#: The Numba backend's kernels on the same machine (float32, 2 threads, 2026-11-22;
#: docs/dispatch.md). Stages it shares with the NumPy backend use ``RATES``.
NUMBA_RATES = {
    "direct": 1.5e10,      # FLOP/s of the plane kernel on taps inside the input
    "row": 1.0e8,          # inner row loops/s of the plane kernel (their fixed cost)
    # The channels-last depthwise kernels, fitted (non-negative least squares on
    # relative error) to each kernel's times on the suites' 15 depthwise layers at
    # batch 1 and 8:
    "tap_lanes": 9.2e8,    # (output pixel, inside tap, 16 channels)/s, tap-list kernel
    "taps_call": 1.26e-4,  # its fixed cost per call, seconds (two parallel regions)
    "depthwise_rows": 2.49e11,  # FLOP/s of the row kernel (3/5/7 wide), padding taps too
    "layout": 1.43e10,     # bytes/s of the row kernel's channels-last copy and NCHW write
    "rows_call": 1.8e-5,   # its fixed cost per call, seconds
    # The plane kernel, refitted the same way to its times on those layers at batch 1
    # and 8 after the inside copy (2026-11-23, benchmarks/depthwise_fit.py):
    "phase_fill": 1.92e10,  # bytes/s of its padded, phase-split fills (index maps)
    "phase_copy": 1.5e10,  # bytes/s of its row copies into padding kept in place
    "phase_tap": 5.81e10,  # output elements x taps /s of its flat passes
    "phase_pass": float("inf"),  # output elements/s of each pass (fitted to no cost)
    "phase_loop": 1.43e8,  # its passes and filled rows per second (their fixed cost)
    "phase_call": 7.92e-5,  # its fixed cost per call, seconds
    # The stride-1 flat-row kernel (depthwise_flat.py), fitted the same way to its 28
    # timings on those layers (2026-11-23, benchmarks/depthwise_fit.py fit flat):
    "flat_tap": 5.71e10,    # output elements x taps /s of its unrolled row loops
    "flat_copy": 2.51e10,   # elements/s copied in, initialised and copied out
    "flat_loop": 1.4e9,     # loops started per second (rows copied, kernel rows, groups)
    "flat_call": 1.41e-5,   # its fixed cost per call, seconds
    # the sliding-window kernel (backends/numba/depthwise_slide.py)
    "slide_step": 7.16e9,   # tile-weighted slide steps of 16 channels per second
    "slide_copy": 1.65e10,  # elements/s transposed and copied in and out
    "slide_loop": 5.17e8,   # slides started (a tile over a kernel row) per second
    "slide_call": 2.56e-5,  # its fixed cost per call, seconds
    # Winograd's two plans, fitted (non-negative least squares on relative error) to
    # 72 timings of each: the suites' 18 dense stride-1 3x3 layers, F2 and F4, batch 1
    # and 8, 2-core EPYC (benchmarks/winograd_plans.py; results 2026-11-23, refitted
    # with the channel plan's register-tile GEMMs). The work-item plan transforms the
    # filters into a fresh array (first touch included); the channel plan, block by
    # block in cache:
    "tiles_gemm": 1.19e11,       # FLOP/s of the per-point GEMMs (BLAS)
    "tiles_transform": 1.08e10,  # (tile, point, channel) x alpha terms/s
    "tiles_filter": 1.93e9,      # elements/s of transformed filters
    "channels_gemm": 1.87e11,
    "channels_tiled": 2.14e11,   # FLOP/s of its GEMMs in register tiles (simd_gemms)
    "channels_transform": 5.09e9,
    "channels_filter": 3.97e9,
    "winograd_call": 6.0e-5,     # seconds per call (an 8-channel 8x8 layer; not fitted)
    # tap_gemm (the NumPy code), fitted (non-negative least squares on relative error)
    # to its times on the dense and grouped suite layers with more than one tap and
    # zero padding: 33 at batch 1, 23 (those under 2.5 GFLOP) at batch 8 (2026-11-23;
    # docs/dispatch.md); its estimate carries ``blocks_caution`` too:
    "tap_gemm": 1.03e11,     # FLOP/s of the per-tap GEMMs (inside taps only)
    "tap_weights": 5.35e9,   # bytes/s of weight matrices read, every tap every step
    "tap_cols": 2.37e10,     # bytes/s of gathered input
    "tap_adds": 1.02e10,     # bytes/s of products added into the output
    "tap_step": 1.07e-5,     # seconds per tap and step (GEMM call, gather, add)
    # im2col (the NumPy code, its windows filled by backends/numba/columns.py), fitted
    # to its 66 layers of benchmarks/results/2026-11-23-cpu-im2col-fill-b1.json
    # (benchmarks/im2col_fit.py; NumPy's tap-by-tap copies had fitted 5.3e9 B/s):
    "im2col_gemm": 1.61e11,  # FLOP/s
    "im2col_copy": 7.45e9,   # bytes/s of column copies
    "im2col_strided": 4.12e9,  # ... where the last axis is strided (element by element)
    "im2col_call": 3.82e-5,  # seconds of fixed cost per call
    # FFT (the NumPy code), fitted to its times on 100 random 1-3-D shapes and on the
    # suite layers where it came within 20x of the fastest algorithm (batch 1 and 8,
    # four runs of 2026-11-23/24; benchmarks/fft_fit.py, features fft.features; an
    # N log N term fitted to no weight: the spectra's bytes set the time)
    "fft_bytes": 1.49e9,     # bytes/s of spectra made and read (transforms, products)
    "fft_transforms": 5.32e7,  # transforms/s (each one's fixed cost)
    "fft_cgemm": 8.77e9,     # complex FLOP/s of the per-frequency channel reduction
    "fft_call": 9.4e-5,      # seconds of fixed cost per call
    # im2col's column layouts (the copies alone, 2026-11-23, 2-core EPYC, batch 1):
    "windows_bytes": 5.2e10,  # bytes/s of columns copied tap by tap
    "windows_runs": 2.0e8,    # output rows copied per second (short rows cost more)
    "windows_tap": 2.6e-6,    # seconds per tap (one NumPy copy each)
    "wide_bytes": 4.5e10,     # bytes/s of the wide layout's one strided copy
    "wide_out": 1.0e10,       # bytes/s of its GEMM result, written and read back
    # the windows filled by the Numba backend's compiled loop (backends/numba/columns.py;
    # fitted on the stride-1 suite layers, batch 1 and 8, benchmarks/im2col_fill.py):
    "fill_bytes": 6.3e10,     # bytes/s of columns
    "fill_runs": 4.2e8,       # output rows copied per second
    # im2col_blocks, fitted to its 55 non-depthwise suite layers (batch 1, 2026-11-23);
    # each term is divided by the fraction of the threads its blocks can keep busy:
    "blocks_gemm": 2.05e11,  # FLOP/s of the per-block one-thread GEMMs, all threads
    "blocks_cols": 7.3e9,    # bytes/s of column blocks built
    "blocks_weights": 1.67e10,  # bytes/s of weight matrices read, once per block
    "blocks_out": 2.1e10,    # bytes/s of outputs (a small-K GEMM costs per output)
    "blocks_call": 4.7e-5,   # seconds of fixed cost per call
    # Its fit is off by 0.5-1.4x, and where it was too low (1x1 layers, a 3-channel
    # stride-2 stem) the switch cost 1.3-1.7x; so its estimate (and tap_gemm's, as
    # spread) carries this factor:
    "blocks_caution": 1.1,
    # implicit_gemm, fitted (non-negative least squares on relative error) to its times
    # on the 52 non-depthwise suite layers at batch 1 (2026-11-23,
    # benchmarks/implicit_gemm_fit.py; model/measured 0.63-1.27, median 1.00; one rate
    # for all its FLOPs had left the 32-lane and dilated layers at 0.53-0.78):
    "igemm_fma": 2.11e11,    # FLOP/s of its 6 x 64 tile, idle lanes included
    "igemm_fma32": 2.1e11,   # ... of its 8 x 32 tile (refitted alone after the 12 x 32
                             # tile, which spilled, at 1.21e11, gave way to it)
    "igemm_fma_dilated": 1.39e11,  # ... of the 6 x 64 tile on dilated taps
    "igemm_pack": 4.43e10,   # bytes/s of weights packed (read and written)
    "igemm_pad": 3.35e9,     # bytes/s of padded input written
    "igemm_out": 2.25e10,    # bytes/s of output written from the blocks' sums
    "igemm_call": 2.91e-5,   # seconds of fixed cost per call
}


def planes_features(p: ConvParams, itemsize: int) -> dict:
    """The amounts the plane kernel's estimate charges at ``NUMBA_RATES``: bytes
    filled into the phase buffers through the index maps (every plane, or at stride 1
    under zero padding only the input planes, copied row by row into padding that
    stays in place), element-taps and element-passes of its flat passes (compute
    itemsize scaled), loops (passes and filled rows) and one call."""
    from .backends.numba.depthwise_planes import copies_inside, sizes
    scale = itemsize / 4
    sub, size, length = sizes(p)
    units, planes = p.batch * p.in_channels, p.batch * p.out_channels
    taps = p.kernel_volume
    passes = 1 if taps == 9 else taps // 8 + taps % 8 // 4 + taps % 4
    inside = copies_inside(p)
    filled = prod(p.input_size) if inside else size
    rows = filled // (p.input_size[-1] if inside else int(sub[2]))
    return {"fill": 0 if inside else units * filled * itemsize,
            "copy": units * filled * itemsize if inside else 0,
            "taps": planes * length * taps * scale,
            "passes": planes * length * (passes + 2) * scale,
            "loops": planes * passes + units * rows, "call": 1}


@lru_cache(maxsize=256)
def depthwise_kernel_seconds(p: ConvParams, itemsize: int) -> Mapping[str, float]:
    """Seconds for each kernel of the Numba ``depthwise`` algorithm that can take the
    call: ``planes`` (NCHW planes), ``flat`` (NCHW planes at stride 1, zero padding),
    ``rows`` (channels last, 3/5/7 wide), ``taps`` (channels last, any kernel) or
    ``slide`` (channels last, sums in registers: float32, undilated along the width).
    Cached per call shape: the estimate, the workspace and the run each ask."""
    from .backends.numba import depthwise_flat, depthwise_slide
    from .backends.numba.depthwise import uses_row_kernel
    scale = itemsize / 4
    rate = NUMBA_RATES
    out_vol = prod(p.output_size)
    taps = p.kernel_volume
    f = planes_features(p, itemsize)
    seconds = {"planes": f["fill"] / rate["phase_fill"] + f["copy"] / rate["phase_copy"] +
               f["taps"] / rate["phase_tap"] + f["passes"] / rate["phase_pass"] +
               f["loops"] / rate["phase_loop"] + rate["phase_call"]}
    if uses_row_kernel(p):                      # every tap, padding included
        moved = p.batch * (p.in_channels * prod(p.padded_size) +
                           2 * p.out_channels * out_vol) * itemsize
        seconds["rows"] = p.flops / rate["depthwise_rows"] * scale + \
            moved / rate["layout"] + rate["rows_call"]
    else:
        visits = p.batch * out_vol * taps * p.inside_fraction
        seconds["taps"] = visits * -(-p.out_channels // 16) * scale / rate["tap_lanes"] + \
            rate["taps_call"]
    if depthwise_slide.applies(p):
        f = depthwise_slide.features(p)
        seconds["slide"] = f["steps"] / rate["slide_step"] + \
            f["copy"] / rate["slide_copy"] + f["loops"] / rate["slide_loop"] + \
            rate["slide_call"]
    if depthwise_flat.applies(p):
        f = depthwise_flat.features(p, itemsize)
        seconds["flat"] = f["taps"] / rate["flat_tap"] + \
            f["copy"] * scale / rate["flat_copy"] + f["loops"] / rate["flat_loop"] + \
            rate["flat_call"]
    return MappingProxyType(seconds)


def depthwise_kernel(p: ConvParams, itemsize: int) -> str:
    """The kernel the Numba ``depthwise`` algorithm runs for the call: the one
    estimated fastest."""
    seconds = depthwise_kernel_seconds(p, itemsize)
    return min(seconds, key=seconds.get)


def winograd_m(name: str) -> int:
    """The output tile ``m`` of a Winograd algorithm's name (``winograd_f4x4_3x3``: 4)."""
    return int(name.split("_")[1][1])


@lru_cache(maxsize=256)
def winograd_plan_seconds(p: ConvParams, m: int, threads: int) -> Mapping[str, float]:
    """Seconds for each plan of the Numba Winograd F(m, 3) that can take the call:
    ``tiles`` (work items of tile rows) and ``channels`` (blocks of output channels).
    Cached per call shape and thread count (the channel plan's chunks follow it)."""
    from .backends.numba.winograd import plan_features, plans
    seconds = {}
    for plan in plans(p, m):
        f = plan_features(p, m, plan)
        seconds[plan] = f.pop("call") * NUMBA_RATES["winograd_call"] + \
            sum(v / NUMBA_RATES[f"{plan}_{k}"] for k, v in f.items() if v)
    return MappingProxyType(seconds)


def winograd_plan(p: ConvParams, m: int) -> str:
    """The plan the Numba Winograd F(m, 3) runs for the call."""
    seconds = winograd_plan_seconds(p, m, get_num_threads())
    return min(seconds, key=seconds.get)


#: im2col takes the wide layout only where it looks this much cheaper than the windows'
#: (the extra GEMM columns and the result copy are what the model knows least).
WIDE_MARGIN = 0.6


def im2col_layout(p: ConvParams, filled: bool = False) -> str:
    """The column layout im2col uses for the call (``backends/numpy/im2col.py``);
    ``filled``: its windows come from the Numba backend's compiled fill."""
    seconds = im2col_layout_seconds(p, filled)
    wide = seconds.get("wide")
    return "wide" if wide is not None and wide < WIDE_MARGIN * seconds["windows"] \
        else "windows"


@lru_cache(maxsize=256)
def im2col_layout_seconds(p: ConvParams, filled: bool = False) -> Mapping[str, float]:
    """Seconds of what differs between im2col's column layouts. Windows: the columns
    copied tap by tap (bytes, runs of an output row, a NumPy call per tap), or with
    ``filled`` by the Numba backend's loop (bytes, runs). Wide: one
    copy of its columns, the GEMM's extra columns, and its result written and read back
    (the windows' GEMM writes into the output)."""
    from .backends.numpy.im2col import wide_possible, wide_span
    itemsize = _itemsize(p)
    rate = NUMBA_RATES
    runs = p.batch * p.in_channels * p.kernel_volume * prod(p.output_size[:-1])
    copier = "fill" if filled else "windows"     # the fill has no per-tap NumPy call
    seconds = {"windows": _column_bytes(p, itemsize) / rate[f"{copier}_bytes"] +
               runs / rate[f"{copier}_runs"] +
               (0.0 if filled else p.kernel_volume * rate["windows_tap"])}
    if wide_possible(p):
        per_image = wide_span(p, p.output_size[0])
        span, extra = p.batch * per_image, per_image / prod(p.output_size) - 1
        seconds["wide"] = extra * p.flops / rate["im2col_gemm"] * itemsize / 4 + \
            span * itemsize * (p.in_channels * p.kernel_volume / rate["wide_bytes"] +
                               2 * p.out_channels / rate["wide_out"])
    return MappingProxyType(seconds)


def _im2col_layout_factor(p: ConvParams) -> float:
    """What the Numba im2col's column term is multiplied by for its layout (windows
    filled by its compiled loop): the wide layout's share of the windows' cost where
    it takes it (a ratio, so that the estimate stays on the rates fitted to the whole
    algorithm, and positive)."""
    seconds = im2col_layout_seconds(p, True)
    return seconds["wide"] / seconds["windows"] if im2col_layout(p, True) == "wide" \
        else 1.0


def _itemsize(p: ConvParams) -> int:
    """Bytes per element the algorithms compute in (float16 runs in float32)."""
    return 8 if p.dtype.name == "float64" else 4


def _column_bytes(p: ConvParams, itemsize: int) -> int:
    """Bytes of im2col's column matrix; none for a pointwise layer (its input)."""
    from .backends.numpy.im2col import pointwise
    if pointwise(p):
        return 0
    return p.batch * p.in_channels * p.kernel_volume * prod(p.output_size) * itemsize


def _estimate_numba(name: str, p: ConvParams, itemsize: int) -> Optional[float]:
    """Seconds for the Numba kernels and im2col; None for the other algorithms, which
    are the NumPy code and follow the NumPy backend's model."""
    scale = itemsize / 4
    rate = NUMBA_RATES
    out_vol = prod(p.output_size)
    if name == "direct":
        rows = p.batch * p.out_channels * p.in_per_group * p.kernel_volume * \
            out_vol // p.output_size[-1]
        return p.flops * p.inside_fraction / rate["direct"] * scale + rows / rate["row"]
    if name == "depthwise":
        return depthwise_kernel_seconds(p, itemsize)[depthwise_kernel(p, itemsize)]
    if name == "im2col":
        copy = rate["im2col_strided" if p.stride[-1] > 1 else "im2col_copy"]
        return p.flops / rate["im2col_gemm"] * scale + \
            _column_bytes(p, itemsize) / copy * _im2col_layout_factor(p) + \
            rate["im2col_call"]
    if name == "im2col_blocks":
        from .backends.numba.im2col_blocks import blocks
        units, threads = blocks(p)
        busy = max(1, min(units, threads)) / threads
        kk = p.in_per_group * p.kernel_volume
        weights = units * p.out_per_group * kk * itemsize
        outs = p.batch * p.out_channels * out_vol * itemsize
        return rate["blocks_caution"] * (
            (p.flops / rate["blocks_gemm"] * scale +
             _column_bytes(p, itemsize) / rate["blocks_cols"] +
             weights / rate["blocks_weights"] + outs / rate["blocks_out"]) / busy +
            rate["blocks_call"])
    if name == "implicit_gemm":
        from .backends.numba.implicit_gemm import features
        return sum(v / rate[f"igemm_{k}"] for k, v in features(p).items() if v) + \
            rate["igemm_call"]
    if name.startswith("winograd_"):
        return min(winograd_plan_seconds(p, winograd_m(name), get_num_threads()).values())
    if name == "fft":
        from .backends.numpy.fft import features
        f = features(p)
        return f["spectra"] / rate["fft_bytes"] + f["transforms"] / rate["fft_transforms"] \
            + f["reduce"] / rate["fft_cgemm"] * scale + rate["fft_call"]
    if name == "tap_gemm":
        return rate["blocks_caution"] * tap_gemm_seconds(
            p, rate["tap_gemm"], rate["tap_weights"], rate["tap_cols"], rate["tap_adds"],
            rate["tap_step"])
    return None


def tap_gemm_seconds(p: ConvParams, gemm: float, weights: float, cols: float,
                     adds: float, step: float) -> float:
    """``tap_gemm``'s estimate at the given rates (FLOP/s, bytes/s, seconds a step)."""
    from .backends.numpy.tap_gemm import features
    f = features(p)
    scale = _itemsize(p) / 4
    return f["gemm"] / gemm * scale + f["weights"] / weights + f["cols"] / cols + \
        f["adds"] / adds + f["steps"] * step


def _fft_len(n: int) -> int:
    import scipy.fft
    return scipy.fft.next_fast_len(n, real=True)


def estimate_seconds(name: str, p: ConvParams, backend: str = "numpy") -> float:
    """The cost model behind ``algo="auto"``."""
    itemsize = _itemsize(p)
    if backend == "cuda":
        return _estimate_gpu(name, p, itemsize)
    if backend == "numba":
        estimate = _estimate_numba(name, p, itemsize)
        if estimate is not None:
            return estimate
    out_vol = prod(p.output_size)
    if name == "direct":
        return p.flops / RATES["einsum"] + \
            p.kernel_volume * p.batch * p.in_channels * out_vol * 8 / RATES["copy"]
    if name == "im2col":
        return p.flops / RATES["gemm"] * (itemsize / 4) + \
            _column_bytes(p, itemsize) / RATES["copy"]
    if name == "fft":
        shape = [_fft_len(n) for n in p.padded_size]
        n_fft = prod(shape)
        bins = n_fft // shape[-1] * (shape[-1] // 2 + 1)
        transforms = p.batch * p.in_channels + p.out_channels * p.in_per_group + \
            p.batch * p.out_channels
        fft_ops = transforms * 2.5 * n_fft * log2(max(n_fft, 2))
        reduce_ops = 8 * p.batch * p.out_channels * p.in_per_group * bins
        return fft_ops / RATES["fft"] + reduce_ops / RATES["cgemm"] * (itemsize / 4) + \
            RATES["fft_call"]
    if name.startswith("winograd_"):
        m, r = winograd_m(name), 3
        alpha = m + r - 1
        tiles = prod(-(-n // m) for n in p.output_size)
        pts = alpha ** p.ndim
        gemm = 2 * p.batch * tiles * pts * p.out_channels * p.in_per_group
        data = p.batch * tiles * pts * (p.in_channels + p.out_channels) * alpha * p.ndim
        filters = p.out_channels * p.in_per_group * pts * r * p.ndim
        return gemm / RATES["gemm"] * (itemsize / 4) + (data + filters) / RATES["transform"]
    if name == "tap_gemm":       # im2col's rates, so that the two compare as measured
        return tap_gemm_seconds(p, RATES["gemm"], RATES["copy"], RATES["copy"],
                                RATES["copy"], NUMBA_RATES["tap_step"])
    if name == "separable":
        passes = p.batch * p.out_channels * p.in_per_group * sum(
            prod(p.padded_size[:i]) * prod(p.output_size[i:]) * p.kernel_size[i]
            for i in range(p.ndim))
        return passes / RATES["elementwise"]
    return float(p.flops) / RATES["einsum"]


def _estimate_gpu(name: str, p: ConvParams, itemsize: int) -> float:
    scale = 2.0 if itemsize == 8 else 1.0          # FP64 runs at half the FP32 rate
    if name == "direct":
        return p.flops / GPU_RATES["direct"] * scale
    gemm = p.flops / GPU_RATES["gemm"] * scale
    if name == "im2col":
        cols = p.batch * p.in_channels * p.kernel_volume * prod(p.output_size) * itemsize
        return gemm + 2 * cols / GPU_RATES["hbm"]
    return gemm


@dataclass
class Candidate:
    name: str
    reason: Optional[str]                  # why it cannot run, None if it can
    estimate_s: Optional[float] = None
    workspace_bytes: Optional[int] = None
    over_limit: bool = False               # can run, but needs more than workspace_limit
    measured_s: Optional[float] = None
    reference: bool = False                # the oracle: chosen only if nothing else runs
    variant: Optional[str] = None          # the kernel or plan it runs, if it has several

    @property
    def usable(self) -> bool:
        return self.reason is None and not self.over_limit


def _mib(nbytes: int) -> str:
    return f"{nbytes / 2**20:.2f} MiB"


@dataclass
class Explanation:
    """What ``explain`` returns: every candidate, the choice, and why.

    ``str()`` is a readable report; ``as_dict()`` the same as plain data.
    """

    params: ConvParams
    backend: str
    candidates: list = field(default_factory=list)
    choice: Optional[str] = None
    why: str = ""
    workspace_limit: Optional[int] = None
    source: str = "rules"                  # "rules", "autotune" or "autotune cache"

    def __str__(self) -> str:
        limit = "none" if self.workspace_limit is None else _mib(self.workspace_limit)
        lines = [self.params.describe(),
                 f"backend: {self.backend}, workspace limit: {limit}", "candidates:"]
        for c in self.candidates:
            if c.reason is not None:
                lines.append(f"  {c.name:<20} cannot run: {c.reason}")
                continue
            text = f"  {c.name:<20} estimated {c.estimate_s * 1e3:10.3f} ms, " \
                   f"workspace {_mib(c.workspace_bytes):>12}"
            if c.variant is not None:
                text += f", {c.variant}"
            if c.measured_s is not None:
                text += f", measured {c.measured_s * 1e3:.3f} ms"
            if c.over_limit:
                text += " (skipped: over the workspace limit)"
            lines.append(text)
        lines.append(f"choice: {self.choice} ({self.why})")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return dict(call=self.params.describe(), backend=self.backend,
                    workspace_limit=self.workspace_limit, source=self.source,
                    choice=self.choice, why=self.why,
                    candidates=[asdict(c) for c in self.candidates])


@dataclass(frozen=True)
class _ShapeVerdict:
    """What the rules say of one call shape: every algorithm's check (value checks
    taken as passed), estimate and workspace, and the choice they make."""

    algorithms: tuple            # the registry's algorithm objects it was made from
    candidates: tuple            # Candidate per algorithm, variant not filled in
    choice: "Choice"
    #: the choice where every algorithm that reads the values fails its check
    without: "Choice"

    @property
    def settled(self) -> bool:
        """Whether the algorithm chosen (and the one the limit excluded) is the same
        whatever the weight values: with the algorithms that read them
        (``value_check``) able to run and unable."""
        return (self.without.name, _name(self.without.excluded)) == \
            (self.choice.name, _name(self.choice.excluded))


_VERDICTS: dict = {}
_VERDICTS_MAX = 1024
_VERDICTS_LOCK = threading.Lock()


def _shape_verdict(p: ConvParams, backend: str, workspace_limit: Optional[int]):
    """The rules' verdict for the call shape, cached: a repeated call (a network's
    layer, batch after batch) pays one dictionary lookup instead of every algorithm's
    check and estimate. The key holds everything the estimates read (the thread count
    included); the registered algorithms are compared by identity, so a change to
    the registry is seen."""
    algs = tuple(registry.algorithms("conv", backend))
    key = (p, backend, workspace_limit, get_num_threads())
    hit = _VERDICTS.get(key)
    if hit is not None and len(hit.algorithms) == len(algs) and \
            all(a is b for a, b in zip(hit.algorithms, algs)):
        return hit
    cands = []
    for alg in algs:
        reason = alg.can_implement(p, None)
        cand = Candidate(alg.name, reason, reference=alg.reference)
        if reason is None:
            cand.estimate_s = estimate_seconds(alg.name, p, backend)
            cand.workspace_bytes = int(alg.workspace_bytes(p))
            cand.over_limit = workspace_limit is not None and \
                cand.workspace_bytes > workspace_limit
        cands.append(cand)
    choice = choose(cands)
    without = [replace(c, reason="value check failed") if a.value_check is not None
               and c.reason is None else c for a, c in zip(algs, cands)]
    verdict = _ShapeVerdict(algs, tuple(cands), choice, choose(without))
    with _VERDICTS_LOCK:
        if len(_VERDICTS) >= _VERDICTS_MAX:
            _VERDICTS.clear()
        _VERDICTS[key] = verdict
    return verdict


def _name(cand: Optional[Candidate]) -> Optional[str]:
    return None if cand is None else cand.name


def candidates(p: ConvParams, backend: str, weight=None,
               workspace_limit: Optional[int] = None) -> list[Candidate]:
    verdict = _shape_verdict(p, backend, workspace_limit)
    out = []
    for alg, shaped in zip(verdict.algorithms, verdict.candidates):
        cand = replace(shaped)
        if cand.reason is None and alg.value_check is not None:
            cand.reason = alg.value_check(weight)
            if cand.reason is not None:
                cand.estimate_s = cand.workspace_bytes = None
                cand.over_limit = False
        if cand.reason is None:
            cand.variant = variant(alg.name, p, backend)
        out.append(cand)
    return out


def auto_choice(p: ConvParams, backend: str, weight=None,
                workspace_limit: Optional[int] = None) -> "Choice":
    """The algorithm ``choose(candidates(...))`` picks (and the one the limit excluded),
    without building the candidates when the cached shape verdict settles it: the
    weight values are checked (a rank-1 filter for ``separable``) only where the answer
    could change the choice. A settled choice's ``why`` may name as runner-up an
    algorithm the values would rule out; ``explain`` gives the exact account."""
    verdict = _shape_verdict(p, backend, workspace_limit)
    if verdict.settled:
        return verdict.choice
    # the checks alone: where they agree, the verdict holds both answers (building
    # the candidates took 60 us a call, more than a small layer's kernel)
    failed = {alg.value_check(weight) is not None
              for alg, cand in zip(verdict.algorithms, verdict.candidates)
              if alg.value_check is not None and cand.reason is None}
    if len(failed) == 1:
        return verdict.without if failed.pop() else verdict.choice
    return choose(candidates(p, backend, weight, workspace_limit))


def variant(name: str, p: ConvParams, backend: str) -> Optional[str]:
    """Which of its kernels, plans or layouts a CPU algorithm that has several runs for
    the call (the same choice the algorithm makes when it runs); None for the others."""
    if name == "im2col" and backend in ("numpy", "numba"):
        from .backends.numpy.im2col import layout_for, wide_possible
        return f"{layout_for(p, backend == 'numba')} columns" if wide_possible(p) \
            else None
    if backend != "numba":
        return None
    if name == "depthwise":
        from .backends.numba.depthwise import kernel_for
        return f"{kernel_for(p)} kernel"
    if name.startswith("winograd_"):
        from .backends.numba.winograd import plan_for
        return f"{plan_for(p, winograd_m(name))} plan"
    return None


def _contenders(cands: list[Candidate]) -> list[Candidate]:
    # the reference (NumPy's float64 ``direct``) is not a contender unless nothing
    # else can run
    able = [c for c in cands if c.usable]
    return [c for c in able if not c.reference] or able


@dataclass
class Choice:
    name: Optional[str]
    why: str
    excluded: Optional[Candidate] = None   # the best estimate, if the limit excluded it


def choose(cands: list[Candidate]) -> Choice:
    """The rule: the lowest estimated time among the candidates that can run within the
    workspace limit (``direct`` only when nothing else can)."""
    contenders = _contenders(cands)
    if not contenders:
        if any(c.reason is None for c in cands):
            return Choice(None, "every algorithm that can run this call needs more "
                                "workspace than the limit")
        return Choice(None, "no registered algorithm can run this call")
    ranked = sorted(contenders, key=lambda c: c.estimate_s)
    best = ranked[0]
    why = f"lowest estimated time ({best.estimate_s * 1e3:.3f} ms)"
    if len(ranked) > 1:
        why += f"; next {ranked[1].name} at {ranked[1].estimate_s * 1e3:.3f} ms"
    unlimited = [c for c in cands if c.reason is None and not c.reference]
    excluded = min(unlimited, key=lambda c: c.estimate_s) if unlimited else None
    if excluded is not None and excluded.over_limit:
        why += f"; {excluded.name} (estimated {excluded.estimate_s * 1e3:.3f} ms) needs " \
               f"{_mib(excluded.workspace_bytes)}, over the workspace limit"
        return Choice(best.name, why, excluded)
    return Choice(best.name, why)


def select(p: ConvParams, backend: str, weight=None,
           workspace_limit: Optional[int] = None) -> str:
    """The algorithm ``algo="auto"`` runs for this call: pure, no measurement."""
    choice = auto_choice(p, backend, weight, workspace_limit)
    if choice.name is None:
        fail(p.fname, f"{choice.why} on backend {backend!r}")
    return choice.name


def explain(p: ConvParams, backend: str, weight=None,
            workspace_limit: Optional[int] = None) -> Explanation:
    cands = candidates(p, backend, weight, workspace_limit)
    tuned, source = _lookup(tune_key(p, backend, cands, workspace_limit))
    if tuned is not None:
        for c in cands:
            c.measured_s = tuned["times_s"].get(c.name)
        why = "measured fastest by autotune" + \
            (", read from the on-disk cache" if source == "autotune cache" else "")
        return Explanation(p, backend, cands, tuned["choice"], why, workspace_limit, source)
    choice = choose(cands)
    return Explanation(p, backend, cands, choice.name, choice.why, workspace_limit)


def fallbacks(p: ConvParams, backend: str, weight, workspace_limit, failed: str) -> list:
    """After ``failed`` ran out of memory: the other usable algorithms, least workspace
    first (ties by estimated time), ending with ``direct``."""
    cands = [c for c in candidates(p, backend, weight, workspace_limit)
             if c.usable and c.name != failed]
    cands.sort(key=lambda c: (c.reference, c.workspace_bytes, c.estimate_s))
    return [c.name for c in cands]


def is_out_of_memory(exc: BaseException) -> bool:
    """NumPy's and CuPy's allocation failures (both MemoryError subclasses), or any
    library's ``OutOfMemoryError``."""
    return isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError"


# ---- autotune: measure once per call signature, keep the fastest ------------------

_TUNED: dict = {}
_TUNE_LOCK = threading.RLock()
_DISK: Optional[DiskCache] = None
_DISK_LOADED: set = set()


def key_prefix() -> str:
    from . import __version__
    return f"cnnkern {__version__} sources {implementation_hash()}|"


def tune_key(p: ConvParams, backend: str, cands: list[Candidate],
             workspace_limit: Optional[int]) -> str:
    """Everything the measured choice depends on, as one readable string. The set of
    algorithms that can run is part of it: ``separable`` depends on the weight values."""
    able = sorted(c.name for c in cands if c.usable)
    fields = dict(device=device_name(backend), backend=backend, dtype=p.dtype.name,
                  input=list(p.input_shape), weight=list(p.weight_shape),
                  stride=list(p.stride), padding=[list(x) for x in p.padding],
                  padding_mode=p.padding_mode, dilation=list(p.dilation), groups=p.groups,
                  workspace_limit=workspace_limit, able=able)
    return key_prefix() + json.dumps(fields, sort_keys=True, separators=(",", ":"))


def set_cache_dir(directory) -> None:
    """Where the autotune cache lives: a path, or None to keep tuning in memory only.
    The default is ``$CNNKERN_CACHE_DIR`` or the user cache directory. Forgets what
    was tuned in memory."""
    global _DISK
    with _TUNE_LOCK:
        _DISK = DiskCache(None if directory is None else Path(directory))
        _TUNED.clear()
        _DISK_LOADED.clear()


def _disk() -> DiskCache:
    global _DISK
    if _DISK is None:
        _DISK = DiskCache(default_dir())
    return _DISK


def _lookup(key: str):
    """(record, "memory" or "disk cache") for a tuned key, or (None, "")."""
    with _TUNE_LOCK:
        if key in _TUNED:
            return _TUNED[key]
        disk = _disk()
        if disk.directory not in _DISK_LOADED:
            _DISK_LOADED.add(disk.directory)
            for k, record in disk.load(key_prefix()).items():
                if isinstance(record.get("times_s"), dict):
                    _TUNED.setdefault(k, (record, "autotune cache"))
        return _TUNED.get(key, (None, ""))


def time_algorithm(alg, p: ConvParams, backend: str, x, weight, bias, repeat: int,
                   bound: float) -> float:
    """Seconds of one call (best of ``repeat`` after a warm-up run; CUDA events on the
    GPU). A candidate already over ``bound`` (twice the best so far) after its first
    timed run is not timed again. Each run makes a fresh output, so nothing carries
    over between runs."""
    run = (lambda: alg.run(x, weight, bias, p))
    clock = timing.gpu_times if backend == "cuda" else timing.cpu_times
    first = min(clock(run, 1, warmup=1))
    if first > bound or repeat <= 1:
        return first
    return min([first] + clock(run, repeat - 1, warmup=0))


def measure(p: ConvParams, backend: str, x, weight, bias, cands: list[Candidate],
            repeat: int = 3) -> dict:
    """Seconds per usable candidate, cheapest estimate first; a candidate that raises
    (compile error, out of memory, anything) scores infinity."""
    times: dict = {}
    best = float("inf")
    for c in sorted((c for c in cands if c.usable), key=lambda c: c.estimate_s):
        alg = registry.get("conv", backend, c.name)
        try:
            t = time_algorithm(alg, p, backend, x, weight, bias, repeat, 2 * best)
        except Exception:  # noqa: BLE001 - a failing candidate loses, it does not crash
            t = float("inf")
        times[c.name] = t
        best = min(best, t)
    return times


def fastest(times: dict) -> Optional[str]:
    """The name with the least finite time, None if every candidate failed."""
    finite = {k: v for k, v in times.items() if v != float("inf")}
    return min(finite, key=finite.get) if finite else None


def autotune(p: ConvParams, backend: str, x, weight, bias,
             workspace_limit: Optional[int] = None, repeat: int = 3,
             cands: Optional[list] = None) -> str:
    """The measured-fastest algorithm for this call signature: from memory, else from
    the disk cache, else timed now (and stored in both). ``cands``: this call's
    ``candidates`` if the caller has them already."""
    if cands is None:
        cands = candidates(p, backend, weight, workspace_limit)
    key = tune_key(p, backend, cands, workspace_limit)
    with _TUNE_LOCK:
        record, _ = _lookup(key)
        if record is not None:
            return record["choice"]
        if not any(c.usable for c in cands):
            fail(p.fname, f"{choose(cands).why} on backend {backend!r}")
        times = measure(p, backend, x, weight, bias, cands, repeat)
        choice = fastest(times)
        if choice is None:
            fail(p.fname, f"autotune: every candidate failed on backend {backend!r} "
                          f"({', '.join(times)})", RuntimeError)
        record = dict(choice=choice,
                      times_s={k: (None if v == float("inf") else v)
                               for k, v in times.items()},
                      date=datetime.datetime.now(datetime.timezone.utc)
                      .isoformat(timespec="seconds"),
                      host=platform.node())
        _TUNED[key] = (record, "autotune")
        _disk().store(key, record, key_prefix())
        return record["choice"]
