"""Optimizer with three parameter groups (weights, norms, biases) and a per-iteration
learning-rate schedule: linear warm-up, then multi-step or cosine."""
import math

import torch
from torch.optim.lr_scheduler import LRScheduler

_NORMS = (torch.nn.modules.batchnorm._BatchNorm, torch.nn.GroupNorm, torch.nn.LayerNorm,
          torch.nn.modules.instancenorm._InstanceNorm, torch.nn.LocalResponseNorm)


def _param_groups(cfg, model):
    weights, norms, biases = [], [], []
    seen = set()
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            if isinstance(module, _NORMS):
                norms.append(p)
            elif name == "bias":
                biases.append(p)
            else:
                weights.append(p)
    groups = [
        {"params": weights, "weight_decay": cfg.SOLVER.WEIGHT_DECAY},
        {"params": norms, "weight_decay": cfg.SOLVER.WEIGHT_DECAY_NORM},
        {"params": biases, "weight_decay": cfg.SOLVER.WEIGHT_DECAY_BIAS},
    ]
    return [g for g in groups if g["params"]]


def make_optimizer(cfg, model):
    groups = _param_groups(cfg, model)
    if not groups:
        raise ValueError("the model has no trainable parameters (is MODEL.BACKBONE.FREEZE_AT freezing the head too?)")
    name = cfg.SOLVER.OPTIMIZER.lower()
    lr = cfg.SOLVER.BASE_LR
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.SOLVER.MOMENTUM)
    # fused kernels (one launch for every parameter) exist for CUDA parameters; elsewhere
    # the foreach implementation updates all parameters per op instead of one at a time
    on_cuda = all(p.is_cuda for g in groups for p in g["params"])
    kind = {"fused": True} if on_cuda else {"foreach": True}
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=tuple(cfg.SOLVER.BETAS), **kind)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(cfg.SOLVER.BETAS), **kind)
    raise ValueError(f"SOLVER.OPTIMIZER must be sgd, adam or adamw, got {cfg.SOLVER.OPTIMIZER!r}")


class WarmupScheduler(LRScheduler):
    """lr = base_lr × warm-up factor × schedule factor; ``step()`` once per iteration."""

    def __init__(self, optimizer, max_iter, kind="multistep", steps=(), gamma=0.1, final_factor=0.0,
                 warmup_iters=0, warmup_factor=0.001, last_epoch=-1):
        if kind not in ("multistep", "cosine"):
            raise ValueError(f"SOLVER.SCHEDULER must be multistep or cosine, got {kind!r}")
        if list(steps) != sorted(steps):
            raise ValueError(f"SOLVER.STEPS must be increasing, got {tuple(steps)}")
        self.max_iter, self.kind, self.steps, self.gamma = max_iter, kind, tuple(steps), gamma
        self.final_factor, self.warmup_iters, self.warmup_factor = final_factor, warmup_iters, warmup_factor
        super().__init__(optimizer, last_epoch)

    def factor(self, it):
        warm = 1.0
        if it < self.warmup_iters:
            alpha = it / self.warmup_iters
            warm = self.warmup_factor * (1 - alpha) + alpha
        if self.kind == "multistep":
            return warm * self.gamma ** sum(1 for s in self.steps if s <= it)
        t = min(it / max(self.max_iter, 1), 1.0)
        return warm * (self.final_factor + (1 - self.final_factor) * 0.5 * (1 + math.cos(math.pi * t)))

    def get_lr(self):
        f = self.factor(self.last_epoch)
        return [base * f for base in self.base_lrs]


def make_lr_scheduler(cfg, optimizer):
    s = cfg.SOLVER
    return WarmupScheduler(optimizer, s.MAX_ITER, s.SCHEDULER.lower(), s.STEPS, s.GAMMA,
                           s.COSINE_FINAL_FACTOR, s.WARMUP_ITERS, s.WARMUP_FACTOR)
