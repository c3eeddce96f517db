"""From downloaded bytes to face crops: the decode checks, the crop, the face check."""
import io
import warnings

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fec.data.crop import crop_face
from fec.data.detect import HaarDetector, MTCNNDetector
from fec.data.jpeg import encode_jpeg
from fec.utils.errors import InputError

from . import outcomes as O

# Photo formats only: PIL would hand EPS to Ghostscript, and nothing in FEC is EPS or PSD.
Image.init()
IMAGE_FORMATS = tuple(f for f in ("JPEG", "PNG", "GIF", "WEBP", "AVIF", "BMP", "TIFF")  # JPEG covers MPO
                      if f in Image.OPEN)  # the plugins this Pillow build has
FACE_CHECKS = ("none", "haar", "mtcnn")


def decode_image(data, max_pixels):
    """(outcome, detail, H×W×3 uint8 RGB array or None) of an encoded image.

    The dimensions are read from the header and checked before any pixel is decoded,
    so a small file that expands to gigabytes is refused cheaply. A truncated file is a
    decode error (PIL refuses it; OpenCV would grey-fill the missing part).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
            w, h = img.size
            if w * h > max_pixels:
                return O.TOO_MANY_PIXELS, f"{w}x{h} pixels, over {max_pixels}", None
            if w < 1 or h < 1:
                return O.DECODE_ERROR, f"{w}x{h} pixels", None
            img.load()
    except Image.DecompressionBombError as e:
        return O.TOO_MANY_PIXELS, str(e)[:200], None
    except UnidentifiedImageError:
        return O.NOT_IMAGE, "no image format recognised", None
    except Exception as e:  # noqa: BLE001 - a corrupt file may raise anything from any plugin
        return O.DECODE_ERROR, f"{type(e).__name__}: {e}"[:200], None
    try:
        # Upright as a browser (and cv2.imread) shows it; a broken EXIF block is ignored.
        img = ImageOps.exif_transpose(img, in_place=True) or img
    except Exception:  # noqa: BLE001
        pass
    try:
        return O.OK, "", np.asarray(img if img.mode == "RGB" else img.convert("RGB"))
    except Exception as e:  # noqa: BLE001
        return O.DECODE_ERROR, f"{type(e).__name__}: {e}"[:200], None


def encode_crop(rgb, box, size):
    """JPEG bytes of the ``size``-pixel square face crop of ``box`` (normalised left,
    right, top, bottom) in ``rgb``: fec.data.crop.crop_face, the crop every tool uses."""
    return encode_jpeg(crop_face(rgb, box, size))


def decode_crop(data):
    """RGB array of encoded crop bytes (the face check sees what the dataset will read)."""
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]


def make_face_check(kind):
    """callable(H×W×3 RGB crop) → whether it holds a face, or None for ``none``: the
    detectors of fec.data.detect, as the predictor uses them. Haar counts a face at
    least a quarter of the crop wide; MTCNN one of probability 0.9 or more."""
    if kind == "none":
        return None
    if kind == "haar":
        detector = HaarDetector(min_face_size=1, min_face_fraction=0.25)
    elif kind == "mtcnn":
        detector = MTCNNDetector(device="cpu", min_score=0.9)
    else:
        raise InputError(f"unknown face check {kind!r}; choose one of {', '.join(FACE_CHECKS)}")
    return lambda rgb: len(detector([np.ascontiguousarray(rgb)])[0][1]) > 0
