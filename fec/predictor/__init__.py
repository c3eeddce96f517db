"""Using a trained model: face detection, the predictor, retrieval, export.

Between the tools and fec/engine: it builds on fec/engine (device), fec/modeling,
fec/data, fec/config and fec/utils, and the tools (demo, retrieve, export) build on it.
"""
from .detect import DETECTOR_NAMES, build_detector
from .images import list_images, read_image, to_rgb
from .predictor import ExpressionPredictor, Face, interpret_outputs, prediction_config

__all__ = ["DETECTOR_NAMES", "ExpressionPredictor", "Face", "build_detector", "interpret_outputs",
           "list_images", "prediction_config", "read_image", "to_rgb"]
