"""Face detectors: RGB uint8 images → per image, pixel boxes (K, 4) as (x0, y0, x1, y1)
and scores (K,), most confident first.

- ``mtcnn``: facenet-pytorch's MTCNN; its weights ship in the wheel, so nothing is
  downloaded. Score: the probability of its last stage (0-1).
- ``haar``: OpenCV's frontal-face Haar cascade, fast and light, less accurate. Score:
  the number of overlapping detections merged into the box (higher is surer; not a
  probability).
- ``none``: the image is already a face crop (as prepared for FEC); the whole image is
  the box, with score 1.

The predictor finds faces in photos with these; the FEC download tool
(fec/prepare/image.py) asks the same detectors whether a crop holds a face at all.
Both are safe to call from several threads. No torch here: MTCNN (and with it torch)
is imported only when one is built.
"""
import threading

import cv2
import numpy as np

DETECTOR_NAMES = ("mtcnn", "haar", "none")
# Overlapping raw detections a Haar box needs. One value for finding faces in photos
# and for checking downloaded crops: both want a face, not a face-like texture (at 4,
# backgrounds and placeholder images pass the check); a real face at crop scale
# gathers far more than 5.
HAAR_MIN_NEIGHBORS = 5
HAAR_CASCADE = "haarcascade_frontalface_default.xml"


def _empty():
    return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)


def _sorted(boxes, scores):
    order = np.argsort(-scores, kind="stable")
    return boxes[order].astype(np.float32), scores[order].astype(np.float32)


class MTCNNDetector:
    name = "mtcnn"

    def __init__(self, device="cpu", min_face_size=20, min_score=0.9):
        from facenet_pytorch import MTCNN  # imported here: loading it costs time

        self.mtcnn = MTCNN(keep_all=True, min_face_size=min_face_size, device=device)
        self.min_score = min_score
        self._lock = threading.Lock()  # one model, one caller at a time

    def __call__(self, images):
        with self._lock:
            return self._detect(images)

    def _detect(self, images):
        results = [None] * len(images)
        # MTCNN runs a list of same-sized images as one batch (video frames); others alone.
        groups = {}
        for i, img in enumerate(images):
            groups.setdefault(img.shape, []).append(i)
        for idx in groups.values():
            batch = np.stack([images[i] for i in idx]) if len(idx) > 1 else images[idx[0]]
            boxes, probs = self.mtcnn.detect(batch)
            if len(idx) == 1:
                boxes, probs = [boxes], [probs]
            for i, b, p in zip(idx, boxes, probs):
                if b is None:
                    results[i] = _empty()
                    continue
                b, p = np.asarray(b, np.float32).reshape(-1, 4), np.asarray(p, np.float32).reshape(-1)
                keep = p >= self.min_score
                results[i] = _sorted(b[keep], p[keep])
        return results


class HaarDetector:
    """``min_face_fraction``: a face narrower than this share of the image's shorter
    side does not count (besides ``min_face_size`` pixels)."""

    name = "haar"

    def __init__(self, min_face_size=20, min_neighbors=HAAR_MIN_NEIGHBORS, scale_factor=1.1,
                 min_face_fraction=0.0):
        self._path = cv2.data.haarcascades + HAAR_CASCADE
        if cv2.CascadeClassifier(self._path).empty():
            raise RuntimeError(f"cannot load the Haar cascade {self._path} (opencv-python-headless<5 ships it)")
        self._local = threading.local()  # a CascadeClassifier is not safe to share across threads
        self.min_face_size = int(min_face_size)
        self.min_face_fraction = float(min_face_fraction)
        self.min_neighbors = int(min_neighbors)
        self.scale_factor = float(scale_factor)

    def _cascade(self):
        cascade = getattr(self._local, "cascade", None)
        if cascade is None:
            cascade = self._local.cascade = cv2.CascadeClassifier(self._path)
        return cascade

    def __call__(self, images):
        cascade = self._cascade()
        results = []
        for img in images:
            side = max(self.min_face_size, int(min(img.shape[:2]) * self.min_face_fraction))
            grey = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY)
            rects, counts = cascade.detectMultiScale2(
                grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(side, side))
            if len(rects) == 0:
                results.append(_empty())
                continue
            rects = np.asarray(rects, np.float32).reshape(-1, 4)
            boxes = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], 1)
            results.append(_sorted(boxes, np.asarray(counts, np.float32).reshape(-1)))
        return results


class WholeImage:
    """No detection: every image is one face crop."""

    name = "none"

    def __call__(self, images):
        return [(np.array([[0, 0, img.shape[1], img.shape[0]]], np.float32), np.ones(1, np.float32))
                for img in images]


def build_detector(name, device="cpu", min_face_size=20, min_score=0.9):
    """``name`` one of DETECTOR_NAMES; ``min_score`` applies to MTCNN's probability."""
    if name == "mtcnn":
        return MTCNNDetector(device, min_face_size, min_score)
    if name == "haar":
        return HaarDetector(min_face_size)
    if name == "none":
        return WholeImage()
    raise ValueError(f"unknown face detector {name!r}; choose one of {', '.join(DETECTOR_NAMES)}")
