"""The one face crop used everywhere: dataset preparation, synthetic data, prediction;
and the one grey conversion (INPUT.FACE_COLOR grey).

A box is normalised (left, right, top, bottom) in [0, 1], the order of the FEC CSV
(top-left column, bottom-right column, top-left row, bottom-right row).
"""
import cv2
import numpy as np

from fec.utils.errors import DatasetError

BOX_EXPANSION = 0.15


def read_rgb(path, description):
    """The colour image at ``path`` as an H×W×3 uint8 RGB array; a DatasetError
    ("cannot read <description>") when it is missing or not an image."""
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise DatasetError(f"cannot read {description}: missing or not an image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def square_box(box, width, height, expand=BOX_EXPANSION):
    """Pixel box (x0, y0, x1, y1), end-exclusive: ``box`` grown by ``expand`` of its
    longer side, made square around its centre, then clipped at the image border."""
    left, right, top, bottom = box
    return square_pixel_box((left * width, top * height, right * width, bottom * height), width, height, expand)


def square_pixel_box(box, width, height, expand=BOX_EXPANSION):
    """Like ``square_box`` for a box already in pixels, (x0, y0, x1, y1): whole-pixel
    boxes stay exact (no round trip through normalised coordinates)."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * (1.0 + expand)
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    half = side / 2.0
    ix0 = int(np.clip(np.floor(cx - half), 0, width - 1))
    iy0 = int(np.clip(np.floor(cy - half), 0, height - 1))
    ix1 = int(np.clip(np.ceil(cx + half), ix0 + 1, width))
    iy1 = int(np.clip(np.ceil(cy + half), iy0 + 1, height))
    return ix0, iy0, ix1, iy1


def crop_face(image, box, size, expand=BOX_EXPANSION):
    """The face of ``image`` (H×W×C uint8 array) inside normalised ``box``, as a
    ``size``×``size`` array of the same channel order."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = square_box(box, w, h, expand)
    face = image[y0:y1, x0:x1]
    shrink = face.shape[0] > size or face.shape[1] > size
    return cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def grey_face(rgb):
    """H×W×3 uint8 RGB → H×W×3 uint8 grey (one channel replicated): how a model trained
    with INPUT.FACE_COLOR grey sees every face, in training and in prediction."""
    return np.repeat(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
