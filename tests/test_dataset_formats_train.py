"""Each dataset format, written here as downloaded, trains 2 iterations with its shipped
config through tools/train_net.py and is scored again by tools/test_net.py; a config
whose class names are not a test split's stops before training."""
import json
import os
import subprocess
import sys

import pytest

from fec.data.datasets.synthetic_expression import SyntheticExpressionDataset
from fec.data.synthetic_files import render_splits, write_fer2013, write_rafdb

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FER2013 = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
FERPLUS = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt"]
RAFDB = ["surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral"]
TINY = ["SOLVER.IMS_PER_BATCH", "8", "SOLVER.MAX_ITER", "2", "SOLVER.WARMUP_ITERS", "1", "SOLVER.CHECKPOINT_PERIOD",
        "2", "TEST.EVAL_PERIOD", "0", "TEST.IMS_PER_BATCH", "8", "DATALOADER.NUM_WORKERS", "0", "LOG_PERIOD", "1"]
# FER+ votes (8 emotions, unknown, NF) cycled over the rows: kept, tie, unknown and
# not-a-face majorities, only single votes, kept once single votes are ignored.
VOTES = [[0, 9, 0, 0, 0, 0, 0, 0, 1, 0], [4, 0, 0, 4, 2, 0, 0, 0, 0, 0], [2, 0, 0, 0, 0, 0, 0, 0, 6, 2],
         [0, 0, 0, 0, 0, 0, 0, 0, 1, 9], [1, 1, 1, 1, 1, 1, 1, 1, 1, 1], [4, 1, 1, 1, 1, 1, 1, 0, 0, 0],
         [0, 0, 3, 0, 0, 0, 7, 0, 0, 0], [0, 0, 0, 0, 0, 2, 0, 8, 0, 0]]
KEPT = {0, 5, 6, 7}

pytestmark = pytest.mark.slow


def run(tool, config, *args, check=True):
    cmd = [sys.executable, os.path.join(ROOT, "tools", tool), "--config-file", os.path.join(ROOT, "config", config),
           *args]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """One DATASETS.ROOT per FER2013 distribution (datasets/fer2013 in that form, FER+
    votes beside the fer2013.csv one) and RAF-DB, from the synthetic faces."""
    out = tmp_path_factory.mktemp("formats")
    splits = [(usage, SyntheticExpressionDataset(split, "fer", "classification", n, 4, seed=3))
              for split, usage, n in (("train", "Training", 24), ("test", "PublicTest", 16),
                                      ("private_test", "PrivateTest", 16))]
    faces = render_splits(splits)
    for form in ("fer2013", "icml", "kaggle", "folders"):
        write_fer2013(str(out / form / "fer2013"), faces, form)
    rows = ["Usage,Image name," + ",".join(FERPLUS + ["unknown", "NF"])]
    for usage, pixels, _ in faces:
        for _ in pixels:
            i = len(rows) - 1
            rows.append(f"{usage},fer{i:07d}.png," + ",".join(map(str, VOTES[i % len(VOTES)])))
    (out / "fer2013" / "ferplus").mkdir()
    (out / "fer2013" / "ferplus" / "fer2013new.csv").write_text("\n".join(rows) + "\n")
    rafdb = [(split, SyntheticExpressionDataset(split, "rafdb", "classification", n, 4, seed=3, render_size=100))
             for split, n in (("train", 24), ("test", 12))]
    write_rafdb(str(out / "rafdb" / "rafdb"), rafdb)
    return out


def _kept(usage):
    # fer2013new.csv rows of one Usage that FER+'s rule keeps (rows 0-23 Training, 24-39, 40-55)
    first, n = {"Training": (0, 24), "PublicTest": (24, 16), "PrivateTest": (40, 16)}[usage]
    return sum((first + i) % len(VOTES) in KEPT for i in range(n))


CASES = {
    # form: (config, overrides, {test dataset: (classes, faces)})
    "fer2013": ("fer2013/deep_emotion.yaml", [],
                {"fer2013_public_test": (FER2013, 16), "fer2013_private_test": (FER2013, 16)}),
    "icml": ("fer2013/deep_emotion.yaml", [],
             {"fer2013_public_test": (FER2013, 16), "fer2013_private_test": (FER2013, 16)}),
    # Kaggle's train.csv + test.csv: the Training rows are the only labelled ones
    "kaggle": ("fer2013/deep_emotion.yaml", ["DATASETS.TEST", "('fer2013_train',)"],
               {"fer2013_train": (FER2013, 24)}),
    # the image-folder release: test/ is PublicTest and PrivateTest together
    "folders": ("fer2013/deep_emotion.yaml", ["DATASETS.TEST", "('fer2013_test',)"], {"fer2013_test": (FER2013, 32)}),
    "ferplus_majority": ("ferplus/deep_emotion_majority.yaml", [],
                         {"ferplus_val": (FERPLUS, _kept("PublicTest")),
                          "ferplus_test": (FERPLUS, _kept("PrivateTest"))}),
    "ferplus_probability": ("ferplus/deep_emotion_probability.yaml", [],
                            {"ferplus_val": (FERPLUS, _kept("PublicTest")),
                             "ferplus_test": (FERPLUS, _kept("PrivateTest"))}),
    "rafdb": ("rafdb/resnet18.yaml", ["INPUT.SIZE", "64", "MODEL.BACKBONE.WEIGHTS", ""], {"rafdb_test": (RAFDB, 12)}),
}


@pytest.mark.parametrize("form", list(CASES))
def test_trains_and_evaluates_with_its_shipped_config(data, form, tmp_path):
    config, opts, tests = CASES[form]
    root = data / ("fer2013" if form.startswith("ferplus") else form)
    opts = [*TINY, "DATASETS.ROOT", str(root), *opts]
    proc = run("train_net.py", config, *opts, "OUTPUT_DIR", str(tmp_path / "train"))
    log = proc.stdout + proc.stderr
    assert "iter: 2/2" in log and "loss_cls" in log
    if form.startswith("ferplus"):
        # rows 0-23 are the eight vote patterns three times each
        assert ("12 of 24 faces kept; dropped 0 without an image name, 6 without a majority (ties, single votes), "
                "3 with an unknown majority, 3 with a not-a-face majority") in log
    run("test_net.py", config, "--ckpt", str(tmp_path / "train" / "model_final.pth"), *opts,
        "OUTPUT_DIR", str(tmp_path / "test"))
    for name, (classes, count) in tests.items():
        trained = json.loads((tmp_path / "train" / "inference" / name / "results.json").read_text())
        again = json.loads((tmp_path / "test" / "inference" / name / "results.json").read_text())
        assert trained["class_names"] == again["class_names"] == classes
        assert trained["count"] == again["count"] == count
        assert trained["confusion_matrix"] == again["confusion_matrix"]
        assert (tmp_path / "test" / "inference" / name / "confusion_matrix.png").is_file()


def test_class_names_of_every_test_split_are_checked_before_training(data, tmp_path):
    # FER2013's seven names, with FER+'s val split among the test sets
    proc = run("train_net.py", "fer2013/deep_emotion.yaml", *TINY, "DATASETS.ROOT", str(data / "fer2013"),
               "DATASETS.TEST", "('fer2013_public_test', 'ferplus_val')", "OUTPUT_DIR", str(tmp_path), check=False)
    assert proc.returncode != 0
    assert "dataset ferplus_val has the classes ['neutral', 'happiness'" in proc.stderr
    assert "iter:" not in proc.stdout + proc.stderr and not (tmp_path / "model_final.pth").exists()
