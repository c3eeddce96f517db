"""What every meta-architecture shares, and the one list of what models return.

A meta-architecture takes raw uint8 pixels and normalises them itself, so the data
pipeline and exported models deal in raw pixels. In eval mode it returns a dict whose
keys are its ``output_keys``, each one of OUTPUTS: the predictor, the demo, retrieval,
export and the evaluators read model outputs by these keys and no others.
"""
import torch
from torch import nn

# Eval-mode outputs, by key: (N, ...) float32 tensors for N input faces.
OUTPUTS = {
    "embedding": "(N, D) unit-norm expression embedding (TripletEmbeddingNet)",
    "logits": "(N, C) class scores; softmax gives the probabilities of MODEL.CLASSIFIER.CLASS_NAMES "
              "(Classifier, ClassifierRegressor)",
    "valence_arousal": "(N, 2) valence and arousal (ValenceArousalRegressor, ClassifierRegressor)",
    "intensities": "(N, K) one per MODEL.INTENSITY.NAMES (IntensityRegressor)",
}
OUTPUT_KEYS = tuple(OUTPUTS)


def check_output_keys(keys):
    """``keys`` (a model's eval outputs) in OUTPUT_KEYS order; an error when there are
    none or some that no meta-architecture declares."""
    keys = set(keys)
    unknown = sorted(keys - set(OUTPUT_KEYS))
    if unknown or not keys:
        raise ValueError(f"model eval outputs {sorted(keys)}: expected some of {list(OUTPUT_KEYS)}")
    return tuple(k for k in OUTPUT_KEYS if k in keys)


class RawPixelModel(nn.Module):
    """The shared base. Subclasses set ``output_keys`` and implement ``predict(images)``
    → {key: tensor} (eval mode) and ``losses(batch)`` → {name: scalar} (train mode)."""

    output_keys = ()

    def __init__(self, pixel_mean, pixel_std):
        super().__init__()
        # Not persistent: they come from the config, like the architecture itself.
        for name, value in (("pixel_mean", pixel_mean), ("pixel_std", pixel_std)):
            tensor = torch.tensor([float(v) for v in value]).view(1, -1, 1, 1)
            if tensor.shape[1] != 3:
                raise ValueError(f"MODEL.{name.upper()} needs 3 values, got {list(value)}")
            self.register_buffer(name, tensor, persistent=False)
        self.channels_last = False  # set by fec.modeling.build_model (MODEL.CHANNELS_LAST)

    @property
    def device(self):
        return self.pixel_mean.device

    def normalize(self, images):
        """(N, 3, H, W) uint8 RGB images (any device) → normalised float on the model's device."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected (N, 3, H, W) images, got {tuple(images.shape)}")
        x = images.to(self.device, non_blocking=True).float()
        x = (x - self.pixel_mean) / self.pixel_std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def forward(self, batch):
        if self.training:
            return self.losses(batch)
        return self.predict(batch["image"])

    def predict(self, images):
        raise NotImplementedError

    def losses(self, batch):
        raise NotImplementedError
