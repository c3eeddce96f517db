"""Expression classification: accuracy overall and per class, macro F1, Cohen's kappa
and the confusion matrix (rows: true class, columns: predicted), also drawn as a PNG."""
import cv2
import numpy as np
import torch


def confusion_matrix(labels, predicted, num_classes):
    """(C, C) int64 counts; entry [t, p] counts samples of class t predicted as p."""
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    predicted = np.asarray(predicted, dtype=np.int64).reshape(-1)
    if len(labels) != len(predicted):
        raise ValueError(f"{len(labels)} labels but {len(predicted)} predictions")
    for name, values in (("labels", labels), ("predictions", predicted)):
        if len(values) and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"{name} must be in 0..{num_classes - 1}, got {values.min()}..{values.max()}")
    return np.bincount(labels * num_classes + predicted, minlength=num_classes ** 2).reshape(
        num_classes, num_classes)


def classification_metrics(labels, predicted, class_names):
    """Results dict from true and predicted class indices.

    Per class: recall (reported as the class's accuracy), precision and F1, with the
    number of samples. Macro F1 averages F1 over the classes that occur in the labels or
    the predictions (sklearn's default); a class with no true and no predicted sample
    says nothing. Kappa is Cohen's: (p_o − p_e) / (1 − p_e).
    """
    names = list(class_names)
    cm = confusion_matrix(labels, predicted, len(names)).astype(np.float64)
    total = cm.sum()
    true_counts, pred_counts, hits = cm.sum(1), cm.sum(0), np.diag(cm)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = hits / true_counts
        precision = hits / pred_counts
        f1 = np.where(hits > 0, 2 * hits / (true_counts + pred_counts), 0.0)
        p_o = hits.sum() / total
        p_e = (true_counts * pred_counts).sum() / total ** 2
        kappa = (p_o - p_e) / (1 - p_e)
    present = (true_counts + pred_counts) > 0
    results = {
        "accuracy": float(p_o) if total else float("nan"),
        "count": int(total),
        "mean_class_accuracy": float(np.mean(recall[true_counts > 0])) if total else float("nan"),
        "macro_f1": float(np.mean(f1[present])) if present.any() else float("nan"),
        "kappa": float(kappa) if total else float("nan"),
        "per_class": {
            name: {"accuracy": float(recall[i]), "precision": float(precision[i]), "f1": float(f1[i]),
                   "count": int(true_counts[i])}
            for i, name in enumerate(names)
        },
        "class_names": names,
        "confusion_matrix": cm.astype(np.int64).tolist(),
    }
    return results


def draw_confusion_matrix(cm, class_names, cell=64):
    """A BGR uint8 image of the confusion matrix: each cell shaded by its share of its
    row (the true class), with the count and that share written in it."""
    cm = np.asarray(cm, dtype=np.int64)
    n = len(class_names)
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.4
    label_w = max(cv2.getTextSize(name, font, scale, 1)[0][0] for name in class_names) + 12
    title_h = 28
    top, left = title_h + label_w, label_w + 8
    title = "confusion matrix (rows: true, columns: predicted)"
    width = max(left + n * cell + 8, cv2.getTextSize(title, font, 0.45, 1)[0][0] + 12)
    img = np.full((top + n * cell + 8, width, 3), 255, np.uint8)
    cv2.putText(img, title, (6, 17), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    rows = cm.sum(1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)
    for t in range(n):
        for p in range(n):
            x, y = left + p * cell, top + t * cell
            shade = int(round(255 * (1 - share[t, p])))
            cv2.rectangle(img, (x, y), (x + cell, y + cell), (255, shade, shade), -1)  # white → blue
            cv2.rectangle(img, (x, y), (x + cell, y + cell), (160, 160, 160), 1)
            ink = (255, 255, 255) if share[t, p] > 0.5 else (0, 0, 0)
            for k, text in enumerate((str(cm[t, p]), f"{100 * share[t, p]:.0f}%")):
                (w, h), _ = cv2.getTextSize(text, font, scale, 1)
                cv2.putText(img, text, (x + (cell - w) // 2, y + cell // 2 - 4 + k * (h + 8)), font, scale,
                            ink, 1, cv2.LINE_AA)
    for i, name in enumerate(class_names):
        (w, h), _ = cv2.getTextSize(name, font, scale, 1)
        # row labels, right-aligned beside their row
        cv2.putText(img, name, (left - w - 6, top + i * cell + (cell + h) // 2), font, scale, (0, 0, 0), 1,
                    cv2.LINE_AA)
        # column labels, drawn flat on a strip and turned to read bottom-up above their column
        strip = np.full((cell, label_w, 3), 255, np.uint8)
        cv2.putText(strip, name, (6, (cell + h) // 2), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
        img[top - label_w:top, left + i * cell:left + (i + 1) * cell] = cv2.rotate(
            strip, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return img


def _labels_of(dataset):
    labels = getattr(dataset, "labels", None)
    if labels is None:
        raise ValueError(f"dataset {getattr(dataset, 'name', type(dataset).__name__)} has no labels to "
                         f"score classification against")
    return torch.as_tensor(labels).long().numpy()


class ClassificationEvaluator:
    """Scores the gathered logits of a classification dataset (one row per sample)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __call__(self, predictions):
        logits = get_output(predictions, "logits", "a classifier (Classifier, ClassifierRegressor)")
        names = list(self.dataset.class_names)
        if logits.dim() != 2 or logits.shape[1] != len(names):
            raise ValueError(f"the model gives {tuple(logits.shape)} logits but the dataset has {len(names)} "
                             f"classes ({', '.join(names)}); set MODEL.CLASSIFIER.NUM_CLASSES and CLASS_NAMES "
                             f"to match")
        return classification_metrics(_labels_of(self.dataset), logits.argmax(1).numpy(), names)

    @staticmethod
    def summary(results):
        per = ", ".join(f"{name} {100 * v['accuracy']:.1f}% of {v['count']}"
                        for name, v in results["per_class"].items())
        return (f"accuracy {100 * results['accuracy']:.2f}% of {results['count']} (mean per class "
                f"{100 * results['mean_class_accuracy']:.2f}%), macro F1 {results['macro_f1']:.4f}, "
                f"kappa {results['kappa']:.4f}\n  per class: {per}")

    @staticmethod
    def artifacts(results):
        """Files to write beside results.json: name → bytes."""
        img = draw_confusion_matrix(results["confusion_matrix"], results["class_names"])
        ok, png = cv2.imencode(".png", img)
        if not ok:
            raise RuntimeError("OpenCV could not encode the confusion matrix as PNG")
        return {"confusion_matrix.png": png.tobytes()}


def get_output(predictions, key, what):
    if key not in predictions:
        raise KeyError(f"the model gave {', '.join(predictions) or 'no outputs'} but this dataset is scored on "
                       f"{key!r}: use {what} (MODEL.META_ARCHITECTURE)")
    return torch.as_tensor(predictions[key]).float()
