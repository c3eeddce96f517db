"""End to end through the CLIs on synthetic faces: train the quickstart classifier
(Deep-Emotion, FER2013-style faces) and the valence/arousal regressor started from it
with train_net, evaluate with test_net, and check results.json against metrics
computed here from the checkpoint's own predictions."""
import json
import math
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from fec.config import load_config
from fec.data import build_dataset
from fec.modeling import build_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = [
    "DATASETS.SYNTHETIC_AFFECT.TRAIN_IMAGES", "96", "DATASETS.SYNTHETIC_AFFECT.TEST_IMAGES", "45",
    "DATASETS.SYNTHETIC_AFFECT.IMAGES_PER_IDENTITY", "4",
    "SOLVER.IMS_PER_BATCH", "16", "SOLVER.MAX_ITER", "12", "SOLVER.CHECKPOINT_PERIOD", "6",
    "SOLVER.WARMUP_ITERS", "2", "DATALOADER.NUM_WORKERS", "0", "LOG_PERIOD", "4", "TEST.IMS_PER_BATCH", "16",
]

pytestmark = pytest.mark.slow


def config(name):
    return os.path.join(ROOT, "config", name)


def run(tool, config_file, *args):
    cmd = [sys.executable, os.path.join(ROOT, "tools", tool), "--config-file", config_file, *args]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def predictions(config_file, opts, checkpoint, test_name):
    """The checkpoint's outputs on every test image, computed here, and the dataset."""
    cfg = load_config(config_file, opts)
    model = build_model(cfg)
    model.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True)["model"])
    model.eval()
    dataset = build_dataset(cfg, test_name, is_train=False)
    images = torch.stack([dataset[i]["image"] for i in range(len(dataset))])
    with torch.no_grad():
        return model({"image": images}), dataset


def expected_classification(labels, pred, k):
    """Accuracy, per-class recall, macro F1 (over classes seen in truth or prediction)
    and Cohen's kappa, from their definitions."""
    labels, pred = np.asarray(labels), np.asarray(pred)
    n = len(labels)
    cm = np.zeros((k, k), dtype=int)
    for y, p in zip(labels, pred):
        cm[y, p] += 1
    f1s = []
    for c in range(k):
        tp, fp, fn = cm[c, c], cm[:, c].sum() - cm[c, c], cm[c, :].sum() - cm[c, c]
        if tp + fp + fn:
            f1s.append(2 * tp / (2 * tp + fp + fn))
    p_o = np.trace(cm) / n
    p_e = sum(cm[c, :].sum() * cm[:, c].sum() for c in range(k)) / n ** 2
    recall = {c: cm[c, c] / cm[c, :].sum() for c in range(k) if cm[c, :].sum()}
    return {"accuracy": p_o, "macro_f1": float(np.mean(f1s)), "kappa": (p_o - p_e) / (1 - p_e),
            "confusion_matrix": cm.tolist(), "recall": recall}


def expected_regression(p, t):
    p, t = np.asarray(p, np.float64), np.asarray(t, np.float64)
    cov = np.mean((p - p.mean()) * (t - t.mean()))
    return {"rmse": math.sqrt(np.mean((p - t) ** 2)),
            "pcc": cov / (p.std() * t.std()),
            "ccc": 2 * cov / (p.var() + t.var() + (p.mean() - t.mean()) ** 2),
            "sagr": np.mean(np.sign(p) == np.sign(t))}


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    out = tmp_path_factory.mktemp("fer")
    log = run("train_net.py", config("quickstart_fer.yaml"), *TINY, "OUTPUT_DIR", str(out))
    return out, log


@pytest.fixture(scope="module")
def regressor(classifier, tmp_path_factory):
    """The quickstart regressor started from the classifier, its backbone frozen so
    that the carried-over weights can be compared exactly."""
    cls_out, _ = classifier
    out = tmp_path_factory.mktemp("va")
    opts = [*TINY, "MODEL.WEIGHTS", str(cls_out / "model_final.pth"), "MODEL.BACKBONE.FREEZE_AT", "-1",
            "OUTPUT_DIR", str(out)]
    log = run("train_net.py", config("quickstart_affect_va.yaml"), *opts)
    return out, log, opts


def test_classifier_trains_and_test_net_scores_its_predictions(classifier, tmp_path):
    out, log = classifier
    assert "iter: 12/12" in log and "loss_cls" in log
    assert "macro F1" in log and "kappa" in log
    trained = json.loads((out / "inference" / "synthetic_fer_test" / "results.json").read_text())

    run("test_net.py", config("quickstart_fer.yaml"), "--ckpt", str(out / "model_final.pth"), *TINY,
        "OUTPUT_DIR", str(tmp_path))
    folder = tmp_path / "inference" / "synthetic_fer_test"
    results = json.loads((folder / "results.json").read_text())
    for key in ("accuracy", "macro_f1", "kappa", "confusion_matrix", "per_class"):
        assert results[key] == trained[key], key

    out_, dataset = predictions(config("quickstart_fer.yaml"), TINY, out / "model_final.pth", "synthetic_fer_test")
    logits = out_["logits"]
    assert logits.shape == (45, 7)
    labels = dataset.labels.numpy()
    exp = expected_classification(labels, logits.argmax(1).numpy(), 7)
    assert results["count"] == 45
    assert results["confusion_matrix"] == exp["confusion_matrix"]
    assert results["accuracy"] == pytest.approx(exp["accuracy"], abs=1e-12)
    assert results["macro_f1"] == pytest.approx(exp["macro_f1"], abs=1e-12)
    assert results["kappa"] == pytest.approx(exp["kappa"], abs=1e-12)
    names = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert list(results["per_class"]) == names
    for c, name in enumerate(names):
        assert results["per_class"][name]["count"] == int((labels == c).sum())
        if c in exp["recall"]:
            assert results["per_class"][name]["accuracy"] == pytest.approx(exp["recall"][c], abs=1e-12)
    png = cv2.imread(str(folder / "confusion_matrix.png"))
    assert png is not None and png.shape[0] > 7 * 64 and png.shape[1] > 7 * 64


def test_regressor_starts_from_the_classifier_backbone(classifier, regressor):
    cls_out, _ = classifier
    out, log, _ = regressor
    assert "Skipped 2 key(s)" in log and "heads.classifier.fc.weight, heads.classifier.fc.bias" in log
    assert "heads.regressor.fc.weight" in log and "loss_va" in log
    cls = torch.load(cls_out / "model_final.pth", weights_only=True)["model"]
    va = torch.load(out / "model_final.pth", weights_only=True)["model"]
    backbone = [k for k in cls if k.startswith("backbone.")]
    assert backbone and backbone == [k for k in va if k.startswith("backbone.")]
    for k in backbone:
        assert torch.equal(cls[k], va[k]), k
    assert "heads.classifier.fc.weight" not in va and va["heads.regressor.fc.weight"].shape == (2, 50)


def test_test_net_scores_the_regressor(regressor, tmp_path):
    out, _, opts = regressor
    cfg_file = config("quickstart_affect_va.yaml")
    run("test_net.py", cfg_file, "--ckpt", str(out / "model_final.pth"), *opts[:-2], "OUTPUT_DIR", str(tmp_path))
    results = json.loads((tmp_path / "inference" / "synthetic_affectnet_va_test" / "results.json").read_text())
    assert not (tmp_path / "inference" / "synthetic_affectnet_va_test" / "confusion_matrix.png").exists()
    out_, dataset = predictions(cfg_file, opts[:-2], out / "model_final.pth", "synthetic_affectnet_va_test")
    va = out_["valence_arousal"].numpy()
    target = dataset.valence_arousal.numpy()
    assert results["count"] == len(target) == 45
    for i, dim in enumerate(("valence", "arousal")):
        exp = expected_regression(va[:, i], target[:, i])
        for metric in ("rmse", "ccc", "pcc", "sagr"):
            assert results[dim][metric] == pytest.approx(exp[metric], rel=1e-5, abs=1e-7), (dim, metric)


def test_affectnet_configs_run_on_synthetic_faces(tmp_path):
    """The shipped MobileNetV2 configs, classifier then regressor, at 64 px on the
    synthetic AffectNet-style faces (no download: random init)."""
    small = [*TINY, "SOLVER.MAX_ITER", "2", "INPUT.SIZE", "64", "MODEL.BACKBONE.WEIGHTS", ""]
    run("train_net.py", config("affectnet/mobilenet_v2_cls.yaml"), *small,
        "DATASETS.TRAIN", "('synthetic_affectnet_train',)", "DATASETS.TEST", "('synthetic_affectnet_test',)",
        "OUTPUT_DIR", str(tmp_path / "cls"))
    cls = json.loads((tmp_path / "cls" / "inference" / "synthetic_affectnet_test" / "results.json").read_text())
    assert len(cls["per_class"]) == 8 and "contempt" in cls["per_class"] and cls["count"] == 45
    log = run("train_net.py", config("affectnet/mobilenet_v2_va.yaml"), *small,
              "MODEL.WEIGHTS", str(tmp_path / "cls" / "model_final.pth"),
              "DATASETS.TRAIN", "('synthetic_affectnet_va_train',)", "DATASETS.TEST", "('synthetic_affectnet_va_test',)",
              "OUTPUT_DIR", str(tmp_path / "va"))
    assert "heads.classifier.fc.weight" in log
    va = json.loads((tmp_path / "va" / "inference" / "synthetic_affectnet_va_test" / "results.json").read_text())
    assert set(va["valence"]) == {"rmse", "ccc", "pcc", "sagr"} and va["count"] == 45
