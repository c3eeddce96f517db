"""Face detectors: RGB uint8 images → per image, pixel boxes (K, 4) as (x0, y0, x1, y1)
and scores (K,), most confident first.

- ``mtcnn``: facenet-pytorch's MTCNN; its weights ship in the wheel, so nothing is
  downloaded. Score: the probability of its last stage (0-1).
- ``haar``: OpenCV's frontal-face Haar cascade, fast and light, less accurate. Score:
  the number of overlapping detections merged into the box (higher is surer; not a
  probability).
- ``none``: the image is already a face crop (as prepared for FEC); the whole image is
  the box, with score 1.
"""
import cv2
import numpy as np

DETECTOR_NAMES = ("mtcnn", "haar", "none")


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

    def __call__(self, images):
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
    name = "haar"

    def __init__(self, min_face_size=20, min_neighbors=5, scale_factor=1.1):
        path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
        self.cascade = cv2.CascadeClassifier(path)
        if self.cascade.empty():
            raise RuntimeError(f"cannot load the Haar cascade {path} (opencv-python-headless<5 ships it)")
        self.min_size = (int(min_face_size), int(min_face_size))
        self.min_neighbors = int(min_neighbors)
        self.scale_factor = float(scale_factor)

    def __call__(self, images):
        results = []
        for img in images:
            grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
            rects, counts = self.cascade.detectMultiScale2(
                grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=self.min_size)
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
