"""FaceNet's NN2 Inception network (Schroff et al., CVPR 2015, Table 2).

Built as tabled, with BatchNorm after every convolution (the paper predates it). The
FEC paper takes it up to inception (4e), 1024 channels at 1/32 of the input size.
"""
import torch
import torch.nn.functional as F
from torch import nn

from ..layers import ConvBNReLU
from ..registry import BACKBONES
from .base import Backbone, check_cut, finish_backbone, parse_weights


class L2Pool2d(nn.Module):
    """sqrt of the mean of squares over each window; padded so sizes are kept."""

    def __init__(self, kernel_size=3, stride=1, padding=1):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x):
        mean_sq = F.avg_pool2d(
            x * x, self.kernel_size, self.stride, self.padding, count_include_pad=False
        )
        # The clamp keeps the gradient finite (zero) where a window is all zeros.
        return mean_sq.clamp_min(1e-12).sqrt()


class Inception(nn.Module):
    """Branches 1x1 | 1x1→3x3 | 1x1→5x5 | pool(→1x1 projection), concatenated.

    A zero ``n1x1`` drops that branch and a zero ``pool_proj`` passes the pooled input
    through, as the stride-2 modules (3c, 4e) do.
    """

    def __init__(self, in_channels, n1x1, n3x3red, n3x3, n5x5red, n5x5, pool, pool_proj, stride):
        super().__init__()
        self.branch1x1 = ConvBNReLU(in_channels, n1x1, 1) if n1x1 else None
        self.branch3x3 = nn.Sequential(
            ConvBNReLU(in_channels, n3x3red, 1), ConvBNReLU(n3x3red, n3x3, 3, stride)
        )
        self.branch5x5 = nn.Sequential(
            ConvBNReLU(in_channels, n5x5red, 1), ConvBNReLU(n5x5red, n5x5, 5, stride)
        )
        pooling = nn.MaxPool2d(3, stride, 1) if pool == "max" else L2Pool2d(3, stride, 1)
        self.branch_pool = (
            nn.Sequential(pooling, ConvBNReLU(in_channels, pool_proj, 1)) if pool_proj else pooling
        )
        self.out_channels = n1x1 + n3x3 + n5x5 + (pool_proj or in_channels)

    def forward(self, x):
        branches = [self.branch3x3(x), self.branch5x5(x), self.branch_pool(x)]
        if self.branch1x1 is not None:
            branches.insert(0, self.branch1x1(x))
        return torch.cat(branches, 1)


# Table 2: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool, pool projection, stride.
_INCEPTIONS = {
    "inception_3a": (64, 96, 128, 16, 32, "max", 32, 1),
    "inception_3b": (64, 96, 128, 32, 64, "l2", 64, 1),
    "inception_3c": (0, 128, 256, 32, 64, "max", 0, 2),
    "inception_4a": (256, 96, 192, 32, 64, "l2", 128, 1),
    "inception_4b": (224, 112, 224, 32, 64, "l2", 128, 1),
    "inception_4c": (192, 128, 256, 32, 64, "l2", 128, 1),
    "inception_4d": (160, 144, 288, 32, 64, "l2", 128, 1),
    "inception_4e": (0, 160, 256, 64, 128, "max", 0, 2),
    "inception_5a": (384, 192, 384, 48, 128, "l2", 128, 1),
    "inception_5b": (384, 192, 384, 48, 128, "max", 128, 1),
}
_STAGES = {
    "stem": ("conv1", "pool1", "norm1"),  # conv1 7x7/2; max pool 3x3/2 + norm
    "inception_2": ("conv2", "conv3", "norm2", "pool2"),  # 1x1 64 → 3x3 192; norm + max pool
    **{name: (name,) for name in _INCEPTIONS},
}


def _lrn():
    # AlexNet's constants; "norm" in the table.
    return nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)


class InceptionNN2(Backbone):
    """NN2 up to ``cut_at``; ``InceptionNN2("inception_5b")`` is the uncut network."""

    name = "inception_nn2"
    pixel_mean = (127.5, 127.5, 127.5)  # as facenet standardises its input
    pixel_std = (128.0, 128.0, 128.0)
    reductions = {
        "conv1": ((7, 2, 3),),
        "pool1": ((3, 2, 1),),
        "pool2": ((3, 2, 1),),
        "inception_3c": ((3, 2, 1),),
        "inception_4e": ((3, 2, 1),),
    }

    def __init__(self, cut_at="inception_4e"):
        check_cut(cut_at, list(_STAGES), self.name)
        names = list(_STAGES)[: list(_STAGES).index(cut_at) + 1]
        super().__init__(cut_at, {s: _STAGES[s] for s in names}, 0)
        self.conv1 = ConvBNReLU(3, 64, 7, stride=2)
        self.pool1 = nn.MaxPool2d(3, 2, 1)
        self.norm1 = _lrn()
        channels = 64
        if "inception_2" in names:
            self.conv2 = ConvBNReLU(64, 64, 1)
            self.conv3 = ConvBNReLU(64, 192, 3)
            self.norm2 = _lrn()
            self.pool2 = nn.MaxPool2d(3, 2, 1)
            channels = 192
        for name in names[2:]:
            module = Inception(channels, *_INCEPTIONS[name])
            self.add_module(name, module)
            channels = module.out_channels
        self.out_channels = channels


@BACKBONES.register("inception_nn2")
def build_inception_nn2(cfg):
    # No public NN2 weights exist: only a local file.
    _, path = parse_weights(cfg.MODEL.BACKBONE.WEIGHTS, (), "inception_nn2")
    backbone = InceptionNN2(cfg.MODEL.BACKBONE.CUT_AT or "inception_4e")
    return finish_backbone(backbone, cfg, path)
