"""The training step never waits for the device; a non-finite loss still stops training
with a clear error, before any checkpoint of the weights it touched.

The probe needs no GPU: on PyTorch's "meta" device every operation runs without data,
and anything that would read a value back to the host (``.item()``, ``bool()``,
``.cpu()``: a host sync on a GPU) fails. So the number of steps taken before the first
failure is the number of steps between two host syncs."""
import logging
import os

import pytest
import torch

from fec.config import load_config
from fec.data import make_data_loader
from fec.engine.trainer import do_train
from fec.modeling import build_model
from fec.solver import make_lr_scheduler, make_optimizer
from fec.utils.checkpoint import Checkpointer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class CountingModel(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model, self.calls = model, 0

    def forward(self, batch):
        self.calls += 1
        return self.model(batch)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_classifier_steps_on_the_device_until_the_log_period(optimizer):
    # Deep-Emotion classifier on synthetic FER2013 faces, labels and all, as quickstart_fer trains it
    cfg = load_config(os.path.join(ROOT, "config", "quickstart_fer.yaml"), [
        "SOLVER.OPTIMIZER", optimizer, "SOLVER.MAX_ITER", "8", "LOG_PERIOD", "4", "SOLVER.CHECKPOINT_PERIOD", "0",
        "SOLVER.IMS_PER_BATCH", "8", "SOLVER.CLIP_GRAD_NORM", "1.0", "DATALOADER.NUM_WORKERS", "0",
        "DATASETS.SYNTHETIC_AFFECT.TRAIN_IMAGES", "64", "DATASETS.SYNTHETIC_AFFECT.TEST_IMAGES", "16"])
    model = CountingModel(build_model(cfg).to("meta"))
    optimizer = make_optimizer(cfg, model)
    loader = make_data_loader(cfg, is_train=True)
    with pytest.raises((RuntimeError, NotImplementedError), match="meta"):
        do_train(cfg, model, loader, optimizer, make_lr_scheduler(cfg, optimizer), Checkpointer(model),
                 torch.device("meta"))
    assert model.calls == 4  # four full steps (forward, backward, clip, optimizer) before the first read


class Toy(torch.nn.Module):
    """Two loss terms; the loss of iteration ``nan_at`` is NaN."""

    def __init__(self, nan_at):
        super().__init__()
        self.linear, self.nan_at, self.calls = torch.nn.Linear(3, 1), nan_at, 0

    def forward(self, batch):
        self.calls += 1
        y = self.linear(batch["x"]).mean()
        bad = torch.tensor(float("nan")) if self.calls == self.nan_at else torch.tensor(0.0)
        return {"loss_a": y.pow(2) + bad, "loss_b": y.abs()}


def toy_run(tmp_path, nan_at, max_iter=12, log=5, period=4):
    cfg = load_config(None, ["SOLVER.MAX_ITER", str(max_iter), "LOG_PERIOD", str(log),
                             "SOLVER.CHECKPOINT_PERIOD", str(period), "SOLVER.WARMUP_ITERS", "0"])
    torch.manual_seed(0)
    model = Toy(nan_at)
    optimizer = make_optimizer(cfg, model)
    batches = [{"x": torch.randn(4, 3)} for _ in range(max_iter)]
    checkpointer = Checkpointer(model, optimizer, save_dir=str(tmp_path))
    do_train(cfg, model, batches, optimizer, make_lr_scheduler(cfg, optimizer), checkpointer, torch.device("cpu"))
    return model


def test_a_nan_loss_is_named_with_its_iteration_before_the_next_checkpoint(tmp_path):
    with pytest.raises(FloatingPointError, match=r"loss is nan at iteration 3: \{'loss_a': nan, 'loss_b': "):
        toy_run(tmp_path, nan_at=3)
    assert not os.path.exists(tmp_path / "model_0000004.pth")
    with pytest.raises(FloatingPointError, match="at iteration 6"):
        toy_run(tmp_path, nan_at=6)
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000004.pth"


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_finite_losses_are_logged_as_before(tmp_path):
    logger, records = logging.getLogger("fec.engine.trainer"), Records()
    logger.addHandler(records)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        model = toy_run(tmp_path, nan_at=0)
    finally:
        logger.removeHandler(records)
        logger.setLevel(level)
    assert model.calls == 12 and (tmp_path / "model_final.pth").exists()
    logged = [m for m in records.messages if "iter: " in m]
    assert [m.split("iter: ")[1].split()[0] for m in logged] == ["5/12", "10/12", "12/12"]
    assert all("loss_a: " in m and "loss_b: " in m and "time: " in m for m in logged)
