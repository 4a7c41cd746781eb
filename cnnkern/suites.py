"""Named layer tables of the seed networks: the shapes every benchmark runs.

Each layer: ``name, C_in, C_out, spatial input size, kernel, stride, padding,
dilation, groups``; batch is chosen by the caller. ``SOURCES`` names the paper or
model definition of each table (channels and sizes at 224x224 input unless stated).
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


#: Where each table comes from.
SOURCES = {
    "lenet5": "LeCun et al. 1998, Gradient-based learning applied to document "
              "recognition (LeNet-5, 32x32 input)",
    "alexnet": "Krizhevsky et al. 2012, ImageNet classification with deep CNNs "
               "(two-GPU grouping on conv2/4/5)",
    "vgg16": "Simonyan & Zisserman 2014, Very deep convolutional networks, configuration D",
    "googlenet": "Szegedy et al. 2014, Going deeper with convolutions, Table 1 "
                 "(stem and inception 3a)",
    "inception_v3": "Szegedy et al. 2015, Rethinking the Inception architecture "
                    "(stem, factorized 1x7/7x1 at 17x17, 1x3/3x1 at 8x8)",
    "resnet50": "He et al. 2015, Deep residual learning, Table 1 (bottleneck blocks; "
                "stride on the 3x3 as in torchvision)",
    "mobilenetv2": "Sandler et al. 2018, MobileNetV2, Table 2 (inverted residuals)",
    "shufflenet": "Zhang et al. 2017, ShuffleNet v1, g=3, stage 2",
    "deeplab_aspp": "Chen et al. 2017, Rethinking atrous convolution (DeepLab v3), ASPP "
                    "at output stride 16 (33x33 at 513 input)",
    "convnext_t": "Liu et al. 2022, A ConvNet for the 2020s, ConvNeXt-T",
    "replknet31b": "Ding et al. 2022, Scaling up your kernels to 31x31, RepLKNet-31B "
                   "(kernels 31/29/27/13 per stage)",
    "long1d": "audio-style 1-D convolutions (wav2vec-style 31/255 and long 1024/2048 "
              "kernels on 64k-sample signals)",
}

SUITES = {
    "lenet5": [
        Layer("c1", 1, 6, (32, 32), (5, 5)),
        Layer("c3", 6, 16, (14, 14), (5, 5)),
        Layer("c5", 16, 120, (5, 5), (5, 5)),
    ],
    "alexnet": [
        Layer("conv1", 3, 96, (224, 224), (11, 11), 4, 2),
        Layer("conv2", 96, 256, (27, 27), (5, 5), 1, 2, groups=2),
        Layer("conv3", 256, 384, (13, 13), (3, 3), 1, 1),
        Layer("conv4", 384, 384, (13, 13), (3, 3), 1, 1, groups=2),
        Layer("conv5", 384, 256, (13, 13), (3, 3), 1, 1, groups=2),
    ],
    "vgg16": [
        Layer("conv1_1", 3, 64, (224, 224), (3, 3), 1, 1),
        Layer("conv1_2", 64, 64, (224, 224), (3, 3), 1, 1),
        Layer("conv2_1", 64, 128, (112, 112), (3, 3), 1, 1),
        Layer("conv2_2", 128, 128, (112, 112), (3, 3), 1, 1),
        Layer("conv3_1", 128, 256, (56, 56), (3, 3), 1, 1),
        Layer("conv3_2", 256, 256, (56, 56), (3, 3), 1, 1),
        Layer("conv4_1", 256, 512, (28, 28), (3, 3), 1, 1),
        Layer("conv4_2", 512, 512, (28, 28), (3, 3), 1, 1),
        Layer("conv5_2", 512, 512, (14, 14), (3, 3), 1, 1),
    ],
    "googlenet": [
        Layer("conv1", 3, 64, (224, 224), (7, 7), 2, 3),
        Layer("conv2", 64, 192, (56, 56), (3, 3), 1, 1),
        Layer("3a_1x1", 192, 64, (28, 28), (1, 1)),
        Layer("3a_3x3_reduce", 192, 96, (28, 28), (1, 1)),
        Layer("3a_3x3", 96, 128, (28, 28), (3, 3), 1, 1),
        Layer("3a_5x5", 16, 32, (28, 28), (5, 5), 1, 2),
    ],
    "inception_v3": [
        Layer("stem_3x3_s2", 3, 32, (299, 299), (3, 3), 2, 0),
        Layer("1x7", 128, 128, (17, 17), (1, 7), 1, (0, 3)),
        Layer("7x1", 128, 192, (17, 17), (7, 1), 1, (3, 0)),
        Layer("1x3", 384, 384, (8, 8), (1, 3), 1, (0, 1)),
        Layer("3x1", 384, 384, (8, 8), (3, 1), 1, (1, 0)),
    ],
    "resnet50": [
        Layer("conv1", 3, 64, (224, 224), (7, 7), 2, 3),
        Layer("res2_1x1a", 64, 64, (56, 56), (1, 1)),
        Layer("res2_3x3", 64, 64, (56, 56), (3, 3), 1, 1),
        Layer("res2_1x1b", 64, 256, (56, 56), (1, 1)),
        Layer("res3_3x3_s2", 128, 128, (56, 56), (3, 3), 2, 1),
        Layer("res3_3x3", 128, 128, (28, 28), (3, 3), 1, 1),
        Layer("res4_1x1a", 1024, 256, (14, 14), (1, 1)),
        Layer("res4_3x3", 256, 256, (14, 14), (3, 3), 1, 1),
        Layer("res5_3x3", 512, 512, (7, 7), (3, 3), 1, 1),
        Layer("res5_1x1b", 512, 2048, (7, 7), (1, 1)),
    ],
    "mobilenetv2": [
        Layer("dw_112", 32, 32, (112, 112), (3, 3), 1, 1, groups=32),
        Layer("pw_exp_56", 24, 144, (56, 56), (1, 1)),
        Layer("dw_56_s2", 96, 96, (112, 112), (3, 3), 2, 1, groups=96),
        Layer("dw_28", 192, 192, (28, 28), (3, 3), 1, 1, groups=192),
        Layer("pw_28", 192, 32, (28, 28), (1, 1)),
        Layer("dw_14", 384, 384, (14, 14), (3, 3), 1, 1, groups=384),
        Layer("dw_7", 960, 960, (7, 7), (3, 3), 1, 1, groups=960),
    ],
    "shufflenet": [
        Layer("gconv1x1", 240, 60, (28, 28), (1, 1), groups=3),
        Layer("dw3x3", 60, 60, (28, 28), (3, 3), 1, 1, groups=60),
        Layer("gconv1x1_b", 60, 240, (28, 28), (1, 1), groups=3),
    ],
    "deeplab_aspp": [
        Layer("aspp_1x1", 512, 256, (33, 33), (1, 1)),
        Layer("rate6", 512, 256, (33, 33), (3, 3), 1, 6, 6),
        Layer("rate12", 512, 256, (33, 33), (3, 3), 1, 12, 12),
        Layer("rate18", 512, 256, (33, 33), (3, 3), 1, 18, 18),
    ],
    "convnext_t": [
        Layer("stem_4x4_s4", 3, 96, (224, 224), (4, 4), 4, 0),
        Layer("dw7_s1", 96, 96, (56, 56), (7, 7), 1, 3, groups=96),
        Layer("pw_exp_s1", 96, 384, (56, 56), (1, 1)),
        Layer("dw7_s2", 192, 192, (28, 28), (7, 7), 1, 3, groups=192),
        Layer("dw7_s3", 384, 384, (14, 14), (7, 7), 1, 3, groups=384),
        Layer("dw7_s4", 768, 768, (7, 7), (7, 7), 1, 3, groups=768),
    ],
    "replknet31b": [
        Layer("dw31_s1", 128, 128, (56, 56), (31, 31), 1, 15, groups=128),
        Layer("dw29_s2", 256, 256, (28, 28), (29, 29), 1, 14, groups=256),
        Layer("dw31_s3", 512, 512, (14, 14), (31, 31), 1, 15, groups=512),
        Layer("dw13_s4", 1024, 1024, (7, 7), (13, 13), 1, 6, groups=1024),
    ],
    "long1d": [
        Layer("k31", 16, 16, (16384,), (31,), 1, 15),
        Layer("k255", 16, 16, (16384,), (255,), 1, 127),
        Layer("k1024", 1, 64, (65536,), (1024,)),
        Layer("k2048", 1, 64, (65536,), (2048,)),
    ],
}

#: The default benchmark: one layer of each kind (small dense, grouped, 1x1, grouped
#: 1x1, 3x3, factorized, depthwise 3x3, 7x7 and 31x31, long 1-D), well under a minute
#: on a 2-core CPU.
QUICK = (
    "lenet5/c3", "alexnet/conv2", "resnet50/res2_1x1a", "shufflenet/gconv1x1",
    "resnet50/res2_3x3", "inception_v3/1x7", "mobilenetv2/dw_28", "convnext_t/dw7_s3",
    "replknet31b/dw31_s3", "long1d/k255",
)


def layer(ref: str) -> Layer:
    """The layer named ``"suite/name"``."""
    suite, _, name = ref.partition("/")
    for candidate in layers(suite):
        if candidate.name == name:
            return candidate
    raise ValueError(f"suite {suite!r} has no layer {name!r}; it has "
                     f"{', '.join(c.name for c in layers(suite))}")


def layers(suite: str):
    if suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r}; expected one of {', '.join(SUITES)}")
    return SUITES[suite]
