"""What train_net and test_net share: arguments, config, device, logging set-up."""
import argparse
import logging
import os

import torch

from fec.config import load_config
from fec.utils import comm
from fec.utils.env import collect_env_info, seed_all
from fec.utils.logger import setup_logger


def default_argument_parser(description):
    parser = argparse.ArgumentParser(
        description=description,
        epilog="Trailing KEY VALUE pairs override the config, e.g. SOLVER.MAX_ITER 100 OUTPUT_DIR out/run1",
    )
    parser.add_argument("--config-file", default="", metavar="FILE", help="YAML experiment file")
    # torch.distributed.launch passes --local-rank=N (older versions --local_rank);
    # torchrun sets LOCAL_RANK instead.
    parser.add_argument("--local-rank", "--local_rank", dest="local_rank", type=int,
                        default=int(os.environ.get("LOCAL_RANK", 0)), help=argparse.SUPPRESS)
    parser.add_argument("opts", nargs=argparse.REMAINDER, metavar="KEY VALUE",
                        help="config overrides, after the flags")
    return parser


def resolve_device(cfg, local_rank=0):
    name = cfg.MODEL.DEVICE
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"MODEL.DEVICE is {cfg.MODEL.DEVICE!r} but CUDA is not available; use cpu or auto")
        if name == "cuda":
            name = f"cuda:{local_rank}"
        torch.cuda.set_device(torch.device(name))
    return torch.device(name)


def default_setup(args, name):
    """Config (frozen), logger, environment report and config copy in OUTPUT_DIR."""
    cfg = load_config(args.config_file or None, args.opts)
    rank = comm.get_rank()
    if cfg.OUTPUT_DIR and rank == 0:
        os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
    logger = setup_logger("fec", cfg.OUTPUT_DIR, rank)
    setup_logger(name, cfg.OUTPUT_DIR, rank)
    logger.info("Using %d process(es)", comm.get_world_size())
    logger.info("Environment:\n%s", collect_env_info())
    if args.config_file:
        logger.info("Config file %s", args.config_file)
    logger.info("Running with config:\n%s", cfg)
    if cfg.OUTPUT_DIR and rank == 0:
        with open(os.path.join(cfg.OUTPUT_DIR, "config.yaml"), "w") as f:
            f.write(cfg.dump())
    seed_all(cfg.SEED)
    return cfg, logging.getLogger(name)
