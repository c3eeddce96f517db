"""The CUDA paths, checked on the CPU: which GPU a process takes, what the process group
is given, when CUDA is touched at all. CUDA is faked where a path asks for it."""
import os
import signal
import sys

import pytest
import torch

from fec.config import load_config
from fec.data import make_data_loader
from fec.engine import defaults
from fec.engine.defaults import device_id_supported
from fec.utils import comm
from fec.utils.device import gpu_index, resolve_device, uses_cuda
from fec.utils.env import collect_env_info

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
SLURM_TASK = {"SLURM_PROCID": "13", "SLURM_NTASKS": "16", "SLURM_LOCALID": "5", "SLURM_JOB_ID": "7",
              "SLURM_NODELIST": "gpu[01-02]"}


class FakeCuda:
    """torch.cuda as a machine with ``count`` GPUs shows it; set_device recorded."""

    def __init__(self, monkeypatch, count):
        self.current = None
        monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
        monkeypatch.setattr(torch.cuda, "set_device", self.set_device)

    def set_device(self, device):
        self.current = torch.device(device)


def cfg(*opts):
    return load_config(None, list(opts))


@pytest.mark.parametrize("visible,expected", [(1, 0), (2, 1), (8, 5)])
def test_slurm_task_takes_a_gpu_it_can_see(visible, expected):
    # --gpus-per-task=1: SLURM_LOCALID 5 sees one GPU, its own; with all 8 visible it takes the 6th
    assert gpu_index(5, visible, SLURM_TASK) == expected


def test_more_processes_than_gpus_is_refused_outside_slurm():
    with pytest.raises(RuntimeError, match="local rank 5 needs GPU 5, but 1 GPU"):
        gpu_index(5, 1, {"WORLD_SIZE": "16", "RANK": "13", "LOCAL_RANK": "5"})
    # torchrun inside a SLURM allocation is torchrun: its LOCAL_RANK must name a visible GPU
    with pytest.raises(RuntimeError, match="launch at most 1 processes per node"):
        gpu_index(5, 1, {**SLURM_TASK, "WORLD_SIZE": "16"})


def test_slurm_task_with_one_visible_gpu_resolves_to_it(monkeypatch):
    cuda = FakeCuda(monkeypatch, 1)
    monkeypatch.setattr(os, "environ", dict(SLURM_TASK))
    env = defaults.dist_env(os.environ)
    device = resolve_device(cfg("MODEL.DEVICE", "auto"), env.local_rank, env.world_size)
    assert device == torch.device("cuda:0") == cuda.current


def test_fixed_gpu_is_refused_for_several_processes(monkeypatch):
    FakeCuda(monkeypatch, 8)
    with pytest.raises(ValueError, match="MODEL.DEVICE cuda:3 would put all 2 processes on one GPU"):
        resolve_device(cfg("MODEL.DEVICE", "cuda:3"), 1, 2)
    assert resolve_device(cfg("MODEL.DEVICE", "cuda:3"), 0, 1) == torch.device("cuda:3")
    assert resolve_device(cfg("MODEL.DEVICE", "cuda"), 1, 2) == torch.device("cuda:1")


@pytest.mark.parametrize("version,supported", [("2.1.2", False), ("2.2.0+cu121", False), ("2.3.0", True),
                                               ("2.6.0+cu124", True), ("2.7.0+cu128", False), ("2.7.1", True),
                                               ("2.14.1+cu130", True), ("3.0", True)])
def test_device_id_only_where_torch_takes_it_safely(version, supported):
    assert device_id_supported(version) is supported


@pytest.fixture
def captured_init(monkeypatch):
    """init_distributed of rank 0 of 2 up to init_process_group, whose arguments are kept."""
    calls = []
    monkeypatch.setattr(defaults.dist, "init_process_group", lambda *a, **k: calls.append(k))
    monkeypatch.setattr(defaults, "_attempt_store", lambda env, timeout: None)  # no rendezvous
    monkeypatch.setattr(os, "environ", {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0",
                                                 "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29999"})
    yield calls
    comm.set_local_rank(0)


def test_cpu_process_group_gets_no_device_id(captured_init):
    # torch < 2.3 has no device_id argument at all: a CPU run must not pass one, not even None
    assert defaults.init_distributed(cfg("MODEL.DEVICE", "cpu")) == 2
    assert captured_init[0]["world_size"] == 2 and "device_id" not in captured_init[0]


@pytest.mark.parametrize("version,bound", [("2.6.0", True), ("2.7.0", False), ("2.2.1", False)])
def test_gpu_process_group_binds_its_device_where_safe(captured_init, monkeypatch, version, bound):
    FakeCuda(monkeypatch, 2)
    monkeypatch.setattr(torch, "__version__", version)
    defaults.init_distributed(cfg("MODEL.DEVICE", "cuda", "DIST.BACKEND", "gloo"))
    assert ("device_id" in captured_init[0]) is bound
    if bound:
        assert captured_init[0]["device_id"] == torch.device("cuda:0")


TINY = ["DATASETS.SYNTHETIC.TRAIN_IDENTITIES", "8", "DATASETS.SYNTHETIC.TEST_IDENTITIES", "5",
        "DATASETS.SYNTHETIC.FACES_PER_IDENTITY", "5", "DATASETS.SYNTHETIC.TRAIN_TRIPLETS", "20",
        "DATASETS.SYNTHETIC.TEST_TRIPLETS", "20", "INPUT.SIZE", "32", "SOLVER.IMS_PER_BATCH", "2",
        "SOLVER.MAX_ITER", "2", "DATALOADER.NUM_WORKERS", "0"]


@pytest.mark.parametrize("device,pinned", [("cpu", False), ("auto", True), ("cuda", True)])
def test_memory_is_pinned_only_for_a_gpu_run(monkeypatch, device, pinned):
    FakeCuda(monkeypatch, 1)  # a GPU machine
    c = cfg(*TINY, "MODEL.DEVICE", device)
    assert make_data_loader(c, is_train=True).pin_memory is pinned
    assert all(loader.pin_memory is pinned for _, loader in make_data_loader(c, is_train=False))


@pytest.fixture
def torch_switches():
    """Restores what the deterministic mode turns on."""
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
             os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
    previous = signal.getsignal(signal.SIGTERM)
    yield
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2], saved[3]
    if saved[4] is None:
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    else:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = saved[4]
    signal.signal(signal.SIGTERM, previous)


def test_deterministic_mode_turns_every_switch_and_trains_deep_emotion_on_the_cpu(torch_switches, tmp_path,
                                                                                     monkeypatch):
    import train_net

    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    torch.backends.cudnn.benchmark = True
    args = ["--config-file", os.path.join(ROOT, "config", "quickstart_fer.yaml"), "MODEL.DEVICE", "cpu",
            "SOLVER.MAX_ITER", "2", "SOLVER.IMS_PER_BATCH", "4", "DATALOADER.NUM_WORKERS", "0",
            "DATASETS.SYNTHETIC_AFFECT.TRAIN_IMAGES", "32", "DATASETS.TEST", "()", "OUTPUT_DIR", str(tmp_path)]
    train_net.main(args)
    assert not torch.are_deterministic_algorithms_enabled()  # off by default: nothing changed
    assert torch.backends.cudnn.benchmark and "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    # deep_emotion's grid_sample has a deterministic CPU backward: the mode trains it
    train_net.main(args + ["DETERMINISTIC", "True", "OUTPUT_DIR", str(tmp_path / "det")])
    assert torch.are_deterministic_algorithms_enabled() and not torch.is_deterministic_algorithms_warn_only_enabled()
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert (tmp_path / "det" / "model_final.pth").exists()


def test_a_cpu_run_reports_the_gpus_without_initialising_cuda(monkeypatch):
    FakeCuda(monkeypatch, 8)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: pytest.fail("initialised CUDA"))
    assert "8 GPU(s), not used" in collect_env_info(cuda=uses_cuda(cfg("MODEL.DEVICE", "cpu")))
    assert uses_cuda(cfg("MODEL.DEVICE", "auto")) and uses_cuda(cfg("MODEL.DEVICE", "cuda:1"))
