"""Checkpoints: model, optimizer, scheduler, loss scaler, iteration, RNG states and the run's
config (its YAML text, ``cfg.dump()``) in one file, written atomically, with a ``last_checkpoint`` tag naming the newest complete one."""
import errno
import io
import itertools
import logging
import os
import random
import re

import numpy as np
import torch

from . import comm
from .errors import CheckpointError, ConfigError, DiskFullError, MissingFileError
from .io import atomic_path, atomic_write

TAG = "last_checkpoint"
# what do_train's periodic checkpoints are named
PERIODIC = re.compile(r"model_\d{7}\.pth")


def unwrap(model):
    """The plain module under DDP (``.module``) and torch.compile (``._orig_mod``)."""
    for attr in ("_orig_mod", "module", "_orig_mod"):  # compile(DDP(compile(m))) at most
        inner = getattr(model, attr, None)
        if isinstance(inner, torch.nn.Module):
            model = inner
    return model


def atomic_save(obj, path):
    """torch.save to a temporary file beside ``path``, then rename: a crash or a kill
    leaves either the old file or the new one, never half of one."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def read_checkpoint(path, what="checkpoint"):
    """``torch.load(path)`` (tensors only, on the CPU); a file that is missing,
    unreadable, not a PyTorch file, truncated or holding arbitrary objects is a
    CheckpointError / MissingFileError naming it."""
    if not os.path.isfile(path):
        raise MissingFileError(f"{what} {path} not found; give the path of a .pth file that exists")
    if not os.access(path, os.R_OK):
        raise MissingFileError(f"cannot read {what} {path}: permission denied")
    with open(path, "rb") as f:
        magic = f.read(4)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        if magic == b"PK\x03\x04":  # torch.save's zip format
            if "weights_only" in str(e) or "Unsupported global" in str(e):
                raise CheckpointError(f"{what} {path} holds Python objects besides tensors, which are not "
                                      f"loaded for safety; save its state_dict with torch.save instead") from e
            raise CheckpointError(f"{what} {path} is truncated or damaged (the copy or the save did not "
                                  f"finish?); copy it again or use an earlier checkpoint") from e
        raise CheckpointError(f"{what} {path} is not a PyTorch checkpoint (.pth written by torch.save); "
                              f"check the path") from e


def device_of(model):
    """The device of a model's first parameter or buffer (CPU for an empty model)."""
    for t in itertools.chain(model.parameters(), model.buffers()):
        return t.device
    return torch.device("cpu")


def get_rng_states(device=None):
    """This process's RNG states: torch's CPU generator, NumPy's, Python's, and the CUDA
    generator of ``device`` when it is a GPU. No other GPU is touched: a CPU run opens no
    CUDA context, and a process saves nothing of the GPUs other processes use."""
    np_state = np.random.get_state()
    states = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": random.getstate(),
    }
    if device is not None and device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def set_rng_states(states, device=None):
    """The inverse of get_rng_states; the CUDA state goes to ``device`` when it is a GPU
    and the states have one (a CPU-written checkpoint leaves the GPU's seeded state)."""
    torch.set_rng_state(states["torch"])
    n = states["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    random.setstate(states["python"])
    cuda = states.get("cuda")
    if cuda is None or device is None or device.type != "cuda":
        return
    if isinstance(cuda, (list, tuple)):  # older checkpoints: every visible GPU's state, from rank 0
        index = device.index or 0
        if index >= len(cuda):
            return
        cuda = cuda[index]
    torch.cuda.set_rng_state(cuda, device)


def own_rng_states(rng, logger):
    """This rank's entry of a checkpoint's per-rank RNG states. Resumed by another number
    of processes, rank r continues rank r mod (ranks at save time)."""
    if "ranks" not in rng:  # older checkpoints: one process's states
        return rng
    ranks, rank, world = rng["ranks"], comm.get_rank(), comm.get_world_size()
    if len(ranks) != world and rank == 0:
        logger.warning("the checkpoint holds the RNG states of %d process(es), this run has %d: process r takes "
                       "those of process r mod %d (the data stream is not affected)", len(ranks), world, len(ranks))
    return ranks[rank % len(ranks)]


# Optimizer options that choose kernels for the device the parameters are on.
DEVICE_OPTIONS = ("fused", "foreach", "capturable")


def load_optimizer_state(optimizer, state):
    """``optimizer.load_state_dict(state)`` keeping the optimizer's own kernel options
    (DEVICE_OPTIONS), which make_optimizer chose for this run's device: a checkpoint
    written on the CPU resumed on a GPU keeps the fused kernel, and the other way round.
    They are set before loading, so torch places each state (``step``) for them."""
    groups = [{**saved, **{k: own[k] for k in DEVICE_OPTIONS if k in own}}
              for saved, own in zip(state["param_groups"], optimizer.param_groups)]
    groups += state["param_groups"][len(groups):]  # a count mismatch stays torch's error
    optimizer.load_state_dict({**state, "param_groups": groups})


def _plain_key(key):
    """A state_dict key without the DDP (``module.``) and torch.compile (``_orig_mod.``) prefixes."""
    while key.startswith(("module.", "_orig_mod.")):
        key = key.split(".", 1)[1]
    return key


def _by_prefix(keys):
    """"backbone.* 48, heads.* 4": how many keys under each top-level module."""
    counts = {}
    for k in keys:
        prefix = k.split(" ")[0].split(".")[0]
        counts[prefix] = counts.get(prefix, 0) + 1
    shown = sorted(counts.items(), key=lambda kv: -kv[1])
    text = ", ".join(f"{p}.* {n}" for p, n in shown[:4])
    return text + (f", {len(shown) - 4} more groups" if len(shown) > 4 else "")


def load_model_state(model, state, source, skip_prefixes=()):
    """Load ``state`` into ``model`` strictly; a mismatch names the keys and the file.

    Keys under ``skip_prefixes`` are left out on both sides: the checkpoint's are not
    loaded and the model's keep their initialisation; both lists are logged by name.
    """
    skip = tuple(skip_prefixes)
    own = unwrap(model).state_dict()
    state = {_plain_key(k): v for k, v in state.items()}
    if skip:
        logger = logging.getLogger(__name__)
        dropped = [k for k in state if k.startswith(skip)]
        kept_init = [k for k in own if k.startswith(skip)]
        logger.info("Skipped %d key(s) of %s under %s, not loaded: %s", len(dropped), source,
                    ", ".join(skip), ", ".join(dropped) or "none")
        logger.info("Left %d key(s) of the model at their initialisation: %s", len(kept_init),
                    ", ".join(kept_init) or "none")
        for prefix in skip:
            if not any(k.startswith(prefix) for k in [*dropped, *kept_init]):
                logger.warning("skip prefix %r matches no key of %s nor of the model", prefix, source)
    state = {k: v for k, v in state.items() if not k.startswith(skip)}
    missing = [k for k in own if k not in state and not k.startswith(skip)]
    unexpected = [k for k in state if k not in own]
    wrong_shape = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
                   for k in state if k in own and state[k].shape != own[k].shape]
    if missing or unexpected or wrong_shape:
        parts = []
        for label, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                            ("shape mismatches (checkpoint vs model)", wrong_shape)):
            if keys:
                more = f" ... and {len(keys) - 4} more" if len(keys) > 4 else ""
                parts.append(f"{label}: {', '.join(keys[:4])}{more} ({len(keys)} in all; {_by_prefix(keys)})")
        raise CheckpointError(f"checkpoint {source} does not fit this model (another architecture?); "
                              + "; ".join(parts) + "; give the config the checkpoint was trained with (its "
                              "OUTPUT_DIR/config.yaml), or MODEL.WEIGHTS_SKIP for the keys to leave out")
    unwrap(model).load_state_dict(state, strict=not skip)


def recorded_config(data):
    """The config text (YAML) a checkpoint's contents ``data`` record, or None."""
    text = data.get("config") if isinstance(data, dict) else None
    return text if isinstance(text, str) else None


class Checkpointer:
    def __init__(self, model, optimizer=None, scheduler=None, save_dir="", save_to_disk=True, scaler=None,
                 keep=0, cfg=None):
        self.model = model
        # the run's config: its YAML text goes into every checkpoint, so a copied
        # .pth still says how its faces were cut (see recorded_config)
        self.cfg = cfg
        # the config text of the last checkpoint loaded (None where it records none)
        self.loaded_config = None
        # periodic checkpoints (model_NNNNNNN.pth) kept besides model_final; 0: all
        self.keep = keep
        self.optimizer = optimizer
        self.scheduler = scheduler
        # a torch.amp.GradScaler; saved and resumed only when enabled (float16)
        self.scaler = scaler
        self.save_dir = save_dir
        self.save_to_disk = save_to_disk
        self.logger = logging.getLogger(__name__)

    def save(self, name, iteration):
        """Every process calls it: each one's RNG states (its own device's) are gathered
        into the checkpoint, which the process with ``save_to_disk`` (rank 0) writes."""
        if not self.save_dir:
            return
        rng = comm.all_gather(get_rng_states(device_of(self.model)))
        if not self.save_to_disk:
            return
        data = {"model": unwrap(self.model).state_dict(), "iteration": iteration, "rng": {"ranks": rng}}
        if self.optimizer is not None:
            data["optimizer"] = self.optimizer.state_dict()
        if self.scheduler is not None:
            data["scheduler"] = self.scheduler.state_dict()
        if self.scaler is not None and self.scaler.is_enabled():
            data["scaler"] = self.scaler.state_dict()
        if self.cfg is not None:
            data["config"] = self.cfg.dump()
        path = os.path.join(self.save_dir, f"{name}.pth")
        try:
            # the tag is written after the file is complete: a failure leaves the
            # previous checkpoint and its tag as they were
            atomic_save(data, path)
            atomic_write(os.path.join(self.save_dir, TAG), f"{name}.pth")
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            last = self.last_checkpoint()
            kept = f"the last complete checkpoint, {last}, and its last_checkpoint tag are intact" if last else \
                "no earlier checkpoint was written"
            raise DiskFullError(
                f"no space left on the device of {self.save_dir} (OUTPUT_DIR) to write checkpoint {path}; {kept}. "
                f"Free space, or keep fewer checkpoints (SOLVER.CHECKPOINT_KEEP), then continue with --resume") from e
        self.logger.info("Saved checkpoint %s (iteration %d)", path, iteration)
        if PERIODIC.fullmatch(f"{name}.pth"):
            self._prune()

    def _prune(self):
        """Remove all but the newest ``keep`` periodic checkpoints (model_final stays)."""
        if self.keep <= 0:
            return
        periodic = sorted(f for f in os.listdir(self.save_dir) if PERIODIC.fullmatch(f))
        for old in periodic[:-self.keep]:
            os.remove(os.path.join(self.save_dir, old))
            self.logger.info("Removed old checkpoint %s (SOLVER.CHECKPOINT_KEEP %d)", old, self.keep)

    def last_checkpoint(self):
        tag = os.path.join(self.save_dir, TAG)
        if not os.path.exists(tag):
            return None
        with open(tag) as f:
            name = f.read().strip()
        path = os.path.join(self.save_dir, name)
        return path if os.path.exists(path) else None

    def load(self, path, resume=False, skip_prefixes=(), from_main=False):
        """Load weights from ``path``; with ``resume``, also optimizer, scheduler, loss
        scaler and RNG states. Returns the iteration to continue from (0 when not resuming).
        ``skip_prefixes``: model keys not to load (see load_model_state). ``from_main``:
        every process calls it with rank 0's ``path``; a process whose machine lacks
        that file (several machines without a shared filesystem) gets it from rank 0."""
        if resume and skip_prefixes:
            raise ConfigError("resuming loads the whole checkpoint; MODEL.WEIGHTS_SKIP is for starting weights")
        self.logger.info("Loading checkpoint %s", path)
        data = self._read_from_main(path) if from_main and comm.get_world_size() > 1 else read_checkpoint(path)
        state = data["model"] if isinstance(data, dict) and "model" in data else data
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise CheckpointError(f"checkpoint {path} holds no model weights (a dict of tensors); "
                                  f"give an fec checkpoint or a state_dict")
        load_model_state(self.model, state, path, skip_prefixes)
        self.loaded_config = recorded_config(data)
        if not resume:
            return 0
        for key, obj in (("optimizer", self.optimizer), ("scheduler", self.scheduler)):
            if obj is not None:
                if key not in data:
                    raise CheckpointError(f"checkpoint {path} has no {key} state to resume from; "
                                          f"start it as MODEL.WEIGHTS instead of resuming")
                if key == "optimizer":
                    load_optimizer_state(obj, data[key])
                else:
                    obj.load_state_dict(data[key])
        if self.scaler is not None and self.scaler.is_enabled():
            if "scaler" in data:
                self.scaler.load_state_dict(data["scaler"])
            else:
                self.logger.info("checkpoint %s has no loss-scaler state (trained without float16); the loss "
                                 "scale starts afresh", path)
        if "rng" in data:
            set_rng_states(own_rng_states(data["rng"], self.logger), device_of(self.model))
        return int(data.get("iteration", 0))

    def _read_from_main(self, path):
        found = comm.all_gather(os.path.isfile(path))
        if not found[0]:  # the same error on every rank, so none waits for the others
            raise MissingFileError(f"checkpoint {path} not found on the machine of rank 0")
        if all(found):
            return read_checkpoint(path)
        payload = None
        if comm.is_main_process():
            with open(path, "rb") as f:
                payload = f.read()
        payload = comm.broadcast_bytes(payload)
        if found[comm.get_rank()]:
            return read_checkpoint(path)
        self.logger.warning("%s is not on this machine: loaded rank 0's copy (%d bytes)", path, len(payload))
        return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
