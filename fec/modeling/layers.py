"""Layers that backbones and heads share."""
from torch import nn


class ConvBNReLU(nn.Sequential):
    """Conv (no bias, "same" padding for odd kernels) → BatchNorm → ReLU; state_dict keys
    0.* (conv) and 1.* (BatchNorm)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )
