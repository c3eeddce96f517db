"""Backbones, registered in ``fec.modeling.registry.BACKBONES`` on import."""
from .base import Backbone
from .convnet import ConvNet
from .deep_emotion import DeepEmotion
from .inception_nn2 import InceptionNN2
from .inception_resnet import InceptionResnetV1Backbone
from .mobilenet import MobileNetV2
from .resnet import ResNet18

__all__ = ["Backbone", "ConvNet", "DeepEmotion", "InceptionNN2", "InceptionResnetV1Backbone", "MobileNetV2", "ResNet18"]
