"""Launchers of the forward convolution kernels: direct, implicit GEMM, im2col + GEMM."""
from __future__ import annotations

from math import prod

import numpy as np

from .module import CTYPES, alloc, geometry, get_module, index_type, null_or

GEMM_BM, GEMM_BN = 128, 128
GEMM_THREADS = 256
MAX_GRID_Y = 65535

#: Upper bound on the column matrix of one im2col chunk.
IM2COL_CHUNK_BYTES = 256 * 2**20


def _instances(template, dtypes=CTYPES.values(), extra=("",)):
    return tuple(f"cnnkern::{template}<{t}, {i}{e}>" for t in dtypes
                 for i in ("int", "long long") for e in extra)


DIRECT_NAMES = _instances("conv_direct")
GEMM_NAMES = _instances("conv_gemm", extra=(", true", ", false")) + \
    _instances("im2col_kernel")


def _compute(x, w, bias, p):
    """Inputs in a dtype the kernels take (float16 is computed in float32)."""
    import cupy as cp
    ct = np.dtype(np.float32) if x.dtype == np.float16 else np.dtype(x.dtype)
    x = cp.ascontiguousarray(x, dtype=ct)
    w = cp.ascontiguousarray(w, dtype=ct)
    bias = None if bias is None else cp.ascontiguousarray(bias, dtype=ct)
    return x, w, bias, ct


def _padded(x, p):
    """Non-zero padding modes pad first (the kernels pad with zeros themselves)."""
    if p.has_zero_padding:
        return x, p
    import cupy as cp
    from dataclasses import replace
    mode = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}[p.padding_mode]
    xp = cp.pad(x, ((0, 0), (0, 0)) + tuple(p.padding), mode=mode)
    q = replace(p, input_size=tuple(xp.shape[2:]),
                padding=tuple((0, 0) for _ in p.padding), padding_mode="zeros")
    return xp, q


def _tap_major(w, p):
    """Weight as (C_out, taps, C_in / groups): the K order of kernels/gemm.cu."""
    import cupy as cp
    return cp.ascontiguousarray(
        w.reshape(p.out_channels, p.in_per_group, p.kernel_volume).transpose(0, 2, 1))


def _finish(y, p):
    return y if y.dtype == p.dtype else y.astype(p.dtype)


def can_run(p, weight=None):
    if p.dtype.name not in ("float16", "float32", "float64"):
        return f"no CUDA kernel for dtype {p.dtype.name}"
    if -(-p.out_per_group // GEMM_BM) > MAX_GRID_Y:
        return f"{p.out_per_group} output channels per group exceed the launch grid"
    return None


def direct(x, w, bias, p):
    x, w, bias, ct = _compute(x, w, bias, p)
    x, q = _padded(x, p)
    y = alloc(q.output_shape, ct)
    name = f"cnnkern::conv_direct<{CTYPES[ct]}, {index_type(x, w, y)}>"
    kern = get_module("direct.cu", DIRECT_NAMES).get_function(name)
    threads = 256
    blocks = max(1, min(-(-y.size // threads), 65535 * 16))
    kern((blocks,), (threads,), (x, w, null_or(bias), y, geometry(q)))
    return _finish(y, p)


def implicit_gemm(x, w, bias, p):
    x, w, bias, ct = _compute(x, w, bias, p)
    x, q = _padded(x, p)
    y = alloc(q.output_shape, ct)
    m_total = q.batch * prod(q.output_size)
    name = f"cnnkern::conv_gemm<{CTYPES[ct]}, {index_type(x, w, y)}, true>"
    kern = get_module("gemm.cu", GEMM_NAMES).get_function(name)
    grid = (-(-m_total // GEMM_BN), -(-q.out_per_group // GEMM_BM), q.groups)
    kern(grid, (GEMM_THREADS,), (x, _tap_major(w, q), null_or(bias), y, geometry(q),
                                 np.int64(0),
                                 np.int64(m_total)))
    return _finish(y, p)


def im2col_chunk_positions(p, chunk_bytes=IM2COL_CHUNK_BYTES):
    itemsize = 8 if p.dtype == np.float64 else 4
    per_position = p.in_channels * p.kernel_volume * itemsize
    m_total = p.batch * prod(p.output_size)
    step = max(GEMM_BN, chunk_bytes // per_position // GEMM_BN * GEMM_BN)
    return min(step, m_total), m_total


def im2col_workspace(p):
    step, _ = im2col_chunk_positions(p)
    itemsize = 8 if p.dtype == np.float64 else 4
    return step * p.in_channels * p.kernel_volume * itemsize


def im2col(x, w, bias, p, chunk_bytes=IM2COL_CHUNK_BYTES):
    import cupy as cp
    x, w, bias, ct = _compute(x, w, bias, p)
    x, q = _padded(x, p)
    y = alloc(q.output_shape, ct)
    step, m_total = im2col_chunk_positions(q, chunk_bytes)
    k_total = q.in_per_group * q.kernel_volume
    cols = cp.empty(q.groups * k_total * step, dtype=ct)
    it = index_type(x, w, y, cols)
    mod = get_module("gemm.cu", GEMM_NAMES)
    fill = mod.get_function(f"cnnkern::im2col_kernel<{CTYPES[ct]}, {it}>")
    gemm = mod.get_function(f"cnnkern::conv_gemm<{CTYPES[ct]}, {it}, false>")
    g = geometry(q)
    w = _tap_major(w, q)
    for m0 in range(0, m_total, step):
        ld = min(step, m_total - m0)
        n_el = q.groups * k_total * ld
        fill((max(1, min(-(-n_el // 256), 65535 * 16)),), (256,),
             (x, cols, g, np.int64(m0), np.int64(ld)))
        grid = (-(-ld // GEMM_BN), -(-q.out_per_group // GEMM_BM), q.groups)
        gemm(grid, (GEMM_THREADS,), (cols, w, null_or(bias), y, g, np.int64(m0),
                                     np.int64(ld)))
    return _finish(y, p)
