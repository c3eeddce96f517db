"""``build_model(cfg)``: the meta-architecture named by MODEL.META_ARCHITECTURE."""
from . import meta_arch  # noqa: F401  (registers the meta-architectures)
from .registry import META_ARCHITECTURES


def build_model(cfg):
    return META_ARCHITECTURES[cfg.MODEL.META_ARCHITECTURE](cfg)
