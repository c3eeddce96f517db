"""Meta-architectures, registered in ``fec.modeling.registry.META_ARCHITECTURES``; what
each returns in eval mode: ``base.OUTPUTS``."""
from .base import OUTPUT_KEYS, OUTPUTS, RawPixelModel, check_output_keys
from .expression import (Classifier, ClassifierRegressor, ExpressionNet, IntensityRegressor,
                         ValenceArousalRegressor)
from .triplet import TripletEmbeddingNet

__all__ = ["OUTPUTS", "OUTPUT_KEYS", "Classifier", "ClassifierRegressor", "ExpressionNet", "IntensityRegressor",
           "RawPixelModel", "TripletEmbeddingNet", "ValenceArousalRegressor", "check_output_keys"]
