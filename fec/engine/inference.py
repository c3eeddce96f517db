"""Evaluation over a sharded loader: each rank runs its contiguous shard once, outputs
are gathered by sample index, and rank 0 scores them with the task's evaluator."""
import contextlib
import json
import logging
import os
import time

import torch
from tqdm import tqdm

from fec.engine.speed import autocast
from fec.evaluation import build_evaluator
from fec.utils import comm
from fec.utils.io import atomic_write


def _run_shard(model, loader, precision):
    indices, outputs = [], {}
    bar = tqdm(loader, desc="inference", disable=not comm.is_main_process(), leave=False, dynamic_ncols=True)
    with torch.no_grad(), precision:
        for batch in bar:
            out = model(batch)
            indices.append(batch["index"].cpu())
            for k, v in out.items():
                outputs.setdefault(k, []).append(v.detach().float().cpu())
    if not indices:
        return torch.zeros(0, dtype=torch.long), {}
    return torch.cat(indices), {k: torch.cat(v) for k, v in outputs.items()}


def merge_by_index(shards, size):
    """Outputs of every rank as tensors ordered by sample index; every index in
    ``range(size)`` must appear exactly once."""
    index = torch.cat([s[0] for s in shards])
    counts = torch.bincount(index, minlength=size)
    if len(index) != size or counts.numel() != size or (counts != 1).any():
        raise RuntimeError(f"inference covered {len(index)} samples for a dataset of {size}: "
                           f"{int((counts == 0).sum())} missing, {int((counts > 1).sum())} repeated")
    order = torch.argsort(index)
    keys = next(s[1] for s in shards if s[1]).keys()
    return {k: torch.cat([s[1][k] for s in shards if s[1]])[order] for k in keys}


def inference(model, loader, dataset_name, output_dir=None, precision=None):
    """Results dict on rank 0 (also written to OUTPUT_DIR/inference/<name>/results.json);
    None on other ranks. Every rank must call it. ``precision``: a context the forward
    passes run in (``fec.engine.speed.autocast``); None: float32."""
    logger = logging.getLogger(__name__)
    dataset = loader.dataset
    was_training = model.training
    model.eval()
    start = time.perf_counter()
    shard = _run_shard(model, loader, precision or contextlib.nullcontext())
    model.train(was_training)
    shards = comm.all_gather(shard)
    results = None
    if comm.is_main_process():
        predictions = merge_by_index(shards, len(dataset))
        evaluator = build_evaluator(dataset)
        results = evaluator(predictions)
        seconds = time.perf_counter() - start
        # how the work was split: every sample once, in total and per process
        results["inference"] = {"processes": comm.get_world_size(), "samples": len(dataset),
                                "samples_per_process": [len(s[0]) for s in shards],
                                "seconds": round(seconds, 3)}
        logger.info("%s: %d samples on %d process(es) in %.1f s\n  %s", dataset_name, len(dataset),
                    comm.get_world_size(), seconds, evaluator.summary(results))
        if output_dir:
            folder = os.path.join(output_dir, "inference", dataset_name)
            os.makedirs(folder, exist_ok=True)
            path = os.path.join(folder, "results.json")
            atomic_write(path, json.dumps(results, indent=2))
            logger.info("results written to %s", path)
            # evaluator-specific files (e.g. a confusion-matrix picture), beside results.json
            for name, data in getattr(evaluator, "artifacts", lambda r: {})(results).items():
                atomic_write(os.path.join(folder, name), data)
                logger.info("%s written to %s", name, folder)
    comm.synchronize()
    return results


def flatten_results(results, prefix):
    """Scalars of a nested results dict as ``prefix/a/b`` keys, for metric writers."""
    flat = {}
    for k, v in results.items():
        key = f"{prefix}/{k}"
        if isinstance(v, dict):
            flat.update(flatten_results(v, key))
        elif isinstance(v, (int, float)):
            flat[key] = v
    return flat


def run_test(cfg, model, is_distributed=False):
    """Every test dataset of the config; {name: results} on rank 0."""
    from fec.data import make_data_loader

    all_results = {}
    for name, loader in make_data_loader(cfg, is_train=False, is_distributed=is_distributed):
        device = next(model.parameters()).device
        all_results[name] = inference(model, loader, name, cfg.OUTPUT_DIR, autocast(cfg, device))
    return all_results
