"""Meta-architectures, registered in ``fec.modeling.registry.META_ARCHITECTURES``."""
from .expression import ExpressionNet
from .triplet import TripletEmbeddingNet

__all__ = ["ExpressionNet", "TripletEmbeddingNet"]
