"""The training loop: loss dict from the model (under autocast with SOLVER.AMP),
optimizer and per-iteration scheduler steps (through the loss scaler with float16),
smoothed metrics with ETA, periodic checkpoints and evaluation."""
import datetime
import logging
import math
import time

import torch

from fec.data.device_augment import build_batch_augmentation
from fec.engine.speed import autocast
from fec.utils import comm
from fec.utils.metric_logger import MetricLogger


def _max_memory_mb(device):
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return None


def do_train(cfg, model, data_loader, optimizer, scheduler, checkpointer, device, start_iter=0,
             test_fn=None, writers=None, scaler=None):
    """Trains from ``start_iter`` to SOLVER.MAX_ITER. ``test_fn(iteration)`` evaluates and
    returns a dict of scalars to record; ``writers`` take metric records (rank 0);
    ``scaler``: the torch.amp.GradScaler for float16 (None: no loss scaling)."""
    logger = logging.getLogger(__name__)
    logger.info("Start training at iteration %d of %d", start_iter, cfg.SOLVER.MAX_ITER)
    meters = MetricLogger(window_size=20)
    max_iter = cfg.SOLVER.MAX_ITER
    period = cfg.SOLVER.CHECKPOINT_PERIOD
    eval_period = cfg.TEST.EVAL_PERIOD
    if scaler is None:
        scaler = torch.amp.GradScaler(device.type, enabled=False)  # its calls pass through
    augment = build_batch_augmentation(cfg, device)  # INPUT.AUGMENT_ON device, else None
    model.train()
    start_time = end = time.perf_counter()
    iteration = start_iter
    for iteration, batch in enumerate(data_loader, start_iter + 1):
        data_time = time.perf_counter() - end
        if augment is not None:
            batch = augment(batch)

        with autocast(cfg, device):
            loss_dict = model(batch)
        losses = sum(loss_dict.values())
        # averaged over ranks before the check, so every rank stops together
        reduced = comm.reduce_dict(loss_dict)
        total = sum(reduced.values()).item()
        finite = math.isfinite(total)
        if not finite and not scaler.is_enabled():
            raise FloatingPointError(f"loss is {total} at iteration {iteration}: "
                                     f"{ {k: v.item() for k, v in reduced.items()} }; lower SOLVER.BASE_LR?")
        if not finite:  # a float16 overflow: the scaler skips this step and lowers its scale
            logger.warning("loss is %s at iteration %d under float16; the step is skipped", total, iteration)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(losses).backward()
        if cfg.SOLVER.CLIP_GRAD_NORM > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.SOLVER.CLIP_GRAD_NORM)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()

        if finite:
            meters.update(loss=total, **reduced)
        batch_time = time.perf_counter() - end
        meters.update(time=batch_time, data=data_time)
        end = time.perf_counter()

        if iteration % cfg.LOG_PERIOD == 0 or iteration == max_iter:
            _log(logger, meters, optimizer, iteration, max_iter, device, writers)
        if period > 0 and iteration % period == 0 and iteration != max_iter:
            checkpointer.save(f"model_{iteration:07d}", iteration)
        if test_fn is not None and eval_period > 0 and iteration % eval_period == 0 and iteration != max_iter:
            scalars = test_fn(iteration)
            if writers and scalars:
                writers.write(iteration, scalars)
            model.train()
            end = time.perf_counter()
    if iteration == max_iter:
        checkpointer.save("model_final", iteration)
    total = time.perf_counter() - start_time
    logger.info("Training: %d iterations in %s (%.3f s / it)", iteration - start_iter,
                datetime.timedelta(seconds=int(total)), total / max(iteration - start_iter, 1))
    return iteration


def _log(logger, meters, optimizer, iteration, max_iter, device, writers):
    eta = meters["time"].global_avg * (max_iter - iteration)
    lr = optimizer.param_groups[0]["lr"]
    mem = _max_memory_mb(device)
    logger.info(
        "eta: %s  iter: %d/%d  %s  lr: %.6f%s",
        datetime.timedelta(seconds=int(eta)), iteration, max_iter, meters, lr,
        f"  max mem: {mem:.0f} MB" if mem is not None else "",
    )
    if writers:
        record = {f"train/{k}": m.median for k, m in meters.meters.items()}
        record["train/lr"] = lr
        writers.write(iteration, record)
