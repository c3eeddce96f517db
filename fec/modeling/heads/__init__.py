"""Heads, registered in ``fec.modeling.registry.HEADS`` on import."""
from .embedding import DenseBlock, EmbeddingHead

__all__ = ["DenseBlock", "EmbeddingHead"]
