"""Embedding heads: feature map → (N, EMBEDDING_DIM) unit vectors.

Both reduce the backbone's channels with a 1x1 conv, process the map with a block,
average-pool it and end in two fully connected layers (FECNet's layout). "dense" uses
a DenseNet block as the FEC paper does; "conv3x3" a single 3x3 conv.
"""
import torch
import torch.nn.functional as F
from torch import nn

from ..layers import ConvBNReLU
from ..registry import HEADS


class DenseLayer(nn.Module):
    """BN-ReLU-1x1 conv (4·growth)-BN-ReLU-3x3 conv (growth), appended to its input."""

    def __init__(self, in_channels, growth_rate):
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, 4 * growth_rate, 1, bias=False),
            nn.BatchNorm2d(4 * growth_rate),
            nn.ReLU(inplace=True),
            nn.Conv2d(4 * growth_rate, growth_rate, 3, padding=1, bias=False),
        )

    def forward(self, x):
        return torch.cat([x, self.body(x)], 1)


class DenseBlock(nn.Sequential):
    def __init__(self, in_channels, num_layers, growth_rate):
        super().__init__(
            *(DenseLayer(in_channels + i * growth_rate, growth_rate) for i in range(num_layers))
        )
        self.out_channels = in_channels + num_layers * growth_rate


class EmbeddingHead(nn.Module):
    """1x1 conv + BN + ReLU → ``block`` → global average pool → FC → ReLU → dropout →
    FC → L2 normalisation."""

    def __init__(self, in_channels, block, block_channels, hidden_dim, embedding_dim, dropout):
        super().__init__()
        self.reduce = ConvBNReLU(in_channels, hidden_dim, 1)
        self.block = block
        self.fc1 = nn.Linear(block_channels, hidden_dim)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden_dim, embedding_dim)

    def forward(self, x):
        x = self.block(self.reduce(x))
        x = x.mean(dim=(2, 3))  # global average pool: any input size
        x = self.dropout(F.relu(self.fc1(x)))
        # float32 under autocast too: the triplet loss compares close distances of these
        return F.normalize(self.fc2(x).float(), dim=1)


@HEADS.register("dense")
def build_dense_head(cfg, in_channels):
    h = cfg.MODEL.HEAD
    dense = DenseBlock(h.HIDDEN_DIM, h.DENSE_LAYERS, h.GROWTH_RATE)
    # DenseNet ends its last block with BN-ReLU (its layers are pre-activation).
    block = nn.Sequential(dense, nn.BatchNorm2d(dense.out_channels), nn.ReLU(inplace=True))
    return EmbeddingHead(
        in_channels, block, dense.out_channels, h.HIDDEN_DIM, h.EMBEDDING_DIM, h.DROPOUT
    )


@HEADS.register("conv3x3")
def build_conv3x3_head(cfg, in_channels):
    h = cfg.MODEL.HEAD
    block = ConvBNReLU(h.HIDDEN_DIM, h.HIDDEN_DIM, 3)
    return EmbeddingHead(in_channels, block, h.HIDDEN_DIM, h.HIDDEN_DIM, h.EMBEDDING_DIM, h.DROPOUT)
