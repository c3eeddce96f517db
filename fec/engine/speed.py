"""The speed switches of training and evaluation: mixed precision (SOLVER.AMP), the
CUDA backend settings (CUDA.*) and torch.compile (MODEL.COMPILE). The memory layout
(MODEL.CHANNELS_LAST) belongs to the model itself (fec.modeling.build_model)."""
import contextlib
import logging

import torch

_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def amp_dtype(cfg):
    """The autocast dtype, or None when SOLVER.AMP is off."""
    if not cfg.SOLVER.AMP.ENABLED:
        return None
    if cfg.SOLVER.AMP.DTYPE not in _DTYPES:
        raise ValueError(f"SOLVER.AMP.DTYPE must be bfloat16 or float16, got {cfg.SOLVER.AMP.DTYPE!r}")
    return _DTYPES[cfg.SOLVER.AMP.DTYPE]


def autocast(cfg, device):
    """torch.autocast on ``device`` per SOLVER.AMP; a no-op context when it is off."""
    dtype = amp_dtype(cfg)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


def make_grad_scaler(cfg, device):
    """float16 gradients underflow without loss scaling; bfloat16 has float32's range
    and float32 needs none: for them the scaler is disabled (its calls pass through)."""
    return torch.amp.GradScaler(torch.device(device).type, enabled=amp_dtype(cfg) is torch.float16)


def deterministic(cfg):
    """The top-level DETERMINISTIC key, False in a config that has none."""
    return bool(cfg.get("DETERMINISTIC", False))


def _set_tf32(enabled):
    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn
    if hasattr(matmul, "fp32_precision"):  # torch >= 2.9; the legacy flags cannot be mixed with it
        precision = "tf32" if enabled else "ieee"
        matmul.fp32_precision = precision
        conv.conv.fp32_precision = precision
    else:
        matmul.allow_tf32 = enabled
        conv.allow_tf32 = enabled


def apply_cuda_settings(cfg, device):
    """cudnn.benchmark and TF32 per CUDA.*, on a CUDA device only; both off when
    DETERMINISTIC is True (benchmarking picks algorithms by timing, TF32 rounds)."""
    if torch.device(device).type != "cuda":
        return
    exact = deterministic(cfg)
    benchmark = cfg.CUDA.CUDNN_BENCHMARK and not exact
    tf32 = cfg.CUDA.TF32 and not exact
    torch.backends.cudnn.benchmark = benchmark
    _set_tf32(tf32)
    logging.getLogger(__name__).info("CUDA: cudnn.benchmark %s, TF32 %s%s", benchmark, tf32,
                                     " (DETERMINISTIC)" if exact else "")


def compile_model(cfg, model):
    """``torch.compile(model)`` when MODEL.COMPILE, else ``model``. The compiled module
    shares the plain one's parameters: checkpoint the plain one."""
    return torch.compile(model) if cfg.MODEL.COMPILE else model
