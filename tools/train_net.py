"""Train a model: python tools/train_net.py --config-file F [--resume] [KEY VALUE ...]"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from fec.data import make_data_loader  # noqa: E402
from fec.engine.inference import flatten_results, run_test  # noqa: E402
from fec.engine.launch import default_argument_parser, default_setup, resolve_device  # noqa: E402
from fec.engine.trainer import do_train  # noqa: E402
from fec.modeling import build_model  # noqa: E402
from fec.solver import make_lr_scheduler, make_optimizer  # noqa: E402
from fec.utils import comm  # noqa: E402
from fec.utils.checkpoint import Checkpointer  # noqa: E402
from fec.utils.events import EventWriters  # noqa: E402


def train(cfg, args, logger):
    device = resolve_device(cfg, args.local_rank)
    model = build_model(cfg).to(device)
    logger.info("Model: %s, %.2fM parameters (%.2fM trainable)", cfg.MODEL.META_ARCHITECTURE,
                sum(p.numel() for p in model.parameters()) / 1e6,
                sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6)
    optimizer = make_optimizer(cfg, model)
    scheduler = make_lr_scheduler(cfg, optimizer)
    checkpointer = Checkpointer(model, optimizer, scheduler, cfg.OUTPUT_DIR, comm.is_main_process())
    start_iter = 0
    last = checkpointer.last_checkpoint() if args.resume else None
    if last:
        start_iter = checkpointer.load(last, resume=True)
    elif args.resume:
        logger.info("--resume: no checkpoint in %s, starting from scratch", cfg.OUTPUT_DIR)
    if not last and cfg.MODEL.WEIGHTS:
        checkpointer.load(cfg.MODEL.WEIGHTS, resume=False)
    loader = make_data_loader(cfg, is_train=True, start_iter=start_iter)
    writers = EventWriters(cfg.OUTPUT_DIR, comm.is_main_process())

    def test_fn(iteration):
        results = run_test(cfg, model)
        return {k: v for name, r in results.items() if r for k, v in flatten_results(r, name).items()}

    try:
        do_train(cfg, model, loader, optimizer, scheduler, checkpointer, device, start_iter, test_fn, writers)
        if cfg.DATASETS.TEST:
            scalars = test_fn(cfg.SOLVER.MAX_ITER)
            writers.write(cfg.SOLVER.MAX_ITER, scalars)
    finally:
        writers.close()
    return model


def main():
    parser = default_argument_parser("Train an fec model")
    parser.add_argument("--resume", action="store_true",
                        help="continue from OUTPUT_DIR's last checkpoint (model, optimizer, scheduler, "
                             "iteration, RNG)")
    args = parser.parse_args()
    cfg, logger = default_setup(args, "fec.train")
    train(cfg, args, logger)


if __name__ == "__main__":
    main()
