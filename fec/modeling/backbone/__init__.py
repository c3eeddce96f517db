"""Backbones, registered in ``fec.modeling.registry.BACKBONES`` on import."""
from .base import Backbone
from .inception_nn2 import InceptionNN2
from .inception_resnet import InceptionResnetV1Backbone
from .resnet import ResNet18

__all__ = ["Backbone", "InceptionNN2", "InceptionResnetV1Backbone", "ResNet18"]
