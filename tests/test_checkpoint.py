import os

import pytest
import torch

from fec.utils.checkpoint import Checkpointer


def _net(seed=0, width=4):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(3, width), torch.nn.BatchNorm1d(width), torch.nn.Linear(width, 2))


def test_round_trip_with_optimizer_scheduler_iteration_and_rng(tmp_path):
    net = _net(0)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, 2)
    net(torch.randn(4, 3)).sum().backward()
    opt.step()
    sched.step()
    ck = Checkpointer(net, opt, sched, str(tmp_path))
    ck.save("model_0000005", 5)
    expected_next = torch.rand(3)  # what the RNG gives right after the save

    net2 = _net(1)
    opt2 = torch.optim.SGD(net2.parameters(), lr=0.1, momentum=0.9)
    sched2 = torch.optim.lr_scheduler.StepLR(opt2, 2)
    ck2 = Checkpointer(net2, opt2, sched2, str(tmp_path))
    assert ck2.last_checkpoint() == os.path.join(str(tmp_path), "model_0000005.pth")
    it = ck2.load(ck2.last_checkpoint(), resume=True)
    assert it == 5
    for a, b in zip(net.state_dict().values(), net2.state_dict().values()):
        assert torch.equal(a, b)
    assert torch.equal(opt2.state_dict()["state"][0]["momentum_buffer"], opt.state_dict()["state"][0]["momentum_buffer"])
    assert sched2.last_epoch == 1
    assert torch.equal(torch.rand(3), expected_next)
    assert not [f for f in os.listdir(tmp_path) if ".tmp" in f]  # no temporary left behind


def test_other_architecture_names_the_keys(tmp_path):
    ck = Checkpointer(_net(0, width=4), save_dir=str(tmp_path))
    ck.save("model_final", 1)
    other = Checkpointer(_net(0, width=5), save_dir=str(tmp_path))
    with pytest.raises(RuntimeError, match=r"shape mismatches.*0\.weight"):
        other.load(str(tmp_path / "model_final.pth"))
    smaller = Checkpointer(torch.nn.Sequential(torch.nn.Linear(3, 4)), save_dir=str(tmp_path))
    with pytest.raises(RuntimeError, match=r"unexpected keys: .*1\.weight"):
        smaller.load(str(tmp_path / "model_final.pth"))


def test_plain_state_dict_and_missing_file(tmp_path):
    net = _net(3)
    torch.save(net.state_dict(), tmp_path / "plain.pth")
    net2 = _net(4)
    Checkpointer(net2).load(str(tmp_path / "plain.pth"))
    assert torch.equal(net2[0].weight, net[0].weight)
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        Checkpointer(net2).load(str(tmp_path / "nope.pth"))


def test_tag_points_at_newest_and_ignores_deleted(tmp_path):
    ck = Checkpointer(_net(), save_dir=str(tmp_path))
    ck.save("model_0000010", 10)
    ck.save("model_0000020", 20)
    assert ck.last_checkpoint().endswith("model_0000020.pth")
    os.remove(tmp_path / "model_0000020.pth")
    assert ck.last_checkpoint() is None
