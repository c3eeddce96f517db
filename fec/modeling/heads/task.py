"""The per-face task heads of the expression models: each a global average pool,
dropout and one linear layer, and each owning its output key (fec.modeling.meta_arch.
base.OUTPUTS), its training target and its loss."""
import torch
import torch.nn.functional as F
from torch import nn

from ..losses import ccc_loss


class LinearHead(nn.Module):
    """Feature map → global average pool → dropout → linear layer (any input size).
    Subclasses name ``output_key`` (what eval mode returns), ``target_key`` (what the
    training batch must hold) and ``loss``."""

    output_key = target_key = ""
    soft_target_key = None  # a target that, where the batch holds it, takes target_key's place

    def __init__(self, in_channels, out_features, dropout=0.0):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_channels, out_features)

    def forward(self, features):
        return self.fc(self.dropout(features.mean(dim=(2, 3)))).float()

    def loss(self, pred, target):
        raise NotImplementedError

    def check_target(self, target):
        """Checks the training target where the loader delivered it, before the copy to
        the model's device (none by default)."""


class ClassificationHead(LinearHead):
    """``logits`` (N, C); cross-entropy against ``label`` (N,) int64, or against
    ``label_distribution`` (N, C) class probabilities (e.g. FER+'s votes) where the
    dataset gives them."""

    output_key, target_key, soft_target_key = "logits", "label", "label_distribution"

    def __init__(self, in_channels, num_classes, dropout=0.0, class_weights=(), label_smoothing=0.0,
                 loss_weight=1.0):
        super().__init__(in_channels, num_classes, dropout)
        self.num_classes = int(num_classes)
        self.label_smoothing = float(label_smoothing)
        self.loss_weight = float(loss_weight)
        weights = torch.tensor([float(w) for w in class_weights]) if len(class_weights) else None
        if weights is not None and len(weights) != num_classes:
            raise ValueError(f"MODEL.CLASSIFIER.CLASS_WEIGHTS needs {num_classes} weights, got {len(weights)}")
        self.register_buffer("class_weights", weights, persistent=False)

    def loss(self, pred, target):
        if target.is_floating_point():  # class probabilities (labels are int64)
            if target.dim() != 2 or target.shape[1] != self.num_classes:
                raise ValueError(f"the dataset gives label distributions over {tuple(target.shape[1:])} classes, "
                                 f"the model has {self.num_classes} (MODEL.CLASSIFIER.NUM_CLASSES)")
            loss = F.cross_entropy(pred, target.float(), weight=self.class_weights,
                                   label_smoothing=self.label_smoothing)
            return {"loss_cls": self.loss_weight * loss}
        labels = target.long()
        loss = F.cross_entropy(pred, labels, weight=self.class_weights, label_smoothing=self.label_smoothing)
        return {"loss_cls": self.loss_weight * loss}


    def check_target(self, target):
        """Class indices in range, checked on the host (no GPU wait); labels that
        already live on a GPU are left to cross_entropy's own device-side check."""
        if target.is_floating_point() or target.device.type != "cpu" or not target.numel():
            return
        low, high = int(target.min()), int(target.max())
        if low < 0 or high >= self.num_classes:
            raise ValueError(f"labels must be in 0..{self.num_classes - 1} "
                             f"(MODEL.CLASSIFIER.NUM_CLASSES = {self.num_classes}), got {low}..{high}")


class ValenceArousalHead(LinearHead):
    """``valence_arousal`` (N, 2); mean squared error or 1 − CCC against the target."""

    output_key, target_key = "valence_arousal", "valence_arousal"

    def __init__(self, in_channels, dropout=0.0, loss="mse", loss_weight=1.0):
        super().__init__(in_channels, 2, dropout)
        if loss not in ("mse", "ccc"):
            raise ValueError(f"MODEL.REGRESSOR.LOSS must be mse or ccc, got {loss!r}")
        self.loss_kind = loss
        self.loss_weight = float(loss_weight)

    def loss(self, pred, target):
        target = target.float()
        loss = F.mse_loss(pred, target) if self.loss_kind == "mse" else ccc_loss(pred, target)
        return {"loss_va": self.loss_weight * loss}


class IntensityHead(LinearHead):
    """``intensities`` (N, K), one per MODEL.INTENSITY.NAMES; mean squared error."""

    output_key, target_key = "intensities", "intensities"

    def __init__(self, in_channels, num_intensities, dropout=0.0):
        super().__init__(in_channels, num_intensities, dropout)

    def loss(self, pred, target):
        target = target.float()
        if target.shape != pred.shape:
            raise ValueError(f"the dataset gives {tuple(target.shape[1:])} intensities per face, the model "
                             f"predicts {pred.shape[1]} (MODEL.INTENSITY.NAMES)")
        return {"loss_intensity": F.mse_loss(pred, target)}
