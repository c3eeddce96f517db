"""The training benchmark (``tools/benchmark.py train``): where a training step's time goes.

For each variant of a config (``--compare KEY=V1,V2``, several keys give every
combination) it measures, with fresh models from one seed:

- model-only: ``do_train`` on one batch already on the device, again and again: the
  limit that the loader and the loop can only approach;
- loader-only: batches from the configured training DataLoader, nothing else (the
  mean rate once the batches made ahead are used up);
- end-to-end: ``do_train`` on that DataLoader, as training runs;
- loader CPU (part ``cpu``): the loader's process CPU time per face on one thread and
  its inverse, faces/s per worker (fec.data.loader_cost), which other load on the
  machine changes little.

Steps before ``warmup`` are left out (workers starting, cudnn.benchmark, compilation).
Repeats alternate the variants (A B, B A, A B, ...) and the median is reported, so
that load coming and going on a shared machine touches every variant alike; ratios
between variants are medians of ratios within a repeat.
"""
import itertools
import logging
import statistics
import time
from dataclasses import dataclass, field

import torch

from fec.config import load_config
from fec.data import make_data_loader
from fec.data.loader_cost import faces_in, loader_cpu_cost
from fec.engine.speed import amp_dtype, apply_cuda_settings, compile_model, deterministic, make_grad_scaler
from fec.engine.trainer import do_train
from fec.modeling import build_model
from fec.solver import make_lr_scheduler, make_optimizer
from fec.utils.checkpoint import Checkpointer
from fec.utils.device import resolve_device
from fec.utils.env import seed_all
from fec.utils.logger import logger_level

PARTS = ("model", "loader", "e2e")  # timed parts, as images/s
ALL_PARTS = PARTS + ("cpu",)
# Speed does not depend on the weights' values: random init, nothing to download.
RANDOM_INIT = ["MODEL.WEIGHTS", "", "MODEL.BACKBONE.WEIGHTS", ""]


def parse_compare(items):
    """["KEY=V1,V2", ...] → [(KEY, [V1, V2]), ...]."""
    out = []
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not key or not values:
            raise ValueError(f"--compare takes KEY=V1,V2[,...], got {item!r}")
        out.append((key, values.split(",")))
    return out


def variants(compare):
    """Every combination of the compared values: [(label, [KEY, V, ...]), ...]."""
    if not compare:
        return [("config", [])]
    keys = [k for k, _ in compare]
    combos = itertools.product(*(values for _, values in compare))
    return [(" ".join(f"{k}={v}" for k, v in zip(keys, combo)), [x for kv in zip(keys, combo) for x in kv])
            for combo in combos]


class _Timed:
    """An iterable that notes the time each item is handed out."""

    def __init__(self, iterable):
        self.iterable, self.times = iterable, []

    def __iter__(self):
        for item in self.iterable:
            self.times.append(time.perf_counter())
            yield item


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Variant:
    label: str
    cfg: object
    device: torch.device
    batch: dict = None  # model-only's batch, on the device
    images: int = 0
    times: dict = field(default_factory=lambda: {p: [] for p in PARTS})  # per repeat, median seconds
    peak_mb: list = field(default_factory=list)
    loader_cpu: list = field(default_factory=list)  # LoaderCost per repeat


def _train_seconds(v, batches, warmup):
    """Median seconds per training step after ``warmup`` steps of do_train over ``batches``."""
    cfg, device = v.cfg, v.device
    apply_cuda_settings(cfg, device)
    seed_all(cfg.SEED)
    model = build_model(cfg).to(device)
    optimizer = make_optimizer(cfg, model)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    timed = _Timed(batches)
    do_train(cfg, compile_model(cfg, model), timed, optimizer, make_lr_scheduler(cfg, optimizer),
             Checkpointer(model), device, scaler=make_grad_scaler(cfg, device))
    _sync(device)
    ends = timed.times[1:] + [time.perf_counter()]  # step i ends when batch i + 1 is asked for
    if device.type == "cuda":
        v.peak_mb.append(torch.cuda.max_memory_allocated(device) / 2**20)
    return statistics.median(e - s for s, e in zip(timed.times[warmup:], ends[warmup:]))


def _loader_seconds(v, warmup, iters):
    """Mean seconds per batch once the batches the workers made ahead are used up (with
    nothing consuming them, the loader runs at the rate its workers produce)."""
    workers = v.cfg.DATALOADER.NUM_WORKERS
    ahead = workers * v.cfg.DATALOADER.PREFETCH_FACTOR
    count = max(4 * iters, 2 * workers, 8)
    cfg = v.cfg.clone()
    cfg.defrost()
    cfg.SOLVER.MAX_ITER = warmup + ahead + 1 + count
    timed = _Timed(make_data_loader(cfg, is_train=True))
    for _ in timed:
        pass
    start = warmup + ahead
    return (timed.times[-1] - timed.times[start]) / (len(timed.times) - 1 - start)


def _to(x, device):
    if torch.is_tensor(x):
        return x.to(device)
    if isinstance(x, (list, tuple)):  # INPUT.AUGMENT_ON device: a triplet batch's three face batches
        return type(x)(_to(t, device) for t in x)
    return x


def measure(config_file, opts=(), compare=(), warmup=2, iters=5, repeat=1, parts=ALL_PARTS, log=print):
    """The variants with their measurements (see the module's docstring)."""
    steps = warmup + iters
    fixed = [*RANDOM_INIT, *opts, "SOLVER.MAX_ITER", str(steps), "SOLVER.CHECKPOINT_PERIOD", "0",
             "TEST.EVAL_PERIOD", "0", "LOG_PERIOD", str(steps)]
    runs = []
    for label, extra in variants(parse_compare(compare)):
        cfg = load_config(config_file or None, [*fixed, *extra])
        runs.append(Variant(label, cfg, resolve_device(cfg)))
    with logger_level("fec", logging.WARNING):  # do_train's progress lines
        for r in range(repeat):
            for v in (runs if r % 2 == 0 else runs[::-1]):
                if v.batch is None:
                    first = next(iter(make_data_loader(v.cfg.clone(), is_train=True)))
                    v.batch = {k: _to(x, v.device) for k, x in first.items()}
                    v.images = faces_in(first)
                measured = {}
                if "model" in parts:
                    measured["model"] = _train_seconds(v, [v.batch] * steps, warmup)
                if "loader" in parts:
                    measured["loader"] = _loader_seconds(v, warmup, iters)
                if "e2e" in parts:
                    measured["e2e"] = _train_seconds(v, make_data_loader(v.cfg, is_train=True), warmup)
                for part, seconds in measured.items():
                    v.times[part].append(seconds)
                notes = [f"{p} {s * 1000:.0f} ms/step" for p, s in measured.items()]
                if "cpu" in parts:
                    v.loader_cpu.append(loader_cpu_cost(v.cfg, max(iters, 4), warmup))
                    notes.append(f"loader CPU {v.loader_cpu[-1].cpu_ms_per_face:.3f} ms/face")
                log(f"repeat {r + 1}/{repeat} {v.label}: " + ", ".join(notes))
    return runs


def settings(v):
    cfg, dtype = v.cfg, amp_dtype(v.cfg)
    out = [f"device {v.device}", f"threads {torch.get_num_threads()}",
           f"AMP {str(dtype).replace('torch.', '') if dtype else 'off'}", f"channels_last {cfg.MODEL.CHANNELS_LAST}",
           f"compile {cfg.MODEL.COMPILE}", f"{cfg.MODEL.META_ARCHITECTURE} {cfg.MODEL.BACKBONE.NAME}",
           f"{cfg.INPUT.SIZE} px", f"batch {cfg.SOLVER.IMS_PER_BATCH} ({v.images} images)",
           f"workers {cfg.DATALOADER.NUM_WORKERS}", f"optimizer {cfg.SOLVER.OPTIMIZER}"]
    if v.device.type == "cuda":
        exact = deterministic(cfg)
        out += [f"cudnn.benchmark {cfg.CUDA.CUDNN_BENCHMARK and not exact}", f"TF32 {cfg.CUDA.TF32 and not exact}"]
    return ", ".join(out)


def _rate(v, part):
    return v.images / statistics.median(v.times[part]) if v.times[part] else None


def report(runs):
    """The table's header and rows, the settings lines and the ratio lines."""
    header = ["variant", "images/step", "model-only img/s", "loader-only img/s", "end-to-end img/s",
              "e2e / model", "model step ms (min-max)", "e2e step ms", "peak CUDA MB", "loader CPU ms/face",
              "faces/s per worker"]
    rows = []
    fmt = lambda x, spec: "-" if x is None else format(x, spec)  # noqa: E731
    for v in runs:
        model, loader, e2e = (_rate(v, p) for p in PARTS)
        t = v.times["model"]
        cpu = statistics.median(c.cpu_ms_per_face for c in v.loader_cpu) if v.loader_cpu else None
        span = f"{statistics.median(t) * 1000:.0f} ({min(t) * 1000:.0f}-{max(t) * 1000:.0f})" if t else "-"
        rows.append([v.label, v.images, fmt(model, ".1f"), fmt(loader, ".1f"), fmt(e2e, ".1f"),
                     fmt(e2e / model if e2e and model else None, ".2f"), span,
                     fmt(statistics.median(v.times["e2e"]) * 1000 if v.times["e2e"] else None, ".0f"),
                     fmt(max(v.peak_mb) if v.peak_mb else None, ".0f"), fmt(cpu, ".3f"),
                     fmt(1000 / cpu if cpu else None, ",.0f")])
    lines = [f"{v.label}: {settings(v)}" for v in runs]
    base = runs[0]
    for v in runs[1:]:
        parts = []
        for part in PARTS:
            paired = [b / s for b, s in zip(base.times[part], v.times[part])]
            if paired:
                parts.append(f"{part} x{statistics.median(paired):.2f} "
                             f"({min(paired):.2f}-{max(paired):.2f} over {len(paired)})")
        if base.loader_cpu and v.loader_cpu:
            paired = [b.cpu_ms_per_face / c.cpu_ms_per_face for b, c in zip(base.loader_cpu, v.loader_cpu)]
            parts.append(f"loader CPU per face /{statistics.median(paired):.1f}")
        lines.append(f"{v.label} vs {base.label}: speed " + ", ".join(parts))
    return header, rows, lines
