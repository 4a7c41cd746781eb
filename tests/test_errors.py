"""Bad input raises ValueError/TypeError naming the argument, the value and the rule."""
import re

import numpy as np
import pytest

import cnnkern as ck

X = np.zeros((2, 6, 8, 8), dtype=np.float32) + 1.0
W = np.ones((4, 3, 3, 3), dtype=np.float32)
W_FULL_RANK = np.random.default_rng(0).standard_normal(W.shape).astype(np.float32)


@pytest.mark.parametrize("call,exc,pattern", [
    (lambda: ck.conv2d(X, W, groups=4), ValueError,
     "conv2d: given groups=4, expected input with a multiple of 4 channels, but got 6 "
     "channels instead"),
    (lambda: ck.conv2d(X, W), ValueError,
     r"conv2d: given groups=1, weight of shape \(4, 3, 3, 3\) expects 3 input channels, "
     r"but got input of shape \(2, 6, 8, 8\) with 6 channels instead"),
    (lambda: ck.conv2d(X, np.ones((5, 3, 3, 3), np.float32), groups=2), ValueError,
     "given groups=2, expected weight with a multiple of 2 output channels, but got 5"),
    (lambda: ck.conv2d(X, W, groups=0), ValueError, "expected groups >= 1, but got groups=0"),
    (lambda: ck.conv2d(X, W, stride=0, groups=2), ValueError,
     r"expected stride to be >= 1 in every dimension, but got stride=\(0, 0\)"),
    (lambda: ck.conv2d(X, W, stride=(1, 0), groups=2), ValueError,
     r"stride=\(1, 0\)"),
    (lambda: ck.conv2d(X, W, dilation=(0, 1), groups=2), ValueError,
     r"expected dilation to be >= 1 in every dimension, but got dilation=\(0, 1\)"),
    (lambda: ck.conv2d(X, W, stride=(1, 1, 1), groups=2), ValueError,
     r"expected stride to be a single int or 2 ints"),
    (lambda: ck.conv2d(X, W, stride=1.5, groups=2), TypeError,
     "expected stride to be an int or a tuple of ints, but got 1.5 of type float"),
    (lambda: ck.conv2d(X, W, stride=True, groups=2), TypeError, "expected stride to be an int"),
    (lambda: ck.conv2d(X, W, padding=-1, groups=2), ValueError,
     "expected padding to be non-negative, but got padding=-1"),
    (lambda: ck.conv2d(X, W, padding=((1, -1), 0), groups=2), ValueError,
     "expected padding to be non-negative"),
    (lambda: ck.conv2d(X, W, padding="half", groups=2), ValueError,
     "padding='half' is unknown; expected an int, a tuple, or one of 'valid', 'same', 'full'"),
    (lambda: ck.conv2d(X, W, padding=((1, 2, 3), 0), groups=2), ValueError,
     r"expected each per-side padding entry to be a \(before, after\) pair"),
    (lambda: ck.conv2d(X, np.ones((4, 3, 9, 3), np.float32), groups=2), ValueError,
     r"the dilated kernel \(9 in dimension 0: kernel 9, dilation 1\) is larger than the "
     r"padded input \(8 = 8 \+ padding \(0, 0\)\)"),
    (lambda: ck.conv2d(X, W, dilation=4, groups=2), ValueError,
     r"the dilated kernel \(9 in dimension 0: kernel 3, dilation 4\)"),
    (lambda: ck.conv2d(X[0, 0, 0], W), ValueError,
     r"expected input with 3 \(unbatched\) or 4 \(batched\) dimensions, but got input of "
     r"shape \(8,\)"),
    (lambda: ck.conv2d(X, W[0], groups=2), ValueError,
     r"expected weight with 4 dimensions \(out_channels, in_channels / groups, \*kernel\), "
     r"but got weight of shape \(3, 3, 3\)"),
    (lambda: ck.conv2d(X, W.astype(np.float64), groups=2), TypeError,
     r"expected weight to have the same dtype as input \(float32\), but got float64"),
    (lambda: ck.conv2d(X, W, np.zeros(4), groups=2), TypeError,
     r"expected bias to have the same dtype as input \(float32\), but got float64"),
    (lambda: ck.conv2d(X.astype(np.int32), W.astype(np.int32), groups=2), TypeError,
     r"expected input of a floating dtype \(float16, float32, float64\), but got dtype int32"),
    (lambda: ck.conv2d(X.astype(np.complex64), W, groups=2), TypeError,
     "but got dtype complex64"),
    (lambda: ck.conv2d(np.empty((2, 6, 8, 8), object), W, groups=2), TypeError,
     "but got dtype object"),
    (lambda: ck.conv2d(X, W, np.zeros(3, np.float32), groups=2), ValueError,
     r"expected bias of shape \(4,\) \(one value per output channel\), but got bias of "
     r"shape \(3,\)"),
    (lambda: ck.conv2d(X, W, groups=2, algo="winograd_f9x9"), ValueError,
     r"algo='winograd_f9x9' is unknown on backend '(numpy|numba)'; known: direct, "),
    (lambda: ck.conv2d(X, W, groups=2, stride=2, algo="winograd_f4x4_3x3"), ValueError,
     r"algo='winograd_f4x4_3x3' cannot run this call: needs stride 1, got \(2, 2\); "
     r"algorithms that can: direct, (im2col_blocks, implicit_gemm, )?im2col, tap_gemm, "
     r"fft"),
    (lambda: ck.conv2d(X, W_FULL_RANK, groups=2, algo="separable"), ValueError,
     r"algo='separable' cannot run this call: some filter slice is not rank 1"),
    (lambda: ck.conv2d(X, W, groups=2, algo=3), TypeError, "expected algo to be a string"),
    (lambda: ck.conv2d(X, W, groups=2, backend="tpu"), ValueError,
     r"backend='tpu' is unknown; expected None or one of 'numpy', 'numba', 'cuda'"),
    (lambda: ck.conv2d(X, W, groups=2, padding_mode="mirror", padding=1), ValueError,
     r"padding_mode='mirror' is unknown; expected one of 'zeros', 'reflect', "
     r"'replicate', 'circular'"),
    (lambda: ck.conv2d(X, W, groups=2, padding_mode="reflect", padding=8), ValueError,
     r"padding_mode='reflect' needs each padding smaller than the input size, but got "
     r"padding \(8, 8\) for an input dimension of 8"),
    (lambda: ck.conv2d(X, W, groups=2, padding_mode="circular", padding=9), ValueError,
     r"padding_mode='circular' needs each padding at most the input size"),
    (lambda: ck.conv_transpose2d(X, np.ones((6, 2, 3, 3), np.float32), stride=2,
                                 output_padding=2), ValueError,
     r"conv_transpose2d: expected output_padding smaller than either stride or dilation, "
     r"but got output_padding=\(2, 2\), stride=\(2, 2\), dilation=\(1, 1\)"),
    (lambda: ck.conv_transpose2d(X, W), ValueError,
     r"conv_transpose2d: expected weight of shape \(in_channels=6, out_channels / groups, "
     r"\*kernel\), but got weight of shape \(4, 3, 3, 3\)"),
    (lambda: ck.conv_transpose2d(X, np.ones((6, 3, 3, 3), np.float32), padding="same"),
     ValueError, "padding='same' is not supported here"),
    (lambda: ck.conv_transpose2d(X, np.ones((6, 1, 3, 3), np.float32), padding=5),
     ValueError, "conv_transpose2d: the output would be empty"),
    (lambda: ck.grad.conv2d_input((2, 6, 8, 8), W, np.zeros((2, 4, 5, 5), np.float32),
                                  groups=2), ValueError,
     r"conv2d_input: expected grad_output of shape \(2, 4, 6, 6\) \(the output of the "
     r"forward convolution\), but got \(2, 4, 5, 5\)"),
    (lambda: ck.grad.conv2d_weight(X, (4, 3, 3), np.zeros((2, 4, 6, 6), np.float32),
                                   groups=2), ValueError,
     r"conv2d_weight: expected weight_size with 4 entries"),
    (lambda: ck.max_pool2d(X, 3, padding=2), ValueError,
     r"max_pool2d: expected padding at most half of the kernel size, but got "
     r"padding=\(2, 2\) for kernel_size=\(3, 3\)"),
    (lambda: ck.avg_pool2d(X, 0), ValueError, "expected kernel_size to be >= 1"),
    (lambda: ck.max_pool2d(X, 9), ValueError, "max_pool2d: the output would be empty"),
    (lambda: ck.avg_pool2d(X, 2, divisor_override=0), ValueError,
     "expected divisor_override to be None or a non-zero int, but got 0"),
    (lambda: ck.max_pool2d(X.astype(np.int64), 2), TypeError, "but got dtype int64"),
    (lambda: ck.correlate2d(X, W), ValueError,
     "correlate2d: expected in1 and in2 to be 2-D arrays"),
    (lambda: ck.correlate2d(X[0, 0], W[0, 0], mode="half"), ValueError,
     "mode='half' is unknown"),
    (lambda: ck.convolve2d(X[0, 0], W[0, 0], boundary="mirror"), ValueError,
     "boundary='mirror' is unknown"),
    (lambda: ck.correlate2d(X[0, 0, :2, :5], W[0, 0, :3, :3], mode="valid"), ValueError,
     "mode='valid' needs one input at least as large as the other in every dimension"),
    (lambda: ck.correlate2d(np.ones((3, 3), int), np.ones((2, 2), int)), TypeError,
     r"expected floating inputs \(float16, float32, float64\), but got dtype int64"),
    (lambda: ck.conv_matrix(W, (6, 8)), ValueError,
     "conv_matrix: expected input_shape with 3 or 4 entries for a 2-D weight"),
    (lambda: ck.conv_matrix(W, (2, 6, 8, 8)), ValueError,
     "conv_matrix: given groups=1, weight of shape"),
])
def test_bad_input_message(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


def test_messages_name_the_function():
    """One style: every message starts with the public function's name."""
    with pytest.raises(ValueError, match=r"^conv3d: "):
        ck.conv3d(np.ones((1, 2, 4, 4, 4)), np.ones((1, 3, 3, 3, 3)))
    with pytest.raises(ValueError, match=r"^conv1d: "):
        ck.conv1d(np.ones((1, 2, 4)), np.ones((1, 2, 3)), stride=0)


def test_zero_sized_channels_are_rejected():
    with pytest.raises(ValueError, match=re.escape("expected input with non-zero channel "
                                                   "and spatial sizes")):
        ck.conv2d(np.ones((1, 0, 4, 4)), np.ones((1, 0, 3, 3)))


def test_unavailable_backend_is_a_clear_error():
    if "numba" in ck.available_backends():
        pytest.skip("numba backend present")
    with pytest.raises(ck.BackendUnavailableError, match="conv2d: backend 'numba' is not "
                                                          "available"):
        ck.conv2d(np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3)), backend="numba")


def test_cuda_backend_needs_gpu_arrays():
    if "cuda" not in ck.available_backends():
        with pytest.raises(ck.BackendUnavailableError, match="backend 'cuda' is not"):
            ck.conv2d(np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3)), backend="cuda")
    else:
        with pytest.raises(TypeError, match="backend='cuda' needs GPU arrays"):
            ck.conv2d(np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3)), backend="cuda")
