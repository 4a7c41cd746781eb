"""Named layer tables of the seed networks: the shapes every benchmark runs.

Each layer: ``name, C_in, C_out, spatial input size, kernel, stride, padding,
dilation, groups``; batch is chosen by the caller. Sources are the papers' layer
tables (channels and sizes at 224x224 input unless stated).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Layer:
    name: str
    c_in: int
    c_out: int
    size: tuple
    kernel: tuple
    stride: int = 1
    padding: object = 0
    dilation: int = 1
    groups: int = 1

    @property
    def ndim(self) -> int:
        return len(self.size)

    def shapes(self, batch: int):
        x = (batch, self.c_in) + tuple(self.size)
        w = (self.c_out, self.c_in // self.groups) + tuple(self.kernel)
        return x, w

    def kwargs(self) -> dict:
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation,
                    groups=self.groups)


SUITES = {
    # LeCun et al. 1998, 32x32 input
    "lenet5": [
        Layer("c1", 1, 6, (32, 32), (5, 5)),
        Layer("c3", 6, 16, (14, 14), (5, 5)),
    ],
    # Krizhevsky et al. 2012 (two-GPU grouping on conv2/4/5)
    "alexnet": [
        Layer("conv1", 3, 96, (224, 224), (11, 11), 4, 2),
        Layer("conv2", 96, 256, (27, 27), (5, 5), 1, 2, groups=2),
        Layer("conv3", 256, 384, (13, 13), (3, 3), 1, 1),
        Layer("conv4", 384, 384, (13, 13), (3, 3), 1, 1, groups=2),
    ],
    # Simonyan & Zisserman 2014, configuration D
    "vgg16": [
        Layer("conv1_2", 64, 64, (224, 224), (3, 3), 1, 1),
        Layer("conv2_2", 128, 128, (112, 112), (3, 3), 1, 1),
        Layer("conv3_2", 256, 256, (56, 56), (3, 3), 1, 1),
        Layer("conv4_2", 512, 512, (28, 28), (3, 3), 1, 1),
        Layer("conv5_2", 512, 512, (14, 14), (3, 3), 1, 1),
    ],
    # Szegedy et al. 2014, inception (3a)
    "googlenet": [
        Layer("3a_1x1", 192, 64, (28, 28), (1, 1)),
        Layer("3a_3x3", 96, 128, (28, 28), (3, 3), 1, 1),
        Layer("3a_5x5", 16, 32, (28, 28), (5, 5), 1, 2),
    ],
    # Szegedy et al. 2015, factorized 7x7 at 17x17
    "inception_v3": [
        Layer("1x7", 128, 128, (17, 17), (1, 7), 1, (0, 3)),
        Layer("7x1", 128, 192, (17, 17), (7, 1), 1, (3, 0)),
    ],
    # He et al. 2015, bottleneck blocks
    "resnet50": [
        Layer("conv1", 3, 64, (224, 224), (7, 7), 2, 3),
        Layer("res2_1x1a", 64, 64, (56, 56), (1, 1)),
        Layer("res2_3x3", 64, 64, (56, 56), (3, 3), 1, 1),
        Layer("res2_1x1b", 64, 256, (56, 56), (1, 1)),
        Layer("res3_3x3", 128, 128, (28, 28), (3, 3), 1, 1),
        Layer("res4_3x3", 256, 256, (14, 14), (3, 3), 1, 1),
        Layer("res5_3x3", 512, 512, (7, 7), (3, 3), 1, 1),
    ],
    # Sandler et al. 2018, depthwise 3x3 of the inverted residuals
    "mobilenetv2": [
        Layer("dw_112", 32, 32, (112, 112), (3, 3), 1, 1, groups=32),
        Layer("dw_56_s2", 96, 96, (112, 112), (3, 3), 2, 1, groups=96),
        Layer("dw_28", 192, 192, (28, 28), (3, 3), 1, 1, groups=192),
        Layer("pw_28", 192, 32, (28, 28), (1, 1)),
    ],
    # Zhang et al. 2017, g=3: grouped 1x1 around a depthwise 3x3
    "shufflenet": [
        Layer("gconv1x1", 240, 60, (28, 28), (1, 1), groups=3),
        Layer("dw3x3", 60, 60, (28, 28), (3, 3), 1, 1, groups=60),
    ],
    # Chen et al. 2017, ASPP on output stride 16 (33x33 at 513 input)
    "deeplab_aspp": [
        Layer("rate6", 512, 256, (33, 33), (3, 3), 1, 6, 6),
        Layer("rate12", 512, 256, (33, 33), (3, 3), 1, 12, 12),
        Layer("rate18", 512, 256, (33, 33), (3, 3), 1, 18, 18),
    ],
    # Liu et al. 2022, ConvNeXt-T depthwise 7x7
    "convnext_t": [
        Layer("dw7_s1", 96, 96, (56, 56), (7, 7), 1, 3, groups=96),
        Layer("dw7_s3", 384, 384, (14, 14), (7, 7), 1, 3, groups=384),
    ],
    # Ding et al. 2022, RepLKNet-31B depthwise 31x31
    "replknet31b": [
        Layer("dw31_s1", 128, 128, (56, 56), (31, 31), 1, 15, groups=128),
        Layer("dw31_s3", 512, 512, (14, 14), (31, 31), 1, 15, groups=512),
    ],
    # audio-style 1-D convolutions, kernels 31 to 2048
    "long1d": [
        Layer("k31", 16, 16, (16384,), (31,), 1, 15),
        Layer("k255", 16, 16, (16384,), (255,), 1, 127),
        Layer("k1024", 1, 64, (65536,), (1024,)),
        Layer("k2048", 1, 64, (65536,), (2048,)),
    ],
}


def layers(suite: str):
    if suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r}; expected one of {', '.join(SUITES)}")
    return SUITES[suite]
