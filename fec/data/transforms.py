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

from .crop import grey_face


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
    """Random resized crop, horizontal flip, colour jitter. ``draw`` turns the sample's
    generator into the face's parameters, ``apply`` applies them; the device path
    (fec.data.device_augment) applies the same parameters to whole batches."""

    def __init__(self, size, crop_scale=(0.85, 1.0), flip_prob=0.5, color_jitter=0.2):
        self.size = size
        self.crop_scale = tuple(crop_scale)
        self.flip_prob = flip_prob
        self.jitter = color_jitter

    def __call__(self, img, gen=None):
        return self.apply(img, self.draw(img.shape[0], img.shape[1], gen))

    def draw(self, h, w, gen=None):
        """The parameters for an h×w face: [x0, y0, crop width, crop height, flip (0/1),
        brightness, contrast, saturation] (PARAMS_PER_FACE floats)."""
        r = torch.rand(8, generator=gen, dtype=torch.float64).tolist()
        x0, y0, cw, ch = self._crop_box(h, w, r[0], r[1], r[2], r[3])
        flip = 1.0 if r[4] < self.flip_prob else 0.0
        jitter = [1 - self.jitter + 2 * self.jitter * x for x in r[5:8]] if self.jitter > 0 else [1.0] * 3
        return [float(x0), float(y0), float(cw), float(ch), flip, *jitter]

    def apply(self, img, params):
        x0, y0, cw, ch = (int(v) for v in params[:4])
        img = _resize(img[y0:y0 + ch, x0:x0 + cw], self.size)
        if params[4]:
            img = img[:, ::-1]
        if self.jitter > 0:
            img = self._jitter(img, *params[5:8])
        return _to_tensor(img)

    def _crop_box(self, h, w, u_area, u_ratio, u_x, u_y):
        lo, hi = self.crop_scale
        if lo >= 1.0:
            return 0, 0, w, h
        area = h * w * (lo + (hi - lo) * u_area)
        ratio = math.exp(math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * u_ratio)
        cw = min(w, max(1, int(round(math.sqrt(area * ratio)))))
        ch = min(h, max(1, int(round(math.sqrt(area / ratio)))))
        x0 = int(u_x * (w - cw + 1)) if w > cw else 0
        y0 = int(u_y * (h - ch + 1)) if h > ch else 0
        return x0, y0, cw, ch

    @staticmethod
    def _jitter(img, brightness, contrast, saturation):
        x = img.astype(np.float32) * np.float32(brightness)
        grey = x @ GREY_WEIGHTS
        x = (x - grey.mean()) * np.float32(contrast) + grey.mean()
        grey = (x @ GREY_WEIGHTS)[..., None]
        x = (x - grey) * np.float32(saturation) + grey
        return np.clip(x, 0, 255).astype(np.uint8)


PARAMS_PER_FACE = 8
GREY_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)


class DeferredTrainTransform:
    """The loader's half of INPUT.AUGMENT_ON device: the face at SIZE×SIZE, unaugmented
    and channels last (SIZE×SIZE×3 uint8, as decoded or stored: no transposing copy in
    the loader), and the parameters TrainTransform would draw for it from the same
    generator, as a float64 (PARAMS_PER_FACE,) tensor. fec.data.device_augment applies
    them in batches."""

    def __init__(self, train_transform):
        self.train = train_transform
        self.size = train_transform.size

    def __call__(self, img, gen=None):
        img = _resize(img, self.size)
        params = self.train.draw(img.shape[0], img.shape[1], gen)
        return torch.from_numpy(np.ascontiguousarray(img)), torch.tensor(params, dtype=torch.float64)


class GreyFaces:
    """INPUT.FACE_COLOR grey: the face turned grey (fec.data.crop.grey_face) before
    ``transform``; grey faces pass unchanged."""

    def __init__(self, transform):
        self.transform = transform
        self.size = transform.size

    def __call__(self, img, gen=None):
        return self.transform(grey_face(img), gen)


def apply_transform(transform, img, gen):
    """(3×S×S uint8 image, its augmentation parameters or None)."""
    if transform is None:
        return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1), None
    out = transform(img, gen)
    return out if isinstance(out, tuple) else (out, None)


def build_transforms(cfg, is_train):
    if is_train:
        train = TrainTransform(cfg.INPUT.SIZE, cfg.INPUT.CROP_SCALE, cfg.INPUT.FLIP_PROB, cfg.INPUT.COLOR_JITTER)
        transform = DeferredTrainTransform(train) if cfg.INPUT.AUGMENT_ON == "device" else train
    else:
        transform = EvalTransform(cfg.INPUT.SIZE)
    return GreyFaces(transform) if cfg.INPUT.FACE_COLOR == "grey" else transform
