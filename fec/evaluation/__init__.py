"""One evaluator per task, looked up by the dataset's ``task``.

An evaluator is built from the dataset, called with the predictions gathered by
index, and returns a results dict; ``summary(results)`` gives the text to log, and an
optional ``artifacts(results)`` returns {file name: bytes} to save beside results.json.
"""
from fec.utils.registry import Registry

from .affect import AffectEvaluator, IntensityEvaluator, RegressionEvaluator, regression_metrics, valence_arousal_metrics
from .classification import ClassificationEvaluator, classification_metrics, confusion_matrix
from .triplet import TripletEvaluator, evaluate_triplets

EVALUATORS = Registry("evaluator")
EVALUATORS.register("triplet", TripletEvaluator)
EVALUATORS.register("classification", ClassificationEvaluator)
EVALUATORS.register("regression", RegressionEvaluator)
EVALUATORS.register("affect", AffectEvaluator)
EVALUATORS.register("intensity", IntensityEvaluator)


def build_evaluator(dataset):
    return EVALUATORS[dataset.task](dataset)


__all__ = ["EVALUATORS", "build_evaluator", "classification_metrics", "confusion_matrix", "evaluate_triplets",
           "regression_metrics", "valence_arousal_metrics"]
