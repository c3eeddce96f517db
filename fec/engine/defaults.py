"""What train_net and test_net share: arguments, config, process group, device,
logging set-up.

One process: ``python tools/train_net.py ...``. Several: ``torchrun`` or
``python -m torch.distributed.launch`` (they set RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR, MASTER_PORT), or SLURM's ``srun`` (SLURM_PROCID, SLURM_NTASKS,
SLURM_LOCALID, SLURM_NODELIST).
"""
import argparse
import datetime
import logging
import os
import re
from collections import namedtuple

import torch
import torch.distributed as dist

from fec.config import load_config
from fec.utils import comm
from fec.utils.device import resolve_device, uses_cuda
from fec.utils.env import collect_env_info, seed_all, set_deterministic
from fec.utils.errors import ConfigError, LaunchError
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
                        default=None, help=argparse.SUPPRESS)
    parser.add_argument("opts", nargs=argparse.REMAINDER, metavar="KEY VALUE",
                        help="config overrides, after the flags")
    return parser


def device_id_supported(version):
    """Whether init_process_group should get ``device_id``: it exists from torch 2.3, and
    torch 2.7.0 can hang in NCCL collectives with it (pytorch/pytorch#153960)."""
    m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", str(version))
    if not m:
        return False
    v = tuple(int(x or 0) for x in m.groups())
    return v >= (2, 3, 0) and v[:3] != (2, 7, 0)


DistEnv = namedtuple("DistEnv", "rank world_size local_rank master_addr master_port")


def first_slurm_host(nodelist):
    """First host of a SLURM node list: "gpu[07-09,12],cpu1" → "gpu07"."""
    m = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if not m:
        raise ValueError(f"cannot read SLURM_NODELIST {nodelist!r}")
    prefix, ranges = m.groups()
    return prefix + (ranges.split(",")[0].split("-")[0] if ranges else "")


def dist_env(environ, local_rank_arg=None):
    """Rank, world size, local rank and rendezvous address from the launcher's
    environment: torchrun / torch.distributed.launch first, else SLURM, else one process.
    Values that cannot be are a LaunchError naming the variable."""
    try:
        env = _dist_env(environ, local_rank_arg)
    except ValueError as e:
        raise LaunchError(f"bad launch environment: {e}; launch with torchrun, srun or plain python") from e
    if env.world_size < 1 or not 0 <= env.rank < env.world_size or env.local_rank < 0:
        raise LaunchError(f"bad launch environment: rank {env.rank}, local rank {env.local_rank} of world size "
                          f"{env.world_size} (RANK, LOCAL_RANK, WORLD_SIZE); launch with torchrun, srun or "
                          f"plain python")
    if not 0 < env.master_port < 65536:
        raise LaunchError(f"bad launch environment: MASTER_PORT {env.master_port} is not a port (1..65535)")
    return env


def _dist_env(environ, local_rank_arg=None):
    if "WORLD_SIZE" in environ:
        local = local_rank_arg if local_rank_arg is not None else environ.get("LOCAL_RANK", 0)
        return DistEnv(int(environ.get("RANK", 0)), int(environ["WORLD_SIZE"]), int(local),
                       environ.get("MASTER_ADDR", "127.0.0.1"), int(environ.get("MASTER_PORT", 29500)))
    if "SLURM_PROCID" in environ and int(environ.get("SLURM_NTASKS", 1)) > 1:
        addr = environ.get("MASTER_ADDR") or first_slurm_host(
            environ.get("SLURM_STEP_NODELIST") or environ.get("SLURM_NODELIST") or "127.0.0.1")
        # a port per job, so two jobs sharing a node do not collide
        port = int(environ.get("MASTER_PORT") or 20000 + int(environ.get("SLURM_JOB_ID", 0)) % 20000)
        return DistEnv(int(environ["SLURM_PROCID"]), int(environ["SLURM_NTASKS"]),
                       int(environ.get("SLURM_LOCALID", 0)), addr, port)
    return DistEnv(0, 1, int(local_rank_arg or 0), "127.0.0.1", 29500)


def _attempt_store(env, timeout):
    """The env:// rendezvous store, under a prefix of its own for each torchrun attempt.

    torchrun --max-restarts restarts the worker group with the same MASTER_ADDR:PORT,
    whose store (the elastic agent's) outlives the workers: without a prefix, restarted
    workers read the dead workers' addresses left there, and their process group never
    forms (gloo: "connection refused", until the timeout)."""
    store, _, _ = next(dist.rendezvous("env://", rank=env.rank, world_size=env.world_size, timeout=timeout))
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT")
    return dist.PrefixStore(f"fec/attempt_{attempt}", store) if attempt else store


def init_distributed(cfg, local_rank_arg=None):
    """Joins the process group when the job has several processes; returns the world
    size. Backend per DIST.BACKEND ("auto": nccl on CUDA, gloo on CPU); every
    collective fails after DIST.TIMEOUT seconds instead of hanging."""
    env = dist_env(os.environ, local_rank_arg)
    comm.set_local_rank(env.local_rank)
    if env.world_size == 1 or comm.is_dist():
        return comm.get_world_size()
    device = resolve_device(cfg, env.local_rank, env.world_size)
    backend = cfg.DIST.BACKEND
    if backend == "auto":
        backend = "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl" and device.type != "cuda":
        raise ConfigError(f"DIST.BACKEND nccl needs CUDA, but MODEL.DEVICE resolves to {device}; use gloo")
    os.environ.setdefault("MASTER_ADDR", env.master_addr)
    os.environ.setdefault("MASTER_PORT", str(env.master_port))
    timeout = datetime.timedelta(seconds=cfg.DIST.TIMEOUT)
    # device_id binds the NCCL communicator to this process's GPU (set_device above
    # already points NCCL at it where the argument is missing or unsafe)
    bind = {"device_id": device} if device.type == "cuda" and device_id_supported(torch.__version__) else {}
    try:
        dist.init_process_group(backend, store=_attempt_store(env, timeout), rank=env.rank,
                                world_size=env.world_size, timeout=timeout, **bind)
    except (RuntimeError, ValueError) as e:  # torch's DistNetworkError / DistStoreError are RuntimeErrors
        reason = " ".join(str(e).split())[:200]
        raise LaunchError(f"process {env.rank} of {env.world_size} could not join the process group at "
                          f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']} (MASTER_ADDR, MASTER_PORT): "
                          f"{reason}; is the port free and the address reachable from every process?") from e
    return env.world_size


def default_setup(args, name):
    """Config (frozen), process group, logger, environment report and config copy in
    OUTPUT_DIR."""
    stray = [o for o in args.opts if o.startswith("--")]
    if stray:
        raise ConfigError(f"{stray[0]} comes after the KEY VALUE overrides; put flags first")
    cfg = load_config(args.config_file or None, args.opts)
    set_deterministic(cfg.DETERMINISTIC)  # before any CUDA work, the process group's included
    init_distributed(cfg, args.local_rank)
    rank = comm.get_rank()
    if cfg.OUTPUT_DIR and rank == 0:
        os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
    logger = setup_logger("fec", cfg.OUTPUT_DIR, rank)
    setup_logger(name, cfg.OUTPUT_DIR, rank)
    logger.info("Using %d process(es)%s", comm.get_world_size(),
                f", backend {dist.get_backend()}" if comm.is_dist() else "")
    logger.info("Environment:\n%s", collect_env_info(cuda=uses_cuda(cfg)))
    if args.config_file:
        logger.info("Config file %s", args.config_file)
    logger.info("Running with config:\n%s", cfg)
    if cfg.OUTPUT_DIR and rank == 0:
        with open(os.path.join(cfg.OUTPUT_DIR, "config.yaml"), "w") as f:
            f.write(cfg.dump())
    seed_all(cfg.SEED)
    return cfg, logging.getLogger(name)
