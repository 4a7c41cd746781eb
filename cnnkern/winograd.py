"""Winograd minimal-filtering transforms F(m, r), generated from interpolation points.

The matrices are derived, in exact rational arithmetic, from the Toom-Cook algorithm
for the linear convolution of a polynomial with m coefficients by one with r
coefficients, evaluated at ``alpha = m + r - 1`` points (alpha - 1 finite points and
infinity), then transposed into the correlation form used by CNNs::

    y = A^T [ (G g) * (B^T d) ]          (1-D, d of length alpha, y of length m)
    Y = A^T [ (G g G^T) * (B^T d B) ] A  (2-D, per alpha x alpha input tile)

Derivation (see docs/algorithms.md): with Va, Vg the evaluation matrices of the two
factors and V the full alpha x alpha evaluation matrix of the product, the
convolution is ``c = V^-1 [(Vg g) * (Va a)]``. Correlation ``y_i = sum_k d_(i+k) g_k``
is the transpose of that map in ``a``, so ``A = Va``, ``G = Vg`` and ``B^T = V^-T``.
Row scalings of ``B^T`` are moved into ``G`` so that ``B^T`` has integer entries (the
filter transform runs once per weight, the input transform once per tile).

Every backend takes its matrices from here; none types them in.
"""
from __future__ import annotations

from fractions import Fraction
from functools import lru_cache
from math import lcm

import numpy as np

#: Finite interpolation points, taken in this order (infinity is always added):
#: small and symmetric, which keeps the transforms well conditioned.
DEFAULT_POINTS = (0, 1, -1, 2, -2, Fraction(1, 2), Fraction(-1, 2), 3, -3,
                  Fraction(1, 3), Fraction(-1, 3), 4, -4)
INF = "inf"


def _eval_rows(points, ncoef):
    """Rows evaluating a polynomial with ``ncoef`` coefficients at each point."""
    rows = []
    for p in points:
        if p == INF:
            rows.append([Fraction(0)] * (ncoef - 1) + [Fraction(1)])
        else:
            rows.append([Fraction(p) ** j for j in range(ncoef)])
    return rows


def _inverse(mat):
    """Exact Gauss-Jordan inverse of a square matrix of Fractions."""
    n = len(mat)
    aug = [list(row) + [Fraction(int(i == j)) for j in range(n)] for i, row in enumerate(mat)]
    for col in range(n):
        pivot = next((r for r in range(col, n) if aug[r][col] != 0), None)
        if pivot is None:
            raise ValueError("winograd: interpolation points must be distinct")
        aug[col], aug[pivot] = aug[pivot], aug[col]
        inv_p = 1 / aug[col][col]
        aug[col] = [v * inv_p for v in aug[col]]
        for r in range(n):
            if r != col and aug[r][col] != 0:
                f = aug[r][col]
                aug[r] = [a - f * b for a, b in zip(aug[r], aug[col])]
    return [row[n:] for row in aug]


@lru_cache(maxsize=None)
def transforms(m: int, r: int, points: tuple | None = None):
    """Exact ``(AT, G, BT)`` for F(m, r) as tuples of tuples of Fractions.

    ``AT`` is m x alpha, ``G`` is alpha x r, ``BT`` is alpha x alpha.
    """
    if m < 1 or r < 1:
        raise ValueError(f"winograd: expected m >= 1 and r >= 1, but got m={m}, r={r}")
    alpha = m + r - 1
    if points is None:
        if alpha - 1 > len(DEFAULT_POINTS):
            raise ValueError(f"winograd: no default points for F({m}, {r}); pass "
                             f"{alpha - 1} distinct finite points")
        points = DEFAULT_POINTS[:alpha - 1]
    points = tuple(Fraction(p) for p in points)
    if len(points) != alpha - 1 or len(set(points)) != len(points):
        raise ValueError(f"winograd: F({m}, {r}) needs {alpha - 1} distinct finite "
                         f"points, but got {points}")
    pts = points + (INF,)
    va = _eval_rows(pts, m)          # alpha x m
    vg = _eval_rows(pts, r)          # alpha x r
    v = _eval_rows(pts, alpha)       # alpha x alpha
    vinv = _inverse(v)
    bt = [[vinv[j][i] for j in range(alpha)] for i in range(alpha)]  # V^-T
    g = [list(row) for row in vg]
    for i in range(alpha):
        scale = lcm(*(x.denominator for x in bt[i]))
        nz = [x for x in bt[i] if x != 0]
        if nz and nz[0] < 0:
            scale = -scale
        bt[i] = [x * scale for x in bt[i]]
        g[i] = [x / scale for x in g[i]]
    at = [[va[i][j] for i in range(alpha)] for j in range(m)]
    freeze = lambda mat: tuple(tuple(row) for row in mat)  # noqa: E731
    return freeze(at), freeze(g), freeze(bt)


@lru_cache(maxsize=None)
def float_transforms(m: int, r: int, dtype: str = "float64"):
    """``(AT, G, BT)`` as read-only NumPy arrays of ``dtype``."""
    out = []
    for mat in transforms(m, r):
        arr = np.array([[float(x) for x in row] for row in mat], dtype=dtype)
        arr.setflags(write=False)
        out.append(arr)
    return tuple(out)


def correlate_exact(d, g, m: int, r: int):
    """Apply F(m, r) in exact arithmetic (used to prove the construction in tests)."""
    at, gm, bt = transforms(m, r)
    alpha = m + r - 1
    u = [sum(gm[i][k] * Fraction(g[k]) for k in range(r)) for i in range(alpha)]
    v = [sum(bt[i][k] * Fraction(d[k]) for k in range(alpha)) for i in range(alpha)]
    return [sum(at[j][i] * u[i] * v[i] for i in range(alpha)) for j in range(m)]
