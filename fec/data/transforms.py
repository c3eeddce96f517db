"""Face transforms: H×W×3 uint8 RGB array → 3×S×S uint8 tensor.

Randomness comes only from the ``torch.Generator`` passed in, which the training
sampler seeds from the sample's position in the data stream: resuming at any
iteration reproduces the same augmented pixels, whatever the number of loader workers.
Normalisation happens inside the model (per backbone), not here.
"""
import math

import cv2
import numpy as np
import torch


def _resize(img, size):
    h, w = img.shape[:2]
    if (h, w) == (size, size):
        return img
    shrink = h > size or w > size
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _to_tensor(img):
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).contiguous()


class EvalTransform:
    def __init__(self, size):
        self.size = size

    def __call__(self, img, gen=None):
        return _to_tensor(_resize(img, self.size))


class TrainTransform:
    def __init__(self, size, crop_scale=(0.85, 1.0), flip_prob=0.5, color_jitter=0.2):
        self.size = size
        self.crop_scale = tuple(crop_scale)
        self.flip_prob = flip_prob
        self.jitter = color_jitter

    def __call__(self, img, gen=None):
        r = torch.rand(8, generator=gen, dtype=torch.float64).tolist()
        img = self._random_crop(img, r[0], r[1], r[2], r[3])
        img = _resize(img, self.size)
        if r[4] < self.flip_prob:
            img = img[:, ::-1]
        if self.jitter > 0:
            img = self._jitter(img, *(1 - self.jitter + 2 * self.jitter * x for x in r[5:8]))
        return _to_tensor(img)

    def _random_crop(self, img, u_area, u_ratio, u_x, u_y):
        lo, hi = self.crop_scale
        if lo >= 1.0:
            return img
        h, w = img.shape[:2]
        area = h * w * (lo + (hi - lo) * u_area)
        ratio = math.exp(math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * u_ratio)
        cw = min(w, max(1, int(round(math.sqrt(area * ratio)))))
        ch = min(h, max(1, int(round(math.sqrt(area / ratio)))))
        x0 = int(u_x * (w - cw + 1)) if w > cw else 0
        y0 = int(u_y * (h - ch + 1)) if h > ch else 0
        return img[y0:y0 + ch, x0:x0 + cw]

    @staticmethod
    def _jitter(img, brightness, contrast, saturation):
        x = img.astype(np.float32) * brightness
        grey = x @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        x = (x - grey.mean()) * contrast + grey.mean()
        grey = (x @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]
        x = (x - grey) * saturation + grey
        return np.clip(x, 0, 255).astype(np.uint8)


def build_transforms(cfg, is_train):
    if is_train:
        return TrainTransform(cfg.INPUT.SIZE, cfg.INPUT.CROP_SCALE, cfg.INPUT.FLIP_PROB, cfg.INPUT.COLOR_JITTER)
    return EvalTransform(cfg.INPUT.SIZE)
