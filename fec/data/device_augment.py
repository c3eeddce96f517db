"""INPUT.AUGMENT_ON device: TrainTransform's crop, flip and colour jitter applied to a
whole batch on the model's device, from the parameters the loader drew per face
(fec.data.transforms.DeferredTrainTransform).

For the same parameters the result matches TrainTransform's within a few grey levels
(rounding, and the half pixel at a crop's edge, see ``resized_crops``); a batch costs
one roi_align, one 3×3 colour matrix per face and a few elementwise passes.
"""
import torch

from .transforms import GREY_WEIGHTS, PARAMS_PER_FACE


def resized_crops(images, boxes, flips, size):
    """(N, C, H, W) images → (N, C, size, size) float32 of whole values: each face's
    box (x0, y0, width, height) resized bilinearly, mirrored where ``flips``. One
    roi_align for the batch, one sample per output pixel, at OpenCV's INTER_LINEAR
    positions (x0 + (j + 0.5) · width / size − 0.5); OpenCV clamps those to the crop,
    roi_align to the image, which differs only within half a pixel of a crop edge."""
    from torchvision.ops import roi_align

    n = images.shape[0]
    x = images.float().contiguous()
    boxes = boxes.to(x.dtype)
    rois = torch.cat([torch.arange(n, device=x.device, dtype=x.dtype)[:, None], boxes[:, :2],
                      boxes[:, :2] + boxes[:, 2:4]], 1)
    out = roi_align(x, rois, size, spatial_scale=1.0, sampling_ratio=1, aligned=True).round_()
    mirror = flips.bool()
    if mirror.any():
        out[mirror] = out[mirror].flip(3)
    return out


def color_jitter(x, factors):
    """TrainTransform's brightness, contrast (about the mean grey) and saturation on
    (N, 3, H, W) float 0..255, ``factors`` (N, 3); then clipped and truncated like uint8.

    The three steps compose into one 3×3 colour matrix and offset per face:
    s·c·b·x + (1 − s)·c·b·grey(x) + (1 − c)·b·mean grey(x)."""
    n = x.shape[0]
    w = torch.as_tensor(GREY_WEIGHTS, device=x.device)
    b, c, s = (factors[:, k].float() for k in range(3))
    eye = torch.eye(3, device=x.device)
    matrix = (s * c * b)[:, None, None] * eye + ((1 - s) * c * b)[:, None, None] * w[None, None, :]
    mean_grey = x.mean((2, 3)) @ w  # (N,)
    offset = ((1 - c) * b * mean_grey)[:, None, None]
    out = torch.baddbmm(offset, matrix, x.reshape(n, 3, -1))
    return out.clamp_(0, 255).floor_().view_as(x)


class DeviceAugmentation:
    """Applies the drawn parameters of a training batch (its ``augment`` entry) to its
    channels-last faces, ``image`` (N, S, S, 3) or ``images`` (B, 3, S, S, 3) or three
    (B, S, S, 3) (as a triplet dataset's items collate), on
    ``device``; the result, ``image`` (N, 3, S, S) or ``images`` (B, 3, 3, S, S), is
    float32 with whole values 0..255, what the model's normalisation takes."""

    def __init__(self, size, color_jitter, device):
        self.size, self.jitter, self.device = size, color_jitter > 0, torch.device(device)

    def __call__(self, batch):
        if "augment" not in batch:
            return batch
        key = "images" if "images" in batch else "image"
        images = batch[key]
        if isinstance(images, (list, tuple)):  # a triplet batch: the three faces' batches
            images = torch.stack([t.to(self.device, non_blocking=True) for t in images], 1)
        shape = images.shape
        faces = images.reshape(-1, *shape[-3:]).to(self.device, non_blocking=True).permute(0, 3, 1, 2)
        params = batch["augment"].reshape(-1, PARAMS_PER_FACE).to(self.device, non_blocking=True)
        out = resized_crops(faces, params[:, :4], params[:, 4], self.size)
        if self.jitter:
            out = color_jitter(out, params[:, 5:8])
        batch = {k: v for k, v in batch.items() if k != "augment"}
        batch[key] = out.reshape(*shape[:-3], shape[-1], self.size, self.size)
        return batch


def build_batch_augmentation(cfg, device):
    """The batch step of training: DeviceAugmentation for INPUT.AUGMENT_ON device, else None."""
    if cfg.INPUT.AUGMENT_ON != "device":
        return None
    return DeviceAugmentation(cfg.INPUT.SIZE, cfg.INPUT.COLOR_JITTER, device)
