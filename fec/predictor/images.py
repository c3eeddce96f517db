"""Image inputs of the predictor → H×W×3 uint8 RGB arrays (the model's channel order)."""
import os
from pathlib import Path

import cv2
import numpy as np

from fec.utils.errors import InputError, MissingFileError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
COLORS = ("rgb", "bgr")


def read_image(path):
    """The image file at ``path`` as an RGB array; a clear error when it cannot be read."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MissingFileError(f"image not found: {path}")
    # imdecode from bytes: cv2.imread fails silently (returns None) and cannot say why.
    try:
        with open(path, "rb") as f:
            data = np.frombuffer(f.read(), np.uint8)
    except PermissionError:
        raise MissingFileError(f"cannot read image {path}: permission denied") from None
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise InputError(f"cannot decode image {path} (not an image, or a format OpenCV cannot read)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def array_to_rgb(array, color="rgb"):
    """An H×W (grey), H×W×1, H×W×3 or H×W×4 uint8 array in ``color`` order (the first
    three channels for 4) → a contiguous H×W×3 RGB array."""
    if color not in COLORS:
        raise ValueError(f"color must be one of {COLORS}, got {color!r}")
    a = np.asarray(array)
    if a.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image array (0-255), got dtype {a.dtype}")
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4) or min(a.shape[:2]) < 1:
        raise ValueError(f"expected an H×W, H×W×3 or H×W×4 image array, got shape {a.shape}")
    if a.shape[2] == 1:
        return np.ascontiguousarray(np.repeat(a, 3, axis=2))
    a = a[..., :3]
    return np.ascontiguousarray(a[..., ::-1] if color == "bgr" else a)


def to_rgb(image, color="rgb"):
    """One image input → RGB array: a path (str or Path), a PIL image (any mode) or a
    NumPy array whose channel order ``color`` names."""
    if isinstance(image, (str, Path)):
        return read_image(image)
    if hasattr(image, "convert") and hasattr(image, "size"):  # a PIL image, without importing PIL
        return np.asarray(image.convert("RGB")).copy()
    if isinstance(image, np.ndarray):
        return array_to_rgb(image, color)
    raise TypeError(f"an image is a path, a PIL image or a NumPy array, got {type(image).__name__}")


def is_batch(images):
    """Whether ``images`` is several inputs (a list or tuple, or an N×H×W×C array)
    rather than one."""
    if isinstance(images, (list, tuple)):
        return True
    return isinstance(images, np.ndarray) and images.ndim == 4


def list_images(folder):
    """Image files under ``folder`` (recursively), as sorted paths relative to it."""
    if not os.path.isdir(folder):
        raise MissingFileError(f"not a folder: {folder}")
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in files:
            if name.lower().endswith(IMAGE_EXTENSIONS):
                found.append(os.path.relpath(os.path.join(root, name), folder))
    return sorted(found)
