"""What a process learns from its launcher's environment, and refusals before any work."""
import os
import signal
import sys

import pytest

from fec.config import load_config
from fec.engine.defaults import default_argument_parser, dist_env, first_slurm_host

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_torchrun_environment():
    env = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "10.0.0.2", "MASTER_PORT": "1234"}
    assert dist_env(env) == (3, 4, 1, "10.0.0.2", 1234)


def test_launch_local_rank_argument_wins_over_environment():
    assert dist_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}, local_rank_arg=1).local_rank == 1


@pytest.mark.parametrize("flag", ["--local-rank=1", "--local_rank=1"])
def test_both_spellings_of_the_local_rank_flag(flag):
    args = default_argument_parser("x").parse_args([flag, "--config-file", "c.yaml", "SOLVER.MAX_ITER", "5"])
    assert args.local_rank == 1 and args.config_file == "c.yaml" and args.opts == ["SOLVER.MAX_ITER", "5"]


def test_slurm_environment():
    env = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_JOB_ID": "4242",
           "SLURM_NODELIST": "gpu[07-09,12]"}
    assert dist_env(env) == (5, 8, 1, "gpu07", 24242)
    # a launcher inside the allocation takes precedence over SLURM's task variables
    assert dist_env({**env, "WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"}).world_size == 2
    assert dist_env({**env, "MASTER_ADDR": "head", "MASTER_PORT": "999"})[3:] == ("head", 999)


def test_single_slurm_task_and_no_launcher_are_one_process():
    assert dist_env({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}).world_size == 1
    assert dist_env({}) == (0, 1, 0, "127.0.0.1", 29500)


@pytest.mark.parametrize("nodes,first", [("node1", "node1"), ("a[3-5]", "a3"), ("a[10,2],b[1-2]", "a10"),
                                         ("x-1,y-2", "x-1")])
def test_first_slurm_host(nodes, first):
    assert first_slurm_host(nodes) == first


def test_distributed_options_are_checked():
    with pytest.raises(ValueError, match="DIST.BACKEND"):
        load_config(None, ["DIST.BACKEND", "mpi"])
    with pytest.raises(ValueError, match="DIST.TIMEOUT"):
        load_config(None, ["DIST.TIMEOUT", "0"])


def test_sync_bn_is_refused_on_cpu(tmp_path, monkeypatch):
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import train_net

    monkeypatch.setattr(sys, "argv", ["train_net.py"])
    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(ValueError, match="DIST.SYNC_BN needs CUDA"):
        train_net.main(["--config-file", os.path.join(ROOT, "config", "quickstart.yaml"), "MODEL.DEVICE", "cpu",
                        "DIST.SYNC_BN", "True", "OUTPUT_DIR", str(tmp_path)])
    signal.signal(signal.SIGTERM, previous)


def test_a_flag_after_the_overrides_is_named(tmp_path):
    import subprocess

    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train_net.py"), "--config-file",
                           os.path.join(ROOT, "config", "quickstart.yaml"), "OUTPUT_DIR", str(tmp_path), "--resume"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "--resume comes after the KEY VALUE overrides" in proc.stderr
