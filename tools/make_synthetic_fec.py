"""Write the synthetic expression dataset to disk in the official FEC format.

    python tools/make_synthetic_fec.py --out datasets/fec_synthetic [--size 224]
        [--train-triplets N] [--test-triplets N] [--seed S] [--base-url URL] [--no-crops]

Writes, for the train and test splits of fec.data.datasets.synthetic:

    OUT/faceexp-comparison-data-{train,test}-public.csv   28 columns, no header
    OUT/photos/<split>_<face>.jpg     the "photos" the URLs name: the face pasted at a
                                      random place of a larger textured image, at the
                                      box the CSV gives
    OUT/images/<crop_id>.jpg          prepared crops, cut from the decoded photos with
                                      fec.data.crop.crop_face (unless --no-crops)

URLs are file:// paths, or BASE_URL/photos/<name> with --base-url (e.g. served by
``python -m http.server`` from OUT), so the download and preparation path can be
exercised end to end. Read back as FEC, the triplets (similar pair, odd one) are those
of the synthetic dataset; each row lists its three images in a shuffled order, with the
annotations renumbered to match.
"""
import argparse
import os
import sys
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from fec.config import cfg as default_cfg  # noqa: E402
from fec.data.crop import BOX_EXPANSION, crop_face  # noqa: E402
from fec.data.datasets.synthetic import SyntheticTripletDataset  # noqa: E402
from fec.data.fec_csv import CSV_NAME, crop_id, format_fec_row  # noqa: E402
from fec.data.jpeg import encode_jpeg  # noqa: E402
from fec.data.synthetic_files import paste_in_photo  # noqa: E402
from fec.evaluation.triplet import TripletEvaluator, evaluate_triplets  # noqa: E402
from fec.utils.io import atomic_write  # noqa: E402
from fec.utils.errors import check_at_least, run_cli  # noqa: E402

def make_photo(face, rng):
    """(photo, box): ``face`` (S×S×3 RGB) pasted at a random place of a textured image
    1.6-2.2 times its size; ``box`` (left, right, top, bottom), normalised and rounded to
    six decimals, is the square that crop_face grows back to the pasted face."""
    photo, x0, y0 = paste_in_photo(face, rng)
    s = face.shape[0]
    h, w = photo.shape[:2]
    # crop_face grows the box by BOX_EXPANSION and rounds outwards to whole pixels: a
    # quarter pixel inside the face on each side, after rounding to six decimals, so it
    # lands exactly on the face's s×s pixels.
    half = (s - 0.5) / 2 / (1 + BOX_EXPANSION)
    cx, cy = x0 + s / 2, y0 + s / 2
    box = tuple(round(v, 6) for v in ((cx - half) / w, (cx + half) / w, (cy - half) / h, (cy + half) / h))
    return photo, box


def write_split(ds, out, base_url=None, crops=True):
    """Photos, crops and CSV of one synthetic split; returns the CSV path."""
    photo_dir, crop_dir = os.path.join(out, "photos"), os.path.join(out, "images")
    os.makedirs(photo_dir, exist_ok=True)
    if crops:
        os.makedirs(crop_dir, exist_ok=True)
    urls, boxes = {}, {}
    for i in tqdm(np.unique(ds.triplets).tolist(), desc=f"{ds.split} faces", unit="face"):
        photo, box = make_photo(ds.load_face(i), ds.random_stream(5, i))
        name = f"{ds.split}_{i:06d}.jpg"
        path = os.path.join(photo_dir, name)
        data = encode_jpeg(photo)
        atomic_write(path, data)
        url = base_url.rstrip("/") + "/photos/" + name if base_url else Path(path).resolve().as_uri()
        if crops:
            # From the decoded JPEG, as the preparation tool sees the downloaded photo.
            decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            crop = crop_face(decoded, box, ds.render_size)
            atomic_write(os.path.join(crop_dir, crop_id(url, box) + ".jpg"), encode_jpeg(crop[..., ::-1]))
        urls[i], boxes[i] = url, box

    # Each row lists its images in a shuffled order; annotations follow them.
    order = ds.random_stream(6).random((len(ds.triplets), 3)).argsort(1)
    position = order.argsort(1)  # stored position → position in the row
    votes = np.take_along_axis(position, ds.votes - 1, 1) + 1
    lines = []
    for m in range(len(ds.triplets)):
        faces = ds.triplets[m][order[m]].tolist()
        annotations = [(str(a), int(v)) for a, v in zip(ds.annotators[m].tolist(), votes[m].tolist())]
        lines.append(format_fec_row([urls[f] for f in faces], [boxes[f] for f in faces], int(ds.types[m]), annotations))
    csv_path = os.path.join(out, CSV_NAME.format(ds.split))
    atomic_write(csv_path, ("\n".join(lines) + "\n").encode("utf-8"))
    return csv_path


def parse_args(argv=None):
    c = default_cfg.DATASETS.SYNTHETIC
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--train-triplets", type=int, default=c.TRAIN_TRIPLETS)
    p.add_argument("--test-triplets", type=int, default=c.TEST_TRIPLETS)
    p.add_argument("--train-identities", type=int, default=c.TRAIN_IDENTITIES)
    p.add_argument("--test-identities", type=int, default=c.TEST_IDENTITIES)
    p.add_argument("--faces-per-identity", type=int, default=c.FACES_PER_IDENTITY)
    p.add_argument("--annotator-noise", type=float, default=c.ANNOTATOR_NOISE)
    p.add_argument("--seed", type=int, default=c.SEED)
    p.add_argument("--size", type=int, default=224, help="side of the rendered face and of the crops, pixels")
    p.add_argument("--base-url", default=None, help="URL prefix instead of file:// paths, e.g. http://127.0.0.1:8000/")
    p.add_argument("--no-crops", action="store_true", help="write only the CSVs and photos")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    check_at_least(args, 1, "train_triplets", "test_triplets", "train_identities", "test_identities",
                   "faces_per_identity", "size")
    os.makedirs(args.out, exist_ok=True)
    splits = (("train", args.train_identities, args.train_triplets), ("test", args.test_identities, args.test_triplets))
    for split, identities, triplets in splits:
        ds = SyntheticTripletDataset(split, identities, args.faces_per_identity, triplets, seed=args.seed,
                                     annotator_noise=args.annotator_noise, render_size=args.size)
        path = write_split(ds, args.out, args.base_url, not args.no_crops)
        counts = ", ".join(f"{n} {c}" for n, c in ds.type_counts().items())
        print(f"{split}: {ds.num_faces} faces of {identities} identities; {len(ds.triplets)} triplets ({counts}); "
              f"{ds.num_dropped} dropped with no unique majority")
        # The true expression vectors scored as embeddings, as the evaluator scores them.
        ceiling = evaluate_triplets(ds.expression_vectors, ds.triplets, ds.types)
        print(f"{split}: true-expression ceiling {TripletEvaluator.summary(ceiling).split(': ', 1)[1]}")
        print(f"{split}: wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
