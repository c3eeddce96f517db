"""Checkpoints across devices and process counts, on the CPU: per-rank RNG states of each
rank's own GPU (torch.cuda's RNG functions faked), no CUDA call on a CPU run, and the
optimizer's kernel options following the device rather than the checkpoint."""
import pytest
import torch

from fec.utils import checkpoint as ckpt_module
from fec.utils import comm
from fec.utils.checkpoint import Checkpointer, get_rng_states


def _net(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))


def cuda_state(i):
    """A stand-in for GPU i's RNG state: distinct bytes per GPU."""
    return torch.full((16,), i, dtype=torch.uint8)


class FakeCudaRng:
    """torch.cuda's RNG as a GPU machine has it: per-device get/set recorded; the
    all-GPU functions fail, since using them is the defect."""

    def __init__(self, monkeypatch, visible):
        self.visible, self.got, self.set = visible, [], []
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: visible)
        monkeypatch.setattr(torch.cuda, "get_rng_state", self.get_rng_state)
        monkeypatch.setattr(torch.cuda, "set_rng_state", self.set_rng_state)
        for name in ("get_rng_state_all", "set_rng_state_all"):
            monkeypatch.setattr(torch.cuda, name, self.fail)

    def _index(self, device):
        index = torch.device(device).index
        if index >= self.visible:  # what torch raises for a GPU this process cannot see
            raise IndexError(f"device {index} of {self.visible}")
        return index

    def get_rng_state(self, device="cuda"):
        self.got.append(self._index(device))
        return cuda_state(self._index(device))

    def set_rng_state(self, state, device="cuda"):
        self.set.append((self._index(device), int(state[0])))

    def fail(self, *a, **k):
        raise AssertionError("touched every GPU's RNG")


def as_rank(monkeypatch, rank, world):
    monkeypatch.setattr(comm, "get_rank", lambda: rank)
    monkeypatch.setattr(comm, "get_world_size", lambda: world)


def resume(path, device, monkeypatch):
    """Checkpointer.load(resume=True) by a process whose model is on ``device``."""
    net = _net(1)
    monkeypatch.setattr(ckpt_module, "device_of", lambda model: torch.device(device))
    return Checkpointer(net, torch.optim.SGD(net.parameters(), lr=0.1)).load(str(path), resume=True)


def test_each_rank_saves_its_own_gpu_state_only(monkeypatch):
    cuda = FakeCudaRng(monkeypatch, visible=8)
    states = get_rng_states(torch.device("cuda:3"))
    assert cuda.got == [3] and torch.equal(states["cuda"], cuda_state(3))


def test_a_cpu_run_on_a_gpu_machine_touches_no_gpu(monkeypatch, tmp_path):
    cuda = FakeCudaRng(monkeypatch, visible=8)
    net = _net()
    Checkpointer(net, torch.optim.SGD(net.parameters(), lr=0.1), save_dir=str(tmp_path)).save("model_0000002", 2)
    assert "cuda" not in torch.load(tmp_path / "model_0000002.pth", weights_only=True)["rng"]["ranks"][0]
    Checkpointer(net, torch.optim.SGD(net.parameters(), lr=0.1)).load(str(tmp_path / "model_0000002.pth"),
                                                                     resume=True)
    assert cuda.got == [] and cuda.set == []


def eight_gpu_checkpoint(path, net):
    """What 8 processes on 8 GPUs write: one RNG entry per rank, each with its GPU's state."""
    ranks = []
    for r in range(8):
        torch.manual_seed(100 + r)
        ranks.append({**get_rng_states(), "cuda": cuda_state(r)})
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    torch.save({"model": net.state_dict(), "optimizer": opt.state_dict(), "iteration": 40,
                "rng": {"ranks": ranks}}, path)
    return ranks


@pytest.mark.parametrize("rank,world", [(0, 1), (1, 4), (3, 4)])
def test_resume_on_fewer_gpus_takes_the_ranks_own_state(monkeypatch, tmp_path, rank, world):
    ranks = eight_gpu_checkpoint(tmp_path / "c.pth", _net())
    cuda = FakeCudaRng(monkeypatch, visible=world)  # CUDA_VISIBLE_DEVICES=0 ... or 4 GPUs
    as_rank(monkeypatch, rank, world)
    assert resume(tmp_path / "c.pth", f"cuda:{rank}", monkeypatch) == 40
    assert cuda.set == [(rank, rank)]  # rank r's GPU got rank r's state, no other GPU touched
    assert torch.equal(torch.get_rng_state(), ranks[rank]["torch"])


def test_older_checkpoint_with_every_gpus_state_resumes_on_one_gpu(monkeypatch, tmp_path):
    net = _net()
    torch.save({"model": net.state_dict(), "optimizer": torch.optim.SGD(net.parameters(), lr=0.1).state_dict(),
                "iteration": 7, "rng": {**get_rng_states(), "cuda": [cuda_state(i) for i in range(8)]}},
               tmp_path / "old.pth")
    cuda = FakeCudaRng(monkeypatch, visible=1)
    assert resume(tmp_path / "old.pth", "cuda:0", monkeypatch) == 7
    assert cuda.set == [(0, 0)]


def test_cpu_written_checkpoint_resumed_on_a_gpu_keeps_the_seeded_gpu_state(monkeypatch, tmp_path):
    net = _net()
    Checkpointer(net, torch.optim.SGD(net.parameters(), lr=0.1), save_dir=str(tmp_path)).save("m", 3)
    cuda = FakeCudaRng(monkeypatch, visible=1)
    assert resume(tmp_path / "m.pth", "cuda:0", monkeypatch) == 3
    assert cuda.set == []


def adam(net, fused):
    return torch.optim.Adam(net.parameters(), lr=0.01, fused=fused)


def train_steps(net, opt, n, seed):
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        net(torch.randn(8, 3, generator=g)).pow(2).mean().backward()
        opt.step()
        opt.zero_grad()


@pytest.mark.parametrize("saved,now", [(None, True), (True, None)])
def test_fused_kernel_follows_the_device_not_the_checkpoint(tmp_path, saved, now):
    # CPU fused Adam stands in for the GPU's: make_optimizer picks fused for the run's device
    net = _net()
    opt = adam(net, saved)
    train_steps(net, opt, 3, seed=0)
    Checkpointer(net, opt, save_dir=str(tmp_path)).save("m", 3)

    net2 = _net(5)
    opt2 = adam(net2, now)
    Checkpointer(net2, opt2).load(str(tmp_path / "m.pth"), resume=True)
    assert [g["fused"] for g in opt2.param_groups] == [now]
    step = opt2.state[next(net2.parameters())]["step"]
    assert step.dtype == torch.float32 and step.item() == 3
    train_steps(net2, opt2, 2, seed=1)  # the loaded state drives the kernel this run chose
    train_steps(net, opt, 2, seed=1)
    for a, b in zip(net.parameters(), net2.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
