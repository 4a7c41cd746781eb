"""Independent references and error measures for the tests (never call cnnkern)."""
import numpy as np


def rel_err(y, ref) -> float:
    y = np.asarray(y, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert y.shape == ref.shape, (y.shape, ref.shape)
    denom = np.linalg.norm(ref)
    if denom == 0:
        return float(np.linalg.norm(y))
    return float(np.linalg.norm(y - ref) / denom)


def conv_err(y, ref, ref_abs, terms) -> float:
    """Relative error that stays meaningful when an output cancels to near zero.

    ``ref_abs`` is the reference run on |x|, |w|, |b| (the magnitude of the summed
    terms), ``terms`` the number of products per output. The denominator is
    ``max(||ref||, ||ref_abs|| / sqrt(terms))``: for random data ``||ref||`` is about
    ``||ref_abs|| / sqrt(terms)``, so this is the plain relative error except where the
    sum cancels far below its terms (where no float32 result can do better).
    """
    y = np.asarray(y, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert y.shape == ref.shape, (y.shape, ref.shape)
    denom = max(np.linalg.norm(ref), np.linalg.norm(ref_abs) / np.sqrt(terms))
    return float(np.linalg.norm(y - ref) / denom) if denom else float(np.linalg.norm(y))


def pad_pairs(padding, size, kernel, stride, dilation):
    """Written apart from cnnkern.params: explicit (before, after) pads per dimension."""
    nd = len(size)
    if padding == "valid":
        return [(0, 0)] * nd
    if padding == "full":
        return [((k - 1) * d, (k - 1) * d) for k, d in zip(kernel, dilation)]
    if padding == "same":
        pairs = []
        for n, k, s, d in zip(size, kernel, stride, dilation):
            out = (n + s - 1) // s
            total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
            pairs.append((total // 2, total - total // 2))
        return pairs
    if isinstance(padding, int):
        return [(padding, padding)] * nd
    return [tuple(p) if isinstance(p, (tuple, list)) else (p, p) for p in padding]


def torch_conv(x, w, b, stride, pairs, dilation, groups, padding_mode="zeros"):
    """torch.nn.functional reference in float64: explicit F.pad, then a valid conv."""
    import torch
    import torch.nn.functional as F
    nd = w.ndim - 2
    xt = torch.from_numpy(np.asarray(x, dtype=np.float64))
    wt = torch.from_numpy(np.asarray(w, dtype=np.float64))
    bt = None if b is None else torch.from_numpy(np.asarray(b, dtype=np.float64))
    flat = []
    for before, after in reversed(pairs):
        flat += [before, after]
    if any(flat):
        mode = "constant" if padding_mode == "zeros" else padding_mode
        xt = F.pad(xt, flat, mode=mode)
    fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[nd]
    return fn(xt, wt, bt, stride=stride, padding=0, dilation=dilation, groups=groups).numpy()
