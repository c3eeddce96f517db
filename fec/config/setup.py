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
    if not 64 <= cfg.INPUT.SIZE <= 299:
        raise ValueError(f"INPUT.SIZE must be within 64..299, got {cfg.INPUT.SIZE}")
    if len(cfg.MODEL.LOSS.MARGINS) != 3:
        raise ValueError("MODEL.LOSS.MARGINS needs three margins (one-, two-, three-class)")
    if cfg.SOLVER.IMS_PER_BATCH < 1 or cfg.TEST.IMS_PER_BATCH < 1:
        raise ValueError("SOLVER.IMS_PER_BATCH and TEST.IMS_PER_BATCH must be positive")
    if cfg.DIST.BACKEND not in ("auto", "nccl", "gloo"):
        raise ValueError(f"DIST.BACKEND must be auto, nccl or gloo, got {cfg.DIST.BACKEND!r}")
    if cfg.DIST.TIMEOUT <= 0:
        raise ValueError(f"DIST.TIMEOUT must be a positive number of seconds, got {cfg.DIST.TIMEOUT}")
