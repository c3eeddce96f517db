"""The one JPEG setting for the face crops and photos fec writes (prepare_fec's crops,
the synthetic FEC, FER2013 folder, RAF-DB and AffectNet files): quality 95,
full-resolution colour (4:4:4), so thin features such as a 64 px face's lips survive
and the same pixels give the same bytes whichever tool wrote them."""
import cv2
import numpy as np

JPEG_QUALITY = 95
JPEG_PARAMS = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY,
               cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]


def encode_jpeg(img):
    """JPEG bytes of an H×W grey or H×W×3 RGB uint8 image."""
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(img if img.ndim == 2 else img[..., ::-1]), JPEG_PARAMS)
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()
