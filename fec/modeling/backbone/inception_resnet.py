"""facenet-pytorch's Inception-ResNet-v1 (FaceNet), its children up to a cut.

facenet_pytorch is imported when this backbone is built, not when it is registered:
loading it takes about a second that every other model would pay.
"""
from ..registry import BACKBONES
from .base import Backbone, check_cut, download_pretrained, finish_backbone, parse_weights

# child → output channels, in running order (facenet_pytorch's names).
_CHANNELS = {
    "conv2d_1a": 32,
    "conv2d_2a": 32,
    "conv2d_2b": 64,
    "maxpool_3a": 64,
    "conv2d_3b": 80,
    "conv2d_4a": 192,
    "conv2d_4b": 256,
    "repeat_1": 256,
    "mixed_6a": 896,
    "repeat_2": 896,
    "mixed_7a": 1792,
    "repeat_3": 1792,
    "block8": 1792,
}
_CHILDREN = list(_CHANNELS)
# The layers before the first residual block make the stem stage; every later child
# is a stage of its own.
_STEM = _CHILDREN[: _CHILDREN.index("conv2d_4b") + 1]


class InceptionResnetV1Backbone(Backbone):
    name = "inception_resnet_v1"
    pixel_mean = (127.5, 127.5, 127.5)  # facenet's fixed_image_standardization
    pixel_std = (128.0, 128.0, 128.0)
    # Its stem and reduction blocks do not pad, so deep cuts need a large enough input.
    reductions = {
        "conv2d_1a": ((3, 2, 0),),
        "conv2d_2a": ((3, 1, 0),),
        "maxpool_3a": ((3, 2, 0),),
        "conv2d_4a": ((3, 1, 0),),
        "conv2d_4b": ((3, 2, 0),),
        "mixed_6a": ((3, 2, 0),),
        "mixed_7a": ((3, 2, 0),),
    }

    def __init__(self, cut_at="repeat_2", pretrained=None):
        """``pretrained``: None, "vggface2" or "casia-webface" (the last two download)."""
        check_cut(cut_at, _CHILDREN, self.name)
        kept = _CHILDREN[: _CHILDREN.index(cut_at) + 1]
        stages = {"stem": [c for c in kept if c in _STEM]}
        stages.update({c: [c] for c in kept if c not in _STEM})
        super().__init__(cut_at, stages, _CHANNELS[cut_at])
        from facenet_pytorch import InceptionResnetV1

        net = InceptionResnetV1(pretrained=pretrained)
        for child in kept:
            self.add_module(child, getattr(net, child))


@BACKBONES.register("inception_resnet_v1")
def build_inception_resnet_v1(cfg):
    name, path = parse_weights(
        cfg.MODEL.BACKBONE.WEIGHTS, ("vggface2", "casia-webface"), "inception_resnet_v1"
    )
    backbone = download_pretrained(
        lambda: InceptionResnetV1Backbone(cfg.MODEL.BACKBONE.CUT_AT or "repeat_2", name), name, "inception_resnet_v1"
    )
    return finish_backbone(backbone, cfg, path)
