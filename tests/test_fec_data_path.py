"""The real-data path end to end: synthetic faces written as an official FEC folder
(CSV + photos + crops), read by the FEC dataset through the catalog, trained, evaluated."""
import json
import os
import subprocess
import sys

import pytest

from fec.config import load_config
from fec.data import build_dataset
from fec.data.datasets.synthetic import SyntheticTripletDataset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.slow


def _sh(*cmd):
    proc = subprocess.run([sys.executable, *cmd], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def fec_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("datasets")
    _sh("tools/make_synthetic_fec.py", "--out", str(root / "fec"), "--size", "64",
        "--train-identities", "6", "--test-identities", "4", "--faces-per-identity", "4",
        "--train-triplets", "120", "--test-triplets", "41", "--seed", "3")
    return root


def test_fec_dataset_reads_the_written_folder_like_the_synthetic_one(fec_root):
    cfg = load_config("config/fec/resnet18_conv3x3.yaml", ["DATASETS.ROOT", str(fec_root), "INPUT.SIZE", "64"])
    fec = build_dataset(cfg, "fec_test", is_train=False)
    syn = SyntheticTripletDataset("test", 4, 4, 41, seed=3, render_size=64, is_train=False)
    assert len(fec.triplets) == len(syn.triplets)
    assert fec.type_counts() == syn.type_counts()
    assert fec.num_faces == len(set(syn.triplets.flatten().tolist()))
    sample = fec[0]
    assert sample["image"].shape == (3, 64, 64)


def test_train_and_evaluate_on_the_fec_folder(fec_root, tmp_path):
    out = tmp_path / "out"
    log = _sh("tools/train_net.py", "--config-file", "config/fec/resnet18_conv3x3.yaml",
              "MODEL.BACKBONE.WEIGHTS", "", "DATASETS.ROOT", str(fec_root), "INPUT.SIZE", "64",
              "SOLVER.IMS_PER_BATCH", "4", "SOLVER.MAX_ITER", "4", "SOLVER.WARMUP_ITERS", "0",
              "DATALOADER.NUM_WORKERS", "0", "TEST.IMS_PER_BATCH", "8", "TEST.EVAL_PERIOD", "0",
              "LOG_PERIOD", "2", "OUTPUT_DIR", str(out))
    assert "iter: 4/4" in log
    results = json.loads((out / "inference" / "fec_test" / "results.json").read_text())
    syn = SyntheticTripletDataset("test", 4, 4, 41, seed=3, render_size=64, is_train=False)
    assert results["count"] == len(syn.triplets)
    assert "ceiling" not in results  # real data has no true expression vectors
