"""The per-face expression models: a backbone and one linear head per task, one class
per meta-architecture on the shared ExpressionNet base.

- "Classifier": expression classes (``logits``; MODEL.CLASSIFIER);
- "ValenceArousalRegressor": valence and arousal (``valence_arousal``; MODEL.REGRESSOR),
  also registered under its former name "AffectRegressor";
- "ClassifierRegressor": both heads on one backbone;
- "IntensityRegressor": one output per MODEL.INTENSITY.NAMES (``intensities``), e.g.
  action-unit intensities.

The heads live under ``heads.classifier``, ``heads.regressor`` and ``heads.intensity``,
so ``MODEL.WEIGHTS_SKIP ["heads."]`` starts any of them, or a triplet embedding, from
another's backbone.
"""
import torch
from torch import nn

from .. import backbone as _backbones  # noqa: F401  (registers the backbones)
from ..heads.task import ClassificationHead, IntensityHead, ValenceArousalHead
from ..registry import BACKBONES, META_ARCHITECTURES
from .base import RawPixelModel


class ExpressionNet(RawPixelModel):
    """Images arrive as uint8 (N, 3, H, W) RGB and are normalised here.

    Eval mode: ``forward({"image": ...})`` → one output per head, keyed by the head's
    ``output_key`` (the class's ``output_keys``). Train mode: the batch also holds each
    head's target (``"label"`` (N,) int64, or ``"label_distribution"`` (N, C) float
    class probabilities, which then take its place; ``"valence_arousal"`` (N, 2) float;
    ``"intensities"`` (N, K) float) → the heads' losses (``loss_cls``, ``loss_va``,
    ``loss_intensity``).
    """

    def __init__(self, backbone, pixel_mean, pixel_std, **heads):
        super().__init__(pixel_mean, pixel_std)
        keys = tuple(h.output_key for h in heads.values())
        if keys != self.output_keys:
            raise ValueError(f"{type(self).__name__} outputs {self.output_keys}, its heads give {keys}")
        self.backbone = backbone
        self.heads = nn.ModuleDict(heads)

    def predict(self, images):
        """(N, 3, H, W) uint8 images (any device) → dict of head outputs, float32."""
        features = self.backbone(self.normalize(images))
        return {head.output_key: head(features) for head in self.heads.values()}

    def losses(self, batch):
        out = self.predict(batch["image"])
        losses = {}
        for head in self.heads.values():
            key = head.soft_target_key if head.soft_target_key in batch else head.target_key
            losses.update(head.loss(out[head.output_key], self._target(batch, key, head.check_target)))
        return losses

    def _target(self, batch, key, check=None):
        """The batch's ``key`` on the model's device, ``check``ed where the loader
        delivered it (on the host): a check on the GPU would wait for it every step."""
        if key not in batch:
            raise KeyError(f"the training batch has no {key!r}: this model's heads ({', '.join(self.heads)}) "
                           f"need a dataset that provides it (DATASETS.TRAIN)")
        target = torch.as_tensor(batch[key])
        if check is not None:
            check(target)
        return target.to(self.device, non_blocking=True)


class Classifier(ExpressionNet):
    output_keys = ("logits",)

    def __init__(self, backbone, pixel_mean, pixel_std, classifier):
        super().__init__(backbone, pixel_mean, pixel_std, classifier=classifier)


class ValenceArousalRegressor(ExpressionNet):
    output_keys = ("valence_arousal",)

    def __init__(self, backbone, pixel_mean, pixel_std, regressor):
        super().__init__(backbone, pixel_mean, pixel_std, regressor=regressor)


class ClassifierRegressor(ExpressionNet):
    output_keys = ("logits", "valence_arousal")

    def __init__(self, backbone, pixel_mean, pixel_std, classifier, regressor):
        super().__init__(backbone, pixel_mean, pixel_std, classifier=classifier, regressor=regressor)


class IntensityRegressor(ExpressionNet):
    output_keys = ("intensities",)

    def __init__(self, backbone, pixel_mean, pixel_std, intensity):
        super().__init__(backbone, pixel_mean, pixel_std, intensity=intensity)


def _backbone_and_pixels(cfg):
    backbone = BACKBONES[cfg.MODEL.BACKBONE.NAME](cfg)
    return backbone, list(cfg.MODEL.PIXEL_MEAN) or backbone.pixel_mean, list(cfg.MODEL.PIXEL_STD) or backbone.pixel_std


def _classification_head(cfg, in_channels):
    c = cfg.MODEL.CLASSIFIER
    return ClassificationHead(in_channels, c.NUM_CLASSES, c.DROPOUT, list(c.CLASS_WEIGHTS), c.LABEL_SMOOTHING,
                              c.LOSS_WEIGHT)


def _valence_arousal_head(cfg, in_channels):
    r = cfg.MODEL.REGRESSOR
    return ValenceArousalHead(in_channels, r.DROPOUT, r.LOSS, r.LOSS_WEIGHT)


@META_ARCHITECTURES.register("Classifier")
def build_classifier(cfg):
    backbone, mean, std = _backbone_and_pixels(cfg)
    return Classifier(backbone, mean, std, _classification_head(cfg, backbone.out_channels))


@META_ARCHITECTURES.register("ValenceArousalRegressor")
def build_valence_arousal_regressor(cfg):
    backbone, mean, std = _backbone_and_pixels(cfg)
    return ValenceArousalRegressor(backbone, mean, std, _valence_arousal_head(cfg, backbone.out_channels))


# Its former name, so configs written before the rename keep working.
META_ARCHITECTURES.register("AffectRegressor", build_valence_arousal_regressor)


@META_ARCHITECTURES.register("ClassifierRegressor")
def build_classifier_regressor(cfg):
    backbone, mean, std = _backbone_and_pixels(cfg)
    return ClassifierRegressor(backbone, mean, std, _classification_head(cfg, backbone.out_channels),
                               _valence_arousal_head(cfg, backbone.out_channels))


@META_ARCHITECTURES.register("IntensityRegressor")
def build_intensity_regressor(cfg):
    names = cfg.MODEL.INTENSITY.NAMES
    if not len(names):
        raise ValueError("MODEL.INTENSITY.NAMES is empty: an IntensityRegressor needs one name per output")
    backbone, mean, std = _backbone_and_pixels(cfg)
    return IntensityRegressor(backbone, mean, std,
                              IntensityHead(backbone.out_channels, len(names), cfg.MODEL.INTENSITY.DROPOUT))
