"""Write the synthetic expression faces in every dataset format fec reads.

    python tools/make_synthetic_expressions.py --out datasets/synthetic_expressions
        [--train-images N] [--test-images N] [--images-per-identity K] [--seed S]
        [--affectnet-size 128] [--rafdb-size 100] [--only NAME [NAME ...]]

Writes (logic in fec.data.synthetic_files; labels and valence/arousal are functions of
each face's expression vector, fec.data.datasets.synthetic_expression):

    OUT/fer2013/fer2013.csv          emotion,pixels,Usage: the 48×48 grey "fer" faces of
                                     the train split as Training, the test split as
                                     PublicTest, a third split as PrivateTest
    OUT/fer2013_icml/icml_face_data.csv      the same, Kaggle competition header
    OUT/fer2013_kaggle/train.csv, test.csv   Training rows (no Usage); the test rows
                                             without labels
    OUT/fer2013_folders/train/<class>/*.jpg, test/<class>/*.jpg   the image-folder release
    OUT/ferplus/fer2013new.csv       ten simulated annotators' votes for each face of
                                     fer2013.csv, in its order (ties, unknown and
                                     not-a-face majorities, rows without image name)
    OUT/rafdb/EmoLabel/list_patition_label.txt, OUT/rafdb/Image/aligned/*_aligned.jpg
    OUT/affectnet/training.csv       the "affectnet" faces of the train split,
    OUT/affectnet/validation.csv     and of the test split
    OUT/affectnet/Manually_Annotated_Images/<k>/<split>_<i>.jpg
                                     each face pasted into a larger photo at the box
                                     (face_x, face_y, face_width, face_height) of its row

Then e.g. ``make link FER2013=OUT/fer2013 FERPLUS=OUT/ferplus RAFDB=OUT/rafdb
AFFECTNET=OUT/affectnet`` (or FER2013=OUT/fer2013_folders, ...) and the catalog's
entries read them. With the same DATASETS.SYNTHETIC_AFFECT settings (seed, sizes;
RENDER_SIZE = --affectnet-size), ``fer2013_train`` / ``fer2013_public_test`` hold exactly
the faces and labels of ``synthetic_fer_train`` / ``synthetic_fer_test``, and the
AffectNet crops are the ``synthetic_expressionnet_*`` faces up to JPEG loss (valence/arousal
to six decimals). Every file is written to a temporary name and renamed; a rerun
rewrites the same files (everything is a function of the arguments).
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from fec.config import cfg as default_cfg  # noqa: E402
from fec.data.datasets.synthetic_expression import SyntheticExpressionDataset  # noqa: E402
from fec.data.synthetic_files import (  # noqa: E402
    FER_FORMS,
    render_splits,
    write_affectnet_split,
    write_fer2013,
    write_ferplus,
    write_rafdb,
)
from fec.utils.errors import check_at_least, run_cli  # noqa: E402

FER_SPLITS = (("train", "Training"), ("test", "PublicTest"), ("private_test", "PrivateTest"))
AFFECTNET_SPLITS = (("train", "training.csv"), ("test", "validation.csv"))
DATASETS = ("fer2013", "fer2013_icml", "fer2013_kaggle", "fer2013_folders", "ferplus", "rafdb", "affectnet")


def _dataset(args, split, style):
    n = args.train_images if split == "train" else args.test_images
    task = "affect" if style == "affectnet" else "classification"
    return SyntheticExpressionDataset(split, style, task, n, args.images_per_identity, args.seed,
                                  args.rafdb_size if style == "rafdb" else args.affectnet_size)


def _counts(ds):
    counts = np.bincount(ds.labels.numpy(), minlength=len(ds.class_names))
    return f"{len(ds)} faces; " + ", ".join(f"{c} {n}" for c, n in zip(ds.class_names, counts))


def parse_args(argv=None):
    c = default_cfg.DATASETS.SYNTHETIC_AFFECT
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="output folder (gets one folder per dataset)")
    p.add_argument("--train-images", type=int, default=c.TRAIN_IMAGES)
    p.add_argument("--test-images", type=int, default=c.TEST_IMAGES, help="per test split")
    p.add_argument("--images-per-identity", type=int, default=c.IMAGES_PER_IDENTITY)
    p.add_argument("--seed", type=int, default=c.SEED)
    p.add_argument("--affectnet-size", type=int, default=128, help="side of the AffectNet faces, pixels")
    p.add_argument("--rafdb-size", type=int, default=100, help="side of the RAF-DB aligned faces, pixels")
    p.add_argument("--only", nargs="+", choices=DATASETS, metavar="NAME",
                   help=f"write only these ({', '.join(DATASETS)}); default: all")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    check_at_least(args, 1, "train_images", "test_images", "images_per_identity", "affectnet_size", "rafdb_size")
    wanted = args.only or DATASETS
    fer_splits = [(usage, _dataset(args, split, "fer")) for split, usage in FER_SPLITS]
    if any(name.startswith("fer") for name in wanted):
        for usage, ds in fer_splits:
            print(f"fer2013 {usage}: {_counts(ds)}")
        faces = render_splits(fer_splits)
        for form in FER_FORMS:
            name = "fer2013" if form == "fer2013" else f"fer2013_{form}"
            # FER+ labels fer2013.csv's faces, so it comes with it
            if name in wanted or (form == "fer2013" and "ferplus" in wanted):
                print(f"wrote {', '.join(write_fer2013(os.path.join(args.out, name), faces, form))}")
    if "ferplus" in wanted:
        print(f"wrote {write_ferplus(os.path.join(args.out, 'ferplus'), fer_splits)}")
    if "rafdb" in wanted:
        splits = [(split, _dataset(args, split, "rafdb")) for split in ("train", "test")]
        for split, ds in splits:
            print(f"rafdb {split}: {_counts(ds)}")
        print(f"wrote {write_rafdb(os.path.join(args.out, 'rafdb'), splits)}")
    if "affectnet" in wanted:
        out = os.path.join(args.out, "affectnet")
        for split, csv_name in AFFECTNET_SPLITS:
            ds = _dataset(args, split, "affectnet")
            print(f"affectnet {csv_name}: {_counts(ds)}; valence mean {ds.valence_arousal[:, 0].mean():.3f}, "
                  f"arousal mean {ds.valence_arousal[:, 1].mean():.3f}")
            print(f"wrote {write_affectnet_split(ds, out, csv_name)}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
