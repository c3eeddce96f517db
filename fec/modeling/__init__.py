"""Backbones, heads, losses and meta-architectures; ``build_model(cfg)`` builds one."""
from .build import build_model

__all__ = ["build_model"]
