"""What every meta-architecture shares: it takes raw uint8 pixels and normalises them
itself, so the data pipeline and exported models deal in raw pixels."""
import torch
from torch import nn


class RawPixelModel(nn.Module):
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
