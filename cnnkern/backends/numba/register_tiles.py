"""Register tiles for GEMMs written with ``simd.py``'s vectors: every sum of a block of
rows x 64 (or 32) columns stays in a vector register through the whole reduction
(24 or 16 vectors of AVX-512's 32). Each reduction step broadcasts one element per row,
``xf[base_row + offs[k]]``, and multiplies it with ``k``'s row of packed columns in
``wf`` (64 or 32 contiguous floats from ``w_at + k * lanes``); the sums go to
``buf[at:]`` as rows of ``lanes``. The row bases and the step offsets let one tile
serve an implicit GEMM over a padded input (``implicit_gemm``) and a plain GEMM over
row-major rows (``winograd``'s point GEMMs: offsets ``0 .. K-1``).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .simd import vbroadcast, vfma, vload, vstore, vzero


@njit(cache=True, inline="always")
def _unsigned(i):
    """An index as unsigned: its reads then carry no negative-index wraparound (the
    8 x 32 tile, 94 -> 112 GFLOP/s a core; the 6 x 64 tile measured the same
    either way and reads with the plain indices)."""
    return np.uint64(i)


@njit(cache=True, inline="always")
def _zeros4():
    return vzero(), vzero(), vzero(), vzero()


@njit(cache=True, inline="always")
def _zeros2():
    return vzero(), vzero()


@njit(cache=True, inline="always")
def _fma4(a, b, c):
    x = vbroadcast(a)
    return vfma(x, b[0], c[0]), vfma(x, b[1], c[1]), vfma(x, b[2], c[2]), \
        vfma(x, b[3], c[3])


@njit(cache=True, inline="always")
def _fma2(a, b, c):
    x = vbroadcast(a)
    return vfma(x, b[0], c[0]), vfma(x, b[1], c[1])


@njit(cache=True, inline="always")
def _store4(buf, at, c):
    vstore(buf, at, c[0])
    vstore(buf, at + 16, c[1])
    vstore(buf, at + 32, c[2])
    vstore(buf, at + 48, c[3])


@njit(cache=True, inline="always")
def _store2(buf, at, c):
    vstore(buf, at, c[0])
    vstore(buf, at + 16, c[1])


@njit(cache=True, inline="always")
def tile64(xf, wf, w_at, offs, kk, bs, buf, at):
    """Sums of 6 positions (input bases ``bs[:6]``) x 64 channels into ``buf[at:]``."""
    b0, b1, b2, b3, b4, b5 = bs[0], bs[1], bs[2], bs[3], bs[4], bs[5]
    c0 = _zeros4()
    c1 = _zeros4()
    c2 = _zeros4()
    c3 = _zeros4()
    c4 = _zeros4()
    c5 = _zeros4()
    for k in range(kk):
        w = w_at + k * 64
        b = vload(wf, w), vload(wf, w + 16), vload(wf, w + 32), vload(wf, w + 48)
        q = offs[k]
        c0 = _fma4(xf[b0 + q], b, c0)
        c1 = _fma4(xf[b1 + q], b, c1)
        c2 = _fma4(xf[b2 + q], b, c2)
        c3 = _fma4(xf[b3 + q], b, c3)
        c4 = _fma4(xf[b4 + q], b, c4)
        c5 = _fma4(xf[b5 + q], b, c5)
    _store4(buf, at, c0)
    _store4(buf, at + 64, c1)
    _store4(buf, at + 128, c2)
    _store4(buf, at + 192, c3)
    _store4(buf, at + 256, c4)
    _store4(buf, at + 320, c5)


@njit(cache=True, inline="always")
def tile32(xf, wf, w_at, offs, kk, bs, buf, at):
    """Sums of 8 positions x 32 channels (the tile for 32 or fewer channels). Eight,
    not twelve: with twelve row bases and 24 sums LLVM ran out of registers and
    spilled sums every step (35 GFLOP/s a core against 112 for this tile)."""
    b0, b1, b2, b3 = _unsigned(bs[0]), _unsigned(bs[1]), _unsigned(bs[2]), _unsigned(bs[3])
    b4, b5, b6, b7 = _unsigned(bs[4]), _unsigned(bs[5]), _unsigned(bs[6]), _unsigned(bs[7])
    c0 = _zeros2()
    c1 = _zeros2()
    c2 = _zeros2()
    c3 = _zeros2()
    c4 = _zeros2()
    c5 = _zeros2()
    c6 = _zeros2()
    c7 = _zeros2()
    for k in range(kk):
        w = w_at + k * 32
        b = vload(wf, w), vload(wf, w + 16)
        q = _unsigned(offs[k])
        c0 = _fma2(xf[b0 + q], b, c0)
        c1 = _fma2(xf[b1 + q], b, c1)
        c2 = _fma2(xf[b2 + q], b, c2)
        c3 = _fma2(xf[b3 + q], b, c3)
        c4 = _fma2(xf[b4 + q], b, c4)
        c5 = _fma2(xf[b5 + q], b, c5)
        c6 = _fma2(xf[b6 + q], b, c6)
        c7 = _fma2(xf[b7 + q], b, c7)
    _store2(buf, at, c0)
    _store2(buf, at + 32, c1)
    _store2(buf, at + 64, c2)
    _store2(buf, at + 96, c3)
    _store2(buf, at + 128, c4)
    _store2(buf, at + 160, c5)
    _store2(buf, at + 192, c6)
    _store2(buf, at + 224, c7)
