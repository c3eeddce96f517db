"""Which of FER2013's distributions a folder holds, and the faces of one split of it.

People get FER2013 in three forms; ``make link FER2013=FOLDER`` accepts any of them and
``locate_fer2013`` finds which, in this order:

1. ``fer2013.csv``: the original (emotion, pixels, Usage), all three Usage splits.
2. Kaggle's competition folder: ``icml_face_data.csv`` (header ``emotion, Usage, pixels``,
   with spaces; all three splits), else ``train.csv`` (emotion, pixels: the Training
   rows) with ``test.csv`` (pixels only: for prediction, it has no labels).
3. The image-folder release: ``train/<class>/*.jpg`` and ``test/<class>/*.jpg``, class
   folders named angry, disgust, fear, happy, neutral, sad, surprise (mapped to FER2013's
   label order); ``test/`` holds PublicTest and PrivateTest together.
"""
import logging
import os
from typing import NamedTuple, Optional

import cv2
import numpy as np

from fec.utils.errors import ConfigError, DatasetError, DatasetFormatError

from .expression import FER2013_CLASSES, FER_SIZE

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
LOOKED_FOR = (
    "fer2013.csv (emotion, pixels, Usage)",
    "icml_face_data.csv (Kaggle competition: emotion, Usage, pixels)",
    "train.csv (Kaggle competition: emotion, pixels), with test.csv beside it",
    f"train/<class>/*.jpg and test/<class>/*.jpg (classes {', '.join(sorted(FER2013_CLASSES))})",
)
LINK_HINT = "run `make link FER2013=FOLDER` on the folder that holds one of FER2013's distributions"
# The image-folder release has one test/ folder for both held-out splits.
FOLDER_USAGES = {"train": ("Training",), "test": ("PublicTest", "PrivateTest")}


class FER2013Release(NamedTuple):
    kind: str  # "csv" (one CSV, every split), "train_csv" (Kaggle's train.csv + test.csv), "folders"
    folder: str
    csv: Optional[str] = None  # "csv", "train_csv": the labelled CSV

    def describe(self):
        if self.kind == "folders":
            return f"image folders {os.path.join(self.folder, 'train')}, {os.path.join(self.folder, 'test')}"
        return self.csv


def locate_fer2013(folder):
    """The FER2013Release in ``folder``; FileNotFoundError listing what was looked for."""
    if not os.path.isdir(folder):
        raise DatasetError(f"{folder} is not a folder; {LINK_HINT}: {'; '.join(LOOKED_FOR)}")
    for name in ("fer2013.csv", "icml_face_data.csv"):
        if os.path.isfile(os.path.join(folder, name)):
            return FER2013Release("csv", folder, os.path.join(folder, name))
    if os.path.isfile(os.path.join(folder, "train.csv")):
        return FER2013Release("train_csv", folder, os.path.join(folder, "train.csv"))
    if any(os.path.isdir(os.path.join(folder, sub)) for sub in FOLDER_USAGES):
        return FER2013Release("folders", folder)
    raise DatasetError(f"{folder} holds none of FER2013's distributions; looked for: {'; '.join(LOOKED_FOR)}. "
                       f"{LINK_HINT}")


def folder_for_usage(release, usage):
    """The image folder (train/ or test/) holding exactly the Usage splits ``usage``."""
    wanted = set([usage] if isinstance(usage, str) else usage)
    for sub, usages in FOLDER_USAGES.items():
        if wanted == set(usages):
            return os.path.join(release.folder, sub)
    raise ConfigError(f"{release.describe()}: the image-folder release of FER2013 has train/ (Training) and "
                     f"test/ (PublicTest and PrivateTest together), so Usage {sorted(wanted)} cannot be chosen; "
                     "use the catalog's fer2013_train or fer2013_test")


def read_image_folder(folder):
    """(pixels (N, 48, 48) uint8, labels (N,) int64, files) of ``folder/<class>/*.jpg``,
    classes in FER2013's label order, files sorted by name within a class."""
    if not os.path.isdir(folder):
        raise DatasetError(f"{folder} does not exist: the image-folder release of FER2013 has train/<class>/ "
                                "and test/<class>/")
    classes = {c: k for k, c in enumerate(FER2013_CLASSES)}
    subs = sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))
    unknown = [d for d in subs if d.lower() not in classes]
    if unknown or not subs:
        raise DatasetFormatError(f"{folder}: class folders must be named {', '.join(sorted(classes))}; "
                                 f"found {', '.join(subs) or 'none'}")
    pixels, labels, files, resized = [], [], [], 0
    for sub in subs:
        names = sorted(f for f in os.listdir(os.path.join(folder, sub)) if f.lower().endswith(IMAGE_SUFFIXES))
        for name in names:
            path = os.path.join(folder, sub, name)
            img = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
            if img is None:
                raise DatasetFormatError(f"{path} is not an image OpenCV can read; replace or delete it")
            if img.shape != (FER_SIZE, FER_SIZE):
                img = cv2.resize(img, (FER_SIZE, FER_SIZE), interpolation=cv2.INTER_AREA)
                resized += 1
            pixels.append(img)
            labels.append(classes[sub.lower()])
            files.append(path)
    if not pixels:
        raise DatasetFormatError(f"{folder} has class folders but no images ({', '.join(IMAGE_SUFFIXES)}); "
                                 f"{LINK_HINT}")
    if resized:
        logger.warning("%s: %d images were not 48x48 and were resized to it", folder, resized)
    return np.stack(pixels), np.asarray(labels, dtype=np.int64), files
