"""torchvision's MobileNetV2 ``features`` without its classifier, cut at a stage.

The blocks stay in one ``features`` Sequential with torchvision's numbering, so a
torchvision state_dict (``features.N.*``) loads as it is. Stages group the blocks by
output stride.
"""
import torchvision
from torch import nn

from ..registry import BACKBONES
from .base import Backbone, check_cut, download_pretrained, finish_backbone, parse_weights

# stage → indices of its blocks in torchvision's ``features``.
_STAGES = {
    "stem": (0, 1),  # conv 3x3/2 (32) and the first bottleneck (16): stride 2
    "stride4": (2, 3),  # 24 channels
    "stride8": (4, 5, 6),  # 32
    "stride16": (7, 8, 9, 10, 11, 12, 13),  # 64 then 96
    "stride32": (14, 15, 16, 17),  # 160 then 320
    "last_conv": (18,),  # 1x1 conv to 1280, what torchvision's classifier pools
}
_CHANNELS = {"stem": 16, "stride4": 24, "stride8": 32, "stride16": 96, "stride32": 320, "last_conv": 1280}
# Blocks that halve the size: 3x3 convs (the stem's, or a depthwise one) with padding 1.
_STRIDE2 = (0, 2, 4, 7, 14)


class MobileNetV2(Backbone):
    name = "mobilenet_v2"
    pixel_mean = (123.675, 116.28, 103.53)  # ImageNet, 0-255 scale
    pixel_std = (58.395, 57.12, 57.375)

    def __init__(self, cut_at="last_conv", net=None):
        """``net``: a torchvision mobilenet_v2 to take the blocks from (random if None)."""
        check_cut(cut_at, list(_STAGES), self.name)
        names = list(_STAGES)[: list(_STAGES).index(cut_at) + 1]
        # The base class groups children into stages; here one child holds every block,
        # and stage_modules picks a stage's blocks out of it.
        super().__init__(cut_at, {s: ("features",) for s in names}, _CHANNELS[cut_at])
        self.block_indices = {s: _STAGES[s] for s in names}
        if net is None:
            net = torchvision.models.mobilenet_v2(weights=None)
        count = _STAGES[cut_at][-1] + 1
        self.features = nn.Sequential(*net.features[:count])
        self.reductions = {"features": tuple((3, 2, 1) for i in _STRIDE2 if i < count)}

    def stage_modules(self, stage):
        return [self.features[i] for i in self.block_indices[stage]]

    def keeps_key(self, key):
        parts = key.split(".", 2)
        return parts[0] == "features" and len(parts) > 1 and parts[1].isdigit() \
            and int(parts[1]) < len(self.features)


@BACKBONES.register("mobilenet_v2")
def build_mobilenet_v2(cfg):
    name, path = parse_weights(cfg.MODEL.BACKBONE.WEIGHTS, ("imagenet",), "mobilenet_v2")
    net = None
    if name == "imagenet":  # downloads: only when asked for
        weights = torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1
        net = download_pretrained(lambda: torchvision.models.mobilenet_v2(weights=weights), name, "mobilenet_v2")
    backbone = MobileNetV2(cfg.MODEL.BACKBONE.CUT_AT or "last_conv", net)
    return finish_backbone(backbone, cfg, path)
