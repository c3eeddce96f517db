"""torchrun --max-restarts: a worker lost after a checkpoint; the restarted worker group
resumes from the last complete checkpoint by itself and ends where an uninterrupted run
ends, bit for bit (CPU, gloo)."""
import os
import subprocess
import sys

import pytest
import torch

from helpers.checkpoints import assert_same_weights, assert_weights_moved, weights

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KILLED_ONCE = os.path.join(ROOT, "tests", "helpers", "killed_once.py")
TINY = [
    "INPUT.SIZE", "64",
    "DATASETS.SYNTHETIC.TRAIN_IDENTITIES", "8", "DATASETS.SYNTHETIC.FACES_PER_IDENTITY", "5",
    "DATASETS.SYNTHETIC.TRAIN_TRIPLETS", "200", "DATASETS.TEST", "()",
    "SOLVER.IMS_PER_BATCH", "4", "SOLVER.WARMUP_ITERS", "2", "SOLVER.BASE_LR", "0.01",
    "SOLVER.MAX_ITER", "12", "SOLVER.CHECKPOINT_PERIOD", "3",
    "DATALOADER.NUM_WORKERS", "0", "LOG_PERIOD", "1", "MODEL.DEVICE", "cpu",
    "MODEL.WEIGHTS", "", "MODEL.BACKBONE.FREEZE_AT", "0", "DATASETS.SYNTHETIC.MIN_GAP", "0.0",
]

pytestmark = [pytest.mark.slow, pytest.mark.multiprocess]


def torchrun(script, out, env=None, *flags):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *flags,
           script, "--config-file", "config/quickstart.yaml", *TINY, "OUTPUT_DIR", str(out)]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore::FutureWarning", **(env or {})}
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=full_env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc.stdout + proc.stderr


def test_lost_worker_restarts_from_last_checkpoint_bit_identically(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    torchrun(os.path.join(ROOT, "tools", "train_net.py"), whole)
    output = torchrun(KILLED_ONCE, killed, {"KILL_AFTER": "6", "KILL_RANK": "1"}, "--max-restarts=1")
    # rank 1 was SIGKILLed after iteration 6's checkpoint, and the group restarted once
    assert "exitcode: -9" in output or "SIGKILL" in output
    log = (killed / "log.txt").read_text()
    assert log.count("Start training at iteration 0 of 12") == 1
    assert "restart 1 of at most 1): resuming from the last complete checkpoint" in log
    assert "model_0000006.pth" in log.split("restart 1 of at most 1")[1].splitlines()[0]
    assert "Start training at iteration 6 of 12" in log
    a, b = weights(whole / "model_final.pth"), weights(killed / "model_final.pth")
    assert_same_weights(a, b)
    first = weights(whole / "model_0000003.pth")
    assert_weights_moved(a, first)
