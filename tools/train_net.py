"""Train a model: python tools/train_net.py --config-file F [--resume] [KEY VALUE ...]

Several processes: torchrun --nproc_per_node=N tools/train_net.py ... (or
python -m torch.distributed.launch); SOLVER.IMS_PER_BATCH is the global batch."""
import os
import signal
import sys

import torch
from torch.nn.parallel import DistributedDataParallel

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from fec.config import load_config  # noqa: E402
from fec.data import check_test_datasets, make_data_loader  # noqa: E402
from fec.data.build import check_datasets  # noqa: E402
from fec.engine.inference import flatten_results, run_test  # noqa: E402
from fec.engine.defaults import default_argument_parser, default_setup  # noqa: E402
from fec.engine.speed import apply_cuda_settings, compile_model, make_grad_scaler  # noqa: E402
from fec.engine.trainer import do_train  # noqa: E402
from fec.modeling import build_model  # noqa: E402
from fec.solver import make_lr_scheduler, make_optimizer  # noqa: E402
from fec.utils import comm  # noqa: E402
from fec.utils.checkpoint import Checkpointer  # noqa: E402
from fec.utils.device import resolve_device  # noqa: E402
from fec.utils.errors import ConfigError, MissingFileError, run_cli  # noqa: E402
from fec.utils.events import EventWriters  # noqa: E402
from fec.utils.logger import restores_logging  # noqa: E402


def train(cfg, args, logger):
    """Returns the trained model (unwrapped from DDP)."""
    device = resolve_device(cfg)
    apply_cuda_settings(cfg, device)
    distributed = comm.get_world_size() > 1
    if cfg.DIST.SYNC_BN and device.type != "cuda":
        raise ConfigError(f"DIST.SYNC_BN needs CUDA (SyncBatchNorm has no CPU kernel), but the device is "
                          f"{device}; set DIST.SYNC_BN False")
    # torchrun --max-restarts: a worker group restarted after a failure continues from
    # the last complete checkpoint, as --resume does
    restart = int(os.environ.get("TORCHELASTIC_RESTART_COUNT") or 0)
    resume = args.resume or restart > 0
    # cheap checks first: files and datasets before models are built and weights downloaded
    if cfg.MODEL.WEIGHTS and not os.path.isfile(cfg.MODEL.WEIGHTS) and not (
            resume and Checkpointer(None, save_dir=cfg.OUTPUT_DIR).last_checkpoint()):
        raise MissingFileError(f"MODEL.WEIGHTS {cfg.MODEL.WEIGHTS} does not exist: train the run that writes it "
                               f"first (for config/quickstart.yaml: bash train.sh, or config/quickstart_pretrain.yaml), "
                               f"or set MODEL.WEIGHTS \"\" to start from scratch")
    check_datasets(cfg)
    check_test_datasets(cfg)  # every evaluated split's classes agree with the config, before training
    model = build_model(cfg)
    if cfg.DIST.SYNC_BN and distributed:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(device)
    logger.info("Model: %s, %.2fM parameters (%.2fM trainable)", cfg.MODEL.META_ARCHITECTURE,
                sum(p.numel() for p in model.parameters()) / 1e6,
                sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6)
    optimizer = make_optimizer(cfg, model)
    scheduler = make_lr_scheduler(cfg, optimizer)
    scaler = make_grad_scaler(cfg, device)
    checkpointer = Checkpointer(model, optimizer, scheduler, cfg.OUTPUT_DIR, comm.is_main_process(), scaler,
                                keep=cfg.SOLVER.CHECKPOINT_KEEP, cfg=cfg)
    start_iter = 0
    # rank 0 decides what to resume from: on several machines without a shared
    # filesystem only rank 0's OUTPUT_DIR holds checkpoints, and every rank must agree
    last = comm.broadcast_object(checkpointer.last_checkpoint() if resume else None)
    if restart and comm.is_main_process():
        logger.warning("torchrun restarted the worker group after a failure (restart %d of at most %s): %s", restart,
                       os.environ.get("TORCHELASTIC_MAX_RESTARTS", "?"),
                       f"resuming from the last complete checkpoint, {last}" if last
                       else f"no checkpoint in {cfg.OUTPUT_DIR} yet, starting from scratch")
    if last:
        start_iter = checkpointer.load(last, resume=True, from_main=True)
    elif args.resume:
        logger.info("--resume: no checkpoint in %s, starting from scratch", cfg.OUTPUT_DIR)
    if not last and cfg.MODEL.WEIGHTS:
        checkpointer.load(cfg.MODEL.WEIGHTS, resume=False, skip_prefixes=cfg.MODEL.WEIGHTS_SKIP)
    loader = make_data_loader(cfg, is_train=True, is_distributed=distributed, start_iter=start_iter)
    writers = EventWriters(cfg.OUTPUT_DIR, comm.is_main_process())
    # the plain model is checkpointed; the compiled one (same parameters) trains and evaluates
    compiled = compile_model(cfg, model)
    trained = compiled
    if distributed:
        # DDP only trains
        trained = DistributedDataParallel(compiled, device_ids=[device.index] if device.type == "cuda" else None)

    def test_fn(iteration):
        comm.broadcast_buffers(model)  # every rank evaluates rank 0's (checkpointed) model
        results = run_test(cfg, compiled, is_distributed=distributed)
        return {k: v for name, r in results.items() if r for k, v in flatten_results(r, name).items()}

    try:
        do_train(cfg, trained, loader, optimizer, scheduler, checkpointer, device, start_iter, test_fn, writers,
                 scaler)
        comm.broadcast_buffers(model)
        if cfg.DATASETS.TEST:
            scalars = test_fn(cfg.SOLVER.MAX_ITER)
            writers.write(cfg.SOLVER.MAX_ITER, scalars)
    finally:
        writers.close()
    return model


def _terminate(signum, frame):
    # SIGTERM (from a launcher or a scheduler) unwinds like Ctrl-C: files are closed and
    # the last complete checkpoint stays in place.
    raise KeyboardInterrupt(f"signal {signum}")


@restores_logging
def main(argv=None):
    parser = default_argument_parser("Train an fec model")
    parser.add_argument("--resume", action="store_true",
                        help="continue from OUTPUT_DIR's last checkpoint (model, optimizer, scheduler, "
                             "iteration, RNG)")
    parser.add_argument("--check", action="store_true",
                        help="only check the config, its keys and values, and that its datasets are there; "
                             "train nothing (train.sh checks stage 2 before it runs stage 1)")
    args = parser.parse_args(argv)
    if args.check:
        check_datasets(load_config(args.config_file or None, args.opts))
        return None
    cfg, logger = default_setup(args, "fec.train")
    previous_sigterm = signal.signal(signal.SIGTERM, _terminate)
    try:
        model = train(cfg, args, logger)
    except KeyboardInterrupt:
        logger.error("interrupted; continue with --resume from the last checkpoint in %s", cfg.OUTPUT_DIR)
        sys.exit(130)
    finally:  # called as a function, main leaves its caller's handler in place
        signal.signal(signal.SIGTERM, previous_sigterm)
    comm.shutdown()
    return model


if __name__ == "__main__":
    run_cli(main)
