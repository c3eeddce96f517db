"""bash inference.sh N for any N: TEST.IMS_PER_BATCH (a global batch) is split over the
processes as evenly as possible, and the results do not depend on N."""
import json
import os
import subprocess

import pytest
import torch

from fec.config import load_config
from fec.modeling import build_model
from fec.utils.checkpoint import Checkpointer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = [pytest.mark.slow, pytest.mark.multiprocess]


def evaluate(nproc, config, ckpt, out):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore::FutureWarning"}
    proc = subprocess.run(["bash", "inference.sh", str(nproc), config, ckpt, "OUTPUT_DIR", str(out),
                           "DATALOADER.NUM_WORKERS", "0"],
                          cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (results,) = [json.loads(p.read_text()) for p in (out / "inference").glob("*/results.json")]
    return results


def test_results_identical_for_1_2_3_processes(quickstart_ckpt, tmp_path):
    # config/quickstart.yaml as shipped: TEST.IMS_PER_BATCH 128, which 3 does not divide
    results = {n: evaluate(n, "config/quickstart.yaml", quickstart_ckpt, tmp_path / f"n{n}") for n in (1, 2, 3)}
    runs = {n: r.pop("inference") for n, r in results.items()}
    assert results[1] == results[2] == results[3]
    assert runs[3]["processes"] == 3 and sum(runs[3]["samples_per_process"]) == runs[1]["samples"]
    log = (tmp_path / "n3" / "log.txt").read_text()
    assert "TEST.IMS_PER_BATCH 128 split over 3 processes as evenly as possible: 43, 43, 42 per process" in log


def test_pretrain_quickstart_results_identical_for_1_and_3_processes(tmp_path):
    # stage 1's intensity regressor: continuous metrics (RMSE, CCC), compared exactly
    torch.manual_seed(0)
    model = build_model(load_config(os.path.join(ROOT, "config/quickstart_pretrain.yaml")))
    Checkpointer(model, save_dir=str(tmp_path)).save("model_final", 0)
    ckpt = str(tmp_path / "model_final.pth")
    one, three = (evaluate(n, "config/quickstart_pretrain.yaml", ckpt, tmp_path / f"n{n}") for n in (1, 3))
    assert three.pop("inference")["processes"] == 3
    one.pop("inference")
    assert one == three
