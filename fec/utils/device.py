"""Which device a process runs on: MODEL.DEVICE resolved against the GPUs this
process sees and its local rank. Shared by training, evaluation and the predictor."""
import os

import torch

from fec.utils import comm
from fec.utils.errors import ConfigError, LaunchError


def uses_cuda(cfg):
    """Whether the run's device is a GPU (MODEL.DEVICE cuda..., or auto with a GPU
    visible), decided without touching CUDA: a CPU run opens no CUDA context."""
    name = cfg.MODEL.DEVICE
    return name.startswith("cuda") or (name == "auto" and torch.cuda.is_available())


def launched_by_slurm(environ):
    """True when SLURM's task variables, not torchrun's, describe the job
    (fec.engine.defaults.dist_env reads them the same way)."""
    return "WORLD_SIZE" not in environ and "SLURM_PROCID" in environ and int(environ.get("SLURM_NTASKS", 1)) > 1


def gpu_index(local_rank, count, environ):
    """The visible GPU that the process of local rank ``local_rank`` takes. Under SLURM
    with a GPU set per task (``--gpus-per-task=1``, ``--gpu-bind``) each task sees only
    its own GPUs while SLURM_LOCALID still counts every task of the node, so the local
    rank wraps onto what this task sees; a launcher that starts more processes than the
    node has GPUs is refused."""
    if local_rank < count:
        return local_rank
    if count and launched_by_slurm(environ):
        return local_rank % count
    raise LaunchError(f"process with local rank {local_rank} needs GPU {local_rank}, but {count} "
                      f"GPU(s) are visible: launch at most {count} processes per node")


def resolve_device(cfg, local_rank=None, world_size=None):
    """MODEL.DEVICE as a torch.device; with "auto" or "cuda", process ``local_rank``
    (default: comm.get_local_rank()) takes its own GPU (gpu_index). A fixed "cuda:N" is
    refused when ``world_size`` (default: the process group's) is over 1: it would put
    every process on GPU N."""
    local_rank = comm.get_local_rank() if local_rank is None else local_rank
    world_size = comm.get_world_size() if world_size is None else world_size
    name = cfg.MODEL.DEVICE
    if name.startswith("cuda:") and world_size > 1:
        raise ConfigError(f"MODEL.DEVICE {name} would put all {world_size} processes on one GPU; use MODEL.DEVICE "
                         f"cuda (or auto), with which each process takes the GPU of its local rank, and choose the "
                         f"GPUs with CUDA_VISIBLE_DEVICES")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise LaunchError(f"MODEL.DEVICE is {cfg.MODEL.DEVICE!r} but CUDA is not available; use cpu or auto")
        if name == "cuda":
            name = f"cuda:{gpu_index(local_rank, torch.cuda.device_count(), os.environ)}"
        torch.cuda.set_device(torch.device(name))
    return torch.device(name)
