"""Defaults ← YAML file ← command-line KEY VALUE pairs, then frozen."""
import logging
import os
import re

import yaml
from yacs.config import CfgNode

from fec.utils.errors import ConfigError, ConfigKeyError, MissingFileError, nearest

from .defaults import _C

# Keys that were renamed: a config written with the old name loads as the new one.
RENAMED_KEYS = {"DATASETS.AFFECTNET.BOX_EXPANSION": "INPUT.FACE_BOX_EXPANSION"}
FACE_COLORS = ("rgb", "grey")


def load_config(config_file=None, opts=()):
    """A frozen copy of the defaults with ``config_file`` and ``opts`` merged in.

    Errors name the key and where it came from: an unknown key (with the nearest
    existing keys) raises ConfigKeyError, a value of the wrong type or out of range
    ConfigError, a YAML syntax error ConfigError with the file and line, a missing file
    MissingFileError.
    """
    cfg = _C.clone()
    if config_file:
        _merge_file(cfg, config_file)
    opts = list(opts)
    if len(opts) % 2:
        raise ConfigError(f"config overrides come in KEY VALUE pairs; {opts[-1]!r} has no value")
    for key, value in zip(opts[0::2], opts[1::2]):
        if key in RENAMED_KEYS:
            logging.getLogger(__name__).warning("config key %s is now %s", key, RENAMED_KEYS[key])
            key = RENAMED_KEYS[key]
        _check_key(cfg, key, "on the command line")
        try:
            cfg.merge_from_list([key, value])
        except ValueError as e:
            raise _type_error(key, value, "on the command line", e) from e
    _check(cfg)
    cfg.freeze()
    return cfg


def rename_old_keys(loaded):
    """Move the RENAMED_KEYS of a loaded config (a dict or CfgNode) to their new names,
    in place."""
    for old, new in RENAMED_KEYS.items():
        *parents, leaf = old.split(".")
        node = loaded
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or leaf not in node:
            continue
        value = node.pop(leaf)
        logging.getLogger(__name__).warning("config key %s is now %s", old, new)
        *new_parents, new_leaf = new.split(".")
        target = loaded
        for part in new_parents:
            target = target.setdefault(part, type(loaded)())
        target[new_leaf] = value
        if not node:  # drop the emptied section, which the defaults no longer have
            parent = loaded
            for part in parents[:-1]:
                parent = parent[part]
            parent.pop(parents[-1])


def _all_keys(node, prefix=""):
    for k, v in node.items():
        full = f"{prefix}{k}"
        yield full
        if isinstance(v, CfgNode):
            yield from _all_keys(v, full + ".")


def _unknown_key(key, where):
    close = nearest(key, _all_keys(_C))
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    return ConfigKeyError(f"unknown config key {key} {where}; {hint}every key is listed, with its meaning, "
                          f"in fec/config/defaults.py")


def _check_key(cfg, key, where):
    # yacs reports this with a bare assert, which python -O removes
    node = cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise _unknown_key(key, where)
        node = node[part]


def _check_keys(data, node, where, prefix=""):
    """Every key of the YAML mapping ``data`` exists in ``node``."""
    for k, v in data.items():
        full = f"{prefix}{k}"
        if not isinstance(node, dict) or k not in node:
            raise _unknown_key(full, where)
        if isinstance(v, dict) and isinstance(node[k], CfgNode):
            _check_keys(v, node[k], where, full + ".")


def _default(key):
    node = _C
    for part in key.split("."):
        node = node[part]
    return node


def _type_error(key, value, where, error):
    default = _default(key)
    kind = {bool: "True or False", int: "an integer", float: "a number", str: "a string",
            list: "a list", tuple: "a list"}.get(type(default), type(default).__name__)
    if isinstance(default, CfgNode):
        return ConfigError(f"config key {key} {where} is a group of keys, not a value; set one of "
                           f"{', '.join(f'{key}.{k}' for k in default)}")
    return ConfigError(f"config key {key} {where} takes {kind} (default {default!r}), got {value!r}")


def _merge_file(cfg, path):
    if not os.path.isfile(path):
        raise MissingFileError(f"config file {path} not found; give an existing YAML file to --config-file "
                               f"(the shipped ones are under config/)")
    try:
        with open(path) as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise MissingFileError(f"cannot read config file {path}: {e}") from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        context = getattr(e, "context", None)
        raise ConfigError(f"{path}{where}: YAML syntax error: {problem}"
                          f"{f' ({context})' if context else ''}; fix the file") from e
    if data is None:
        return
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a config: it holds a {type(data).__name__}, not KEY: VALUE pairs")
    where = f"in {path}"
    rename_old_keys(data)
    _check_keys(data, cfg, where)
    try:
        cfg.merge_from_other_cfg(CfgNode(data))
    except ValueError as e:
        m = re.search(r"for config key: (\S+)", str(e))
        if not m:
            raise ConfigError(f"{path}: {e}") from e
        key = m.group(1)
        value = data
        for part in key.split("."):
            value = value[part]
        raise _type_error(key, value, where, e) from e

def _check(cfg):
    if not 16 <= cfg.INPUT.SIZE <= 299:
        raise ConfigError(f"INPUT.SIZE must be within 16..299, got {cfg.INPUT.SIZE}")
    if cfg.INPUT.FACE_COLOR not in FACE_COLORS:
        raise ConfigError(f"INPUT.FACE_COLOR must be rgb or grey, got {cfg.INPUT.FACE_COLOR!r}")
    if not 0.0 <= cfg.INPUT.FACE_BOX_EXPANSION <= 3.0:
        raise ConfigError(f"INPUT.FACE_BOX_EXPANSION must be within 0..3, got {cfg.INPUT.FACE_BOX_EXPANSION}")
    if cfg.INPUT.AUGMENT_ON not in ("loader", "device"):
        raise ConfigError(f"INPUT.AUGMENT_ON must be loader or device, got {cfg.INPUT.AUGMENT_ON!r}")
    c = cfg.MODEL.CLASSIFIER
    if c.NUM_CLASSES < 2 or len(c.CLASS_NAMES) != c.NUM_CLASSES:
        raise ConfigError(f"MODEL.CLASSIFIER.CLASS_NAMES needs one name per class: NUM_CLASSES is "
                         f"{c.NUM_CLASSES} (at least 2), CLASS_NAMES has {len(c.CLASS_NAMES)}")
    if c.CLASS_WEIGHTS and (len(c.CLASS_WEIGHTS) != c.NUM_CLASSES or min(c.CLASS_WEIGHTS) < 0):
        raise ConfigError(f"MODEL.CLASSIFIER.CLASS_WEIGHTS needs {c.NUM_CLASSES} non-negative weights "
                         f"(or none), got {list(c.CLASS_WEIGHTS)}")
    if not 0.0 <= c.LABEL_SMOOTHING < 1.0:
        raise ConfigError(f"MODEL.CLASSIFIER.LABEL_SMOOTHING must be in [0, 1), got {c.LABEL_SMOOTHING}")
    if cfg.DATASETS.FERPLUS.LABEL_MODE not in ("majority", "probability"):
        raise ConfigError(f"DATASETS.FERPLUS.LABEL_MODE must be majority or probability, got "
                          f"{cfg.DATASETS.FERPLUS.LABEL_MODE!r}")
    if cfg.MODEL.REGRESSOR.LOSS not in ("mse", "ccc"):
        raise ConfigError(f"MODEL.REGRESSOR.LOSS must be mse or ccc, got {cfg.MODEL.REGRESSOR.LOSS!r}")
    if len(cfg.MODEL.LOSS.MARGINS) != 3:
        raise ConfigError("MODEL.LOSS.MARGINS needs three margins (one-, two-, three-class)")
    if cfg.SOLVER.IMS_PER_BATCH < 1 or cfg.TEST.IMS_PER_BATCH < 1:
        raise ConfigError("SOLVER.IMS_PER_BATCH and TEST.IMS_PER_BATCH must be positive")
    if cfg.DIST.BACKEND not in ("auto", "nccl", "gloo"):
        raise ConfigError(f"DIST.BACKEND must be auto, nccl or gloo, got {cfg.DIST.BACKEND!r}")
    if cfg.SOLVER.AMP.DTYPE not in ("bfloat16", "float16"):
        raise ConfigError(f"SOLVER.AMP.DTYPE must be bfloat16 or float16, got {cfg.SOLVER.AMP.DTYPE!r}")
    if cfg.DATALOADER.PREFETCH_FACTOR < 1:
        raise ConfigError(f"DATALOADER.PREFETCH_FACTOR must be positive, got {cfg.DATALOADER.PREFETCH_FACTOR}")
    if cfg.SOLVER.CHECKPOINT_KEEP < 0:
        raise ConfigError(f"SOLVER.CHECKPOINT_KEEP must be 0 (keep all) or more, got {cfg.SOLVER.CHECKPOINT_KEEP}")
    if cfg.DIST.TIMEOUT <= 0:
        raise ConfigError(f"DIST.TIMEOUT must be a positive number of seconds, got {cfg.DIST.TIMEOUT}")
