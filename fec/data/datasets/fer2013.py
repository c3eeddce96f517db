"""FER2013 (Kaggle): one CSV of 48×48 grey faces, read directly, no image files.

Columns (names matched case-insensitively, surrounding spaces ignored, as some copies
write " pixels" or "Usage "): ``emotion`` (0–6, FER2013_CLASSES), ``pixels`` (2304
space-separated grey values, row by row) and ``Usage`` (Training / PublicTest /
PrivateTest). Kaggle's ``test.csv`` has only ``pixels``: it loads for prediction, but
training or evaluating on it is an error naming the file.

Parsing the 290 MB file takes seconds, so the parsed arrays are cached as an
uncompressed .npz: ``<csv>.cache.npz`` beside the CSV, or in DATASETS.FER2013.CACHE_DIR
as ``<csv name>.<hash of its absolute path>.npz``. The cache records the CSV's size and
modification time (ns) and a format version; when any differs, the CSV is parsed again
and the cache rewritten (to a temporary file, then renamed, so concurrent readers never
see half of one). A cache that cannot be written (read-only folder) is skipped with a
warning.
"""
import csv
import hashlib
import io
import logging
import os
import zipfile
from typing import NamedTuple, Optional

import numpy as np
from tqdm import tqdm

from fec.utils import comm
from fec.utils.io import atomic_write
from fec.utils.errors import ConfigError, DatasetError, DatasetFormatError

from .triplet import DATASETS
from .expression import FER2013_CLASSES, FER_SIZE, ExpressionDataset, grey_to_rgb
from .fer2013_release import LINK_HINT, folder_for_usage, locate_fer2013, read_image_folder

logger = logging.getLogger(__name__)

USAGES = ("Training", "PublicTest", "PrivateTest")
CACHE_VERSION = 1

# How a FER2013 CSV row reads, and the fix for one that does not.
_ROW_FORM = ("a row is emotion,pixels,Usage: an emotion 0..6, 2304 (48×48) space-separated grey values "
             "0..255, and Training, PublicTest or PrivateTest")
_FIX = "fix or delete that line, or download the CSV again"


class FER2013Table(NamedTuple):
    pixels: np.ndarray  # (N, 48, 48) uint8
    labels: Optional[np.ndarray]  # (N,) int64, None without an emotion column
    usage: Optional[np.ndarray]  # (N,) str, None without a Usage column
    lines: np.ndarray  # (N,) int64 line of each row in the CSV (the header is line 1)


def _header(names, path):
    cols = {}
    for k, name in enumerate(names):
        key = name.strip().lower()
        if key in ("emotion", "pixels", "usage"):
            if key in cols:
                raise DatasetFormatError(f"{path}, line 1: column {name.strip()!r} appears twice in the header; "
                                         "a FER2013 CSV's header is emotion,pixels,Usage")
            cols[key] = k
    if "pixels" not in cols:
        raise DatasetFormatError(f"{path}, line 1: no 'pixels' column in the header {','.join(names)!r}; "
                                 "a FER2013 CSV's header is emotion,pixels,Usage (the test form: pixels alone)")
    return cols


def parse_fer2013_csv(path):
    """Every row of a FER2013 CSV as a FER2013Table; a malformed row is an error
    naming the file and line."""
    pixels, labels, usage, lines = [], [], [], []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise DatasetFormatError(f"{path} is empty: a FER2013 CSV starts with the header line "
                                     "emotion,pixels,Usage; download it again") from None
        cols = _header(header, path)
        width = max(cols.values()) + 1
        bar = tqdm(reader, desc=f"parsing {os.path.basename(path)}", unit=" rows", leave=False,
                   disable=None if comm.is_main_process() else True)  # None: on a terminal only
        for row in bar:
            line = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line
            where = f"{path}, line {line}"
            if len(row) < width:
                raise DatasetFormatError(f"{where}: {len(row)} fields, expected {len(header)} ({', '.join(header)}); "
                                         f"{_ROW_FORM}; {_FIX}")
            try:
                values = np.fromstring(row[cols["pixels"]], dtype=np.int32, sep=" ")
            except ValueError:
                raise DatasetFormatError(f"{where}: pixels must be space-separated integers; {_ROW_FORM}; "
                                         f"{_FIX}") from None
            if values.size != FER_SIZE * FER_SIZE:
                raise DatasetFormatError(f"{where}: {values.size} pixel values, expected {FER_SIZE * FER_SIZE} "
                                         f"(48×48); {_FIX}")
            if values.min() < 0 or values.max() > 255:
                raise DatasetFormatError(f"{where}: pixel values must be within 0..255, got "
                                         f"{values.min()}..{values.max()}; {_FIX}")
            pixels.append(values.astype(np.uint8).reshape(FER_SIZE, FER_SIZE))
            if "emotion" in cols:
                text = row[cols["emotion"]].strip()
                try:
                    label = int(text)
                except ValueError:
                    label = -1
                if not 0 <= label < len(FER2013_CLASSES):
                    raise DatasetFormatError(f"{where}: emotion {text!r} is not one of 0..6 "
                                             f"({', '.join(FER2013_CLASSES)}); {_FIX}")
                labels.append(label)
            if "usage" in cols:
                text = row[cols["usage"]].strip()
                if not text:
                    raise DatasetFormatError(f"{where}: empty Usage, expected Training, PublicTest or "
                                             f"PrivateTest; {_FIX}")
                usage.append(text)
            lines.append(line)
    if not pixels:
        raise DatasetFormatError(f"{path} has a header but no rows; download it again")
    return FER2013Table(
        np.stack(pixels),
        np.asarray(labels, dtype=np.int64) if "emotion" in cols else None,
        np.asarray(usage) if "usage" in cols else None,
        np.asarray(lines, dtype=np.int64),
    )


def cache_path(csv_path, cache_dir=""):
    if not cache_dir:
        return csv_path + ".cache.npz"
    key = hashlib.sha1(os.path.abspath(csv_path).encode("utf-8")).hexdigest()[:12]
    return os.path.join(cache_dir, f"{os.path.basename(csv_path)}.{key}.npz")


def _stamp(path):
    st = os.stat(path)
    return np.array([CACHE_VERSION, st.st_size, st.st_mtime_ns], dtype=np.int64)


def _read_cache(path, stamp):
    """The cached table, or None when there is none or it is stale or unreadable."""
    if not os.path.exists(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if not np.array_equal(z["stamp"], stamp):
                logger.info("%s is stale (the CSV changed): parsing again", path)
                return None
            has = z["has"]
            return FER2013Table(z["pixels"], z["labels"] if has[0] else None, z["usage"] if has[1] else None,
                                z["lines"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        logger.warning("cannot read the cache %s (%s): parsing the CSV again", path, e)
        return None


def _write_cache(path, table, stamp):
    empty = np.zeros(0, np.int64)
    buf = io.BytesIO()
    np.savez(buf, stamp=stamp, pixels=table.pixels, lines=table.lines,
             labels=empty if table.labels is None else table.labels,
             usage=np.zeros(0, "U1") if table.usage is None else table.usage,
             has=np.array([table.labels is not None, table.usage is not None]))
    try:
        if os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        atomic_write(path, buf.getvalue())
    except OSError as e:
        logger.warning("cannot write the cache %s (%s); set DATASETS.FER2013.CACHE_DIR to a writable folder",
                       path, e)
        return
    logger.info("cached %d faces of %s in %s", len(table.pixels), os.path.basename(path), path)


def load_fer2013(csv_path, cache_dir=""):
    """The FER2013Table of ``csv_path``, from its cache when the cache is current."""
    if not os.path.isfile(csv_path):
        raise DatasetError(f"{csv_path} does not exist; {LINK_HINT}")
    stamp = _stamp(csv_path)
    cache = cache_path(csv_path, cache_dir)
    table = _read_cache(cache, stamp)
    if table is not None:
        return table
    table = parse_fer2013_csv(csv_path)
    _write_cache(cache, table, stamp)
    return table


class FER2013Dataset(ExpressionDataset):
    """The FER2013 faces whose Usage is in ``usage`` (a name or a list of names; None:
    every row), for classification. ``source`` is a FER2013 CSV, or a folder holding any
    of FER2013's distributions (fec.data.datasets.fer2013_release). ``require_labels=False``
    accepts a CSV without an emotion column, for prediction: its items have no label.

    Attributes beyond ExpressionDataset's: ``pixels`` (N, 48, 48) uint8, ``lines`` (N,)
    line of each face in the CSV (None for image folders), ``files`` (the image of each
    face; None for CSVs), ``csv`` (None for image folders).
    """

    def __init__(self, source, usage=None, is_train=True, cache_dir="", require_labels=True, name=None):
        csv, self.files, self.lines = source, None, None
        if not os.path.exists(source) and not source.lower().endswith(".csv"):
            locate_fer2013(source)  # not a folder: the error lists what FER2013 can be
        if os.path.isdir(source):
            release = locate_fer2013(source)
            csv = release.csv
            if release.kind == "train_csv" and usage is not None and set(_as_list(usage)) != {"Training"}:
                raise ConfigError(f"{source} holds Kaggle's train.csv (the Training rows) and test.csv (no labels): "
                                 f"it has no labelled {', '.join(u for u in _as_list(usage) if u != 'Training')} "
                                 "faces; evaluate on another split (DATASETS.TEST) or link a folder with "
                                 "fer2013.csv or icml_face_data.csv")
            if release.kind == "train_csv":
                usage = None  # every row of train.csv is a Training row
            if release.kind == "folders":
                image_dir = folder_for_usage(release, "Training" if usage is None else usage)
                self.pixels, labels, self.files = read_image_folder(image_dir)
                self.csv = None
                self._finish(name or f"fer2013_{os.path.basename(image_dir)}", labels, image_dir, is_train)
                return
        table = load_fer2013(csv, cache_dir)
        name = name or os.path.splitext(os.path.basename(csv))[0] + (f"_{usage}" if isinstance(usage, str) else "")
        if table.labels is None and require_labels:
            raise DatasetFormatError(f"{csv} has no 'emotion' column in its header, line 1 (an unlabelled file "
                                     "such as Kaggle's test.csv): it can be predicted on, not trained or evaluated on")
        keep = np.ones(len(table.pixels), dtype=bool)
        if usage is not None:
            wanted = _as_list(usage)
            if table.usage is None:
                raise DatasetFormatError(f"{csv} has no 'Usage' column in its header, line 1, so rows of Usage "
                                         f"{wanted} cannot be chosen; link the fer2013.csv that has one")
            keep = np.isin(table.usage, wanted)
            if not keep.any():
                found = ", ".join(sorted(set(table.usage.tolist())))
                raise ConfigError(f"{csv} has no rows of Usage {wanted}; it has: {found}")
        self.csv = csv
        self.pixels = table.pixels[keep]
        self.lines = table.lines[keep]
        self._finish(name, None if table.labels is None else table.labels[keep], csv, is_train)

    def _finish(self, name, labels, source, is_train):
        super().__init__(name, "classification", FER2013_CLASSES, labels, None, is_train, source=source)
        if labels is None:
            logger.info("%s: %d unlabelled faces", name, len(self.pixels))
        else:
            counts = np.bincount(labels, minlength=len(FER2013_CLASSES))
            logger.info("%s (%s): %d faces; per class %s", name, source, len(self.pixels),
                        ", ".join(f"{c} {n}" for c, n in zip(FER2013_CLASSES, counts.tolist())))

    def __len__(self):
        return len(self.pixels)

    def pack_identity(self):
        """What a packed store of these faces is made from (fec.data.face_store)."""
        if self.csv is None:  # a folder of images
            return {"sources": [], "keys": list(self.files), "settings": {}, "channels": 1}
        return {"sources": [self.csv], "keys": [str(v) for v in self.lines.tolist()], "settings": {},
                "channels": 1}

    def load_image(self, i):
        return grey_to_rgb(self.pixels[i])


def _as_list(usage):
    return [usage] if isinstance(usage, str) else list(usage)


@DATASETS.register("FER2013Dataset")
def build_fer2013(cfg, is_train, folder, usage):
    # Through the catalog a dataset is trained or evaluated on: labels are required.
    return FER2013Dataset(folder, usage, is_train, cache_dir=cfg.DATASETS.FER2013.CACHE_DIR, require_labels=True)
