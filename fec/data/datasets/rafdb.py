"""RAF-DB basic emotions (Li et al., 2017): the aligned 100×100 colour faces.

``make link RAFDB=FOLDER`` on the folder holding::

    EmoLabel/list_patition_label.txt     one line per face: ``train_00001.jpg 5``
    Image/aligned/train_00001_aligned.jpg

(the file name's spelling, "patition", is RAF-DB's). Labels 1-7 are surprise, fear,
disgust, happiness, sadness, anger, neutral (label k is class k-1 of RAFDB_CLASSES);
the name's prefix says the split (``train_`` / ``test_``).
"""
import logging
import os

import numpy as np

from fec.data.crop import read_rgb
from fec.utils.errors import ConfigError, DatasetError, DatasetFormatError

from .expression import ExpressionDataset
from .triplet import DATASETS

logger = logging.getLogger(__name__)

RAFDB_CLASSES = ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")
LABEL_FILE = os.path.join("EmoLabel", "list_patition_label.txt")
ALIGNED_DIR = os.path.join("Image", "aligned")
SPLITS = ("train", "test")
_LINK_HINT = "run `make link RAFDB=FOLDER` on the folder holding EmoLabel/ and Image/aligned/"
_FIX = "fix or delete that line, or take the label file again from RAF-DB's basic/EmoLabel/"


def aligned_name(name):
    """``train_00001.jpg`` → ``train_00001_aligned.jpg``."""
    stem, ext = os.path.splitext(name)
    return f"{stem}_aligned{ext}"


def parse_label_file(path):
    """[(image name, class index 0..6)] of a list_patition_label.txt, in file order."""
    if not os.path.isfile(path):
        raise DatasetError(f"{path} does not exist; {_LINK_HINT}")
    entries = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            where = f"{path}, line {line_no}"
            if len(fields) != 2:
                raise DatasetFormatError(f"{where}: expected '<image name> <label 1-7>', got {line.strip()!r}; "
                                         f"{_FIX}")
            name, label = fields
            if label not in {str(k) for k in range(1, 8)}:
                raise DatasetFormatError(f"{where}: label {label!r} is not one of 1..7 "
                                         f"({', '.join(RAFDB_CLASSES)}); {_FIX}")
            entries.append((name, int(label) - 1))
    if not entries:
        raise DatasetFormatError(f"{path} lists no images: each line is '<image name> <label 1-7>'; {_LINK_HINT}")
    return entries


class RAFDBDataset(ExpressionDataset):
    """The RAF-DB basic faces of one split (``train`` or ``test``). Every listed image is
    checked when the dataset is built; missing ones are named.

    Attributes beyond ExpressionDataset's: ``files`` (N,) aligned image paths.
    """

    def __init__(self, folder, split, is_train=True):
        if split not in SPLITS:
            raise ConfigError(f"RAF-DB split must be one of {SPLITS}, got {split!r}")
        label_file = os.path.join(folder, LABEL_FILE)
        entries = [(n, k) for n, k in parse_label_file(label_file) if n.startswith(split + "_")]
        if not entries:
            raise DatasetFormatError(f"{label_file} lists no {split}_* images (RAF-DB names them "
                                     f"{split}_00001.jpg ...); {_LINK_HINT}")
        image_dir = os.path.join(folder, ALIGNED_DIR)
        self.files = [os.path.join(image_dir, aligned_name(n)) for n, _ in entries]
        missing = [f for f in self.files if not os.path.isfile(f)]
        if missing:
            raise DatasetError(f"{len(missing)} of the {len(self.files)} {split} faces listed in {label_file} "
                                    f"are missing, e.g. {', '.join(missing[:3])}; RAF-DB's aligned faces are "
                                    f"{ALIGNED_DIR}/<name>_aligned.jpg")
        labels = np.asarray([k for _, k in entries], dtype=np.int64)
        super().__init__(f"rafdb_{split}", "classification", RAFDB_CLASSES, labels, None, is_train,
                         source=label_file)
        counts = np.bincount(labels, minlength=len(RAFDB_CLASSES))
        logger.info("%s: %d faces; per class %s", self.name, len(labels),
                    ", ".join(f"{c} {n}" for c, n in zip(RAFDB_CLASSES, counts.tolist())))

    def __len__(self):
        return len(self.files)

    def pack_identity(self):
        """What a packed store of these faces is made from (fec.data.face_store)."""
        return {"sources": [self.source], "keys": [os.path.basename(f) for f in self.files], "settings": {},
                "channels": 3}

    def load_image(self, i):
        return read_rgb(self.files[i], f"RAF-DB face {self.files[i]}")


@DATASETS.register("RAFDBDataset")
def build_rafdb(cfg, is_train, folder, split):
    return RAFDBDataset(folder, split, is_train)
