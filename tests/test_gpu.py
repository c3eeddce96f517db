"""On a CUDA GPU (skipped without one; `make test-gpu` runs them): mixed-precision
training and its exact resume, channels_last, DDP over nccl with SyncBatchNorm and
evaluation, one process per GPU present."""
import json
import logging
import os
import shutil
import subprocess
import sys
import types

import pytest
import torch

from fec.config import load_config
from fec.modeling import build_model
from fec.utils.env import seed_all
from helpers.tools import load_tool

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICKSTART = os.path.join(ROOT, "config", "quickstart.yaml")
TINY = ["MODEL.WEIGHTS", "", "MODEL.BACKBONE.FREEZE_AT", "0", "INPUT.SIZE", "64",
        "DATASETS.SYNTHETIC.TRAIN_IDENTITIES", "10", "DATASETS.SYNTHETIC.TEST_IDENTITIES", "5",
        "DATASETS.SYNTHETIC.FACES_PER_IDENTITY", "4", "DATASETS.SYNTHETIC.TRAIN_TRIPLETS", "200",
        "DATASETS.SYNTHETIC.TEST_TRIPLETS", "61", "DATASETS.SYNTHETIC.MIN_GAP", "0.0",
        "SOLVER.IMS_PER_BATCH", "8", "SOLVER.MAX_ITER", "20", "SOLVER.CHECKPOINT_PERIOD", "10",
        "SOLVER.WARMUP_ITERS", "2", "DATALOADER.NUM_WORKERS", "0", "TEST.IMS_PER_BATCH", "16",
        "MODEL.DEVICE", "cuda", "CUDA.CUDNN_BENCHMARK", "False", "CUDA.TF32", "False"]

pytestmark = pytest.mark.cuda


def _train(tool, out, resume, *opts):
    cfg = load_config(QUICKSTART, [*TINY, "DATASETS.TEST", "()", "OUTPUT_DIR", str(out), *opts])
    if "DETERMINISTIC" in cfg:
        cfg.defrost()
        cfg.DETERMINISTIC = True
        cfg.freeze()
    seed_all(cfg.SEED)
    return tool.train(cfg, types.SimpleNamespace(resume=resume), logging.getLogger("fec.test_gpu"))


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("channels_last", ["False", "True"])
def test_mixed_precision_training_resumes_exactly_on_cuda(dtype, channels_last, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    tool = load_tool("train_net")
    opts = ["SOLVER.AMP.ENABLED", "True", "SOLVER.AMP.DTYPE", dtype, "MODEL.CHANNELS_LAST", channels_last]
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    model = _train(tool, full, False, *opts)
    assert next(model.parameters()).is_cuda and all(p.dtype == torch.float32 for p in model.parameters())
    ckpt10 = torch.load(full / "model_0000010.pth", weights_only=True)
    assert ("scaler" in ckpt10) is (dtype == "float16")
    resumed.mkdir()
    shutil.copy(full / "model_0000010.pth", resumed / "model_0000010.pth")
    (resumed / "last_checkpoint").write_text("model_0000010.pth")
    _train(tool, resumed, True, *opts)
    a = torch.load(full / "model_final.pth", weights_only=True)
    b = torch.load(resumed / "model_final.pth", weights_only=True)
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert a.get("scaler") == b.get("scaler")
    first = torch.load(full / "model_0000010.pth", weights_only=True)["model"]
    assert any(not torch.equal(first[k], a["model"][k]) for k in first)  # it trained


def test_channels_last_matches_contiguous_on_cuda():
    models = []
    for channels_last in (False, True):
        cfg = load_config(None, ["MODEL.BACKBONE.NAME", "resnet18", "INPUT.SIZE", "112",
                                 "MODEL.CHANNELS_LAST", str(channels_last)])
        torch.manual_seed(0)
        models.append(build_model(cfg).cuda().eval())
    images = torch.randint(0, 256, (8, 3, 112, 112), dtype=torch.uint8)
    with torch.no_grad():
        plain, nhwc = (m({"image": images})["embedding"] for m in models)
    torch.testing.assert_close(nhwc, plain, rtol=1e-3, atol=1e-3)
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        low = models[1]({"image": images})["embedding"]
    assert low.dtype == torch.float32 and (low - plain).abs().max() < 0.05


def test_ddp_nccl_with_sync_batchnorm_trains_and_evaluates(tmp_path):
    nproc = torch.cuda.device_count()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           os.path.join(ROOT, "tools", "train_net.py"), "--config-file", QUICKSTART, *TINY,
           "DIST.BACKEND", "nccl", "DIST.SYNC_BN", "True", "SOLVER.AMP.ENABLED", "True",
           "SOLVER.IMS_PER_BATCH", str(4 * nproc), "OUTPUT_DIR", str(tmp_path)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((tmp_path / "inference" / "synthetic_fec_test" / "results.json").read_text())
    assert results["inference"]["processes"] == nproc and results["count"] > 40
    assert (tmp_path / "model_final.pth").exists()
