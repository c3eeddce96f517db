"""Named datasets: catalog name → dataset factory (registry name) and its arguments.

Paths are relative to DATASETS.ROOT (default ``datasets/``); ``make link FEC=/path``
creates ``datasets/fec`` pointing at a prepared FEC folder:

    fec/faceexp-comparison-data-train-public.csv
    fec/faceexp-comparison-data-test-public.csv
    fec/images/<crop_id>.jpg

``make link FER2013=/path`` creates ``datasets/fer2013`` (a folder holding any of FER2013's
distributions: fer2013.csv, icml_face_data.csv, train.csv + test.csv, or train/<class>/
and test/<class>/ image folders; fec/data/datasets/fer2013_release.py), ``make link
FERPLUS=/path`` ``datasets/ferplus``, ``make link RAFDB=/path`` ``datasets/rafdb`` and
``make link AFFECTNET=/path`` ``datasets/affectnet``:

    fer2013/fer2013.csv (or another distribution)
    ferplus/fer2013new.csv
    rafdb/EmoLabel/list_patition_label.txt, rafdb/Image/aligned/<name>_aligned.jpg
    affectnet/training.csv
    affectnet/validation.csv
    affectnet/Manually_Annotated_Images/<subDirectory_filePath>

Expression datasets, by task (what the model is trained and evaluated on):

- ``fer2013_train``, ``fer2013_public_test``, ``fer2013_private_test``, ``fer2013_test``:
  FER2013 rows of Usage Training / PublicTest / PrivateTest / both tests (the image-folder
  release's test/), classification (7 classes).
- ``ferplus_train``, ``ferplus_val``, ``ferplus_test``: FER+ labels of FER2013's Training /
  PublicTest / PrivateTest faces, classification (8 classes; DATASETS.FERPLUS.LABEL_MODE).
- ``rafdb_train``, ``rafdb_test``: RAF-DB basic emotions, classification (7 classes).
- ``affectnet_train``, ``affectnet_val``: AffectNet expressions 0-7, classification.
- ``affectnet_va_train``, ``affectnet_va_val``: AffectNet valence/arousal, regression.
- ``affectnet_affect_train``, ``affectnet_affect_val``: both ("affect": expressions 0-7
  that also have valence and arousal), for a model with both heads.
- ``synthetic_fer_*``, ``synthetic_affectnet_*``, ``synthetic_affectnet_va_*``,
  ``synthetic_affect_*`` (``_train``, ``_test``): the same on synthetic faces rendered
  on the fly, no files needed (tools/make_synthetic_expressions.py writes them as
  FER2013 and AffectNet files).
- ``synthetic_intensity_train``, ``synthetic_intensity_test``: AffectNet-style synthetic
  faces labelled with their six expression intensities (``intensity``, like action-unit
  intensities), what the quickstart pretrains its backbone on.
"""
import os

from fec.utils.errors import ConfigKeyError, nearest

DATASETS = {
    "synthetic_fec_train": ("SyntheticTripletDataset", {"split": "train"}),
    "synthetic_fec_test": ("SyntheticTripletDataset", {"split": "test"}),
    "fec_train": (
        "FECTripletDataset",
        {"csv": "fec/faceexp-comparison-data-train-public.csv", "image_dir": "fec/images"},
    ),
    "fec_test": (
        "FECTripletDataset",
        {"csv": "fec/faceexp-comparison-data-test-public.csv", "image_dir": "fec/images"},
    ),
}


def _affectnet(csv, task):
    return {"csv": f"affectnet/{csv}", "image_dir": "affectnet/Manually_Annotated_Images", "task": task}


def _ferplus(usage):
    # FER+ labels FER2013's faces: its row i is face i of datasets/fer2013's CSV.
    return {"csv": "ferplus/fer2013new.csv", "fer2013": "fer2013", "usage": usage}


def _synthetic(split, style, task):
    return {"split": split, "style": style, "task": task}


DATASETS.update({
    "fer2013_train": ("FER2013Dataset", {"folder": "fer2013", "usage": "Training"}),
    "fer2013_public_test": ("FER2013Dataset", {"folder": "fer2013", "usage": "PublicTest"}),
    "fer2013_private_test": ("FER2013Dataset", {"folder": "fer2013", "usage": "PrivateTest"}),
    "fer2013_test": ("FER2013Dataset", {"folder": "fer2013", "usage": ("PublicTest", "PrivateTest")}),
    "ferplus_train": ("FERPlusDataset", _ferplus("Training")),
    "ferplus_val": ("FERPlusDataset", _ferplus("PublicTest")),
    "ferplus_test": ("FERPlusDataset", _ferplus("PrivateTest")),
    "rafdb_train": ("RAFDBDataset", {"folder": "rafdb", "split": "train"}),
    "rafdb_test": ("RAFDBDataset", {"folder": "rafdb", "split": "test"}),
    "affectnet_train": ("AffectNetDataset", _affectnet("training.csv", "classification")),
    "affectnet_val": ("AffectNetDataset", _affectnet("validation.csv", "classification")),
    "affectnet_va_train": ("AffectNetDataset", _affectnet("training.csv", "regression")),
    "affectnet_va_val": ("AffectNetDataset", _affectnet("validation.csv", "regression")),
    "affectnet_affect_train": ("AffectNetDataset", _affectnet("training.csv", "affect")),
    "affectnet_affect_val": ("AffectNetDataset", _affectnet("validation.csv", "affect")),
    "synthetic_fer_train": ("SyntheticExpressionDataset", _synthetic("train", "fer", "classification")),
    "synthetic_fer_test": ("SyntheticExpressionDataset", _synthetic("test", "fer", "classification")),
    "synthetic_affectnet_train": ("SyntheticExpressionDataset", _synthetic("train", "affectnet", "classification")),
    "synthetic_affectnet_test": ("SyntheticExpressionDataset", _synthetic("test", "affectnet", "classification")),
    "synthetic_affectnet_va_train": ("SyntheticExpressionDataset", _synthetic("train", "affectnet", "regression")),
    "synthetic_affectnet_va_test": ("SyntheticExpressionDataset", _synthetic("test", "affectnet", "regression")),
    "synthetic_affect_train": ("SyntheticExpressionDataset", _synthetic("train", "affectnet", "affect")),
    "synthetic_affect_test": ("SyntheticExpressionDataset", _synthetic("test", "affectnet", "affect")),
    "synthetic_intensity_train": ("SyntheticExpressionDataset", _synthetic("train", "affectnet", "intensity")),
    "synthetic_intensity_test": ("SyntheticExpressionDataset", _synthetic("test", "affectnet", "intensity")),
})

_PATH_ARGS = ("csv", "image_dir", "folder", "fer2013")


def get(name, root):
    """(factory name, keyword arguments with paths joined to ``root``) for ``name``."""
    if name not in DATASETS:
        close = nearest(name, DATASETS)
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        raise ConfigKeyError(f"dataset {name!r} (DATASETS.TRAIN / DATASETS.TEST) is not in the catalog; {hint}"
                             f"known: {', '.join(sorted(DATASETS))}")
    factory, args = DATASETS[name]
    args = {k: os.path.join(root, v) if k in _PATH_ARGS else v for k, v in args.items()}
    return factory, args
