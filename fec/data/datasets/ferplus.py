"""FER+ (Barsoum et al., 2016): ten annotators' votes for each FER2013 face.

``fer2013new.csv`` has the header ``Usage,Image name,neutral,happiness,surprise,sadness,
anger,disgust,fear,contempt,unknown,NF``; row i holds the votes for face i of FER2013
in fer2013.csv order, so the pixels come from ``datasets/fer2013`` (fer2013.csv or
icml_face_data.csv: every face, in that order).

Which faces are kept follows Microsoft's FERPlus reference code
(generate_training_data.py and ferplus.py's majority mode), in this order:

1. a row without an image name has no image in FER+: dropped;
2. a count of one vote is an outlier and is set to 0;
3. the face is kept when one column holds more than half of the remaining votes
   (so a tie, or only single votes, keeps nothing: "no majority"), and that column is
   an emotion: a majority of ``unknown`` or ``NF`` (not a face) drops the face.

Every dropped face is counted in the log, by reason. The kept face's label is its
majority emotion (``DATASETS.FERPLUS.LABEL_MODE`` "majority", and always in
evaluation, as the reference evaluates); with "probability" the training target is
also the vote distribution over the 8 emotions (after step 2, normalised to sum 1),
given as ``label_distribution`` and trained with cross-entropy to it.
"""
import csv
import logging
import os

import numpy as np
import torch

from fec.utils.errors import ConfigError, DatasetError, DatasetFormatError

from .expression import ExpressionDataset, grey_to_rgb
from .fer2013 import load_fer2013
from .fer2013_release import locate_fer2013
from .triplet import DATASETS

logger = logging.getLogger(__name__)

FERPLUS_CLASSES = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
VOTE_COLUMNS = FERPLUS_CLASSES + ("unknown", "NF")
HEADER = ("Usage", "Image name") + VOTE_COLUMNS
LABEL_MODES = ("majority", "probability")
UNKNOWN, NOT_A_FACE = len(FERPLUS_CLASSES), len(FERPLUS_CLASSES) + 1
# Why a face is dropped (-1 .. -4 in majority_labels' output).
NO_IMAGE, NO_MAJORITY, UNKNOWN_MAJORITY, NF_MAJORITY = -1, -2, -3, -4
DROP_REASONS = {NO_IMAGE: "without an image name", NO_MAJORITY: "without a majority (ties, single votes)",
                UNKNOWN_MAJORITY: "with an unknown majority", NF_MAJORITY: "with a not-a-face majority"}
_LINK_HINT = "run `make link FERPLUS=FOLDER` on the folder holding Microsoft's fer2013new.csv"
_ROW_FORM = "a row is Usage, Image name, then 10 vote counts (whole numbers, 0 or more)"
_FIX = "fix or delete that line, or download fer2013new.csv again from Microsoft's FERPlus repository"


def parse_ferplus_csv(path):
    """(usage (N,) str, image names (N,) str, votes (N, 10) int64, lines (N,) int64) of a
    fer2013new.csv; ``lines`` is each row's line in the file (the header is line 1)."""
    if not os.path.isfile(path):
        raise DatasetError(f"{path} does not exist; {_LINK_HINT}")
    usage, names, votes, lines = [], [], [], []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        if [h.lower() for h in header] != [h.lower() for h in HEADER]:
            raise DatasetFormatError(f"{path}, line 1: header {','.join(header)!r} is not FER+'s "
                                     f"{','.join(HEADER)!r}; {_FIX}")
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            where = f"{path}, line {reader.line_num}"
            if len(row) != len(HEADER):
                raise DatasetFormatError(f"{where}: {len(row)} fields, expected {len(HEADER)} ({_ROW_FORM}); "
                                         f"{_FIX}")
            try:
                counts = [int(v) for v in row[2:]]
            except ValueError:
                raise DatasetFormatError(f"{where}: votes must be whole numbers, got {','.join(row[2:])} "
                                         f"({_ROW_FORM}); {_FIX}") from None
            if min(counts) < 0:
                raise DatasetFormatError(f"{where}: negative vote count ({_ROW_FORM}); {_FIX}")
            usage.append(row[0].strip())
            names.append(row[1].strip())
            votes.append(counts)
            lines.append(reader.line_num)
    if not votes:
        raise DatasetFormatError(f"{path} has a header but no rows; {_FIX}")
    return np.asarray(usage), np.asarray(names), np.asarray(votes, dtype=np.int64), np.asarray(lines, np.int64)


def outlier_free(votes):
    """The votes with every count of one set to 0 (the reference's outlier removal)."""
    votes = np.array(votes, dtype=np.int64, copy=True)
    votes[votes <= 1] = 0
    return votes


def majority_labels(votes, names=None):
    """(N,) int64: each face's majority emotion (0..7), or the reason it is dropped
    (NO_IMAGE, NO_MAJORITY, UNKNOWN_MAJORITY, NF_MAJORITY)."""
    v = outlier_free(votes)
    top = v.argmax(1)
    labels = np.where(2 * v.max(1) > v.sum(1), top, NO_MAJORITY)  # more than half: never a tie
    labels = np.where(labels == UNKNOWN, UNKNOWN_MAJORITY, labels)
    labels = np.where(labels == NOT_A_FACE, NF_MAJORITY, labels)
    if names is not None:
        labels = np.where(np.char.str_len(np.asarray(names, dtype=str)) == 0, NO_IMAGE, labels)
    return labels.astype(np.int64)


def vote_distribution(votes):
    """(N, 8) float32: the outlier-free votes over the 8 emotions, normalised to sum 1
    (rows without any such vote stay 0)."""
    v = outlier_free(votes)[:, :len(FERPLUS_CLASSES)].astype(np.float64)
    total = v.sum(1, keepdims=True)
    return np.divide(v, total, out=np.zeros_like(v), where=total > 0).astype(np.float32)


class FERPlusDataset(ExpressionDataset):
    """The FER+ faces of one Usage split kept by the reference rule (module doc).

    Attributes beyond ExpressionDataset's: ``pixels`` (N, 48, 48) uint8, ``rows`` (N,)
    row of each face in fer2013new.csv (0 = first after the header), ``label_mode``,
    ``distributions`` (N, 8) float32 normalised votes, ``dropped`` {reason: count}.
    """

    def __init__(self, csv_path, fer2013, usage, label_mode="majority", is_train=True, cache_dir=""):
        if label_mode not in LABEL_MODES:
            raise ConfigError(f"DATASETS.FERPLUS.LABEL_MODE must be one of {', '.join(LABEL_MODES)}, "
                              f"got {label_mode!r}")
        usages, names, votes, lines = parse_ferplus_csv(csv_path)
        release = locate_fer2013(fer2013)
        if release.kind != "csv":
            raise DatasetError(f"FER+ labels the faces of fer2013.csv by row, so it needs fer2013.csv or "
                             f"icml_face_data.csv (every face, in order) in {fer2013}; it holds {release.describe()}")
        table = load_fer2013(release.csv, cache_dir)
        if len(table.pixels) != len(votes):
            raise DatasetFormatError(f"{csv_path} has {len(votes)} rows but {release.csv} has {len(table.pixels)} "
                                     f"faces (their last at line {lines[-1]} and line {table.lines[-1]}): FER+'s "
                                     "row i labels FER2013's face i, so both must be the full, unedited files; link "
                                     "the complete fer2013.csv and fer2013new.csv")
        if table.usage is not None and not np.array_equal(table.usage, usages):
            i = int(np.flatnonzero(table.usage != usages)[0])
            raise DatasetFormatError(f"{csv_path}, line {lines[i]}: Usage {usages[i]} but the face it labels, "
                                     f"{release.csv}, line {table.lines[i]}, is {table.usage[i]}: the two files are "
                                     "not in the same order; link the unedited fer2013.csv and fer2013new.csv")
        in_split = usages == usage
        if not in_split.any():
            raise ConfigError(f"{csv_path} has no rows of Usage {usage!r}; it has: {', '.join(sorted(set(usages)))}")
        labels = majority_labels(votes, names)
        keep = in_split & (labels >= 0)
        self.label_mode = label_mode
        self.csvs = (csv_path, release.csv)
        self.rows = np.flatnonzero(keep)
        self.pixels = table.pixels[keep]
        self.distributions = vote_distribution(votes[keep])
        self.dropped = {why: int((labels[in_split] == code).sum()) for code, why in DROP_REASONS.items()}
        name = f"ferplus_{usage}"
        super().__init__(name, "classification", FERPLUS_CLASSES, labels[keep], None, is_train, source=csv_path)
        counts = np.bincount(labels[keep], minlength=len(FERPLUS_CLASSES))
        logger.info("%s (%s labels): %d of %d faces kept; dropped %s; per class %s", name, label_mode, keep.sum(),
                    in_split.sum(), ", ".join(f"{n} {why}" for why, n in self.dropped.items()),
                    ", ".join(f"{c} {n}" for c, n in zip(FERPLUS_CLASSES, counts.tolist())))

    def __len__(self):
        return len(self.pixels)

    def pack_identity(self):
        """What a packed store of these faces is made from (fec.data.face_store)."""
        return {"sources": list(self.csvs), "keys": [str(r) for r in self.rows.tolist()], "settings": {},
                "channels": 1}

    def load_image(self, i):
        return grey_to_rgb(self.pixels[i])

    def __getitem__(self, key):
        item = super().__getitem__(key)
        if self.label_mode == "probability":
            item["label_distribution"] = torch.from_numpy(self.distributions[item["index"]].copy())
        return item


@DATASETS.register("FERPlusDataset")
def build_ferplus(cfg, is_train, csv, fer2013, usage):
    return FERPlusDataset(csv, fer2013, usage, cfg.DATASETS.FERPLUS.LABEL_MODE, is_train,
                          cache_dir=cfg.DATASETS.FER2013.CACHE_DIR)
