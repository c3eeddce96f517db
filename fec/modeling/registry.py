"""Name → builder tables for the parts of a model, filled by ``register`` decorators.

- ``BACKBONES[name](cfg)`` returns a backbone module (see ``backbone/base.py``).
- ``HEADS[name](cfg, in_channels)`` returns a head module.
- ``META_ARCHITECTURES[name](cfg)`` returns the whole model.
"""
from fec.utils.registry import Registry

BACKBONES = Registry("backbone")
HEADS = Registry("head")
META_ARCHITECTURES = Registry("meta-architecture")
