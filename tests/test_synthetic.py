import csv
import logging
import os

import cv2
import numpy as np
import pytest
from helpers.tools import load_tool

from fec.config import cfg as default_cfg
from fec.data.datasets import DATASETS
from fec.data.datasets.synthetic import SyntheticTripletDataset
from fec.data.datasets.synthetic_annotators import NUM_ANNOTATORS, sample_triplets, simulate_votes
from fec.data.datasets.synthetic_faces import (
    CATEGORY_NAMES, EXPRESSION_NAMES, PROTOTYPES, Identity, random_identities, render_face,
)
from fec.data.fec_csv import crop_id, majority_vote

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULTS = default_cfg.DATASETS.SYNTHETIC


def _dataset(split="test", seed=0, noise=None, size=64, is_train=True, triplets=None, identities=None):
    return SyntheticTripletDataset(
        split,
        num_identities=identities or (DEFAULTS.TRAIN_IDENTITIES if split == "train" else DEFAULTS.TEST_IDENTITIES),
        faces_per_identity=DEFAULTS.FACES_PER_IDENTITY,
        num_triplets=triplets or (DEFAULTS.TRAIN_TRIPLETS if split == "train" else DEFAULTS.TEST_TRIPLETS),
        seed=seed,
        annotator_noise=DEFAULTS.ANNOTATOR_NOISE if noise is None else noise,
        render_size=size,
        is_train=is_train,
    )


@pytest.fixture(scope="module")
def test_split():
    return _dataset("test")


def _true_pair_correct(ds):
    e = ds.expression_vectors.astype(np.float64)[ds.triplets]
    d = lambda i, j: ((e[:, i] - e[:, j]) ** 2).sum(1)  # noqa: E731
    return (d(0, 1) < d(0, 2)) & (d(0, 1) < d(1, 2))


def _upright_identity():
    """An identity with no rotation, offset, lighting or noise: features at known places."""
    idt = Identity(*random_identities(np.random.default_rng(3), 1)[0])
    return idt._replace(rotation=0.0, offset_x=0.0, offset_y=0.0, scale=0.4, light_strength=0.0, noise_std=0.0)


# ---------------------------------------------------------------------------- rendering


@pytest.mark.parametrize("size", [64, 224])
def test_render_shape_dtype_and_content(size):
    img = render_face(PROTOTYPES[1], random_identities(np.random.default_rng(0), 1)[0], size, rng=0)
    assert img.shape == (size, size, 3) and img.dtype == np.uint8
    assert img.std() > 20  # a drawing, not a flat colour


def _region_share(a, b, x_range, y_range, size):
    """(share of the absolute difference of two renders inside a box of face units of
    _upright_identity, number of pixels that changed clearly)."""
    diff = np.abs(a.astype(np.int32) - b).sum(2)
    k = _upright_identity().scale * size
    x0, x1 = (0.5 * size + k * np.array(x_range)).astype(int)
    y0, y1 = (0.53 * size + k * np.array(y_range)).astype(int)
    return diff[y0:y1, x0:x1].sum() / diff.sum(), (diff > 30).sum()


@pytest.mark.parametrize(
    "dim, x_range, y_range",
    [
        ("smile", (-0.5, 0.5), (0.25, 1.0)),
        ("mouth_open", (-0.5, 0.5), (0.25, 1.0)),
        ("brow_raise", (-0.7, 0.7), (-0.85, -0.2)),
        ("brow_tilt", (-0.7, 0.7), (-0.85, -0.2)),
        ("eye_open", (-0.6, 0.6), (-0.4, 0.1)),
        ("nose_wrinkle", (-0.3, 0.3), (-0.1, 0.6)),
    ],
)
def test_each_expression_changes_its_own_region(dim, x_range, y_range):
    idt = _upright_identity()
    lo, hi = PROTOTYPES[0].copy(), PROTOTYPES[0].copy()
    k = EXPRESSION_NAMES.index(dim)
    lo[k], hi[k] = -0.9, 0.9
    share, changed = _region_share(render_face(lo, idt, 128), render_face(hi, idt, 128), x_range, y_range, 128)
    assert changed > 150
    assert share > 0.97


def test_every_expression_dimension_is_visible_at_64px():
    idt = _upright_identity()
    base = render_face(np.zeros(len(EXPRESSION_NAMES)), idt, 64).astype(np.int32)
    for k, name in enumerate(EXPRESSION_NAMES):
        e = np.zeros(len(EXPRESSION_NAMES))
        e[k] = 0.5
        changed = (np.abs(render_face(e, idt, 64) - base).sum(2) > 30).sum()
        assert changed >= 20, f"{name}: a change of 0.5 moves only {changed} pixels at 64 px"


def test_smile_and_frown_differ_in_the_mouth():
    idt = _upright_identity()
    smile, frown = PROTOTYPES[1].copy(), PROTOTYPES[1].copy()
    smile[0], frown[0] = 1.0, -1.0
    a, b = render_face(smile, idt, 224), render_face(frown, idt, 224)
    share, changed = _region_share(a, b, (-0.5, 0.5), (0.25, 1.0), 224)
    assert share > 0.97 and changed > 500


# ---------------------------------------------------------------------------- dataset


def test_deterministic_from_seed(test_split):
    again = _dataset("test")
    for attr in ("triplets", "types", "votes", "annotators", "expression_vectors", "identities", "categories"):
        np.testing.assert_array_equal(getattr(test_split, attr), getattr(again, attr), err_msg=attr)
    assert test_split.num_dropped == again.num_dropped
    for i in (0, 17, test_split.num_faces - 1):
        first = test_split.load_face(i)
        np.testing.assert_array_equal(first, test_split.load_face(i))
        np.testing.assert_array_equal(first, again.load_face(i))
    assert not np.array_equal(test_split.load_face(0), test_split.load_face(1))

    other = _dataset("test", seed=1)
    assert not np.array_equal(test_split.triplets[:50], other.triplets[:50])
    assert not np.array_equal(test_split.expression_vectors, other.expression_vectors)
    assert not np.array_equal(test_split.load_face(0), other.load_face(0))


def test_identities_disjoint_across_splits(test_split):
    train = _dataset("train", identities=DEFAULTS.TRAIN_IDENTITIES, triplets=30)
    train_rows = {tuple(r) for r in train.identities.tolist()}
    test_rows = {tuple(r) for r in test_split.identities.tolist()}
    assert len(train_rows) == DEFAULTS.TRAIN_IDENTITIES and len(test_rows) == DEFAULTS.TEST_IDENTITIES
    assert not train_rows & test_rows
    # Nor does any continuous draw (colours may clip to 0 or 255 in both).
    for name in ("face_width", "scale", "rotation", "offset_x", "light_angle", "noise_std"):
        k = Identity._fields.index(name)
        assert not set(train.identities[:, k]) & set(test_split.identities[:, k]), name
    assert not np.array_equal(train.load_face(0), test_split.load_face(0))


def test_faces_and_categories(test_split):
    n = DEFAULTS.TEST_IDENTITIES * DEFAULTS.FACES_PER_IDENTITY
    assert test_split.num_faces == n == len(test_split.expression_vectors) == len(test_split.categories)
    assert test_split.expression_vectors.dtype == np.float32
    assert test_split.expression_vectors.shape[1] == len(EXPRESSION_NAMES)
    e = test_split.expression_vectors
    assert e.min() >= -1 and e.max() <= 1
    nearest = ((e[:, None] - PROTOTYPES[None]) ** 2).sum(-1).argmin(1)
    np.testing.assert_array_equal(test_split.categories, nearest)
    counts = np.bincount(test_split.categories, minlength=len(CATEGORY_NAMES))
    assert counts.min() > n / len(CATEGORY_NAMES) / 2  # every expression is well represented
    # Expressions vary within a category: fine-grained one-class triplets have answers.
    spread = np.mean([e[test_split.categories == c].std(0).mean() for c in range(len(CATEGORY_NAMES))])
    assert 0.1 < spread < 0.5


def test_triplet_types_as_designed(test_split):
    t = test_split.triplets
    assert len(set(map(tuple, np.sort(t, 1)))) > 0.99 * len(t)
    assert (t[:, 0] != t[:, 1]).all() and (t[:, 0] != t[:, 2]).all() and (t[:, 1] != t[:, 2]).all()
    cats = test_split.categories[t]
    distinct = np.array([len(set(row)) for row in cats.tolist()])
    np.testing.assert_array_equal(test_split.types, distinct - 1)
    share = np.bincount(test_split.types, minlength=3) / len(t)
    assert (np.abs(share - 1 / 3) < 0.05).all(), share
    # Three identities per triplet, and each face used about six times (1600 * 3 / 800).
    people = test_split.identity_of[t]
    assert (people[:, 0] != people[:, 1]).all() and (people[:, 1] != people[:, 2]).all()
    assert (people[:, 0] != people[:, 2]).all()
    uses = np.bincount(t.ravel(), minlength=test_split.num_faces)
    assert uses.min() >= 2 and uses.max() <= 9 and abs(uses.mean() - 3 * len(t) / test_split.num_faces) < 1e-9


def test_majority_pair_matches_the_votes(test_split):
    votes = test_split.votes
    assert votes.shape == (len(test_split.triplets), 6) and set(np.unique(votes)) <= {1, 2, 3}
    counts = np.stack([(votes == v).sum(1) for v in (1, 2, 3)], 1)
    # The odd one out, c, is stored third: vote 3 wins outright in every kept triplet.
    assert (counts[:, 2] > counts[:, 0]).all() and (counts[:, 2] > counts[:, 1]).all()
    # Not unanimous everywhere: the minority votes are kept, renumbered consistently.
    assert (counts[:, 2] < 6).mean() > 0.05
    ann = test_split.annotators
    assert ann.min() >= 0 and ann.max() < NUM_ANNOTATORS
    assert all(len(set(row)) == 6 for row in ann.tolist())


def test_minority_votes_follow_the_true_distances(test_split):
    # A vote names the face outside the pair the annotator saw as closest: with low
    # noise, the true closest pair gets most votes overall.
    e = test_split.expression_vectors.astype(np.float64)[test_split.triplets]
    d = np.stack([np.linalg.norm(e[:, i] - e[:, j], axis=1) for i, j in ((1, 2), (0, 2), (0, 1))], 1)
    true_odd = d.argmin(1) + 1
    assert (test_split.votes == true_odd[:, None]).mean() > 0.85


def test_majority_and_ties():
    votes = np.array([
        [3, 3, 3, 1, 2, 3],  # 3 wins
        [1, 1, 1, 2, 2, 2],  # tie 3-3
        [1, 1, 2, 2, 3, 3],  # tie 2-2-2
        [2, 2, 2, 1, 1, 3],  # 2 wins 3-2-1
        [1, 1, 1, 1, 1, 1],  # unanimous
    ])
    np.testing.assert_array_equal(majority_vote(votes)[0], [3, 0, 0, 2, 1])


def test_ties_are_dropped_and_counted(caplog):
    with caplog.at_level(logging.INFO, logger="fec.data.datasets.synthetic"):
        noisy = _dataset("test", noise=3.0, triplets=600)
    assert noisy.num_dropped > 30  # near-random votes tie often
    assert len(noisy.triplets) + noisy.num_dropped == 600 == len(noisy.types) + noisy.num_dropped
    assert f"{noisy.num_dropped} dropped" in caplog.text
    # The dropped ones are exactly those whose raw votes have no unique majority.
    rng = lambda k: noisy.random_stream(k)  # noqa: E731
    faces, _ = sample_triplets(rng(2), noisy.categories, noisy.identity_of, 600)
    _, votes = simulate_votes(rng(3), noisy.expression_vectors, faces, 3.0)
    assert (majority_vote(votes)[0] == 0).sum() == noisy.num_dropped


def test_ceiling_in_designed_range(test_split):
    ok = _true_pair_correct(test_split)
    assert 0.94 <= ok.mean() <= 0.975, ok.mean()
    per_type = [ok[test_split.types == t].mean() for t in range(3)]
    # One-class triplets are the fine-grained, hardest ones.
    assert per_type[0] < min(per_type[1:]) and per_type[0] > 0.85, per_type


def test_factory_reads_config():
    cfg = default_cfg.clone()
    cfg.merge_from_list(["INPUT.SIZE", 64, "DATASETS.SYNTHETIC.TEST_IDENTITIES", 5,
                         "DATASETS.SYNTHETIC.FACES_PER_IDENTITY", 6, "DATASETS.SYNTHETIC.TEST_TRIPLETS", 40])
    ds = DATASETS["SyntheticTripletDataset"](cfg, False, split="test")
    assert ds.num_faces == 30 == len(ds) and ds.name == "synthetic_fec_test"
    assert len(ds.triplets) + ds.num_dropped == 40
    item = ds[3]
    assert item["index"] == 3 and tuple(item["image"].shape) == (3, 64, 64)
    cfg.merge_from_list(["DATASETS.SYNTHETIC.RENDER_SIZE", 48])
    train = DATASETS["SyntheticTripletDataset"](cfg, True, split="train")
    assert train.num_faces == DEFAULTS.TRAIN_IDENTITIES * 6 and len(train) == len(train.triplets)
    assert tuple(train[0]["images"].shape) == (3, 3, 48, 48)


# ---------------------------------------------------------------------------- writer


TINY = ["--train-identities", "6", "--test-identities", "5", "--faces-per-identity", "4",
        "--train-triplets", "30", "--test-triplets", "24", "--size", "64", "--seed", "3"]


def test_writer_matches_the_dataset(tmp_path, capsys):
    tool = load_tool("make_synthetic_fec")
    assert tool.main(["--out", str(tmp_path)] + TINY) == 0
    summary = capsys.readouterr().out
    for split, identities, triplets in (("train", 6, 30), ("test", 5, 24)):
        ds = SyntheticTripletDataset(split, identities, 4, triplets, seed=3, render_size=64)
        assert f"{split}: {ds.num_faces} faces" in summary and f"{ds.num_dropped} dropped" in summary
        with open(tmp_path / f"faceexp-comparison-data-{split}-public.csv", newline="") as f:
            rows = list(csv.reader(f))
        assert len(rows) == len(ds.triplets)
        labels = []
        for m, row in enumerate(rows):
            assert len(row) == 28
            assert row[15] == ("ONE_CLASS_TRIPLET", "TWO_CLASS_TRIPLET", "THREE_CLASS_TRIPLET")[ds.types[m]]
            urls = [row[c] for c in (0, 5, 10)]
            boxes = [tuple(float(v) for v in row[c + 1:c + 5]) for c in (0, 5, 10)]
            faces = []
            for url, box in zip(urls, boxes):
                name = os.path.basename(url)
                assert url.startswith("file:///") and name.startswith(f"{split}_") and name.endswith(".jpg")
                faces.append(int(name[len(split) + 1:-4]))
                assert 0 <= box[0] < box[1] <= 1 and 0 <= box[2] < box[3] <= 1
                assert os.path.isfile(tmp_path / "photos" / name)
                crop = cv2.imread(str(tmp_path / "images" / f"{crop_id(url, box)}.jpg"))
                assert crop is not None and crop.shape == (64, 64, 3)
                # The crop is the rendered face: off by JPEG only, not by a shift.
                assert np.abs(crop[..., ::-1].astype(np.int32) - ds.load_face(faces[-1])).mean() < 8
            votes = [int(v) for v in row[17:28:2]]
            assert [row[c] for c in range(16, 28, 2)] == [str(a) for a in ds.annotators[m]]
            label = int(np.bincount(votes, minlength=4).argmax())
            labels.append(label)
            similar = {faces[k] for k in range(3) if k != label - 1}
            assert similar == set(ds.triplets[m, :2].tolist()) and faces[label - 1] == ds.triplets[m, 2]
            assert votes == [faces.index(ds.triplets[m][v - 1]) + 1 for v in ds.votes[m]]
        assert len(set(labels)) > 1  # images are listed in varying orders
        assert len(os.listdir(tmp_path / "photos")) == len(os.listdir(tmp_path / "images"))


def test_writer_base_url_and_no_crops(tmp_path):
    tool = load_tool("make_synthetic_fec")
    tool.main(["--out", str(tmp_path), "--base-url", "http://127.0.0.1:8000/", "--no-crops"] + TINY)
    assert not (tmp_path / "images").exists()
    with open(tmp_path / "faceexp-comparison-data-test-public.csv", newline="") as f:
        urls = [row[c] for row in csv.reader(f) for c in (0, 5, 10)]
    assert all(u.startswith("http://127.0.0.1:8000/photos/test_") for u in urls)
    assert {os.path.basename(u) for u in urls} <= set(os.listdir(tmp_path / "photos"))


def test_min_gap_keeps_only_clear_triplets_a_third_of_each_type():
    from fec.data.datasets.synthetic_annotators import pair_distances

    ds = SyntheticTripletDataset("test", 20, 8, 300, seed=1, min_gap=0.25, is_train=False)
    d = pair_distances(ds.expression_vectors, ds.triplets)
    gaps = np.sort(d, 1)
    assert (gaps[:, 1] - gaps[:, 0] >= 0.25 - 1e-6).all()
    counts = np.bincount(ds.types, minlength=3)
    assert len(ds.triplets) + ds.num_dropped == 300
    assert all(95 <= c <= 100 for c in counts), counts  # a third each, less the rare ties
    loose = SyntheticTripletDataset("test", 20, 8, 300, seed=1, min_gap=0.0, is_train=False)
    loose_gaps = np.sort(pair_distances(loose.expression_vectors, loose.triplets), 1)
    assert (loose_gaps[:, 1] - loose_gaps[:, 0] < 0.25).any()  # the filter removed something
