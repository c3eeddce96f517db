"""Seeding, the deterministic mode, and a report of the software and hardware a run used."""
import os
import platform
import random

import numpy as np
import torch


def seed_all(seed):
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_deterministic(enabled):
    """DETERMINISTIC True: cuDNN's deterministic algorithms and no autotuning,
    torch.use_deterministic_algorithms (an op without a deterministic kernel raises,
    naming itself), cuBLAS's deterministic workspace. TF32 is turned off with the other
    CUDA settings (fec.engine.speed.apply_cuda_settings). Off: nothing is changed. Call
    before the first CUDA operation: cuBLAS reads its workspace setting once."""
    if not enabled:
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True)


def collect_env_info(cuda=True):
    """``cuda``: name the GPUs (which initialises CUDA); False, for a CPU run, counts them."""
    import cv2
    import torchvision

    lines = [
        f"Python: {platform.python_version()} ({platform.machine()}, {platform.system()})",
        f"PyTorch: {torch.__version__}, torchvision: {torchvision.__version__}, OpenCV: {cv2.__version__}",
        f"CPU threads: {torch.get_num_threads()}",
    ]
    if torch.cuda.is_available() and not cuda:
        lines.append(f"CUDA {torch.version.cuda}: {torch.cuda.device_count()} GPU(s), not used")
    elif torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        lines.append(f"CUDA {torch.version.cuda}: {', '.join(names)}")
    else:
        lines.append("CUDA: not available")
    return "\n".join(lines)
