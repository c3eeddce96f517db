"""Catalog name → dataset → transforms → sampler → batch sampler → DataLoader."""
import bisect

import torch
from torch.utils.data import BatchSampler, ConcatDataset, DataLoader

from fec.config import paths_catalog
from fec.utils import comm

from .datasets import DATASETS
from .face_store import open_store
from .samplers import InferenceSampler, IterationBasedBatchSampler, TrainingSampler
from .transforms import build_transforms


def build_dataset(cfg, name, is_train):
    factory, args = paths_catalog.get(name, cfg.DATASETS.ROOT)
    dataset = DATASETS[factory](cfg, is_train, **args)
    dataset.transform = build_transforms(cfg, is_train)
    if cfg.DATASETS.PACKED:
        dataset.store = open_store(cfg, name, dataset)
    return dataset


class SeededConcatDataset(ConcatDataset):
    """ConcatDataset that passes the training sampler's ``(index, seed)`` keys on to
    the dataset holding ``index`` (torch's compares the key with 0 and fails)."""

    def __getitem__(self, key):
        index, seed = key if isinstance(key, tuple) else (key, None)
        d = bisect.bisect_right(self.cumulative_sizes, index)
        local = index - (self.cumulative_sizes[d - 1] if d else 0)
        return self.datasets[d][local if seed is None else (local, seed)]


def _per_rank(total, key, world):
    if total % world:
        raise ValueError(f"{key} = {total} is the global batch and must divide evenly over "
                         f"{world} processes")
    return total // world


def make_data_loader(cfg, is_train, is_distributed=False, start_iter=0):
    """Training: one loader giving exactly SOLVER.MAX_ITER - start_iter batches.
    Test: a list of (dataset name, loader), each loader over this rank's shard."""
    world = comm.get_world_size() if is_distributed else 1
    rank = comm.get_rank() if is_distributed else 0
    workers = cfg.DATALOADER.NUM_WORKERS
    # pinned host memory makes the copies to a GPU asynchronous
    options = {"num_workers": workers, "pin_memory": torch.cuda.is_available()}
    if workers > 0:
        options.update(persistent_workers=cfg.DATALOADER.PERSISTENT_WORKERS,
                       prefetch_factor=cfg.DATALOADER.PREFETCH_FACTOR)
    if is_train:
        batch = _per_rank(cfg.SOLVER.IMS_PER_BATCH, "SOLVER.IMS_PER_BATCH", world)
        datasets = [build_dataset(cfg, n, True) for n in cfg.DATASETS.TRAIN]
        dataset = datasets[0] if len(datasets) == 1 else SeededConcatDataset(datasets)
        sampler = TrainingSampler(len(dataset), cfg.SEED, rank, world, start=start_iter * batch)
        batches = IterationBasedBatchSampler(BatchSampler(sampler, batch, drop_last=True),
                                             cfg.SOLVER.MAX_ITER, start_iter)
        return DataLoader(dataset, batch_sampler=batches, **options,
                          # its own generator: the global RNG is not consumed, so resume is exact
                          generator=torch.Generator().manual_seed(cfg.SEED))
    batch = _per_rank(cfg.TEST.IMS_PER_BATCH, "TEST.IMS_PER_BATCH", world)
    loaders = []
    for name in cfg.DATASETS.TEST:
        dataset = build_dataset(cfg, name, False)
        sampler = InferenceSampler(len(dataset), rank, world)
        loaders.append((name, DataLoader(dataset, batch_size=batch, sampler=sampler, **options)))
    return loaders
