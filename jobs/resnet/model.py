"""ResNets for the image job: CIFAR-style (depth 6n+2, basic blocks, widths w, 2w, 4w)
written here, ImageNet-style ResNet-18/50 from Gluon's model zoo (v1)."""
from __future__ import annotations

import re

from mxnet import gluon
from mxnet.gluon import nn


class BasicBlock(gluon.HybridBlock):
    """conv3x3-BN-ReLU-conv3x3-BN + shortcut (1x1 conv when the shape changes), ReLU."""

    def __init__(self, channels: int, stride: int, in_channels: int, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.body = nn.HybridSequential(prefix="")
            self.body.add(nn.Conv2D(channels, 3, stride, 1, use_bias=False, in_channels=in_channels),
                          nn.BatchNorm(in_channels=channels), nn.Activation("relu"),
                          nn.Conv2D(channels, 3, 1, 1, use_bias=False, in_channels=channels),
                          nn.BatchNorm(in_channels=channels))
            self.shortcut = None
            if stride != 1 or in_channels != channels:
                self.shortcut = nn.HybridSequential(prefix="")
                self.shortcut.add(nn.Conv2D(channels, 1, stride, use_bias=False, in_channels=in_channels),
                                  nn.BatchNorm(in_channels=channels))

    def hybrid_forward(self, F, x):
        skip = self.shortcut(x) if self.shortcut is not None else x
        return F.Activation(self.body(x) + skip, act_type="relu")


class CifarResNet(gluon.HybridBlock):
    def __init__(self, depth: int, classes: int, width: int = 16, in_channels: int = 3, **kwargs):
        super().__init__(**kwargs)
        if (depth - 2) % 6:
            raise SystemExit(f"--model resnet{depth}: CIFAR ResNets have depth 6n+2 (8, 20, 56, 110, ...)")
        n = (depth - 2) // 6
        with self.name_scope():
            self.features = nn.HybridSequential(prefix="")
            self.features.add(nn.Conv2D(width, 3, 1, 1, use_bias=False, in_channels=in_channels),
                              nn.BatchNorm(in_channels=width), nn.Activation("relu"))
            channels = width
            for stage, out in enumerate((width, 2 * width, 4 * width)):
                for block in range(n):
                    stride = 2 if stage and not block else 1
                    self.features.add(BasicBlock(out, stride, channels))
                    channels = out
            self.features.add(nn.GlobalAvgPool2D(), nn.Flatten())
            self.output = nn.Dense(classes, in_units=channels)

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))


def build(name: str, classes: int, width: int, in_channels: int) -> gluon.HybridBlock:
    """``resnet<6n+2>`` (CIFAR style) or ``resnet18`` / ``resnet50`` (ImageNet style)."""
    match = re.fullmatch(r"resnet(\d+)", name)
    if not match:
        raise SystemExit(f"--model: expected resnet<depth> such as resnet20, resnet56, resnet18, resnet50 (got {name!r})")
    depth = int(match.group(1))
    if depth in (18, 34, 50, 101, 152):
        from mxnet.gluon.model_zoo import vision

        return vision.get_resnet(1, depth, classes=classes)
    return CifarResNet(depth, classes, width, in_channels)
