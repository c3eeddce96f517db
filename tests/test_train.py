"""End to end through the CLIs, as a user runs them: train_net, test_net, --resume."""
import json
import os
import shutil
import subprocess
import sys
import warnings

import pytest
import torch

from helpers.checkpoints import weights

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = [
    "INPUT.SIZE", "64",
    "DATASETS.SYNTHETIC.TRAIN_IDENTITIES", "10", "DATASETS.SYNTHETIC.TEST_IDENTITIES", "5",
    "DATASETS.SYNTHETIC.FACES_PER_IDENTITY", "4",
    "DATASETS.SYNTHETIC.TRAIN_TRIPLETS", "200", "DATASETS.SYNTHETIC.TEST_TRIPLETS", "61",
    "SOLVER.IMS_PER_BATCH", "4", "SOLVER.MAX_ITER", "20", "SOLVER.CHECKPOINT_PERIOD", "10",
    "SOLVER.WARMUP_ITERS", "5", "SOLVER.BASE_LR", "0.01",
    "DATALOADER.NUM_WORKERS", "0", "LOG_PERIOD", "5", "TEST.IMS_PER_BATCH", "16",
    # The quickstart from scratch, backbone trained, every sampled triplet kept.
    "MODEL.WEIGHTS", "", "MODEL.BACKBONE.FREEZE_AT", "0", "DATASETS.SYNTHETIC.MIN_GAP", "0.0",
]

pytestmark = pytest.mark.slow


def run(tool, *args):
    cmd = [sys.executable, os.path.join(ROOT, "tools", tool), "--config-file",
           os.path.join(ROOT, "config", "quickstart.yaml"), *args]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    log = run("train_net.py", *TINY, "OUTPUT_DIR", str(out))
    return out, log


def test_training_writes_checkpoints_metrics_events_and_results(trained):
    out, log = trained
    assert "eta:" in log and "iter: 20/20" in log
    for name in ("model_0000010.pth", "model_final.pth", "last_checkpoint", "log.txt", "config.yaml", "metrics.json"):
        assert (out / name).exists(), name
    assert (out / "last_checkpoint").read_text().strip() == "model_final.pth"
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(out))
    records = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines()]
    train = [r for r in records if "train/loss" in r]
    assert [r["iteration"] for r in train] == [5, 10, 15, 20]
    assert all(r["train/loss"] >= 0 and "train/lr" in r for r in train)
    assert any("synthetic_fec_test/accuracy" in r for r in records)
    results = json.loads((out / "inference" / "synthetic_fec_test" / "results.json").read_text())
    per_type = results["per_type"]
    assert results["count"] == sum(v["count"] for v in per_type.values()) > 40
    assert 0.0 <= results["accuracy"] <= 1.0
    assert "ceiling" in results and results["ceiling"]["count"] == results["count"]
    assert results["images_embedded"] == 20  # 5 identities x 4 faces, each embedded once
    assert "triplet accuracy" in log and "true-expression ceiling" in log
    w = weights(out / "model_final.pth")
    assert not all(torch.equal(a, b) for a, b in zip(w.values(), weights(out / "model_0000010.pth").values()))


def test_test_net_reproduces_the_final_evaluation(trained, tmp_path):
    out, _ = trained
    before = json.loads((out / "inference" / "synthetic_fec_test" / "results.json").read_text())
    run("test_net.py", "--ckpt", str(out / "model_final.pth"), *TINY, "OUTPUT_DIR", str(tmp_path))
    after = json.loads((tmp_path / "inference" / "synthetic_fec_test" / "results.json").read_text())
    assert after["accuracy"] == before["accuracy"] and after["per_type"] == before["per_type"]


def test_resume_10_plus_10_is_bit_identical_to_20(trained, tmp_path):
    out, _ = trained
    shutil.copy(out / "model_0000010.pth", tmp_path / "model_0000010.pth")
    (tmp_path / "last_checkpoint").write_text("model_0000010.pth")
    # more loader workers than the first run: the data stream must not depend on them
    log = run("train_net.py", "--resume", *TINY, "OUTPUT_DIR", str(tmp_path), "DATALOADER.NUM_WORKERS", "2",
              "DATASETS.TEST", "()")
    assert "Start training at iteration 10 of 20" in log
    full, resumed = weights(out / "model_final.pth"), weights(tmp_path / "model_final.pth")
    assert full.keys() == resumed.keys()
    for k in full:
        assert torch.equal(full[k], resumed[k]), k


def test_train_sh_passes_arguments_through(tmp_path):
    proc = subprocess.run(["bash", os.path.join(ROOT, "train.sh"), "config/quickstart.yaml", *TINY,
                           "SOLVER.MAX_ITER", "2", "DATASETS.TEST", "()", "OUTPUT_DIR", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHON": sys.executable})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "model_final.pth").exists()
    assert torch.load(tmp_path / "model_final.pth", weights_only=True)["iteration"] == 2


def _stage1_checkpoint(out, iteration):
    """A stage-1 (config/quickstart_pretrain.yaml) checkpoint at ``iteration``, as an
    interrupted or finished run leaves it."""
    from fec.config import load_config
    from fec.modeling import build_model
    from fec.solver import make_lr_scheduler, make_optimizer
    from fec.utils.checkpoint import Checkpointer

    cfg = load_config(os.path.join(ROOT, "config", "quickstart_pretrain.yaml"))
    torch.manual_seed(0)
    model = build_model(cfg)
    optimizer = make_optimizer(cfg, model)
    scheduler = make_lr_scheduler(cfg, optimizer)
    with warnings.catch_warnings():  # stepped without optimizer steps, on purpose
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(iteration):
            scheduler.step()
    Checkpointer(model, optimizer, scheduler, str(out)).save(
        "model_final" if iteration == cfg.SOLVER.MAX_ITER else f"model_{iteration:07d}", iteration)
    return cfg.SOLVER.MAX_ITER


def test_train_sh_without_a_config_resumes_then_skips_stage_1_and_passes_overrides_to_stage_2(tmp_path):
    # a copy of the scripts and configs, so the runs' output/ is the test's own
    for name in ("train.sh", "tools", "config"):
        (shutil.copy if name.endswith(".sh") else shutil.copytree)(os.path.join(ROOT, name), tmp_path / name)
    stage1 = tmp_path / "output" / "quickstart_pretrain"
    stage1.mkdir(parents=True)
    total = _stage1_checkpoint(stage1, 1198)  # interrupted two iterations before its end
    env = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    stage2 = [*TINY, "SOLVER.MAX_ITER", "2", "DATASETS.TEST", "()", "INPUT.SIZE", "64"]
    logs = []
    for run_number in (1, 2):
        out = tmp_path / f"stage2_{run_number}"
        proc = subprocess.run(["bash", str(tmp_path / "train.sh"), *stage2, "MODEL.WEIGHTS",
                               "output/quickstart_pretrain/model_final.pth", "OUTPUT_DIR", str(out)],
                              cwd=tmp_path, capture_output=True, text=True, timeout=1200, env=env)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        logs.append(proc.stdout + proc.stderr)
        # the overrides went to stage 2: two iterations there, from stage 1's backbone
        assert torch.load(out / "model_final.pth", weights_only=True)["iteration"] == 2
    assert f"Start training at iteration 1198 of {total}" in logs[0]  # resumed, not restarted
    assert f"Start training at iteration {total} of {total}" in logs[1]  # complete: nothing to train
    assert torch.load(stage1 / "model_final.pth", weights_only=True)["iteration"] == total
