"""Explicit SIMD for Numba kernels: a 16-lane float32 vector type and the few operations
a register-blocked GEMM needs, each lowered to one LLVM vector instruction, and the
copies between channel rows and channels-last lanes built on its 16 x 16 transpose.

Why not leave it to LLVM's auto-vectorizer: it vectorizes one innermost loop, so a
micro-kernel that keeps a 6 x 64 block of sums in registers across the reduction loop
came out either fully unrolled into scalars or spilled to memory (26 GFLOP/s a core at
best, docs/performance.md). Written with these vectors, the same block runs at the
core's FMA rate. The vectors are LLVM ``<16 x float>``: one AVX-512 register on the
machine the kernels are tuned for; LLVM splits them into two AVX2 or four SSE/NEON
registers elsewhere, where the results are the same and the tile spills.

Every array argument must be a C-contiguous float32 array and every index an integer;
the operations read and write ``16`` elements from the given flat element index, with
no bounds check (the callers keep their indices inside the arrays).
"""
from __future__ import annotations

from functools import lru_cache

import llvmlite.ir as ir
from llvmlite import binding
from numba import njit, types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic, models, register_model

LANES = 16
_F32 = ir.FloatType()
_VEC = ir.VectorType(_F32, LANES)
_MASK = ir.VectorType(ir.IntType(32), LANES)


@lru_cache(maxsize=1)
def full_width() -> bool:
    """Whether one of the host's vector registers holds a whole vector (AVX-512). Where
    it does not, register tiles spill; callers with a BLAS path take that instead."""
    return bool(binding.get_host_cpu_features().get("avx512f", False))


class Float32x16(types.Type):
    """The Numba type of a 16-lane float32 vector held in registers."""

    def __init__(self):
        super().__init__(name="float32x16")


float32x16 = Float32x16()


@register_model(Float32x16)
class _Float32x16Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _VEC)


def _check_array(arr, what: str) -> None:
    if not (isinstance(arr, types.Array) and arr.dtype == types.float32
            and arr.layout == "C"):
        raise TypingError(f"{what} needs a C-contiguous float32 array, got {arr}")


def _check_index(*idx) -> None:
    for i in idx:
        if not isinstance(i, types.Integer):
            raise TypingError(f"a vector index must be an integer, got {i}")


def _vector_ptr(context, builder, aryty, ary, idx):
    data = context.make_array(aryty)(context, builder, ary).data
    return builder.bitcast(builder.gep(data, [idx]), _VEC.as_pointer())


@intrinsic
def vload(typingctx, arr, idx):
    """``arr.flat[idx:idx + 16]`` as a vector (no alignment needed)."""
    _check_array(arr, "vload")
    _check_index(idx)

    def codegen(context, builder, sig, args):
        return builder.load(_vector_ptr(context, builder, sig.args[0], *args), align=4)
    return float32x16(arr, idx), codegen


@intrinsic
def vstore(typingctx, arr, idx, vec):
    """``arr.flat[idx:idx + 16] = vec``."""
    _check_array(arr, "vstore")
    _check_index(idx)

    def codegen(context, builder, sig, args):
        builder.store(args[2], _vector_ptr(context, builder, sig.args[0], args[0], args[1]),
                      align=4)
        return context.get_dummy_value()
    return types.none(arr, idx, vec), codegen


@intrinsic
def vbroadcast(typingctx, value):
    """A vector with ``value`` (a float, rounded to float32) in every lane."""
    if not isinstance(value, types.Float):
        raise TypingError(f"vbroadcast needs a float, got {value}")

    def codegen(context, builder, sig, args):
        v = args[0]
        if v.type != _F32:
            v = builder.fptrunc(v, _F32)
        one = builder.insert_element(ir.Constant(_VEC, ir.Undefined), v,
                                     ir.Constant(ir.IntType(32), 0))
        return builder.shuffle_vector(one, ir.Constant(_VEC, ir.Undefined),
                                      ir.Constant(_MASK, [0] * LANES))
    return float32x16(value), codegen


@intrinsic
def vzero(typingctx):
    """A vector of zeros."""
    def codegen(context, builder, sig, args):
        return ir.Constant(_VEC, [0.0] * LANES)
    return float32x16(), codegen


@intrinsic
def vfma(typingctx, a, b, c):
    """``a * b + c`` lane by lane, rounded once (LLVM's ``fma``)."""
    def codegen(context, builder, sig, args):
        fnty = ir.FunctionType(_VEC, [_VEC, _VEC, _VEC])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.fma.v16f32")
        return builder.call(fn, args)
    return float32x16(a, b, c), codegen


def _transpose(builder, rows):
    """The 16 x 16 transpose of ``rows`` (16 vectors): the off-diagonal blocks of side
    8, 4, 2 and 1 swapped in turn, two shuffles per pair of rows a step."""
    half = LANES // 2
    while half:
        first = ir.Constant(_MASK, [j if not j & half else LANES + j - half
                                    for j in range(LANES)])
        second = ir.Constant(_MASK, [j + half if not j & half else LANES + j
                                     for j in range(LANES)])
        new = list(rows)
        for i in range(LANES):
            if not i & half:
                new[i] = builder.shuffle_vector(rows[i], rows[i + half], first)
                new[i + half] = builder.shuffle_vector(rows[i], rows[i + half], second)
        rows = new
        half //= 2
    return rows


@intrinsic
def transpose16(typingctx, src, src_at, src_step, dst, dst_at, dst_step):
    """``dst.flat[dst_at + j * dst_step + i] = src.flat[src_at + i * src_step + j]`` for
    ``i, j < 16``: a 16 x 16 block moved transposed, in registers."""
    _check_array(src, "transpose16")
    _check_array(dst, "transpose16")
    _check_index(src_at, src_step, dst_at, dst_step)

    def codegen(context, builder, sig, args):
        src, src_at, src_step, dst, dst_at, dst_step = args

        def at(base, step, i):
            return builder.add(base, builder.mul(step, ir.Constant(step.type, i)))
        rows = [builder.load(_vector_ptr(context, builder, sig.args[0], src,
                                         at(src_at, src_step, i)), align=4)
                for i in range(LANES)]
        for j, row in enumerate(_transpose(builder, rows)):
            builder.store(row, _vector_ptr(context, builder, sig.args[3], dst,
                                           at(dst_at, dst_step, j)), align=4)
        return context.get_dummy_value()
    return types.none(src, src_at, src_step, dst, dst_at, dst_step), codegen


@njit(cache=True, inline="always")
def to_lanes(src, src_at, step, rows, cols, dst, dst_at, lanes):
    """``dst[dst_at + q * lanes + c] = src[src_at + c * step + q]`` for ``q < cols`` and
    ``c < rows``, zero for ``rows <= c < lanes``: ``rows`` rows of ``src`` (channels)
    into lanes (channels last). Whole 16 x 16 blocks go through registers, the edges
    element by element (element by element throughout, the 1024 x 169 weights of
    RepLKNet's dw13_s4 took as long as the layer's taps)."""
    full = cols - cols % 16
    for v in range(0, lanes, 16):
        q0 = 0
        if v + 16 <= rows:
            for q in range(0, full, 16):
                transpose16(src, src_at + v * step + q, step, dst, dst_at + q * lanes + v,
                            lanes)
            q0 = full
        for q in range(q0, cols):
            for c in range(v, v + 16):
                dst[dst_at + q * lanes + c] = src[src_at + c * step + q] if c < rows else 0


@njit(cache=True, inline="always")
def from_lanes(src, src_at, lanes, rows, cols, dst, dst_at, step):
    """``dst[dst_at + c * step + q] = src[src_at + q * lanes + c]`` for ``c < rows`` and
    ``q < cols``: ``to_lanes`` backwards, each output row written along its run."""
    pv, jv = cols // 16 * 16, rows // 16 * 16
    for j0 in range(0, jv, 16):
        for i0 in range(0, pv, 16):
            transpose16(src, src_at + i0 * lanes + j0, lanes, dst, dst_at + j0 * step + i0,
                        step)
    for j in range(rows):
        for i in range(pv if j < jv else 0, cols):
            dst[dst_at + j * step + i] = src[src_at + i * lanes + j]
