"""Catalog name → dataset → transforms → sampler → batch sampler → DataLoader."""
import bisect
import logging
import os

import torch
from torch.utils.data import BatchSampler, ConcatDataset, DataLoader

from fec.config import paths_catalog
from fec.utils import comm
from fec.utils.errors import ConfigError, DatasetError
from fec.utils.device import uses_cuda

from .datasets import DATASETS
from .face_store import open_store
from .samplers import InferenceSampler, IterationBasedBatchSampler, TrainingSampler, split_key
from .transforms import build_transforms


# Meta-architectures with a classifier head, whose classes are MODEL.CLASSIFIER.CLASS_NAMES.
CLASSIFYING = ("Classifier", "ClassifierRegressor")


def build_dataset(cfg, name, is_train):
    factory, args = paths_catalog.get(name, cfg.DATASETS.ROOT)
    dataset = DATASETS[factory](cfg, is_train, **args)
    check_class_names(cfg, name, dataset)
    dataset.transform = build_transforms(cfg, is_train)
    if cfg.DATASETS.PACKED:
        dataset.store = open_store(cfg, name, dataset)
    return dataset


def check_datasets(cfg):
    """Every file and folder the config's datasets read exists: a cheap check, run
    before models are built or weights downloaded."""
    for split, names in (("DATASETS.TRAIN", cfg.DATASETS.TRAIN), ("DATASETS.TEST", cfg.DATASETS.TEST)):
        for name in names:
            _, args = paths_catalog.get(name, cfg.DATASETS.ROOT)
            for key in ("csv", "image_dir", "folder", "fer2013"):
                path = args.get(key)
                if path and not os.path.exists(path):
                    folder = os.path.relpath(path, cfg.DATASETS.ROOT).split(os.sep)[0]
                    link = os.path.join(cfg.DATASETS.ROOT, folder)
                    what = "is not linked" if not os.path.exists(link) else "is not prepared"
                    raise DatasetError(f"dataset {name} ({split}) {what}: {path} does not exist; run `make link "
                                       f"{folder.upper()}=/path/to/{folder}` (or set DATASETS.ROOT) to point "
                                       f"{link} at the prepared dataset")


def check_class_names(cfg, name, dataset):
    """A classifier's MODEL.CLASSIFIER.CLASS_NAMES must be the dataset's classes, in its
    label order: they name the logits in results, confusion matrices and predictions."""
    if cfg.MODEL.META_ARCHITECTURE not in CLASSIFYING or getattr(dataset, "task", None) not in (
            "classification", "affect"):
        return
    want, got = list(cfg.MODEL.CLASSIFIER.CLASS_NAMES), list(dataset.class_names)
    if want != got:
        raise ConfigError(f"dataset {name} has the classes {got} (in label order) but MODEL.CLASSIFIER.CLASS_NAMES "
                          f"is {want}: set MODEL.CLASSIFIER.NUM_CLASSES {len(got)} and CLASS_NAMES {got} in the "
                          f"config, or train and test on datasets with the config's classes")


def check_test_datasets(cfg):
    """Build every DATASETS.TEST dataset of a classifier once, so that a class-name
    mismatch stops training at its start rather than at its first evaluation."""
    if cfg.MODEL.META_ARCHITECTURE in CLASSIFYING:
        for name in cfg.DATASETS.TEST:
            build_dataset(cfg, name, is_train=False)


class SeededConcatDataset(ConcatDataset):
    """ConcatDataset that passes the training sampler's ``(index, seed)`` keys on to
    the dataset holding ``index`` (torch's compares the key with 0 and fails)."""

    def __getitem__(self, key):
        index, seed = split_key(key)
        d = bisect.bisect_right(self.cumulative_sizes, index)
        local = index - (self.cumulative_sizes[d - 1] if d else 0)
        return self.datasets[d][local if seed is None else (local, seed)]


def _per_rank(total, key, world):
    if total % world:
        raise ConfigError(f"{key} = {total} is the global batch and must divide evenly over "
                          f"{world} processes; give a multiple of {world}")
    return total // world


def split_evenly(total, world, rank):
    """Rank ``rank``'s part of ``total`` split over ``world`` as evenly as possible
    (the first ``total % world`` ranks take one more), at least 1."""
    return max(1, total // world + (1 if rank < total % world else 0))


def make_data_loader(cfg, is_train, is_distributed=False, start_iter=0):
    """Training: one loader giving exactly SOLVER.MAX_ITER - start_iter batches.
    Test: a list of (dataset name, loader), each loader over this rank's shard."""
    world = comm.get_world_size() if is_distributed else 1
    rank = comm.get_rank() if is_distributed else 0
    workers = cfg.DATALOADER.NUM_WORKERS
    # pinned host memory makes the copies to a GPU asynchronous; on a CPU run it would
    # open a CUDA context on a GPU machine for nothing
    options = {"num_workers": workers, "pin_memory": uses_cuda(cfg)}
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
    # the evaluation batch changes no result, so it need not divide evenly
    batch = split_evenly(cfg.TEST.IMS_PER_BATCH, world, rank)
    if cfg.TEST.IMS_PER_BATCH % world:
        logging.getLogger(__name__).info(
            "TEST.IMS_PER_BATCH %d split over %d processes as evenly as possible: %s per process",
            cfg.TEST.IMS_PER_BATCH, world, ", ".join(str(split_evenly(cfg.TEST.IMS_PER_BATCH, world, r))
                                                      for r in range(world)))
    loaders = []
    for name in cfg.DATASETS.TEST:
        dataset = build_dataset(cfg, name, False)
        sampler = InferenceSampler(len(dataset), rank, world)
        loaders.append((name, DataLoader(dataset, batch_size=batch, sampler=sampler, **options)))
    return loaders
