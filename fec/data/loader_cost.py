"""What the training loader costs the CPU per face: the work one loader worker does
for a batch (read or decode each face, augment it or draw its parameters, collate),
timed as process CPU time in this process on one thread, so that other load on the
machine changes it little. ``faces/s per worker`` is its inverse: what one worker
with a core to itself delivers.

LOADER_PATHS are the three data paths tools/benchmark.py compares: JPEG files with
augmentation in the loader (the default), a packed store (DATASETS.PACKED) with
augmentation in the loader, a packed store with augmentation on the model's device
(INPUT.AUGMENT_ON device; that cost is then the device's, in the training step).
"""
import time
from dataclasses import dataclass

import cv2
import torch

from .build import make_data_loader

# label → config overrides
LOADER_PATHS = {
    "JPEG + loader aug": ["DATASETS.PACKED", "False", "INPUT.AUGMENT_ON", "loader"],
    "packed + loader aug": ["DATASETS.PACKED", "True", "INPUT.AUGMENT_ON", "loader"],
    "packed + device aug": ["DATASETS.PACKED", "True", "INPUT.AUGMENT_ON", "device"],
}


@dataclass
class LoaderCost:
    faces: int
    cpu_seconds: float
    wall_seconds: float

    @property
    def cpu_ms_per_face(self):
        return 1000.0 * self.cpu_seconds / self.faces

    @property
    def faces_per_s_per_worker(self):
        return self.faces / self.cpu_seconds


def faces_in(batch):
    """Faces in a training batch: triplet batches hold three per row."""
    images = batch["images"] if "images" in batch else batch["image"]
    if isinstance(images, (list, tuple)):  # INPUT.AUGMENT_ON device: one batch per triplet member
        return sum(t.shape[0] for t in images)
    return images.shape[0] * (images.shape[1] if images.dim() == 5 else 1)


def loader_cpu_cost(cfg, batches=10, warmup=2):
    """LoaderCost of ``batches`` training batches of ``cfg``'s loader after ``warmup``
    (which fill the page cache and start the stream), read in this process."""
    cfg = cfg.clone()
    cfg.defrost()
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.DATALOADER.PERSISTENT_WORKERS = False
    cfg.SOLVER.MAX_ITER = warmup + batches
    threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)  # as in a DataLoader worker
    cv2.setNumThreads(1)
    try:
        stream = iter(make_data_loader(cfg, is_train=True))
        for _ in range(warmup):
            next(stream)
        faces = 0
        cpu, wall = time.process_time(), time.perf_counter()
        for batch in stream:
            faces += faces_in(batch)
        return LoaderCost(faces, time.process_time() - cpu, time.perf_counter() - wall)
    finally:
        torch.set_num_threads(threads)
        cv2.setNumThreads(cv_threads)
