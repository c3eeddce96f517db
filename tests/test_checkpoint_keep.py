"""SOLVER.CHECKPOINT_KEEP retention, and a checkpoint write that runs out of space."""
import errno
import os

import pytest
import torch

from fec.utils import checkpoint as ckpt_mod
from fec.utils.checkpoint import Checkpointer
from fec.utils.errors import DiskFullError, UserError


def _checkpointer(tmp_path, keep):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    return net, Checkpointer(net, opt, save_dir=str(tmp_path), keep=keep)


def _step(net):
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)


def test_keep_newest_periodic_and_final(tmp_path):
    net, ck = _checkpointer(tmp_path, keep=2)
    for it in (100, 200, 300, 400):
        _step(net)
        ck.save(f"model_{it:07d}", it)
    ck.save("model_final", 500)
    files = sorted(f for f in os.listdir(tmp_path) if f.endswith(".pth"))
    assert files == ["model_0000300.pth", "model_0000400.pth", "model_final.pth"]
    assert ck.last_checkpoint() == str(tmp_path / "model_final.pth")


def test_keep_zero_keeps_all(tmp_path):
    net, ck = _checkpointer(tmp_path, keep=0)
    for it in (1, 2, 3):
        ck.save(f"model_{it:07d}", it)
    assert len([f for f in os.listdir(tmp_path) if f.startswith("model_")]) == 3


def test_disk_full_leaves_previous_checkpoint_and_tag(tmp_path, monkeypatch):
    net, ck = _checkpointer(tmp_path, keep=1)
    _step(net)
    ck.save("model_0000010", 10)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    tag_before = (tmp_path / "last_checkpoint").read_text()
    real_save = torch.save

    def full_disk(obj, f, *args, **kwargs):
        # part of the file is written, then the device is full
        with open(f, "wb") as out:
            out.write(b"PK\x03\x04" + b"\0" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt_mod.torch, "save", full_disk)
    _step(net)
    with pytest.raises(DiskFullError) as err:
        ck.save("model_0000020", 20)
    monkeypatch.setattr(ckpt_mod.torch, "save", real_save)
    message = str(err.value)
    assert isinstance(err.value, UserError)
    assert "no space left" in message and "model_0000010.pth" in message and "--resume" in message
    # the previous checkpoint, the tag and nothing else are there
    assert (tmp_path / "last_checkpoint").read_text() == tag_before
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000010.pth"]
    restored, ck2 = _checkpointer(tmp_path / "x", keep=1)
    Checkpointer(restored, save_dir=str(tmp_path)).load(ck.last_checkpoint())
    for k, v in restored.state_dict().items():
        assert torch.equal(v, before[k])


def test_other_write_errors_are_not_disk_full(tmp_path, monkeypatch):
    net, ck = _checkpointer(tmp_path, keep=0)

    def denied(obj, f, *args, **kwargs):
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(ckpt_mod.torch, "save", denied)
    with pytest.raises(OSError) as err:
        ck.save("model_0000001", 1)
    assert not isinstance(err.value, DiskFullError)
