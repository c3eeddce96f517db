"""Meta-architectures, registered in ``fec.modeling.registry.META_ARCHITECTURES``."""
from .triplet import TripletEmbeddingNet

__all__ = ["TripletEmbeddingNet"]
