"""Named datasets: catalog name → dataset factory (registry name) and its arguments.

Paths are relative to DATASETS.ROOT (default ``datasets/``); ``make link FEC=/path``
creates ``datasets/fec`` pointing at a prepared FEC folder:

    fec/faceexp-comparison-data-train-public.csv
    fec/faceexp-comparison-data-test-public.csv
    fec/images/<crop_id>.jpg
"""
import os

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

_PATH_ARGS = ("csv", "image_dir")


def get(name, root):
    """(factory name, keyword arguments with paths joined to ``root``) for ``name``."""
    if name not in DATASETS:
        raise KeyError(f"dataset {name!r} is not in the catalog; known: {', '.join(sorted(DATASETS))}")
    factory, args = DATASETS[name]
    args = {k: os.path.join(root, v) if k in _PATH_ARGS else v for k, v in args.items()}
    return factory, args
