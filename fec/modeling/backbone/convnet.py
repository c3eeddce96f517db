"""A plain conv-BatchNorm-ReLU stack for small inputs: cheap enough to train on a CPU
in minutes (the synthetic quickstart), not a model for real faces.

Three stages after a stem; each halves the map and doubles the width. At width w:
stem conv 3x3/2 (w) → stage1 conv 3x3 (w) → stage2 conv 3x3/2 (2w), conv 3x3 (2w) →
stage3 conv 3x3/2 (4w), conv 3x3 (4w). A 64 px input gives an 8x8 map.
"""

from ..layers import ConvBNReLU
from ..registry import BACKBONES
from .base import Backbone, check_cut, finish_backbone, parse_weights

_STAGES = {
    "stem": ("conv1",),
    "stage1": ("conv2",),
    "stage2": ("conv3", "conv4"),
    "stage3": ("conv5", "conv6"),
}
# child → (output width as a multiple of w, stride)
_LAYERS = {"conv1": (1, 2), "conv2": (1, 1), "conv3": (2, 2), "conv4": (2, 1), "conv5": (4, 2), "conv6": (4, 1)}


class ConvNet(Backbone):
    name = "convnet"
    pixel_mean = (127.5, 127.5, 127.5)
    pixel_std = (64.0, 64.0, 64.0)
    reductions = {child: ((3, stride, 1),) for child, (_, stride) in _LAYERS.items() if stride > 1}

    def __init__(self, cut_at="stage3", width=32):
        check_cut(cut_at, list(_STAGES), self.name)
        if width < 1:
            raise ValueError(f"MODEL.BACKBONE.WIDTH must be positive, got {width}")
        names = list(_STAGES)[: list(_STAGES).index(cut_at) + 1]
        children = [c for s in names for c in _STAGES[s]]
        super().__init__(cut_at, {s: _STAGES[s] for s in names}, _LAYERS[children[-1]][0] * width)
        channels = 3
        for child in children:
            out = _LAYERS[child][0] * width
            self.add_module(child, ConvBNReLU(channels, out, 3, _LAYERS[child][1]))
            channels = out


@BACKBONES.register("convnet")
def build_convnet(cfg):
    _, path = parse_weights(cfg.MODEL.BACKBONE.WEIGHTS, (), "convnet")
    backbone = ConvNet(cfg.MODEL.BACKBONE.CUT_AT or "stage3", cfg.MODEL.BACKBONE.WIDTH)
    return finish_backbone(backbone, cfg, path)
