"""Seeding and a report of the software and hardware a run used."""
import platform
import random

import numpy as np
import torch


def seed_all(seed):
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def collect_env_info():
    import cv2
    import torchvision

    lines = [
        f"Python: {platform.python_version()} ({platform.machine()}, {platform.system()})",
        f"PyTorch: {torch.__version__}, torchvision: {torchvision.__version__}, OpenCV: {cv2.__version__}",
        f"CPU threads: {torch.get_num_threads()}",
    ]
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        lines.append(f"CUDA {torch.version.cuda}: {', '.join(names)}")
    else:
        lines.append("CUDA: not available")
    return "\n".join(lines)
