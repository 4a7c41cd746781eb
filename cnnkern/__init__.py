"""cnnkern: convolution kernels for NumPy, CuPy and DLPack arrays.

Convolution means cross-correlation (as in torch); layout ``(N, C, *spatial)``,
weight ``(C_out, C_in / groups, *kernel)``.
"""
from . import grad
from .backends.numpy.workspace import kept_bytes as kept_workspace_bytes
from .backends.numpy.workspace import release as release_workspaces
from .arrays import available_backends
from .threads import get_num_threads, set_num_threads
from .dispatch import (CacheWarning, PerformanceWarning, get_autotune, get_workspace_limit,
                       set_autotune, set_cache_dir, set_workspace_limit)
from .functional import (BackendUnavailableError, conv1d, conv2d, conv3d,
                         conv_transpose1d, conv_transpose2d, conv_transpose3d, explain,
                         supported_algorithms)
from .matrix import conv_matrix
from .pooling import (avg_pool1d, avg_pool2d, avg_pool3d, max_pool1d, max_pool2d,
                      max_pool3d)
from .signal import convolve2d, correlate2d

__version__ = "0.1.0"

__all__ = [
    "conv1d", "conv2d", "conv3d",
    "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
    "grad",
    "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "correlate2d", "convolve2d", "conv_matrix",
    "supported_algorithms", "explain", "available_backends",
    "set_autotune", "get_autotune", "set_workspace_limit", "get_workspace_limit",
    "set_cache_dir", "set_num_threads", "get_num_threads", "release_workspaces",
    "kept_workspace_bytes", "BackendUnavailableError", "PerformanceWarning", "CacheWarning",
]
