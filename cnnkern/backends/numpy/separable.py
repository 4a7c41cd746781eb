"""Separable convolution: rank-1 filters as successive 1-D passes, one per axis.

A filter slice ``w[o, c]`` of ``d`` dimensions is rank 1 when it is the outer product of
``d`` vectors (seed section 4.4.2). Detection takes the largest-magnitude entry as pivot,
reads the fibres through it as the factors, and accepts when the outer product
reproduces the slice to a relative tolerance. The passes then cost ``sum(k)`` instead of
``prod(k)`` multiplies per output and channel pair.
"""
from __future__ import annotations

from math import prod

import numpy as np

from ._common import alloc, compute_dtype, finish, pad_input

#: Relative residual below which a filter slice counts as rank 1, per weight dtype.
RANK1_RTOL = {"float16": 1e-3, "float32": 1e-5, "float64": 1e-10}

#: Upper bound on the per-chunk intermediate (output channels x input channels x plane).
CHUNK_BYTES = 64 * 2**20


def rank1_factors(w: np.ndarray, rtol: float | None = None):
    """Per-axis factors ``[f_0, ..., f_{d-1}]`` with ``w[o, c] = f_0[o, c] x ... x f_{d-1}[o, c]``.

    Each ``f_i`` has shape ``(C_out, C_in / groups, k_i)``; returns None if some slice is
    not rank 1 within ``rtol`` (relative Frobenius norm of the residual).
    """
    if rtol is None:
        rtol = RANK1_RTOL[np.dtype(w.dtype).name]
    if w.shape[0] * w.shape[1] > 1 and rank1_factors(w[:1, :1], rtol) is None:
        return None         # the common verdict, for the cost of one slice
    co, ci, ks = w.shape[0], w.shape[1], w.shape[2:]
    nd = len(ks)
    flat = w.astype(np.float64).reshape(co * ci, prod(ks))
    piv = np.argmax(np.abs(flat), axis=1)
    pval = flat[np.arange(co * ci), piv]
    coords = np.unravel_index(piv, ks)
    slices = flat.reshape((co * ci,) + ks)
    rows = np.arange(co * ci)
    factors = []
    for ax in range(nd):
        index = [rows[:, None]]
        for other in range(nd):
            index.append(np.arange(ks[ax])[None, :] if other == ax else coords[other][:, None])
        factors.append(slices[tuple(index)])          # (co*ci, k_ax)
    safe = np.where(pval == 0, 1.0, pval)
    factors[0] = factors[0] / safe[:, None] ** (nd - 1)
    recon = factors[0]
    for f in factors[1:]:
        recon = (recon[..., None] * f.reshape((co * ci,) + (1,) * (recon.ndim - 1) + (-1,)))
    resid = np.linalg.norm(recon.reshape(co * ci, -1) - flat, axis=1)
    if np.any(resid > rtol * np.linalg.norm(flat, axis=1)):
        return None
    return [f.reshape(co, ci, -1) for f in factors]


def _pass(t, axis, factor, stride, dilation, n_out):
    """One 1-D correlation along ``axis`` of t (N, O, C, *spatial) with factor (O, C, k)."""
    bshape = factor.shape[:2] + (1,) * (t.ndim - 3)
    res = None
    for j in range(factor.shape[-1]):
        index = [slice(None)] * t.ndim
        start = j * dilation
        index[axis] = slice(start, start + (n_out - 1) * stride + 1, stride)
        term = t[tuple(index)] * factor[:, :, j].reshape(bshape)
        res = term if res is None else res + term
    return res


def workspace_bytes(p) -> int:
    itemsize = compute_dtype(p.dtype).itemsize
    per_pair = prod(p.padded_size) * itemsize
    full = p.out_per_group * p.in_per_group * per_pair
    return min(full, max(p.in_per_group * per_pair, CHUNK_BYTES))


def conv(x, w, bias, p, factors=None):
    cd = compute_dtype(p.dtype)
    if factors is None:
        factors = rank1_factors(w)
        if factors is None:
            raise ValueError(f"{p.fname}: algo='separable' needs rank-1 filter slices")
    factors = [f.astype(cd) for f in factors]
    nd, g, cig, cog = p.ndim, p.groups, p.in_per_group, p.out_per_group
    xp = pad_input(x, p, cd).reshape((p.batch, g, cig) + p.padded_size)
    y = alloc((p.batch, g, cog) + p.output_size, dtype=cd)
    per_o = cig * prod(p.padded_size) * cd.itemsize
    step = max(1, CHUNK_BYTES // per_o)
    for n in range(p.batch):
        for gi in range(g):
            for o0 in range(0, cog, step):
                o1 = min(o0 + step, cog)
                t = xp[n, gi][None, None]               # (1, 1, cig, *padded)
                for ax in reversed(range(nd)):
                    f = factors[ax][gi * cog + o0: gi * cog + o1]
                    t = _pass(t, 3 + ax, f, p.stride[ax], p.dilation[ax], p.output_size[ax])
                y[n, gi, o0:o1] = t[0].sum(axis=1)
    return finish(y.reshape(p.output_shape), bias, p)
