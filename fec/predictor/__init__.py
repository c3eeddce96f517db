"""Using a trained model: the predictor, retrieval, export.

Between the tools and the library: it builds on fec/modeling, fec/data (crop, face
detection), fec/config and fec/utils (device), and the tools (demo, retrieve, export)
build on it.
"""
from fec.data.detect import DETECTOR_NAMES, build_detector

from .images import list_images, read_image, to_rgb
from .predictor import ExpressionPredictor, Face, interpret_outputs, prediction_config

__all__ = ["DETECTOR_NAMES", "ExpressionPredictor", "Face", "build_detector", "interpret_outputs",
           "list_images", "prediction_config", "read_image", "to_rgb"]
