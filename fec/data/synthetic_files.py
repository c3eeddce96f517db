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
- AffectNet: training.csv / validation.csv and Manually_Annotated_Images/, each
  "affectnet" face pasted into a larger photo at its row's box (``paste_in_photo``, which
  tools/make_synthetic_fec.py's FEC photos use too).

Everything is a function of the datasets (their seed), so a rerun writes the same
files; every file goes to a temporary name and is renamed.
"""
import os

import cv2
import numpy as np

from fec.utils.io import atomic_write

from .datasets.affectnet import COLUMNS as AFFECTNET_COLUMNS
from .datasets.expression import FER2013_CLASSES
from .datasets.ferplus import HEADER as FERPLUS_HEADER
from .datasets.rafdb import ALIGNED_DIR, LABEL_FILE, aligned_name
from .datasets.synthetic_expression import FERPLUS_PROTOTYPES
from .jpeg import encode_jpeg

FER_FORMS = ("fer2013", "icml", "kaggle", "folders")
USAGES = ("Training", "PublicTest", "PrivateTest")
AFFECTNET_IMAGES = "Manually_Annotated_Images"
# Simulated FER+ annotators: each sees the face's expression plus this noise and votes
# for the nearest of FER+'s prototypes, or "unknown" with UNKNOWN_RATE. UNCLEAR_RATE of
# the faces are "unknown" to most annotators, NOT_A_FACE_RATE "not a face" to most, and
# NO_NAME_RATE have no image name, as in the real file.
ANNOTATOR_NOISE = 0.3
UNKNOWN_RATE = 0.05
UNCLEAR_RATE = 0.02
NOT_A_FACE_RATE = 0.02
NO_NAME_RATE = 0.01


def _pixels(face):
    return " ".join(map(str, face.ravel().tolist()))


def paste_in_photo(face, rng):
    """(photo, x0, y0): ``face`` (S×S×3 RGB) pasted with its top-left corner at pixel
    (x0, y0) of a textured image 1.6-2.2 times its size."""
    s = face.shape[0]
    h, w = (int(round(s * f)) for f in rng.uniform(1.6, 2.2, 2))
    # Texture: smooth colour blobs, a few lines, a little grain.
    blobs = rng.uniform(20, 235, (int(rng.integers(3, 9)), int(rng.integers(3, 9)), 3))
    photo = np.clip(cv2.resize(blobs, (w, h), interpolation=cv2.INTER_CUBIC), 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(3, 10))):
        p0, p1 = rng.integers(0, (w, h), (2, 2)).tolist()
        cv2.line(photo, p0, p1, rng.uniform(0, 255, 3).tolist(), int(rng.integers(1, 1 + max(2, s // 40))), cv2.LINE_AA)
    grain = rng.normal(0, 4, (h, w)).astype(np.float32)
    photo = np.clip(photo + grain[..., None], 0, 255).astype(np.uint8)
    y0, x0 = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
    photo[y0:y0 + s, x0:x0 + s] = face
    return photo, x0, y0


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
                atomic_write(path, encode_jpeg(face))
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
    kind = rng.random(n)
    for column, (low, high) in ((k, (0.0, UNCLEAR_RATE)), (k + 1, (UNCLEAR_RATE, UNCLEAR_RATE + NOT_A_FACE_RATE))):
        face = (kind >= low) & (kind < high)
        choice = np.where(face[:, None] & (rng.random((n, annotators)) < 0.7), column, choice)
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
            atomic_write(path, encode_jpeg(ds.render(i)))
    path = os.path.join(out, LABEL_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    atomic_write(path, "\n".join(lines) + "\n")
    return path


def write_affectnet_split(ds, out, csv_name):
    """The photos and ``out``/``csv_name`` of one "affectnet" dataset (task "affect");
    returns the CSV path."""
    lines = [",".join(AFFECTNET_COLUMNS)]
    for i in range(len(ds)):
        face = ds.render(i)
        photo, x0, y0 = paste_in_photo(face, ds.random_stream(5, i))
        rel = f"{1 + i // 1000}/{ds.split}_{i:06d}.jpg"
        path = os.path.join(out, AFFECTNET_IMAGES, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        atomic_write(path, encode_jpeg(photo))
        s = face.shape[0]
        v, a = ds.valence_arousal[i].tolist()
        # facial_landmarks is left empty: the synthetic faces have none annotated.
        lines.append(f"{rel},{x0},{y0},{s},{s},,{int(ds.labels[i])},{v:.6f},{a:.6f}")
    csv_path = os.path.join(out, csv_name)
    atomic_write(csv_path, "\n".join(lines) + "\n")
    return csv_path
