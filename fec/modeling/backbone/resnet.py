"""torchvision's ResNet-18 without its average pool and classifier, cut at a stage."""
import torchvision

from ..registry import BACKBONES
from .base import Backbone, check_cut, download_pretrained, finish_backbone, parse_weights

# stage → torchvision child names; the children keep torchvision's names so that a
# torchvision state_dict loads as it is.
_STAGES = {
    "stem": ("conv1", "bn1", "relu", "maxpool"),
    "layer1": ("layer1",),
    "layer2": ("layer2",),
    "layer3": ("layer3",),
    "layer4": ("layer4",),
}
_CHANNELS = {"stem": 64, "layer1": 64, "layer2": 128, "layer3": 256, "layer4": 512}


class ResNet18(Backbone):
    name = "resnet18"
    pixel_mean = (123.675, 116.28, 103.53)  # ImageNet, 0-255 scale
    pixel_std = (58.395, 57.12, 57.375)
    reductions = {
        "conv1": ((7, 2, 3),),
        "maxpool": ((3, 2, 1),),
        "layer2": ((3, 2, 1),),
        "layer3": ((3, 2, 1),),
        "layer4": ((3, 2, 1),),
    }

    def __init__(self, cut_at="layer4", net=None):
        """``net``: a torchvision resnet18 to take the layers from (random if None)."""
        check_cut(cut_at, list(_STAGES), self.name)
        names = list(_STAGES)[: list(_STAGES).index(cut_at) + 1]
        super().__init__(cut_at, {s: _STAGES[s] for s in names}, _CHANNELS[cut_at])
        if net is None:
            net = torchvision.models.resnet18(weights=None)
        for stage in names:
            for child in _STAGES[stage]:
                self.add_module(child, getattr(net, child))


@BACKBONES.register("resnet18")
def build_resnet18(cfg):
    name, path = parse_weights(cfg.MODEL.BACKBONE.WEIGHTS, ("imagenet",), "resnet18")
    net = None
    if name == "imagenet":  # downloads: only when asked for
        weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
        net = download_pretrained(lambda: torchvision.models.resnet18(weights=weights), name, "resnet18")
    backbone = ResNet18(cfg.MODEL.BACKBONE.CUT_AT or "layer4", net)
    return finish_backbone(backbone, cfg, path)
