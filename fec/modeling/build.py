"""``build_model(cfg)``: the meta-architecture named by MODEL.META_ARCHITECTURE."""
import torch

from . import meta_arch  # noqa: F401  (registers the meta-architectures)
from .registry import META_ARCHITECTURES


def build_model(cfg):
    model = META_ARCHITECTURES[cfg.MODEL.META_ARCHITECTURE](cfg)
    if cfg.MODEL.CHANNELS_LAST:
        # 4-D weights and the normalised input in NHWC; state_dict keys and values unchanged
        model.to(memory_format=torch.channels_last)
        model.channels_last = True
    return model
