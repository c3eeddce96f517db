"""Behaviours of training that users rely on and that nothing else checks: the stop on a
non-finite loss, SOLVER.CLIP_GRAD_NORM, evaluation every TEST.EVAL_PERIOD iterations,
the per-process batch split, the training augmentation's ranges, and a checkpoint's
`module.` prefix and NumPy / Python RNG states."""
import math
import random

import numpy as np
import pytest
import torch

from fec.config import load_config
from fec.data import make_data_loader
from fec.data.transforms import TrainTransform
from fec.engine.trainer import do_train
from fec.utils import comm
from fec.utils.checkpoint import Checkpointer
from helpers.tools import load_tool


class ScriptedLoss(torch.nn.Module):
    """A linear model whose training loss is ``scale * sum(w)``, NaN at the iterations in
    ``nan_at``; it records the iterations it saw and its mode at each call."""

    def __init__(self, scale=1.0, nan_at=()):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(4))
        self.scale, self.nan_at, self.calls = scale, set(nan_at), 0

    def forward(self, batch):
        self.calls += 1
        loss = self.scale * self.w.sum()
        if self.calls in self.nan_at:
            loss = loss * float("nan")
        return {"loss_scripted": loss}


def _cfg(*opts):
    return load_config(None, ["SOLVER.MAX_ITER", "6", "SOLVER.CHECKPOINT_PERIOD", "0", "LOG_PERIOD", "100",
                              "SOLVER.WARMUP_ITERS", "0", *opts])


def _train(cfg, model, lr=1.0, test_fn=None):
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: 1.0)
    batches = [{"index": torch.tensor([i])} for i in range(cfg.SOLVER.MAX_ITER)]
    return do_train(cfg, model, batches, optimizer, scheduler, Checkpointer(model), torch.device("cpu"),
                    test_fn=test_fn)


def test_a_non_finite_loss_stops_training_at_the_next_read_naming_its_iteration():
    # the losses are read at the log period (and checkpoints, evaluations, the end), not
    # at every step: the stop comes at the first read after the NaN, here the end
    model = ScriptedLoss(nan_at={3})
    with pytest.raises(FloatingPointError, match="iteration 3"):
        _train(_cfg(), model, lr=0.1)
    assert model.calls == 6
    model = ScriptedLoss(nan_at={3})
    with pytest.raises(FloatingPointError, match="iteration 3"):
        _train(_cfg("LOG_PERIOD", "4"), model, lr=0.1)
    assert model.calls == 4


@pytest.mark.parametrize("clip", [0.0, 0.5])
def test_clip_grad_norm_bounds_every_step(clip):
    model = ScriptedLoss(scale=100.0)  # gradient 100 per weight: norm 200
    _train(_cfg("SOLVER.MAX_ITER", "1", "SOLVER.CLIP_GRAD_NORM", str(clip)), model)
    step = torch.ones(4) - model.w.detach()
    expected = clip if clip else 200.0
    assert step.norm().item() == pytest.approx(expected, rel=1e-5)
    torch.testing.assert_close(step, torch.full((4,), expected / 2))  # the direction is kept


def test_evaluation_runs_every_eval_period_and_training_resumes_in_train_mode():
    model = ScriptedLoss()
    seen = []

    def test_fn(iteration):
        seen.append((iteration, model.calls, model.training))
        model.eval()  # as inference leaves it
        return {"score": float(iteration)}

    _train(_cfg("SOLVER.MAX_ITER", "7", "TEST.EVAL_PERIOD", "3"), model, lr=0.0, test_fn=test_fn)
    # after iterations 3 and 6, not at the last one (train_net evaluates the final model)
    assert [(it, calls) for it, calls, _ in seen] == [(3, 3), (6, 6)]
    assert model.calls == 7 and model.training


def test_the_global_batch_must_divide_over_the_processes(monkeypatch):
    cfg = load_config(None, ["INPUT.SIZE", "32", "DATASETS.SYNTHETIC.TRAIN_IDENTITIES", "3",
                             "DATASETS.SYNTHETIC.FACES_PER_IDENTITY", "2", "DATASETS.SYNTHETIC.TRAIN_TRIPLETS", "20",
                             "SOLVER.IMS_PER_BATCH", "6", "SOLVER.MAX_ITER", "2", "DATALOADER.NUM_WORKERS", "0"])
    monkeypatch.setattr(comm, "get_world_size", lambda: 4)
    monkeypatch.setattr(comm, "get_rank", lambda: 1)
    with pytest.raises(Exception, match=r"SOLVER.IMS_PER_BATCH = 6 .*4 processes") as err:
        make_data_loader(cfg, is_train=True, is_distributed=True)
    assert "multiple of 4" in str(err.value)
    monkeypatch.setattr(comm, "get_world_size", lambda: 3)
    loader = make_data_loader(cfg, is_train=True, is_distributed=True)
    assert len(next(iter(loader))["index"]) == 2  # 6 over 3 processes


def test_training_augmentation_stays_in_its_ranges():
    size, h, w = 48, 120, 100
    t = TrainTransform(size, crop_scale=(0.6, 0.9), flip_prob=0.3, color_jitter=0.25)
    draws = np.array([t.draw(h, w, torch.Generator().manual_seed(s)) for s in range(2000)])
    x0, y0, cw, ch, flip = draws[:, 0], draws[:, 1], draws[:, 2], draws[:, 3], draws[:, 4]
    assert (x0 >= 0).all() and (y0 >= 0).all() and (x0 + cw <= w).all() and (y0 + ch <= h).all()
    area = cw * ch / (h * w)
    assert area.min() > 0.6 - 0.02 and area.max() < 0.9 + 0.02  # rounding to whole pixels
    assert area.min() < 0.65 and area.max() > 0.85  # and the whole range is used
    ratio = cw / ch
    assert ratio.min() > 3 / 4 - 0.03 and ratio.max() < 4 / 3 + 0.03
    assert 0.25 < flip.mean() < 0.35 and set(flip) == {0.0, 1.0}
    jitter = draws[:, 5:8]
    assert jitter.min() >= 0.75 and jitter.max() <= 1.25 and jitter.min() < 0.76 and jitter.max() > 1.24

    rng = np.random.default_rng(0)
    img = rng.integers(60, 200, (h, w, 3), dtype=np.uint8)
    out = t.apply(img, [10, 20, 60, 70, 0.0, 1.0, 1.0, 1.0])
    assert out.shape == (3, size, size) and out.dtype == torch.uint8
    mirrored = t.apply(img, [10, 20, 60, 70, 1.0, 1.0, 1.0, 1.0])
    assert torch.equal(mirrored, out.flip(-1))
    brighter = t.apply(img, [10, 20, 60, 70, 0.0, 1.2, 1.0, 1.0]).double()
    assert brighter.mean().item() == pytest.approx(1.2 * out.double().mean().item(), rel=0.02)
    grey = t.apply(img, [10, 20, 60, 70, 0.0, 1.0, 1.0, 0.0])  # no saturation: R = G = B
    assert (grey.max(0).values.int() - grey.min(0).values.int()).max() <= 1
    assert not torch.equal(grey, out)
    # no crop, no flip, no jitter: the face unchanged but for the resize
    plain = TrainTransform(size, crop_scale=(1.0, 1.0), flip_prob=0.0, color_jitter=0.0)
    face = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    assert torch.equal(plain(face, torch.Generator().manual_seed(1)), torch.from_numpy(face).permute(2, 0, 1))


def _net(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))


def test_checkpoint_of_a_ddp_model_loads_into_a_plain_one_and_resume_restores_every_rng(tmp_path):
    net = _net(0)
    wrapped = torch.nn.Module()
    wrapped.module = net  # what DistributedDataParallel's state_dict keys look like: module.*
    state = wrapped.state_dict()
    assert all(k.startswith("module.") for k in state)
    torch.save({"model": state, "iteration": 3}, tmp_path / "ddp.pth")
    plain = _net(1)
    assert Checkpointer(plain).load(str(tmp_path / "ddp.pth")) == 0
    for a, b in zip(net.state_dict().values(), plain.state_dict().values()):
        assert torch.equal(a, b)

    np.random.seed(5)
    random.seed(5)
    Checkpointer(net, save_dir=str(tmp_path)).save("model_0000003", 3)
    expected = (np.random.rand(4), [random.random() for _ in range(4)], np.random.normal(size=3))
    np.random.seed(99)
    random.seed(99)
    np.random.normal()  # leaves a cached Gaussian behind, which the restore must clear or restore
    assert Checkpointer(_net(2), save_dir=str(tmp_path)).load(str(tmp_path / "model_0000003.pth"), resume=True) == 3
    got = (np.random.rand(4), [random.random() for _ in range(4)], np.random.normal(size=3))
    np.testing.assert_array_equal(got[0], expected[0])
    assert got[1] == expected[1]
    np.testing.assert_array_equal(got[2], expected[2])
    assert not math.isnan(got[2].sum())


def test_dist_timeout_reaches_the_rendezvous_and_the_process_group(monkeypatch):
    """A rank that dies mid-run leaves the others in a collective: DIST.TIMEOUT is what
    ends their wait, so it must reach torch (torchrun killing the others hides its absence)."""
    import datetime

    import torch.distributed as dist

    from fec.engine import defaults

    seen = {}

    class Joined(Exception):
        pass

    def rendezvous(url, rank, world_size, timeout):
        seen["rendezvous"] = timeout
        yield object(), rank, world_size

    def init_process_group(backend, store=None, rank=None, world_size=None, timeout=None, **kw):
        seen["group"] = (backend, rank, world_size, timeout)
        raise Joined

    monkeypatch.setattr(dist, "rendezvous", rendezvous)
    monkeypatch.setattr(dist, "init_process_group", init_process_group)
    for key, value in {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": "29999"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("TORCHELASTIC_RESTART_COUNT", raising=False)
    cfg = load_config(None, ["MODEL.DEVICE", "cpu", "DIST.TIMEOUT", "37"])
    with pytest.raises(Joined):
        defaults.init_distributed(cfg)
    assert seen["rendezvous"] == datetime.timedelta(seconds=37)
    assert seen["group"] == ("gloo", 1, 2, datetime.timedelta(seconds=37))


@pytest.mark.slow
def test_resume_wins_over_model_weights(tmp_path, quickstart_ckpt):
    """--resume continues OUTPUT_DIR's run; the config's MODEL.WEIGHTS (starting weights)
    must not be loaded over it: the resumed run ends bit-identical to the uninterrupted one."""
    import os
    import shutil

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    train_net = load_tool("train_net")
    opts = ["--config-file", os.path.join(root, "config", "quickstart.yaml"), "MODEL.DEVICE", "cpu",
            "INPUT.SIZE", "32", "DATALOADER.NUM_WORKERS", "0", "DATASETS.SYNTHETIC.TRAIN_IDENTITIES", "4",
            "DATASETS.SYNTHETIC.FACES_PER_IDENTITY", "3", "DATASETS.SYNTHETIC.TRAIN_TRIPLETS", "40",
            "DATASETS.SYNTHETIC.MIN_GAP", "0.0", "DATASETS.TEST", "()", "SOLVER.IMS_PER_BATCH", "4",
            "SOLVER.MAX_ITER", "4", "SOLVER.CHECKPOINT_PERIOD", "2", "SOLVER.WARMUP_ITERS", "1"]
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    train_net.main([*opts, "MODEL.WEIGHTS", "", "OUTPUT_DIR", str(full)])
    resumed.mkdir()
    shutil.copy(full / "model_0000002.pth", resumed / "model_0000002.pth")
    (resumed / "last_checkpoint").write_text("model_0000002.pth")
    train_net.main(["--resume", *opts, "MODEL.WEIGHTS", quickstart_ckpt, "OUTPUT_DIR", str(resumed)])
    a = torch.load(full / "model_final.pth", weights_only=True)["model"]
    b = torch.load(resumed / "model_final.pth", weights_only=True)["model"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # and the starting weights were not all alike: loading them would have shown
    start = torch.load(quickstart_ckpt, weights_only=True)["model"]
    assert not all(torch.equal(start[k], a[k]) for k in a if k in start)
