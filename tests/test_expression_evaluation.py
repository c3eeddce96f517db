"""Classification and valence/arousal metrics against hand-computed cases and formulas
written out here; the evaluators, and the engine writing results.json and the
confusion-matrix PNG through sharded inference."""
import json
import math

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from fec.config import load_config
from fec.data.samplers import InferenceSampler
from fec.engine.inference import inference
from fec.evaluation import EVALUATORS, build_evaluator, classification_metrics, regression_metrics
from fec.evaluation.classification import draw_confusion_matrix
from fec.modeling import build_model

NAMES3 = ["a", "b", "c"]


# -- classification ------------------------------------------------------------------


def test_hand_computed_classification():
    labels = [0, 0, 0, 1, 1, 2]
    pred = [0, 1, 0, 1, 1, 0]
    r = classification_metrics(labels, pred, NAMES3)
    assert r["confusion_matrix"] == [[2, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert r["count"] == 6
    assert r["accuracy"] == pytest.approx(4 / 6)
    assert r["per_class"]["a"] == pytest.approx({"accuracy": 2 / 3, "precision": 2 / 3, "f1": 2 / 3, "count": 3})
    assert r["per_class"]["b"] == pytest.approx({"accuracy": 1.0, "precision": 2 / 3, "f1": 0.8, "count": 2})
    c = r["per_class"]["c"]
    assert c["accuracy"] == 0.0 and math.isnan(c["precision"]) and c["f1"] == 0.0 and c["count"] == 1
    assert r["mean_class_accuracy"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert r["macro_f1"] == pytest.approx((2 / 3 + 0.8 + 0) / 3)
    # p_o = 4/6; p_e = (3·3 + 2·3 + 1·0) / 36 = 15/36; kappa = (24 − 15) / (36 − 15) = 3/7
    assert r["kappa"] == pytest.approx(3 / 7)


def test_absent_class_is_left_out_of_the_averages_and_perfect_scores_one():
    r = classification_metrics([0, 0, 0, 1, 1, 2], [0, 1, 0, 1, 1, 0], NAMES3 + ["d"])
    assert r["macro_f1"] == pytest.approx((2 / 3 + 0.8 + 0) / 3)
    assert r["mean_class_accuracy"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert r["per_class"]["d"]["count"] == 0 and math.isnan(r["per_class"]["d"]["accuracy"])
    perfect = classification_metrics([2, 0, 1, 1], [2, 0, 1, 1], NAMES3)
    assert perfect["accuracy"] == perfect["macro_f1"] == perfect["kappa"] == 1.0
    # every sample predicted as one class: agreement no better than chance
    assert classification_metrics([0, 1, 1, 2], [1, 1, 1, 1], NAMES3)["kappa"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match=r"labels must be in 0\.\.2"):
        classification_metrics([3], [0], NAMES3)


def reference_classification(labels, pred, k):
    """Macro F1 and Cohen's kappa by their definitions, one sample at a time."""
    n = len(labels)
    f1s = []
    for c in range(k):
        tp = sum(1 for y, p in zip(labels, pred) if y == c and p == c)
        fp = sum(1 for y, p in zip(labels, pred) if y != c and p == c)
        fn = sum(1 for y, p in zip(labels, pred) if y == c and p != c)
        if tp + fp + fn == 0:
            continue  # absent from both: not averaged
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1s.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    observed = sum(1 for y, p in zip(labels, pred) if y == p) / n
    chance = sum((sum(1 for y in labels if y == c) / n) * (sum(1 for p in pred if p == c) / n) for c in range(k))
    return sum(f1s) / len(f1s), (observed - chance) / (1 - chance)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_cases_match_the_definitions(seed):
    rng = np.random.default_rng(seed)
    k = 7
    labels = rng.integers(0, k, 300)
    # mostly right, some confusion, one class never predicted
    pred = np.where(rng.random(300) < 0.6, labels, rng.integers(0, k - 1, 300))
    r = classification_metrics(labels, pred, [str(i) for i in range(k)])
    f1, kappa = reference_classification(labels.tolist(), pred.tolist(), k)
    assert r["macro_f1"] == pytest.approx(f1, rel=1e-12)
    assert r["kappa"] == pytest.approx(kappa, rel=1e-12)
    assert r["accuracy"] == pytest.approx(np.mean(labels == pred))
    cm = np.array(r["confusion_matrix"])
    assert cm.sum() == 300 and all(cm[y, p] >= 1 for y, p in zip(labels, pred))
    assert cm[:, k - 1].sum() == np.sum(pred == k - 1)


# -- regression ----------------------------------------------------------------------


def test_hand_computed_regression():
    t = [1.0, 2.0, 3.0]
    same = regression_metrics(t, t)
    assert same == pytest.approx({"rmse": 0.0, "ccc": 1.0, "pcc": 1.0, "sagr": 1.0})
    # shifted by 1: r stays 1; CCC = 2·(2/3) / (2/3 + 2/3 + 1) = 4/7
    shifted = regression_metrics([2.0, 3.0, 4.0], t)
    assert shifted == pytest.approx({"rmse": 1.0, "ccc": 4 / 7, "pcc": 1.0, "sagr": 1.0})
    # doubled: cov 4/3, var_p 8/3, var_t 2/3, mean gap 2 → CCC = (8/3) / (8/3 + 2/3 + 4) = 4/11
    doubled = regression_metrics([2.0, 4.0, 6.0], t)
    assert doubled["ccc"] == pytest.approx(4 / 11) and doubled["pcc"] == pytest.approx(1.0)
    assert doubled["rmse"] == pytest.approx(math.sqrt((1 + 4 + 9) / 3))
    # signs agree on the first and last of four
    signs = regression_metrics([0.5, -0.2, 0.1, -0.3], [0.4, 0.3, -0.1, -0.9])
    assert signs["sagr"] == 0.5
    assert regression_metrics([-1.0, 0.0, 1.0], [1.0, 0.0, -1.0])["pcc"] == pytest.approx(-1.0)
    assert math.isnan(regression_metrics([0.2, 0.2], [0.1, 0.5])["pcc"])  # constant prediction


def test_random_regression_matches_the_definitions():
    rng = np.random.default_rng(5)
    t = rng.uniform(-1, 1, 200)
    p = 0.7 * t + rng.normal(0, 0.3, 200) + 0.1
    n = len(t)
    mp, mt = sum(p) / n, sum(t) / n
    cov = sum((a - mp) * (b - mt) for a, b in zip(p, t)) / n
    var_p = sum((a - mp) ** 2 for a in p) / n
    var_t = sum((b - mt) ** 2 for b in t) / n
    r = regression_metrics(p, t)
    assert r["rmse"] == pytest.approx(math.sqrt(sum((a - b) ** 2 for a, b in zip(p, t)) / n), rel=1e-12)
    assert r["pcc"] == pytest.approx(cov / math.sqrt(var_p * var_t), rel=1e-12)
    assert r["ccc"] == pytest.approx(2 * cov / (var_p + var_t + (mp - mt) ** 2), rel=1e-12)
    assert r["sagr"] == pytest.approx(sum(1 for a, b in zip(p, t) if (a > 0) == (b > 0)) / n)
    assert r["ccc"] < r["pcc"]  # the bias and scale cost CCC, not r


# -- evaluators ----------------------------------------------------------------------


class TinyExpressionDataset(torch.utils.data.Dataset):
    """What the evaluators and the engine need of an expression dataset: ``task``,
    ``class_names``, ``labels`` and/or ``valence_arousal``, items with an index."""

    def __init__(self, task, n=10, size=48, seed=0):
        gen = torch.Generator().manual_seed(seed)
        self.task, self.name = task, "tiny"
        self.class_names = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
        self.images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=gen)
        self.labels = torch.randint(0, 7, (n,), generator=gen)
        self.valence_arousal = torch.rand(n, 2, generator=gen) * 2 - 1

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        item = {"image": self.images[i], "index": i}
        if self.task in ("classification", "affect"):
            item["label"] = self.labels[i]
        if self.task in ("regression", "affect"):
            item["valence_arousal"] = self.valence_arousal[i]
        return item


def test_evaluators_by_task_and_clear_errors():
    assert {"classification", "regression", "affect", "triplet"} <= set(EVALUATORS)
    ds = TinyExpressionDataset("affect")
    logits = torch.randn(10, 7)
    va = torch.rand(10, 2) - 0.5
    both = build_evaluator(ds)({"logits": logits, "valence_arousal": va})
    expected = classification_metrics(ds.labels.numpy(), logits.argmax(1).numpy(), ds.class_names)
    assert both["accuracy"] == expected["accuracy"] and both["confusion_matrix"] == expected["confusion_matrix"]
    assert both["valence"] == pytest.approx(regression_metrics(va[:, 0].numpy(), ds.valence_arousal[:, 0].numpy()))
    assert both["arousal"] == pytest.approx(regression_metrics(va[:, 1].numpy(), ds.valence_arousal[:, 1].numpy()))
    text = build_evaluator(ds).summary(both)
    assert "macro F1" in text and "valence: RMSE" in text and "arousal: RMSE" in text
    only_va = build_evaluator(ds)({"valence_arousal": va})  # a regressor on an affect set
    assert "valence" in only_va and "accuracy" not in only_va
    assert build_evaluator(ds).artifacts(only_va) == {}

    cls = build_evaluator(TinyExpressionDataset("classification"))
    with pytest.raises(ValueError, match=r"\(10, 8\) logits but the dataset has 7 classes"):
        cls({"logits": torch.randn(10, 8)})
    with pytest.raises(KeyError, match="gave valence_arousal but this dataset is scored on 'logits'"):
        cls({"valence_arousal": va})
    with pytest.raises(KeyError, match="scored on 'valence_arousal'"):
        build_evaluator(TinyExpressionDataset("regression"))({"logits": logits})


def _blue_cells(img):
    """Pixels in pure blue (BGR 255, 0, 0): cells holding their whole row."""
    return int(np.all(img == (255, 0, 0), axis=2).sum())


def test_confusion_matrix_png():
    names = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    diagonal = draw_confusion_matrix(np.diag([5, 3, 4, 2, 6, 1, 7]), names, cell=40)
    spread = draw_confusion_matrix(np.full((7, 7), 3), names, cell=40)
    assert diagonal.shape == spread.shape and diagonal.dtype == np.uint8
    # seven full cells (less their borders and text) on the diagonal, none when spread
    assert 7 * 30 * 30 < _blue_cells(diagonal) < 7 * 40 * 40
    assert _blue_cells(spread) == 0
    png = build_evaluator(TinyExpressionDataset("classification")).artifacts(
        {"confusion_matrix": np.diag([5, 3, 4, 2, 6, 1, 7]).tolist(), "class_names": names})
    decoded = cv2.imdecode(np.frombuffer(png["confusion_matrix.png"], np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape[0] > 7 * 64 and _blue_cells(decoded) > 7 * 50 * 50


@pytest.mark.parametrize("task,arch", [("classification", "Classifier"), ("regression", "ValenceArousalRegressor"),
                                       ("affect", "ClassifierRegressor")])
def test_inference_writes_results_and_png(task, arch, tmp_path):
    cfg = load_config(None, ["MODEL.META_ARCHITECTURE", arch, "MODEL.BACKBONE.NAME", "deep_emotion",
                             "INPUT.SIZE", "48"])
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    ds = TinyExpressionDataset(task, n=11)
    loader = DataLoader(ds, batch_size=4, sampler=InferenceSampler(len(ds), 0, 1))
    results = inference(model, loader, "tiny", str(tmp_path))
    folder = tmp_path / "inference" / "tiny"
    written = json.loads((folder / "results.json").read_text())
    with torch.no_grad():
        out = model({"image": ds.images})
    if "logits" in out:
        expected = classification_metrics(ds.labels.numpy(), out["logits"].argmax(1).numpy(), ds.class_names)
        assert written["confusion_matrix"] == expected["confusion_matrix"]
        assert written["accuracy"] == pytest.approx(expected["accuracy"])
        assert written["count"] == 11
        assert cv2.imread(str(folder / "confusion_matrix.png")) is not None
    else:
        assert not (folder / "confusion_matrix.png").exists()
    if "valence_arousal" in out:
        for i, dim in enumerate(("valence", "arousal")):
            ref = regression_metrics(out["valence_arousal"][:, i].numpy(), ds.valence_arousal[:, i].numpy())
            assert written[dim] == pytest.approx(ref, rel=1e-5, abs=1e-6)
    assert written.keys() == results.keys()
