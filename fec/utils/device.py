"""Which device a process runs on: MODEL.DEVICE resolved against the GPUs this
process sees and its local rank. Shared by training, evaluation and the predictor."""
import torch

from fec.utils import comm
from fec.utils.errors import LaunchError


def resolve_device(cfg, local_rank=None):
    """MODEL.DEVICE as a torch.device; with "auto" or "cuda", process ``local_rank``
    (default: comm.get_local_rank()) takes GPU ``local_rank``."""
    local_rank = comm.get_local_rank() if local_rank is None else local_rank
    name = cfg.MODEL.DEVICE
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise LaunchError(f"MODEL.DEVICE is {cfg.MODEL.DEVICE!r} but CUDA is not available; use cpu or auto")
        if name == "cuda":
            count = torch.cuda.device_count()
            if local_rank >= count:
                raise LaunchError(f"process with local rank {local_rank} needs GPU {local_rank}, but {count} "
                                  f"GPU(s) are visible: launch at most {count} processes per node")
            name = f"cuda:{local_rank}"
        torch.cuda.set_device(torch.device(name))
    return torch.device(name)
