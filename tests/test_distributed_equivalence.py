"""Two ranks under torchrun train as one process does on the same global batch: the
sampler splits each global batch of SOLVER.IMS_PER_BATCH between the ranks, and DDP's
gradient average is the single process's gradient."""
import os
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Stage 1 of the quickstart (convnet backbone + linear intensity head, MSE loss).
CONFIG = os.path.join(ROOT, "config", "quickstart_pretrain.yaml")
TRAIN_NET = os.path.join(ROOT, "tools", "train_net.py")
# Why equality is expected with these settings:
# - MODEL.BACKBONE.FREEZE_AT -1 freezes the whole backbone, and frozen stages stay in
#   eval mode, so no BatchNorm normalises with batch statistics (which are per rank and
#   would differ from the single process's). The stage-2 quickstart (triplet) head has
#   train-mode BatchNorm of its own, so it cannot be used here.
# - The intensity head is pool -> linear (dropout 0), and its loss is the batch mean of a
#   squared error: the mean of the two ranks' means over 4 faces each, which DDP's
#   gradient average computes, is the mean over the 8 faces of the global batch.
# - Each sample's augmentation seed is a function of its global stream position, so
#   the 8 faces of each global batch are the same faces, augmented alike, in both runs.
TINY = [
    "INPUT.SIZE", "32", "DATASETS.SYNTHETIC_AFFECT.TRAIN_IMAGES", "64",
    "MODEL.WEIGHTS", "", "MODEL.BACKBONE.FREEZE_AT", "-1",
    "SOLVER.IMS_PER_BATCH", "8", "SOLVER.MAX_ITER", "6", "SOLVER.WARMUP_ITERS", "2",
    "SOLVER.CHECKPOINT_PERIOD", "3", "DATALOADER.NUM_WORKERS", "0", "DATASETS.TEST", "()",
]

pytestmark = [pytest.mark.slow, pytest.mark.multiprocess]


def train(nproc, out):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           TRAIN_NET, "--config-file", CONFIG, *TINY, "OUTPUT_DIR", str(out)]
    # GPUs hidden: the CPU (gloo) runs whatever the machine has
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore::FutureWarning",
           "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    log = (out / "log.txt").read_text()
    assert ("Using 2 process(es), backend gloo" if nproc == 2 else "Using 1 process(es)\n") in log
    return [torch.load(out / name, map_location="cpu", weights_only=True)["model"]
            for name in ("model_0000003.pth", "model_final.pth")]


def test_two_ranks_train_as_one_process_on_the_same_global_batch(tmp_path):
    one, two = train(1, tmp_path / "one"), train(2, tmp_path / "two")
    for a, b in zip(one, two):  # after iteration 3 and after iteration 6
        assert a.keys() == b.keys()
        for k in a:
            torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-6, msg=k)
    # the comparison means something: iterations 4..6 moved the head
    head = [k for k in one[0] if k.startswith("heads.")]
    assert head and not all(torch.equal(one[0][k], one[1][k]) for k in head)
