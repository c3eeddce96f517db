"""On a GPU (tests marked cuda; skipped without one; `make test-gpu`): resume under
DETERMINISTIC is bit-identical, a checkpoint holds the RNG of the process's own GPU,
a CPU run opens no CUDA context, a CPU checkpoint resumes with the fused optimizer,
the predictor leaves a GPU model on its GPU."""
import os
import shutil
import subprocess
import sys

import pytest
import torch

from fec.config import load_config
from fec.modeling import build_model
from fec.predictor import ExpressionPredictor
from fec.solver import make_optimizer
from fec.utils.checkpoint import Checkpointer
from helpers.checkpoints import assert_same_weights, assert_weights_moved, weights

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICKSTART = os.path.join(ROOT, "config", "quickstart.yaml")
FER_QUICKSTART = os.path.join(ROOT, "config", "quickstart_fer.yaml")
TINY = ["MODEL.WEIGHTS", "", "MODEL.BACKBONE.FREEZE_AT", "0", "INPUT.SIZE", "64",
        "DATASETS.SYNTHETIC.TRAIN_IDENTITIES", "8", "DATASETS.SYNTHETIC.FACES_PER_IDENTITY", "5",
        "DATASETS.SYNTHETIC.TRAIN_TRIPLETS", "200", "DATASETS.TEST", "()", "SOLVER.IMS_PER_BATCH", "8",
        "SOLVER.WARMUP_ITERS", "2", "SOLVER.MAX_ITER", "12", "SOLVER.CHECKPOINT_PERIOD", "6",
        "DATALOADER.NUM_WORKERS", "2", "LOG_PERIOD", "4"]

pytestmark = pytest.mark.cuda


def train(*args, check=True):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train_net.py"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_deterministic_resume_on_a_gpu_is_bit_identical(tmp_path):
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    opts = ["--config-file", QUICKSTART, *TINY, "MODEL.DEVICE", "cuda", "DETERMINISTIC", "True"]
    train(*opts, "OUTPUT_DIR", str(full))
    resumed.mkdir()
    shutil.copy(full / "model_0000006.pth", resumed / "model_0000006.pth")
    (resumed / "last_checkpoint").write_text("model_0000006.pth")
    log = train("--resume", *opts, "OUTPUT_DIR", str(resumed)).stdout
    assert "Start training at iteration 6 of 12" in log
    a, b = weights(full / "model_final.pth"), weights(resumed / "model_final.pth")
    assert_same_weights(a, b)
    first = weights(full / "model_0000006.pth")
    assert_weights_moved(a, first)


@pytest.mark.slow
def test_deterministic_mode_names_deep_emotions_grid_sample(tmp_path):
    proc = train("--config-file", FER_QUICKSTART, "MODEL.DEVICE", "cuda", "DETERMINISTIC", "True",
                 "SOLVER.MAX_ITER", "2", "SOLVER.IMS_PER_BATCH", "8", "DATASETS.SYNTHETIC_AFFECT.TRAIN_IMAGES", "32",
                 "DATASETS.TEST", "()", "OUTPUT_DIR", str(tmp_path), check=False)
    assert proc.returncode != 0 and "grid_sampler_2d_backward_cuda" in proc.stderr + proc.stdout


def test_checkpoint_holds_the_rng_of_the_process_gpu_only(tmp_path):
    model = torch.nn.Linear(3, 2).cuda()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.cuda.manual_seed(7)
    Checkpointer(model, optimizer, save_dir=str(tmp_path)).save("m", 1)
    expected = torch.cuda.get_rng_state(model.weight.device)
    ranks = torch.load(tmp_path / "m.pth", weights_only=True)["rng"]["ranks"]
    assert len(ranks) == 1 and torch.equal(ranks[0]["cuda"], expected)
    torch.rand(5, device=model.weight.device)  # moves the generator on
    assert not torch.equal(torch.cuda.get_rng_state(model.weight.device), expected)
    Checkpointer(model, optimizer).load(str(tmp_path / "m.pth"), resume=True)
    assert torch.equal(torch.cuda.get_rng_state(model.weight.device), expected)


def test_a_cpu_run_opens_no_cuda_context(tmp_path):
    code = ("import sys, torch; sys.path.insert(0, 'tools'); import train_net; "
            f"train_net.main({['--config-file', QUICKSTART, *TINY, 'MODEL.DEVICE', 'cpu', 'SOLVER.MAX_ITER', '6', 'OUTPUT_DIR', str(tmp_path)]!r}); "
            "print('cuda initialized:', torch.cuda.is_initialized())")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "cuda initialized: False" in proc.stdout


def one_step(model, optimizer):
    for p in model.parameters():
        if p.requires_grad:
            p.grad = torch.ones_like(p)
    optimizer.step()


def test_a_cpu_checkpoint_resumes_on_the_gpu_with_the_fused_optimizer(tmp_path):
    cfg = load_config(QUICKSTART, [*TINY, "SOLVER.OPTIMIZER", "adam"])
    model = build_model(cfg)
    optimizer = make_optimizer(cfg, model)
    one_step(model, optimizer)
    Checkpointer(model, optimizer, save_dir=str(tmp_path)).save("m", 1)
    assert not any(g.get("fused") for g in optimizer.param_groups)

    gpu_model = build_model(cfg).cuda()
    gpu_optimizer = make_optimizer(cfg, gpu_model)
    Checkpointer(gpu_model, gpu_optimizer).load(str(tmp_path / "m.pth"), resume=True)
    assert all(g["fused"] for g in gpu_optimizer.param_groups)
    one_step(gpu_model, gpu_optimizer)
    step = gpu_optimizer.state[next(p for p in gpu_model.parameters() if p.requires_grad)]["step"]
    assert step.is_cuda and step.item() == 2


def test_the_predictor_leaves_a_gpu_model_on_its_gpu(quickstart_model):
    import copy

    model = copy.deepcopy(quickstart_model).cuda()
    p = ExpressionPredictor(model, 64, detector="none")
    assert p.device.type == "cuda" and next(p.model.parameters()).is_cuda
    faces = p.predict_rgb([torch.zeros(64, 64, 3, dtype=torch.uint8).numpy()])
    assert faces[0][0].embedding.shape == (16,)
