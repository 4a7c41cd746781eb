"""Hypothesis strategies for convolution calls, valid by construction."""
import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from helpers import pad_pairs


@st.composite
def conv_cases(draw, ndims=(1, 2, 3), modes=("zeros", "reflect", "replicate", "circular"),
               max_batch=2, rank1=False, kernel=None, stride=None, dilation=None,
               depthwise=False, min_kernel=1):
    """A random valid call; ``kernel``/``stride``/``dilation`` (ints) pin those values;
    ``min_kernel`` bounds the drawn kernel sizes from below; ``depthwise``: one input
    channel per group (groups == input channels)."""
    nd = draw(st.sampled_from(ndims))
    groups = draw(st.integers(1, 5 if depthwise else 3))
    cig = 1 if depthwise else draw(st.integers(1, 3))
    cog = draw(st.integers(1, 3))
    batch = draw(st.integers(0 if max_batch > 1 else 1, max_batch))
    big = 4 if nd < 3 else 3
    kernel = tuple(kernel or draw(st.integers(min_kernel, big)) for _ in range(nd))
    stride = tuple(stride or draw(st.integers(1, 4)) for _ in range(nd))
    dilation = tuple(dilation or draw(st.integers(1, 3)) for _ in range(nd))
    size = tuple(draw(st.integers(1, 14 if nd < 3 else 7)) for _ in range(nd))
    form = draw(st.sampled_from(["int", "tuple", "pairs", "valid", "same", "full"]))
    if form == "int":
        padding = draw(st.integers(0, 3))
    elif form == "tuple":
        padding = tuple(draw(st.integers(0, 3)) for _ in range(nd))
    elif form == "pairs":
        padding = tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(nd))
    else:
        padding = form
    pairs = pad_pairs(padding, size, kernel, stride, dilation)
    for n, (b, a), k, d in zip(size, pairs, kernel, dilation):
        assume(n + b + a >= (k - 1) * d + 1)
    mode = draw(st.sampled_from(modes))
    if mode == "reflect":
        assume(all(max(p) < n for p, n in zip(pairs, size)))
    if mode == "circular":
        assume(all(max(p) <= n for p, n in zip(pairs, size)))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, cig * groups) + size)
    if rank1:
        w = np.ones((cog * groups, cig) + kernel)
        for ax, k in enumerate(kernel):
            shape = [cog * groups, cig] + [1] * nd
            shape[2 + ax] = k
            w = w * rng.standard_normal(shape)
    else:
        w = rng.standard_normal((cog * groups, cig) + kernel)
    b = rng.standard_normal(cog * groups) if draw(st.booleans()) else None
    return dict(x=x, w=w, b=b, stride=stride, padding=padding, pairs=pairs,
                dilation=dilation, groups=groups, padding_mode=mode, seed=seed)
