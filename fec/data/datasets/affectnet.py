"""AffectNet: ``training.csv`` / ``validation.csv`` plus the folder of images.

Columns (header names matched with surrounding spaces ignored, as some copies write
``subDirectory_filePath, face_x, ...``): ``subDirectory_filePath`` (image path under
the image folder, e.g. ``689/737db2.jpg``), ``face_x, face_y, face_width,
face_height`` (the face box in pixels of that image), ``facial_landmarks`` (not
used), ``expression`` (0–7: AFFECTNET_CLASSES; 8 none, 9 uncertain, 10 no face),
``valence`` and ``arousal`` (in [−1, 1]; −2 when missing).

Which rows a task keeps (the others are dropped and counted in the log):

- classification: expressions 0–7;
- regression: rows with both valence and arousal, except "no face" (10);
- affect (both): expressions 0–7 with both valence and arousal.

The face: the annotated box, grown by INPUT.FACE_BOX_EXPANSION of its longer side (the
AffectNet configs set 0: the box as annotated), made square around its centre with that
longer side, and clipped at the image border (fec.data.crop.square_pixel_box); the
transforms then resize it to INPUT.SIZE. Every listed image must exist: they are
checked when the dataset is built (one listing per sub-folder), and the first missing
ones are named with their CSV lines.
"""
import csv
import logging
import os
from typing import NamedTuple

import numpy as np
from tqdm import tqdm

from fec.data.crop import read_rgb, square_pixel_box
from fec.utils import comm
from fec.utils.errors import DatasetError, DatasetFormatError

from .triplet import DATASETS
from .expression import AFFECTNET_CLASSES, ExpressionDataset

logger = logging.getLogger(__name__)

COLUMNS = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height", "facial_landmarks",
           "expression", "valence", "arousal")
# Expression codes beyond the eight emotions.
NON_EMOTIONS = {8: "none", 9: "uncertain", 10: "no-face"}
MISSING = -2.0
_LINK_HINT = ("run `make link AFFECTNET=/path/to/affectnet` (the folder holding training.csv, validation.csv "
              "and Manually_Annotated_Images/) to point datasets/affectnet at it")
_FIX = "fix or delete that line, or take the CSV again from AffectNet's Manually_Annotated_file_lists/"


class AffectNetTable(NamedTuple):
    paths: list  # image path under the image folder, as in the CSV
    boxes: np.ndarray  # (N, 4) float64 x, y, width, height in pixels
    expression: np.ndarray  # (N,) int64 0..10
    valence_arousal: np.ndarray  # (N, 2) float32, -2 where missing
    lines: np.ndarray  # (N,) int64 line of each row (the header is line 1)


def _safe_relative(path):
    # The CSV names files under the image folder: nothing absolute, nothing above it.
    norm = os.path.normpath(path.replace("\\", "/"))
    return bool(path) and not os.path.isabs(norm) and norm != ".." and not norm.startswith(".." + os.sep)


def read_affectnet_csv(path):
    """Every row of an AffectNet CSV; a malformed row is an error naming file and line."""
    if not os.path.isfile(path):
        raise DatasetError(f"{path} does not exist; {_LINK_HINT}")
    paths, boxes, expression, va, lines = [], [], [], [], []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise DatasetFormatError(f"{path} is empty: an AffectNet CSV starts with the header "
                                     f"{','.join(COLUMNS)}; {_LINK_HINT}") from None
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise DatasetFormatError(f"{path}, line 1: the header lacks {', '.join(missing)}; expected "
                                     f"{','.join(COLUMNS)}; {_FIX}")
        col = {c: header.index(c) for c in COLUMNS}
        width = max(col.values()) + 1
        bar = tqdm(reader, desc=f"reading {os.path.basename(path)}", unit=" rows", leave=False,
                   disable=None if comm.is_main_process() else True)  # None: on a terminal only
        for row in bar:
            line = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            where = f"{path}, line {line}"
            if len(row) < width:
                raise DatasetFormatError(f"{where}: {len(row)} fields, expected {len(header)} "
                                         f"({','.join(header)}); {_FIX}")
            name = row[col["subDirectory_filePath"]].strip()
            if not _safe_relative(name):
                raise DatasetFormatError(f"{where}: subDirectory_filePath {name!r} must be a relative path inside "
                                         f"the image folder; {_FIX}")
            try:
                box = [float(row[col[c]]) for c in ("face_x", "face_y", "face_width", "face_height")]
                v, a = float(row[col["valence"]]), float(row[col["arousal"]])
            except ValueError as e:
                raise DatasetFormatError(f"{where}: the face box, valence and arousal must be numbers ({e}); "
                                         f"{_FIX}") from None
            if not all(np.isfinite(box)) or box[2] <= 0 or box[3] <= 0:
                raise DatasetFormatError(f"{where}: face box {box} needs finite values and a positive width and "
                                         f"height; {_FIX}")
            text = row[col["expression"]].strip()
            try:
                e = int(text)
            except ValueError:
                e = -1
            if not 0 <= e <= 10:
                raise DatasetFormatError(f"{where}: expression {text!r} is not one of 0..10; {_FIX}")
            for key, x in (("valence", v), ("arousal", a)):
                if x != MISSING and not -1.0 <= x <= 1.0:
                    raise DatasetFormatError(f"{where}: {key} {x} is outside [-1, 1] (and not -2, missing); "
                                             f"{_FIX}")
            paths.append(name)
            boxes.append(box)
            expression.append(e)
            va.append((v, a))
            lines.append(line)
    return AffectNetTable(paths, np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(expression, np.int64),
                          np.asarray(va, np.float32).reshape(-1, 2), np.asarray(lines, np.int64))


def rows_for_task(table, task):
    """(keep mask, {reason: rows dropped}) of the rows ``task`` uses."""
    e = table.expression
    missing_va = (table.valence_arousal == MISSING).any(1)
    drop = {}
    keep = np.ones(len(e), dtype=bool)
    codes = (10,) if task == "regression" else (8, 9, 10)
    for code in codes:
        hit = keep & (e == code)
        drop[NON_EMOTIONS[code]] = int(hit.sum())
        keep &= ~hit
    if task in ("regression", "affect"):
        hit = keep & missing_va
        drop["missing valence/arousal"] = int(hit.sum())
        keep &= ~hit
    return keep, drop


def check_images(image_dir, paths, lines, csv_path):
    """Raise DatasetError (a FileNotFoundError) naming the first missing images, listing each sub-folder once."""
    if not os.path.isdir(image_dir):
        raise DatasetError(f"the AffectNet image folder {image_dir} does not exist; {_LINK_HINT}")
    listings = {}
    missing = []
    for p, line in zip(paths, lines.tolist()):
        folder, name = os.path.split(os.path.normpath(p))
        if folder not in listings:
            try:
                with os.scandir(os.path.join(image_dir, folder)) as entries:
                    listings[folder] = {e.name for e in entries}
            except (FileNotFoundError, NotADirectoryError):
                listings[folder] = set()
        if name not in listings[folder]:
            missing.append((os.path.join(image_dir, p), line))
    if missing:
        shown = "; ".join(f"{p} (line {line})" for p, line in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise DatasetError(f"{csv_path}: {len(missing)} of {len(paths)} listed images are missing: {shown}{more}; "
                           f"{_LINK_HINT}")


class AffectNetDataset(ExpressionDataset):
    """The rows of an AffectNet CSV that ``task`` uses, with their face crops.

    Attributes beyond ExpressionDataset's: ``paths`` (image paths under ``image_dir``),
    ``boxes`` (N, 4) x, y, width, height, ``expression`` (N,) raw codes, ``lines``
    (N,) CSV lines, ``dropped`` {reason: rows}.
    """

    def __init__(self, csv, image_dir, task, is_train=True, box_expansion=0.0, name=None):
        table = read_affectnet_csv(csv)
        name = name or f"affectnet_{os.path.splitext(os.path.basename(csv))[0]}_{task}"
        keep, self.dropped = rows_for_task(table, task)
        idx = np.flatnonzero(keep)
        self.csv, self.image_dir, self.box_expansion = csv, image_dir, float(box_expansion)
        self.paths = [table.paths[i] for i in idx.tolist()]
        self.boxes = table.boxes[idx]
        self.expression = table.expression[idx]
        self.lines = table.lines[idx]
        labels = self.expression if task != "regression" else None
        va = table.valence_arousal[idx] if task != "classification" else None
        super().__init__(name, task, AFFECTNET_CLASSES, labels, va, is_train, source=csv)
        dropped = ", ".join(f"{k} {n}" for k, n in self.dropped.items())
        logger.info("%s: kept %d of %d rows of %s (dropped: %s)", name, len(idx), len(table.paths), csv, dropped)
        if len(idx) == 0:
            raise DatasetFormatError(f"{csv}: no rows usable for {task} (dropped: {dropped}); link AffectNet's "
                                     "own training.csv / validation.csv")
        check_images(image_dir, self.paths, self.lines, csv)

    def __len__(self):
        return len(self.paths)

    def pack_identity(self):
        """What a packed store of these faces is made from (fec.data.face_store)."""
        keys = [f"{p} {' '.join(repr(v) for v in box)}" for p, box in zip(self.paths, self.boxes.tolist())]
        return {"sources": [self.csv], "keys": keys, "settings": {"box_expansion": self.box_expansion},
                "channels": 3}

    def image_path(self, i):
        return os.path.join(self.image_dir, self.paths[i])

    def crop_box(self, i, width, height):
        """Pixel box (x0, y0, x1, y1) of face ``i`` in an image of that size."""
        x, y, w, h = self.boxes[i].tolist()
        return square_pixel_box((x, y, x + w, y + h), width, height, self.box_expansion)

    def load_image(self, i):
        path = self.image_path(i)
        img = read_rgb(path, f"AffectNet image {path} (line {self.lines[i]} of {self.csv})")
        x0, y0, x1, y1 = self.crop_box(i, img.shape[1], img.shape[0])
        return np.ascontiguousarray(img[y0:y1, x0:x1])


@DATASETS.register("AffectNetDataset")
def build_affectnet(cfg, is_train, csv, image_dir, task):
    return AffectNetDataset(csv, image_dir, task, is_train, box_expansion=cfg.INPUT.FACE_BOX_EXPANSION)
