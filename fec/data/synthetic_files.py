"""The synthetic expression faces written in each dataset's real file format, so every
reader runs end to end without a download (tools/make_synthetic_expressions.py).

- FER2013 (the "fer" faces of fec.data.datasets.synthetic_expression, one dataset per Usage
  split), in each distribution ``FER_FORMS``: ``fer2013`` (fer2013.csv), ``icml``
  (icml_face_data.csv, header ``emotion, Usage, pixels``), ``kaggle`` (train.csv without
  Usage, test.csv without labels), ``folders`` (train/<class>/, test/<class>/ JPEGs).
- FER+: fer2013new.csv for those faces, in the same row order, with ten simulated
  annotators per face (``ferplus_votes``).
- RAF-DB: EmoLabel/list_patition_label.txt and Image/aligned/<name>_aligned.jpg of the
  "rafdb" faces.

Everything is a function of the datasets (their seed), so a rerun writes the same
files; every file goes to a temporary name and is renamed.
"""
import os

import cv2
import numpy as np

from fec.utils.io import atomic_write

from .datasets.expression import FER2013_CLASSES
from .datasets.ferplus import HEADER as FERPLUS_HEADER
from .datasets.rafdb import ALIGNED_DIR, LABEL_FILE, aligned_name
from .datasets.synthetic_expression import FERPLUS_PROTOTYPES

FER_FORMS = ("fer2013", "icml", "kaggle", "folders")
USAGES = ("Training", "PublicTest", "PrivateTest")
JPEG_PARAMS = [cv2.IMWRITE_JPEG_QUALITY, 95]
# Simulated FER+ annotators: each sees the face's expression plus this noise and votes
# for the nearest of FER+'s prototypes, or "unknown" with UNKNOWN_RATE. NOT_A_FACE_RATE
# of the faces are voted "not a face" by most annotators and NO_NAME_RATE have no image
# name, as in the real file.
ANNOTATOR_NOISE = 0.3
UNKNOWN_RATE = 0.05
NOT_A_FACE_RATE = 0.02
NO_NAME_RATE = 0.01


def _pixels(face):
    return " ".join(map(str, face.ravel().tolist()))


def _encode_jpeg(img):
    ok, buf = cv2.imencode(".jpg", img, JPEG_PARAMS)
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def render_splits(splits):
    """[(usage, faces (N, 48, 48) uint8, labels (N,) int64)] of [(usage, "fer" dataset)]."""
    return [(usage, np.stack([ds.render(i) for i in range(len(ds))]), ds.labels.numpy()) for usage, ds in splits]


def write_fer2013(out, faces, form):
    """``faces`` (render_splits' output) written in FER2013 distribution ``form`` into
    ``out``; returns the paths written (CSVs, or the two image folders)."""
    os.makedirs(out, exist_ok=True)
    if form in ("fer2013", "icml"):
        name, header = ("fer2013.csv", "emotion,pixels,Usage") if form == "fer2013" else \
            ("icml_face_data.csv", "emotion, Usage, pixels")
        lines = [header]
        for usage, pixels, labels in faces:
            for face, label in zip(pixels, labels):
                lines.append(f"{label},{_pixels(face)},{usage}" if form == "fer2013" else
                             f"{label},{usage},{_pixels(face)}")
        atomic_write(os.path.join(out, name), "\n".join(lines) + "\n")
        return [os.path.join(out, name)]
    if form == "kaggle":
        train = ["emotion,pixels"] + [f"{label},{_pixels(face)}" for usage, pixels, labels in faces
                                      if usage == "Training" for face, label in zip(pixels, labels)]
        test = ["pixels"] + [_pixels(face) for usage, pixels, _ in faces if usage != "Training" for face in pixels]
        for name, lines in (("train.csv", train), ("test.csv", test)):
            atomic_write(os.path.join(out, name), "\n".join(lines) + "\n")
        return [os.path.join(out, "train.csv"), os.path.join(out, "test.csv")]
    if form == "folders":
        for usage, pixels, labels in faces:
            sub = "train" if usage == "Training" else "test"
            for i, (face, label) in enumerate(zip(pixels, labels)):
                path = os.path.join(out, sub, FER2013_CLASSES[label], f"{usage}_{i:05d}.jpg")
                os.makedirs(os.path.dirname(path), exist_ok=True)
                atomic_write(path, _encode_jpeg(face))
        return [os.path.join(out, "train"), os.path.join(out, "test")]
    raise ValueError(f"FER2013 form must be one of {FER_FORMS}, got {form!r}")


def ferplus_votes(expressions, rng, annotators=10):
    """(N, 10) int64 votes (FER+'s columns: 8 emotions, unknown, NF) and (N,) bool
    "has an image name", from (N, 6) expression vectors."""
    e = np.asarray(expressions, dtype=np.float64)
    n, k = len(e), len(FERPLUS_PROTOTYPES)
    seen = e[:, None, :] + rng.normal(0.0, ANNOTATOR_NOISE, (n, annotators, e.shape[1]))
    d2 = ((seen[:, :, None, :] - FERPLUS_PROTOTYPES[None, None].astype(np.float64)) ** 2).sum(-1)
    choice = d2.argmin(-1)  # (N, annotators)
    choice = np.where(rng.random((n, annotators)) < UNKNOWN_RATE, k, choice)
    not_face = rng.random(n) < NOT_A_FACE_RATE
    choice = np.where(not_face[:, None] & (rng.random((n, annotators)) < 0.8), k + 1, choice)
    votes = np.stack([(choice == c).sum(1) for c in range(k + 2)], axis=1).astype(np.int64)
    return votes, rng.random(n) >= NO_NAME_RATE


def write_ferplus(out, splits):
    """``out``/fer2013new.csv for the faces of [(usage, "fer" dataset)] in that order
    (the order write_fer2013 writes them); returns its path."""
    lines, row = [",".join(FERPLUS_HEADER)], 0
    for usage, ds in splits:
        votes, named = ferplus_votes(ds.expression_vectors, ds.random_stream(6))
        for v, has_name in zip(votes, named):
            name = f"fer{row:07d}.png" if has_name else ""
            lines.append(f"{usage},{name}," + ",".join(map(str, v.tolist())))
            row += 1
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "fer2013new.csv")
    atomic_write(path, "\n".join(lines) + "\n")
    return path


def write_rafdb(out, splits):
    """RAF-DB's label file and aligned faces for [("train" | "test", "rafdb" dataset)];
    returns the label file's path."""
    lines = []
    for split, ds in splits:
        for i in range(len(ds)):
            name = f"{split}_{i + 1:05d}.jpg"
            lines.append(f"{name} {int(ds.labels[i]) + 1}")
            path = os.path.join(out, ALIGNED_DIR, aligned_name(name))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            atomic_write(path, _encode_jpeg(np.ascontiguousarray(ds.render(i)[..., ::-1])))
    path = os.path.join(out, LABEL_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    atomic_write(path, "\n".join(lines) + "\n")
    return path
