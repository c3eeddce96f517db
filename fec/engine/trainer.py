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
    ``scaler``: the torch.amp.GradScaler for float16 (None: no loss scaling).

    The loop does not wait for the device: the losses stay on it until the next log,
    checkpoint or evaluation, where they are read in one go, averaged over ranks, and
    checked. A non-finite loss then stops every rank together, before any checkpoint
    or evaluation of the weights it touched (under float16 the scaler has skipped that
    step instead, and it is only logged)."""
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
    start_time = end = since = time.perf_counter()
    iteration = start_iter
    pending, names = [], None  # per iteration: the total loss and each term, on the device
    for iteration, batch in enumerate(data_loader, start_iter + 1):
        meters.update(data=time.perf_counter() - end)
        if augment is not None:
            batch = augment(batch)

        with autocast(cfg, device):
            loss_dict = model(batch)
        losses = sum(loss_dict.values())
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(losses).backward()
        if cfg.SOLVER.CLIP_GRAD_NORM > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.SOLVER.CLIP_GRAD_NORM)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        names = names or sorted(loss_dict)
        pending.append(torch.stack([losses.detach().float(), *(loss_dict[k].detach().float() for k in names)]))
        end = time.perf_counter()

        save = period > 0 and iteration % period == 0 and iteration != max_iter
        evaluate = test_fn is not None and eval_period > 0 and iteration % eval_period == 0 and iteration != max_iter
        if save or evaluate or iteration % cfg.LOG_PERIOD == 0 or iteration == max_iter:
            _record(logger, meters, pending, names, iteration, skipped_ok=scaler.is_enabled())
            # the step's time, averaged since the last read: per-step times of a device
            # that is not waited for would only time the queueing
            step_time = (time.perf_counter() - since) / len(pending)
            for _ in pending:
                meters.update(time=step_time)
            pending = []
        if iteration % cfg.LOG_PERIOD == 0 or iteration == max_iter:
            _log(logger, meters, optimizer, iteration, max_iter, device, writers)
        if save:
            checkpointer.save(f"model_{iteration:07d}", iteration)
        if evaluate:
            scalars = test_fn(iteration)
            if writers and scalars:
                writers.write(iteration, scalars)
            model.train()
        if not pending:
            end = since = time.perf_counter()
    if pending:  # a loader that ended before MAX_ITER
        _record(logger, meters, pending, names, iteration, skipped_ok=scaler.is_enabled())
    if iteration == max_iter:
        checkpointer.save("model_final", iteration)
    total = time.perf_counter() - start_time
    logger.info("Training: %d iterations in %s (%.3f s / it)", iteration - start_iter,
                datetime.timedelta(seconds=int(total)), total / max(iteration - start_iter, 1))
    return iteration


def _record(logger, meters, pending, names, iteration, skipped_ok=False):
    """Reads the losses of the iterations up to ``iteration`` (one host sync), averaged
    over ranks so that every rank sees the same values and stops at the same one.
    ``skipped_ok``: a non-finite loss is a float16 overflow whose step the scaler skipped."""
    values = comm.reduce_dict({"losses": torch.stack(pending)})["losses"].cpu()
    first = iteration - len(pending) + 1
    for i, row in enumerate(values.tolist()):
        if all(math.isfinite(v) for v in row):
            meters.update(loss=row[0], **dict(zip(names, row[1:])))
        elif skipped_ok:
            logger.warning("loss is %s at iteration %d under float16; the step was skipped", row[0], first + i)
        else:
            raise FloatingPointError(f"loss is {row[0]} at iteration {first + i}: {dict(zip(names, row[1:]))}; "
                                     f"lower SOLVER.BASE_LR?")


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
