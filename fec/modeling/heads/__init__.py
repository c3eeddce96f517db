"""Heads: the embedding heads, registered in ``fec.modeling.registry.HEADS`` on
import, and the per-face task heads of the expression models (``task``)."""
from .embedding import DenseBlock, EmbeddingHead
from .task import ClassificationHead, IntensityHead, LinearHead, ValenceArousalHead

__all__ = ["ClassificationHead", "DenseBlock", "EmbeddingHead", "IntensityHead", "LinearHead", "ValenceArousalHead"]
