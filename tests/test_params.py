"""ConvParams: expansion, padding forms and the one output-size formula."""
import pickle

import numpy as np
import pytest

from cnnkern.params import ConvParams, PoolParams, output_size, transpose_params


@pytest.mark.parametrize("n,k,s,d,pb,pa,ceil,expected", [
    (224, 11, 4, 1, 2, 2, False, 55),      # AlexNet conv1
    (56, 3, 1, 1, 1, 1, False, 56),
    (56, 3, 2, 1, 1, 1, False, 28),
    (65, 3, 1, 6, 6, 6, False, 65),        # DeepLab rate 6, "same"
    (7, 3, 2, 2, 0, 0, False, 2),          # dilated span 5
    (5, 2, 2, 1, 0, 0, False, 2),
    (5, 2, 2, 1, 0, 0, True, 3),           # ceil: last window starts inside
    (6, 2, 2, 1, 1, 1, True, 4),           # ceil window would start in the right pad
    (4, 5, 1, 1, 0, 0, False, 0),          # empty
])
def test_output_size(n, k, s, d, pb, pa, ceil, expected):
    assert output_size(n, k, s, d, pb, pa, ceil) == expected


def build(padding, size=(10, 9), kernel=(3, 4), stride=1, dilation=1):
    return ConvParams.build("conv2d", 2, (1, 2) + size, (3, 2) + kernel, stride=stride,
                            padding=padding, dilation=dilation)


@pytest.mark.parametrize("padding,expected", [
    (1, ((1, 1), (1, 1))),
    ((1, 2), ((1, 1), (2, 2))),
    ([2], ((2, 2), (2, 2))),
    (((0, 1), (2, 3)), ((0, 1), (2, 3))),
    ((3, (1, 0)), ((3, 3), (1, 0))),
    ("valid", ((0, 0), (0, 0))),
    ("full", ((2, 2), (3, 3))),
    ("same", ((1, 1), (1, 2))),            # even kernel: the smaller half before
])
def test_padding_forms(padding, expected):
    assert build(padding).padding == expected


def test_same_with_stride_tensorflow_rule():
    p = build("same", size=(10, 9), kernel=(3, 4), stride=(2, 3), dilation=(2, 1))
    # out = ceil(n / s); total = max((out - 1) * s + d * (k - 1) + 1 - n, 0)
    assert p.output_size == (5, 3)
    assert p.padding == ((1, 2), (0, 1))


def test_shapes_and_flops():
    p = ConvParams.build("conv2d", 2, (8, 64, 56, 56), (128, 32, 3, 3), stride=2,
                         padding=1, groups=2)
    assert p.output_shape == (8, 128, 28, 28)
    assert p.weight_shape == (128, 32, 3, 3)
    assert (p.in_per_group, p.out_per_group) == (32, 64)
    assert p.flops == 2 * 8 * 128 * 28 * 28 * 32 * 9
    assert p.padded_size == (58, 58) and p.dilated_kernel == (3, 3)
    assert not p.is_depthwise
    assert "output (8, 128, 28, 28)" in p.describe()


def test_params_are_frozen():
    p = build(0)
    with pytest.raises(AttributeError):
        p.groups = 2


def test_transpose_params_output_size():
    # torch: (in - 1) * s - 2p + d (k - 1) + op + 1
    p = transpose_params("conv_transpose2d", 2, (1, 4, 5, 6), (4, 3, 3, 2), stride=(2, 3),
                         padding=(1, 0), output_padding=(1, 2), dilation=(1, 2), groups=1)
    assert p.input_size == ((5 - 1) * 2 - 2 + 2 + 1 + 1, (6 - 1) * 3 + 2 + 2 + 1)
    assert p.out_channels == 4 and p.in_channels == 3


def test_pool_params_default_stride_is_kernel():
    pp = PoolParams.build("max_pool2d", 2, (1, 1, 9, 9), (3, 2))
    assert pp.stride == (3, 2) and pp.output_size == (3, 4)
    pp = PoolParams.build("max_pool2d", 2, (1, 1, 9, 9), 2, stride=2, ceil_mode=True)
    assert pp.output_size == (5, 5)


def test_build_reuses_the_instance_of_equal_plain_arguments():
    f32 = np.dtype(np.float32)
    args = ("conv2d", 2, (1, 2, 10, 9), (3, 2, 3, 4))
    p = ConvParams.build(*args, padding=[(1, 1), (2, 2)], dtype=f32)
    assert ConvParams.build(*args, padding=[(1, 1), (2, 2)], dtype=f32) is p
    # a different spelling of the same call is built afresh and equal
    assert ConvParams.build(*args, padding=(1, 2), dtype=f32) == p
    # what the validation rejects is rejected however often an int of the same
    # value was accepted before it
    ConvParams.build(*args, stride=1, dtype=f32)
    with pytest.raises(TypeError, match="stride"):
        ConvParams.build(*args, stride=True, dtype=f32)
    with pytest.raises(TypeError, match="stride"):
        ConvParams.build(*args, stride=(1, True), dtype=f32)
    assert ConvParams.build(*args, stride=np.int64(2), dtype=f32).stride == (2, 2)
    for _ in range(2):
        with pytest.raises(ValueError, match="groups"):
            ConvParams.build(*args, groups=0, dtype=f32)


def test_params_pickle_without_their_hash():
    p = build(1)
    hash(p)
    q = pickle.loads(pickle.dumps(p))
    assert q == p and "_hash" not in q.__getstate__() and hash(q) == hash(p)
