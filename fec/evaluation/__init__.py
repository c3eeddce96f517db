"""One evaluator per task, looked up by the dataset's ``task``."""
from fec.utils.registry import Registry

from .triplet import TripletEvaluator, evaluate_triplets

EVALUATORS = Registry("evaluator")
EVALUATORS.register("triplet", TripletEvaluator)


def build_evaluator(dataset):
    return EVALUATORS[dataset.task](dataset)


__all__ = ["EVALUATORS", "build_evaluator", "evaluate_triplets"]
