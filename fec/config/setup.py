"""Defaults ← YAML file ← command-line KEY VALUE pairs, then frozen."""
from .defaults import _C


def load_config(config_file=None, opts=()):
    """A frozen copy of the defaults with ``config_file`` and ``opts`` merged in.

    yacs names the key in its errors: an unknown key raises KeyError
    ("Non-existent config key: X"), a wrong type ValueError ("... for config key: X").
    """
    cfg = _C.clone()
    if config_file:
        cfg.merge_from_file(config_file)
    opts = list(opts)
    if len(opts) % 2:
        raise ValueError(f"config overrides come in KEY VALUE pairs; {opts[-1]!r} has no value")
    for key in opts[0::2]:
        _check_key(cfg, key)
    cfg.merge_from_list(opts)
    _check(cfg)
    cfg.freeze()
    return cfg


def _check_key(cfg, key):
    # yacs reports this with a bare assert, which python -O removes
    node = cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(f"Non-existent config key: {key}")
        node = node[part]


def _check(cfg):
    if not 16 <= cfg.INPUT.SIZE <= 299:
        raise ValueError(f"INPUT.SIZE must be within 16..299, got {cfg.INPUT.SIZE}")
    if cfg.INPUT.AUGMENT_ON not in ("loader", "device"):
        raise ValueError(f"INPUT.AUGMENT_ON must be loader or device, got {cfg.INPUT.AUGMENT_ON!r}")
    c = cfg.MODEL.CLASSIFIER
    if c.NUM_CLASSES < 2 or len(c.CLASS_NAMES) != c.NUM_CLASSES:
        raise ValueError(f"MODEL.CLASSIFIER.CLASS_NAMES needs one name per class: NUM_CLASSES is "
                         f"{c.NUM_CLASSES} (at least 2), CLASS_NAMES has {len(c.CLASS_NAMES)}")
    if c.CLASS_WEIGHTS and (len(c.CLASS_WEIGHTS) != c.NUM_CLASSES or min(c.CLASS_WEIGHTS) < 0):
        raise ValueError(f"MODEL.CLASSIFIER.CLASS_WEIGHTS needs {c.NUM_CLASSES} non-negative weights "
                         f"(or none), got {list(c.CLASS_WEIGHTS)}")
    if not 0.0 <= c.LABEL_SMOOTHING < 1.0:
        raise ValueError(f"MODEL.CLASSIFIER.LABEL_SMOOTHING must be in [0, 1), got {c.LABEL_SMOOTHING}")
    if cfg.MODEL.REGRESSOR.LOSS not in ("mse", "ccc"):
        raise ValueError(f"MODEL.REGRESSOR.LOSS must be mse or ccc, got {cfg.MODEL.REGRESSOR.LOSS!r}")
    if len(cfg.MODEL.LOSS.MARGINS) != 3:
        raise ValueError("MODEL.LOSS.MARGINS needs three margins (one-, two-, three-class)")
    if cfg.SOLVER.IMS_PER_BATCH < 1 or cfg.TEST.IMS_PER_BATCH < 1:
        raise ValueError("SOLVER.IMS_PER_BATCH and TEST.IMS_PER_BATCH must be positive")
    if cfg.DIST.BACKEND not in ("auto", "nccl", "gloo"):
        raise ValueError(f"DIST.BACKEND must be auto, nccl or gloo, got {cfg.DIST.BACKEND!r}")
    if cfg.SOLVER.AMP.DTYPE not in ("bfloat16", "float16"):
        raise ValueError(f"SOLVER.AMP.DTYPE must be bfloat16 or float16, got {cfg.SOLVER.AMP.DTYPE!r}")
    if cfg.DATALOADER.PREFETCH_FACTOR < 1:
        raise ValueError(f"DATALOADER.PREFETCH_FACTOR must be positive, got {cfg.DATALOADER.PREFETCH_FACTOR}")
    if cfg.DIST.TIMEOUT <= 0:
        raise ValueError(f"DIST.TIMEOUT must be a positive number of seconds, got {cfg.DIST.TIMEOUT}")
