"""What every backbone shares: stages, cut, freezing, input-size check, weight files.

A backbone is a chain of child modules run in order, grouped into named stages
(``stage_names[0]`` is the stem). It is built only up to its cut, so the children it
holds are exactly the layers it runs, and its state_dict keys are those of the uncut
network with the cut-off layers left out.
"""
import os
from collections.abc import Mapping

import torch
from torch import nn

from fec.utils.checkpoint import read_checkpoint
from fec.utils.errors import CheckpointError, ConfigError, WeightsError


class Backbone(nn.Module):
    """Subclasses set ``name``, ``pixel_mean``, ``pixel_std`` and ``reductions`` and add
    their children in running order after calling ``__init__``."""

    name = "backbone"
    # 0-255 RGB statistics the network was (or would be) pretrained with.
    pixel_mean = (0.0, 0.0, 0.0)
    pixel_std = (1.0, 1.0, 1.0)
    # child name → the (kernel, stride, padding) of each op that changes the spatial
    # size, in order; used to know the smallest input a cut can take.
    reductions = {}

    def __init__(self, cut_at, stages, out_channels):
        super().__init__()
        self.cut_at = cut_at
        self.stages = {name: tuple(children) for name, children in stages.items()}
        self.stage_names = list(self.stages)
        self.out_channels = int(out_channels)
        self.frozen_stages = []

    def stage_modules(self, stage):
        """The child modules making up ``stage``."""
        return [getattr(self, child) for child in self.stages[stage]]

    def forward(self, x):
        size = min(x.shape[-2:])
        if size < self.min_input_size:
            raise ValueError(
                f"a {x.shape[-2]}x{x.shape[-1]} input is too small for {self.name} cut at "
                f"{self.cut_at!r}: it needs at least {self.min_input_size} px"
            )
        for module in self.children():
            x = module(x)
        return x

    # -- sizes ----------------------------------------------------------------------
    def feature_size(self, input_size):
        """Side of the output feature map for a square input; 0 when it is too small."""
        size = int(input_size)
        for child, _ in self.named_children():
            for kernel, stride, padding in self.reductions.get(child, ()):
                if size + 2 * padding < kernel:
                    return 0
                size = (size + 2 * padding - kernel) // stride + 1
        return size

    @property
    def min_input_size(self):
        if not hasattr(self, "_min_input_size"):
            # feature_size is monotone in the input size, so the first that works is it.
            self._min_input_size = next(s for s in range(1, 4096) if self.feature_size(s) > 0)
        return self._min_input_size

    def check_input_size(self, input_size):
        if input_size < self.min_input_size:
            raise ConfigError(
                f"INPUT.SIZE={input_size} is too small for {self.name} cut at "
                f"{self.cut_at!r} (MODEL.BACKBONE.CUT_AT): it needs at least "
                f"{self.min_input_size} px; raise INPUT.SIZE or cut earlier"
            )

    # -- freezing -------------------------------------------------------------------
    def freeze(self, freeze_at):
        """Freeze ``stage_names[:freeze_at]``; 0 freezes nothing, -1 everything."""
        count = len(self.stage_names)
        if freeze_at == -1:
            freeze_at = count
        if not 0 <= freeze_at <= count:
            raise ConfigError(
                f"MODEL.BACKBONE.FREEZE_AT={freeze_at}: {self.name} cut at {self.cut_at!r} "
                f"has {count} stages ({', '.join(self.stage_names)}); use -1..{count}"
            )
        self.frozen_stages = self.stage_names[:freeze_at]
        for stage in self.frozen_stages:
            for module in self.stage_modules(stage):
                for param in module.parameters():
                    param.requires_grad_(False)
        return self.train(self.training)

    def train(self, mode=True):
        # Frozen stages stay in eval mode so their BatchNorm running stats never move.
        super().train(mode)
        for stage in self.frozen_stages:
            for module in self.stage_modules(stage):
                module.eval()
        return self

    # -- weights --------------------------------------------------------------------
    def keeps_key(self, key):
        """Whether ``key`` of the uncut network's state_dict is of a layer this cut keeps."""
        return key.split(".", 1)[0] in dict(self.named_children())

    def load_weights_file(self, path):
        """Load a state_dict of the uncut network; keys of cut-off layers are ignored."""
        state = read_checkpoint(path, "MODEL.BACKBONE.WEIGHTS file")
        if not isinstance(state, Mapping) or not all(
            isinstance(v, torch.Tensor) for v in state.values()
        ):
            raise ConfigError(
                f"{path} (MODEL.BACKBONE.WEIGHTS) is not a state_dict of tensors; give a "
                f"whole fec checkpoint as MODEL.WEIGHTS instead"
            )
        own = {k: v for k, v in state.items() if self.keeps_key(k)}
        try:
            result = self.load_state_dict(own, strict=False)
        except RuntimeError as e:  # shape mismatches
            shown = " ".join(str(e).split())[:300]
            raise CheckpointError(f"cannot load {path} (MODEL.BACKBONE.WEIGHTS) into {self.name}: {shown}") from e
        for what, keys in (("lacks", result.missing_keys), ("has unknown", result.unexpected_keys)):
            if keys:
                shown = ", ".join(keys[:10]) + (f" and {len(keys) - 10} more" if len(keys) > 10 else "")
                raise ConfigError(
                    f"{path} (MODEL.BACKBONE.WEIGHTS) {what} keys of {self.name} cut at "
                    f"{self.cut_at!r}: {shown}"
                )


def check_cut(cut_at, known, backbone_name):
    if cut_at not in known:
        raise ConfigError(
            f"MODEL.BACKBONE.CUT_AT={cut_at!r} is not a stage of {backbone_name}; "
            f"choose one of {', '.join(known)}"
        )


def parse_weights(weights, known_names, backbone_name):
    """(name, None) for a known pretrained name, (None, path) for a file, (None, None)
    for none; anything else is an error."""
    if not weights:
        return None, None
    if weights in known_names:
        return weights, None
    if os.path.isfile(weights):
        return None, weights
    names = ", ".join(repr(n) for n in known_names) or "none"
    raise ConfigError(
        f"MODEL.BACKBONE.WEIGHTS={weights!r} is neither a pretrained name known to "
        f"{backbone_name} ({names}) nor an existing file; give one of those names, a local state_dict "
        f"file, or \"\" for random initialisation"
    )


def download_pretrained(fetch, name, backbone_name):
    """``fetch()`` (which downloads ``name`` weights unless they are cached); a failed
    download is a WeightsError that says how to give the weights as a local file."""
    try:
        return fetch()
    except (OSError, ConnectionError, TimeoutError) as e:  # urllib.error.URLError is an OSError
        reason = " ".join(str(getattr(e, "reason", e)).split())[:200]
        raise WeightsError(
            f"MODEL.BACKBONE.WEIGHTS {name!r} must be downloaded for {backbone_name}, and the download failed "
            f"({reason}): no network? Download the state_dict on a machine that has one and give its path: "
            f"MODEL.BACKBONE.WEIGHTS /path/to/weights.pth (or \"\" for random initialisation)"
        ) from e


def finish_backbone(backbone, cfg, weights_file):
    """What every builder does last: load a local file, check the size, freeze."""
    if weights_file:
        backbone.load_weights_file(weights_file)
    backbone.check_input_size(cfg.INPUT.SIZE)
    return backbone.freeze(cfg.MODEL.BACKBONE.FREEZE_AT)
