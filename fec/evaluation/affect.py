"""Valence/arousal regression: RMSE, CCC, Pearson correlation and sign agreement (SAGR)
per dimension; the evaluator of datasets that have both classes and valence/arousal;
and that of named intensities (e.g. action units)."""
import numpy as np
import torch

from .classification import ClassificationEvaluator, get_output

DIMENSIONS = ("valence", "arousal")


def regression_metrics(pred, target):
    """Metrics of one dimension from (N,) predictions and targets, in float64.

    rmse: sqrt(mean((p − t)²)). pcc: Pearson's r. ccc: Lin's concordance correlation,
    2·cov / (var_p + var_t + (mean_p − mean_t)²), population moments. sagr: the share of
    samples where sign(p) = sign(t) (AffectNet's sign agreement; 0 has sign 0).
    Correlations of a constant are nan.
    """
    p = np.asarray(pred, dtype=np.float64).reshape(-1)
    t = np.asarray(target, dtype=np.float64).reshape(-1)
    if len(p) != len(t):
        raise ValueError(f"{len(p)} predictions but {len(t)} targets")
    if not len(p):
        return {"rmse": float("nan"), "ccc": float("nan"), "pcc": float("nan"), "sagr": float("nan")}
    dp, dt = p - p.mean(), t - t.mean()
    cov, var_p, var_t = (dp * dt).mean(), (dp * dp).mean(), (dt * dt).mean()
    with np.errstate(invalid="ignore", divide="ignore"):
        pcc = cov / np.sqrt(var_p * var_t)
        ccc = 2 * cov / (var_p + var_t + (p.mean() - t.mean()) ** 2)
    return {
        "rmse": float(np.sqrt(np.mean((p - t) ** 2))),
        "ccc": float(ccc),
        "pcc": float(pcc),
        "sagr": float(np.mean(np.sign(p) == np.sign(t))),
    }


def valence_arousal_metrics(pred, target):
    """{"valence": {...}, "arousal": {...}, "count": N} from (N, 2) arrays."""
    pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    if pred.shape != target.shape or pred.ndim != 2 or pred.shape[1] != 2:
        raise ValueError(f"valence/arousal predictions {pred.shape} and targets {target.shape} must both be (N, 2)")
    results = {name: regression_metrics(pred[:, i], target[:, i]) for i, name in enumerate(DIMENSIONS)}
    results["count"] = int(len(pred))
    return results


def _va_summary(results):
    return "; ".join(f"{name}: RMSE {r['rmse']:.4f}, CCC {r['ccc']:.4f}, PCC {r['pcc']:.4f}, "
                     f"SAGR {100 * r['sagr']:.1f}%" for name, r in ((n, results[n]) for n in DIMENSIONS))


class RegressionEvaluator:
    """Scores the gathered valence/arousal outputs of a regression dataset."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __call__(self, predictions):
        pred = get_output(predictions, "valence_arousal", "a regressor (ValenceArousalRegressor, ClassifierRegressor)")
        target = getattr(self.dataset, "valence_arousal", None)
        if target is None:
            raise ValueError(f"dataset {getattr(self.dataset, 'name', type(self.dataset).__name__)} has no "
                             f"valence/arousal to score against")
        return valence_arousal_metrics(pred.numpy(), torch.as_tensor(target).float().numpy())

    @staticmethod
    def summary(results):
        return f"{results['count']} samples; {_va_summary(results)}"


class IntensityEvaluator:
    """Scores the gathered ``intensities`` of an intensity dataset: the metrics of
    ``regression_metrics`` per named column, and their means over the columns."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __call__(self, predictions):
        pred = get_output(predictions, "intensities", "an IntensityRegressor").numpy()
        target = torch.as_tensor(self.dataset.intensities).float().numpy()
        names = list(self.dataset.intensity_names)
        if pred.shape != target.shape:
            raise ValueError(f"the model predicts {pred.shape[1]} intensities per face (MODEL.INTENSITY.NAMES), "
                             f"dataset {self.dataset.name} has {target.shape[1]} ({', '.join(names)})")
        per_name = {name: regression_metrics(pred[:, i], target[:, i]) for i, name in enumerate(names)}
        means = {k: float(np.mean([m[k] for m in per_name.values()])) for k in ("rmse", "ccc", "pcc")}
        return {"count": int(len(pred)), "mean": means, "per_name": per_name}

    @staticmethod
    def summary(results):
        m = results["mean"]
        parts = [f"{name} {r['rmse']:.3f}" for name, r in results["per_name"].items()]
        return (f"{results['count']} samples; mean RMSE {m['rmse']:.4f}, CCC {m['ccc']:.4f}, PCC {m['pcc']:.4f}\n"
                f"  RMSE per intensity: {', '.join(parts)}")


class AffectEvaluator:
    """Both: the classification results with "valence" and "arousal" added. A model
    with only one of the heads is scored on that one."""

    def __init__(self, dataset):
        self.classification = ClassificationEvaluator(dataset)
        self.regression = RegressionEvaluator(dataset)

    def __call__(self, predictions):
        if "logits" not in predictions and "valence_arousal" not in predictions:
            get_output(predictions, "logits", "a Classifier, ValenceArousalRegressor or ClassifierRegressor")
        results = {}
        if "logits" in predictions:
            results.update(self.classification(predictions))
        if "valence_arousal" in predictions:
            results.update(self.regression(predictions))
        return results

    @staticmethod
    def summary(results):
        parts = []
        if "accuracy" in results:
            parts.append(ClassificationEvaluator.summary(results))
        if "valence" in results:
            parts.append(_va_summary(results))
        return "\n  ".join(parts)

    @staticmethod
    def artifacts(results):
        return ClassificationEvaluator.artifacts(results) if "confusion_matrix" in results else {}
