"""Expression classes and valence/arousal: a backbone and one linear head per task.

Registered as "Classifier" (classes only), "ValenceArousalRegressor" (valence and
arousal only; also under its former name "AffectRegressor"), "ClassifierRegressor"
(both on one backbone) and "IntensityRegressor" (one output per MODEL.INTENSITY.NAMES, e.g. action-unit intensities). The heads live under
``heads.classifier``, ``heads.regressor`` and ``heads.intensity``, so
``MODEL.WEIGHTS_SKIP ["heads."]`` starts any of them, or a triplet embedding, from
another's backbone.
"""
import torch
import torch.nn.functional as F
from torch import nn

from .. import backbone as _backbones  # noqa: F401  (registers the backbones)
from ..losses import ccc_loss
from ..registry import BACKBONES, META_ARCHITECTURES
from .base import RawPixelModel


class LinearHead(nn.Module):
    """Feature map → global average pool → dropout → linear layer."""

    def __init__(self, in_channels, out_features, dropout):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_channels, out_features)

    def forward(self, features):
        return self.fc(self.dropout(features.mean(dim=(2, 3))))  # any input size


class ExpressionNet(RawPixelModel):
    """Images arrive as uint8 (N, 3, H, W) RGB and are normalised here, so the data
    pipeline and exported models deal in raw pixels.

    Eval mode: ``forward({"image": ...})`` → ``{"logits": (N, C)}`` with a classifier
    head and ``{"valence_arousal": (N, 2)}`` with a regressor head (both when both).
    and ``{"intensities": (N, K)}`` with an intensity head.
    Train mode: the batch also holds ``"label"`` (N,) int64 (or ``"label_distribution"``
    (N, C) float, class probabilities, which then take its place: cross-entropy to them) and/or
    ``"valence_arousal"`` (N, 2) float → ``{"loss_cls": ..., "loss_va": ...}``, or
    ``"intensities"`` (N, K) float → ``{"loss_intensity": ...}`` (mean squared error).
    """

    def __init__(self, backbone, pixel_mean, pixel_std, num_classes=0, regress=False,
                 cls_dropout=0.0, va_dropout=0.0, class_weights=(), label_smoothing=0.0,
                 va_loss="mse", cls_loss_weight=1.0, va_loss_weight=1.0, num_intensities=0,
                 intensity_dropout=0.0):
        super().__init__(pixel_mean, pixel_std)
        if not num_classes and not regress and not num_intensities:
            raise ValueError("a model needs a classifier head, a regressor head, or an intensity head")
        if va_loss not in ("mse", "ccc"):
            raise ValueError(f"MODEL.REGRESSOR.LOSS must be mse or ccc, got {va_loss!r}")
        self.backbone = backbone
        self.heads = nn.ModuleDict()
        if num_classes:
            self.heads["classifier"] = LinearHead(backbone.out_channels, num_classes, cls_dropout)
        if regress:
            self.heads["regressor"] = LinearHead(backbone.out_channels, 2, va_dropout)
        if num_intensities:
            self.heads["intensity"] = LinearHead(backbone.out_channels, num_intensities, intensity_dropout)
        self.num_classes = int(num_classes)
        self.label_smoothing = float(label_smoothing)
        self.va_loss = va_loss
        self.cls_loss_weight = float(cls_loss_weight)
        self.va_loss_weight = float(va_loss_weight)
        weights = torch.tensor([float(w) for w in class_weights]) if len(class_weights) else None
        if weights is not None and len(weights) != num_classes:
            raise ValueError(f"MODEL.CLASSIFIER.CLASS_WEIGHTS needs {num_classes} weights, got {len(weights)}")
        self.register_buffer("class_weights", weights, persistent=False)

    def predict(self, images):
        """(N, 3, H, W) uint8 images (any device) → dict of head outputs, float32."""
        features = self.backbone(self.normalize(images))
        out = {}
        if "classifier" in self.heads:
            out["logits"] = self.heads["classifier"](features).float()
        if "regressor" in self.heads:
            out["valence_arousal"] = self.heads["regressor"](features).float()
        if "intensity" in self.heads:
            out["intensities"] = self.heads["intensity"](features).float()
        return out

    def forward(self, batch):
        out = self.predict(batch["image"])
        if not self.training:
            return out
        losses = {}
        if "logits" in out:
            losses["loss_cls"] = self.cls_loss_weight * F.cross_entropy(
                out["logits"], self._class_target(batch), weight=self.class_weights,
                label_smoothing=self.label_smoothing)
        if "valence_arousal" in out:
            target = self._target(batch, "valence_arousal").float()
            pred = out["valence_arousal"]
            loss = F.mse_loss(pred, target) if self.va_loss == "mse" else ccc_loss(pred, target)
            losses["loss_va"] = self.va_loss_weight * loss
        if "intensities" in out:
            target = self._target(batch, "intensities").float()
            if target.shape != out["intensities"].shape:
                raise ValueError(f"the dataset gives {tuple(target.shape[1:])} intensities per face, the model "
                                 f"predicts {out['intensities'].shape[1]} (MODEL.INTENSITY.NAMES)")
            losses["loss_intensity"] = F.mse_loss(out["intensities"], target)
        return losses

    def _class_target(self, batch):
        """(N, C) class probabilities where the dataset gives a ``label_distribution``
        (e.g. FER+'s votes), else the (N,) class indices."""
        if "label_distribution" in batch:
            target = self._target(batch, "label_distribution").float()
            if target.dim() != 2 or target.shape[1] != self.num_classes:
                raise ValueError(f"the dataset gives label distributions over {tuple(target.shape[1:])} classes, "
                                 f"the model has {self.num_classes} (MODEL.CLASSIFIER.NUM_CLASSES)")
            return target
        labels = self._target(batch, "label").long()
        if labels.numel() and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(f"labels must be in 0..{self.num_classes - 1} "
                             f"(MODEL.CLASSIFIER.NUM_CLASSES = {self.num_classes}), got "
                             f"{int(labels.min())}..{int(labels.max())}")
        return labels

    def _target(self, batch, key):
        if key not in batch:
            raise KeyError(f"the training batch has no {key!r}: this model's heads ({', '.join(self.heads)}) "
                           f"need a dataset that provides it (DATASETS.TRAIN)")
        return torch.as_tensor(batch[key]).to(self.device, non_blocking=True)


def build_expression_net(cfg, classify, regress, intensities=False):
    backbone = BACKBONES[cfg.MODEL.BACKBONE.NAME](cfg)
    c, r = cfg.MODEL.CLASSIFIER, cfg.MODEL.REGRESSOR
    return ExpressionNet(
        backbone,
        list(cfg.MODEL.PIXEL_MEAN) or backbone.pixel_mean,
        list(cfg.MODEL.PIXEL_STD) or backbone.pixel_std,
        num_classes=c.NUM_CLASSES if classify else 0,
        regress=regress,
        cls_dropout=c.DROPOUT,
        va_dropout=r.DROPOUT,
        class_weights=list(c.CLASS_WEIGHTS),
        label_smoothing=c.LABEL_SMOOTHING,
        va_loss=r.LOSS,
        cls_loss_weight=c.LOSS_WEIGHT,
        va_loss_weight=r.LOSS_WEIGHT,
        num_intensities=len(cfg.MODEL.INTENSITY.NAMES) if intensities else 0,
        intensity_dropout=cfg.MODEL.INTENSITY.DROPOUT,
    )


@META_ARCHITECTURES.register("Classifier")
def build_classifier(cfg):
    return build_expression_net(cfg, classify=True, regress=False)


@META_ARCHITECTURES.register("ValenceArousalRegressor")
def build_valence_arousal_regressor(cfg):
    return build_expression_net(cfg, classify=False, regress=True)


# Its former name, so configs written before the rename keep working.
META_ARCHITECTURES.register("AffectRegressor", build_valence_arousal_regressor)


@META_ARCHITECTURES.register("ClassifierRegressor")
def build_classifier_regressor(cfg):
    return build_expression_net(cfg, classify=True, regress=True)


@META_ARCHITECTURES.register("IntensityRegressor")
def build_intensity_regressor(cfg):
    if not len(cfg.MODEL.INTENSITY.NAMES):
        raise ValueError("MODEL.INTENSITY.NAMES is empty: an IntensityRegressor needs one name per output")
    return build_expression_net(cfg, classify=False, regress=False, intensities=True)
