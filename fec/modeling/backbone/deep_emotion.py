"""Deep-Emotion (Minaee & Abdolrashidi, 2019): a spatial transformer, then a small
convolutional network, up to its 50-d hidden layer.

At 48x48 this is the paper's network layer for layer: localisation conv 7x7 (8) →
max pool → ReLU → conv 5x5 (10) → max pool → ReLU → FC 640→32 → ReLU → FC 32→6 (the
affine matrix, initialised to the identity); features conv 3x3 (10) ×2 → max pool →
ReLU → conv 3x3 (10) ×2 → BatchNorm → max pool → ReLU → dropout → FC 810→50 → ReLU.
The paper's last layer (FC 50→classes) is the meta-architecture's head.

The paper's FC layers take a fixed 8x8 (localisation) and 9x9 (features) map, which
only a 48x48 input gives. Here an adaptive average pool brings the maps to those
sizes first: at 48x48 it is the identity, so the network is the paper's exactly; at
other sizes the FC sizes, and so the weights, stay the same.
"""
import torch
import torch.nn.functional as F
from torch import nn

from ..registry import BACKBONES
from .base import Backbone, check_cut, finish_backbone, parse_weights

_STAGES = {
    "stn": ("stn",),
    "features": ("conv1", "relu1", "conv2", "pool2", "relu2",
                 "conv3", "relu3", "conv4", "norm", "pool4", "relu4"),
    "fc": ("pool", "dropout", "flatten", "fc1", "relu5", "unflatten"),
}
_CHANNELS = {"stn": 3, "features": 10, "fc": 50}
# (kernel, stride, padding) of the localisation branch, which must fit the input too.
_LOCALIZATION_REDUCTIONS = ((7, 1, 0), (2, 2, 0), (5, 1, 0), (2, 2, 0))


def _reduce(size, ops):
    for kernel, stride, padding in ops:
        if size + 2 * padding < kernel:
            return 0
        size = (size + 2 * padding - kernel) // stride + 1
    return size


class SpatialTransformer(nn.Module):
    """Predicts one affine transform per image and resamples the image with it."""

    def __init__(self, in_channels=3):
        super().__init__()
        self.localization = nn.Sequential(
            nn.Conv2d(in_channels, 8, kernel_size=7),
            nn.MaxPool2d(2, stride=2),
            nn.ReLU(True),
            nn.Conv2d(8, 10, kernel_size=5),
            nn.MaxPool2d(2, stride=2),
            nn.ReLU(True),
        )
        self.pool = nn.AdaptiveAvgPool2d(8)  # the paper's 8x8 map, whatever the input size
        self.fc_loc = nn.Sequential(nn.Linear(10 * 8 * 8, 32), nn.ReLU(True), nn.Linear(32, 6))
        # Start at the identity transform, so training starts from the plain image.
        nn.init.zeros_(self.fc_loc[2].weight)
        with torch.no_grad():
            self.fc_loc[2].bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]))

    def theta(self, x):
        """(N, 2, 3) affine matrices, in the normalised [-1, 1] coordinates of affine_grid."""
        return self.fc_loc(self.pool(self.localization(x)).flatten(1)).view(-1, 2, 3)

    def grid(self, x):
        """(N, H, W, 2): where each output pixel samples the input."""
        return F.affine_grid(self.theta(x), list(x.shape), align_corners=False)

    def forward(self, x):
        return F.grid_sample(x, self.grid(x), align_corners=False)


class DeepEmotion(Backbone):
    """Stages "stn", "features" (10 channels, 9x9 at 48 px) and "fc" (the 50-d hidden
    layer as a (N, 50, 1, 1) map, so any head that pools a map takes it)."""

    name = "deep_emotion"
    # The paper's Normalize((0.5,), (0.5,)) on [0, 1] pixels.
    pixel_mean = (127.5, 127.5, 127.5)
    pixel_std = (127.5, 127.5, 127.5)
    reductions = {
        "conv1": ((3, 1, 0),),
        "conv2": ((3, 1, 0),),
        "pool2": ((2, 2, 0),),
        "conv3": ((3, 1, 0),),
        "conv4": ((3, 1, 0),),
        "pool4": ((2, 2, 0),),
    }

    def __init__(self, cut_at="fc", dropout=0.5):
        check_cut(cut_at, list(_STAGES), self.name)
        names = list(_STAGES)[: list(_STAGES).index(cut_at) + 1]
        super().__init__(cut_at, {s: _STAGES[s] for s in names}, _CHANNELS[cut_at])
        # Three input channels: grey faces arrive replicated, which makes conv1 the
        # paper's single-channel conv with the three weights summed; colour faces work too.
        self.stn = SpatialTransformer(3)
        if "features" in names:
            self.conv1 = nn.Conv2d(3, 10, 3)
            self.relu1 = nn.ReLU(True)
            self.conv2 = nn.Conv2d(10, 10, 3)
            self.pool2 = nn.MaxPool2d(2, 2)
            self.relu2 = nn.ReLU(True)
            self.conv3 = nn.Conv2d(10, 10, 3)
            self.relu3 = nn.ReLU(True)
            self.conv4 = nn.Conv2d(10, 10, 3)
            self.norm = nn.BatchNorm2d(10)
            self.pool4 = nn.MaxPool2d(2, 2)
            self.relu4 = nn.ReLU(True)
        if "fc" in names:
            self.pool = nn.AdaptiveAvgPool2d(9)  # the paper's 9x9 map (810 = 10·9·9)
            # nn.Dropout, unlike the reference code's F.dropout, is off in eval mode.
            self.dropout = nn.Dropout(dropout)
            self.flatten = nn.Flatten(1)
            self.fc1 = nn.Linear(10 * 9 * 9, 50)
            self.relu5 = nn.ReLU(True)
            self.unflatten = nn.Unflatten(1, (50, 1, 1))

    def feature_size(self, input_size):
        if _reduce(int(input_size), _LOCALIZATION_REDUCTIONS) == 0:
            return 0
        size = super().feature_size(input_size)
        return 1 if size and self.cut_at == "fc" else size


@BACKBONES.register("deep_emotion")
def build_deep_emotion(cfg):
    # No published weights: random init or a local file.
    _, path = parse_weights(cfg.MODEL.BACKBONE.WEIGHTS, (), "deep_emotion")
    backbone = DeepEmotion(cfg.MODEL.BACKBONE.CUT_AT or "fc")
    return finish_backbone(backbone, cfg, path)
