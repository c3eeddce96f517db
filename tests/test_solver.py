import math

import pytest
import torch

from fec.config import load_config
from fec.solver import make_lr_scheduler, make_optimizer


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.bn = torch.nn.BatchNorm2d(4)
        self.fc = torch.nn.Linear(4, 2)
        self.frozen = torch.nn.Linear(2, 2)
        self.frozen.requires_grad_(False)


@pytest.mark.parametrize("name,cls", [("sgd", torch.optim.SGD), ("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)])
def test_no_weight_decay_on_norms_and_biases(name, cls):
    cfg = load_config(None, ["SOLVER.OPTIMIZER", name, "SOLVER.WEIGHT_DECAY", "0.01"])
    net = Net()
    opt = make_optimizer(cfg, net)
    assert isinstance(opt, cls)
    decay = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    assert decay[id(net.conv.weight)] == 0.01 and decay[id(net.fc.weight)] == 0.01
    assert decay[id(net.conv.bias)] == 0.0 and decay[id(net.fc.bias)] == 0.0
    assert decay[id(net.bn.weight)] == 0.0 and decay[id(net.bn.bias)] == 0.0
    assert id(net.frozen.weight) not in decay  # frozen parameters are not optimised
    assert len(opt.param_groups) == 3


def _lrs(opts, n):
    cfg = load_config(None, opts)
    opt = make_optimizer(cfg, Net())
    sched = make_lr_scheduler(cfg, opt)
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_warmup_then_multistep():
    lr = _lrs(["SOLVER.BASE_LR", "1.0", "SOLVER.WARMUP_ITERS", "10", "SOLVER.WARMUP_FACTOR", "0.1",
               "SOLVER.STEPS", "(20, 30)", "SOLVER.GAMMA", "0.5", "SOLVER.MAX_ITER", "40"], 40)
    assert lr[0] == pytest.approx(0.1)
    assert lr[5] == pytest.approx(0.1 * 0.5 + 0.5)
    assert lr[10] == pytest.approx(1.0) and lr[19] == pytest.approx(1.0)
    assert lr[20] == pytest.approx(0.5) and lr[30] == pytest.approx(0.25)


def test_cosine_reaches_final_factor():
    lr = _lrs(["SOLVER.BASE_LR", "2.0", "SOLVER.WARMUP_ITERS", "0", "SOLVER.SCHEDULER", "cosine",
               "SOLVER.MAX_ITER", "100", "SOLVER.COSINE_FINAL_FACTOR", "0.1"], 101)
    assert lr[0] == pytest.approx(2.0)
    assert lr[50] == pytest.approx(2.0 * (0.1 + 0.9 * 0.5))
    assert lr[100] == pytest.approx(0.2)
    assert lr[25] == pytest.approx(2.0 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4))))


def test_scheduler_state_round_trip():
    cfg = load_config(None, ["SOLVER.WARMUP_ITERS", "5", "SOLVER.MAX_ITER", "20"])
    opt = make_optimizer(cfg, Net())
    sched = make_lr_scheduler(cfg, opt)
    for _ in range(7):
        opt.step()
        sched.step()
    opt2 = make_optimizer(cfg, Net())
    sched2 = make_lr_scheduler(cfg, opt2)
    sched2.load_state_dict(sched.state_dict())
    opt2.load_state_dict(opt.state_dict())
    opt.step(); sched.step(); opt2.step(); sched2.step()  # noqa: E702
    assert opt.param_groups[0]["lr"] == opt2.param_groups[0]["lr"]
