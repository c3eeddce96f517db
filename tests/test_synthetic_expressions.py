"""Synthetic faces for classification and valence/arousal: the label mapping, the
on-the-fly datasets, and make_synthetic_expressions.py's FER2013 / AffectNet files read
back through the real-data catalog entries; and `make link`."""
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from fec.config import load_config
from fec.data import build_dataset
from fec.data.datasets.synthetic_faces import CATEGORY_NAMES, PROTOTYPES
from fec.data.datasets.synthetic_expression import (
    AFFECTNET_PROTOTYPES,
    CIRCUMPLEX,
    FER_PROTOTYPES,
    SyntheticExpressionDataset,
    expression_class,
    valence_arousal,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FER = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
AFFECTNET = ["neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt"]


def test_prototypes_follow_the_class_lists():
    for k, c in enumerate(FER):
        np.testing.assert_array_equal(FER_PROTOTYPES[k], PROTOTYPES[CATEGORY_NAMES.index(c)])
    for k, c in enumerate(AFFECTNET[:-1]):
        np.testing.assert_array_equal(AFFECTNET_PROTOTYPES[k], PROTOTYPES[CATEGORY_NAMES.index(
            "angry" if c == "anger" else c)])
    # Each prototype is its own class, and sits near its circumplex place.
    assert expression_class(FER_PROTOTYPES, "fer").tolist() == list(range(7))
    assert expression_class(AFFECTNET_PROTOTYPES, "affectnet").tolist() == list(range(8))
    va = valence_arousal(AFFECTNET_PROTOTYPES)
    assert np.abs(va - CIRCUMPLEX).max() < 0.12
    assert va[AFFECTNET.index("happy"), 0] > 0.5 and va[AFFECTNET.index("sad")].max() < -0.3
    assert va[AFFECTNET.index("surprise"), 1] > 0.6 and abs(va[0]).max() < 0.05  # neutral at the centre


def test_valence_arousal_is_bounded_and_smooth():
    rng = np.random.default_rng(0)
    e = rng.uniform(-1.5, 1.5, (2000, 6))
    va = valence_arousal(e)
    assert va.dtype == np.float32 and va.shape == (2000, 2) and np.abs(va).max() <= 1.0
    # A small change of expression changes valence/arousal a little.
    step = np.abs(valence_arousal(e + 1e-3) - va).max()
    assert 0 < step < 0.02


def test_dataset_is_deterministic_and_labels_follow_expressions():
    a = SyntheticExpressionDataset("train", "affectnet", "affect", 40, 8, seed=1, render_size=64)
    b = SyntheticExpressionDataset("train", "affectnet", "affect", 40, 8, seed=1, render_size=64)
    assert torch.equal(a.labels, b.labels) and np.array_equal(a.load_image(7), b.load_image(7))
    assert a.labels.tolist() == expression_class(a.expression_vectors, "affectnet").tolist()
    np.testing.assert_array_equal(a.valence_arousal.numpy(), valence_arousal(a.expression_vectors))
    assert len(a) == 40 and len(a.identities) == 5 and a.identity_of.tolist() == sorted(a.identity_of.tolist())
    test = SyntheticExpressionDataset("test", "affectnet", "affect", 40, 8, seed=1, render_size=64)
    assert not np.array_equal(test.identities, a.identities)
    # Enough faces draw every class.
    many = SyntheticExpressionDataset("train", "fer", "classification", 400, 8)
    assert set(many.labels.tolist()) == set(range(7))
    img = many.load_image(0)
    assert img.shape == (48, 48, 3) and (img[..., 0] == img[..., 2]).all() and img.std() > 10


@pytest.mark.parametrize("name, task, size, keys", [
    ("synthetic_fer_train", "classification", 7, {"label"}),
    ("synthetic_affectnet_test", "classification", 8, {"label"}),
    ("synthetic_affectnet_va_train", "regression", 8, {"valence_arousal"}),
    ("synthetic_affect_test", "affect", 8, {"label", "valence_arousal"}),
])
def test_catalog_entries(name, task, size, keys):
    cfg = load_config(None, ["INPUT.SIZE", "64", "DATASETS.SYNTHETIC_AFFECT.TRAIN_IMAGES", "30",
                             "DATASETS.SYNTHETIC_AFFECT.TEST_IMAGES", "20"])
    ds = build_dataset(cfg, name, is_train=name.endswith("train"))
    assert ds.task == task and len(ds.class_names) == size and len(ds) == (30 if "train" in name else 20)
    item = ds[(3, 7)] if ds.is_train else ds[3]
    assert set(item) == {"image", "index"} | keys
    assert item["image"].shape == (3, 64, 64) and item["image"].dtype == torch.uint8


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("expressions")
    proc = subprocess.run([sys.executable, "tools/make_synthetic_expressions.py", "--out", str(out),
                           "--train-images", "24", "--test-images", "10", "--images-per-identity", "4",
                           "--seed", "5", "--affectnet-size", "64"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def _cfg(root):
    # AffectNet boxes as annotated (the AffectNet configs' INPUT.FACE_BOX_EXPANSION).
    return load_config(None, ["DATASETS.ROOT", str(root), "INPUT.SIZE", "64", "DATASETS.SYNTHETIC_AFFECT.SEED", "5",
                              "INPUT.FACE_BOX_EXPANSION", "0.0",
                              "DATASETS.SYNTHETIC_AFFECT.TRAIN_IMAGES", "24",
                              "DATASETS.SYNTHETIC_AFFECT.TEST_IMAGES", "10",
                              "DATASETS.SYNTHETIC_AFFECT.IMAGES_PER_IDENTITY", "4",
                              "DATASETS.SYNTHETIC_AFFECT.RENDER_SIZE", "64",
                              # the writer pastes each AffectNet face exactly at its row's box
                              "INPUT.FACE_BOX_EXPANSION", "0.0"])


def test_written_fer2013_equals_the_on_the_fly_faces(written):
    cfg = _cfg(written)
    for real, synthetic in (("fer2013_train", "synthetic_fer_train"), ("fer2013_public_test", "synthetic_fer_test")):
        a, b = build_dataset(cfg, real, False), build_dataset(cfg, synthetic, False)
        assert len(a) == len(b) and torch.equal(a.labels, b.labels)
        for i in range(len(a)):
            np.testing.assert_array_equal(a.load_image(i), b.load_image(i))
    private = build_dataset(cfg, "fer2013_private_test", False)
    assert len(private) == 10 and not np.array_equal(private.pixels, build_dataset(cfg, "fer2013_public_test",
                                                                                     False).pixels)


def test_written_affectnet_crops_equal_the_on_the_fly_faces(written):
    cfg = _cfg(written)
    for real, synthetic in (("affectnet_affect_train", "synthetic_affect_train"),
                            ("affectnet_affect_val", "synthetic_affect_test")):
        a, b = build_dataset(cfg, real, False), build_dataset(cfg, synthetic, False)
        assert len(a) == len(b) and torch.equal(a.labels, b.labels)
        assert (a.valence_arousal - b.valence_arousal).abs().max() < 1e-6
        assert sum(a.dropped.values()) == 0
        for i in range(len(a)):
            crop, face = a.load_image(i), b.load_image(i)
            assert crop.shape == face.shape == (64, 64, 3)
            assert np.abs(crop.astype(np.int32) - face).mean() < 6  # JPEG loss only
        # and the face really is inside a larger photo
        photo_h, photo_w = cv2.imread(a.image_path(0)).shape[:2]
        assert photo_h > 64 and photo_w > 64
    va = build_dataset(cfg, "affectnet_va_val", False)
    assert va.task == "regression" and len(va) == 10


def _make_link(tmp_path, *args):
    return subprocess.run(["make", "--no-print-directory", "-f", os.path.join(ROOT, "Makefile"), "-C",
                           str(tmp_path), "link", *args], capture_output=True, text=True, timeout=60)


def test_make_link_alone_or_together(tmp_path):
    for name in ("fec", "fer", "an"):
        (tmp_path / "src" / name).mkdir(parents=True)
    (tmp_path / "src" / "fer" / "fer2013.csv").write_text("emotion,pixels,Usage\n")
    proc = _make_link(tmp_path, f"FER2013={tmp_path / 'src' / 'fer'}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert os.readlink(tmp_path / "datasets" / "fer2013") == str(tmp_path / "src" / "fer")
    assert not os.path.lexists(tmp_path / "datasets" / "fec")
    proc = _make_link(tmp_path, "FEC=src/fec", "AFFECTNET=src/an")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert os.readlink(tmp_path / "datasets" / "fec") == str(tmp_path / "src" / "fec")
    assert os.readlink(tmp_path / "datasets" / "affectnet") == str(tmp_path / "src" / "an")
    # A bad folder: an error, and no link made or changed.
    proc = _make_link(tmp_path, "FER2013=src/fer", "AFFECTNET=src/nope")
    assert proc.returncode != 0 and "src/nope is not a folder" in proc.stdout + proc.stderr
    assert os.readlink(tmp_path / "datasets" / "fer2013") == str(tmp_path / "src" / "fer")
    proc = _make_link(tmp_path)
    assert proc.returncode != 0 and "usage: make link" in proc.stdout


def _root(written, **links):
    """A DATASETS.ROOT whose fer2013/, ferplus/, rafdb/ point at written folders."""
    root = written / ("root_" + "_".join(links.values()))
    root.mkdir(exist_ok=True)
    for name, folder in links.items():
        if not (root / name).exists():
            (root / name).symlink_to(written / folder)
    return root


def test_written_fer2013_distributions_hold_the_same_faces(written):
    base = build_dataset(_cfg(_root(written, fer2013="fer2013")), "fer2013_train", False)
    icml = build_dataset(_cfg(_root(written, fer2013="fer2013_icml")), "fer2013_train", False)
    kaggle = build_dataset(_cfg(_root(written, fer2013="fer2013_kaggle")), "fer2013_train", False)
    for other in (icml, kaggle):
        np.testing.assert_array_equal(other.pixels, base.pixels)
        assert torch.equal(other.labels, base.labels)
    assert (written / "fer2013_kaggle" / "test.csv").read_text().splitlines()[0] == "pixels"
    assert (written / "fer2013_icml" / "icml_face_data.csv").read_text().splitlines()[0] == "emotion, Usage, pixels"
    folders = build_dataset(_cfg(_root(written, fer2013="fer2013_folders")), "fer2013_train", False)
    assert sorted(folders.labels.tolist()) == sorted(base.labels.tolist())
    for k, path in enumerate(folders.files):  # Training_<i>.jpg in the folder of its class
        i = int(os.path.basename(path)[len("Training_"):-len(".jpg")])
        assert int(folders.labels[k]) == int(base.labels[i])
        assert np.abs(folders.pixels[k].astype(np.int32) - base.pixels[i]).mean() < 3  # JPEG loss only
    test = build_dataset(_cfg(_root(written, fer2013="fer2013_folders")), "fer2013_test", False)
    assert len(test) == 20


def test_written_ferplus_and_rafdb_read_back(written):
    root = _root(written, fer2013="fer2013", ferplus="ferplus", rafdb="rafdb")
    lines = (written / "ferplus" / "fer2013new.csv").read_text().splitlines()
    assert lines[0] == "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"
    assert len(lines) == 1 + 24 + 10 + 10
    assert all(sum(map(int, line.split(",")[2:])) == 10 for line in lines[1:])  # ten annotators each
    ferplus = build_dataset(_cfg(root), "ferplus_train", False)
    assert ferplus.class_names[0] == "neutral" and len(ferplus) + sum(ferplus.dropped.values()) == 24
    rafdb = build_dataset(_cfg(root), "rafdb_train", False)
    synthetic = SyntheticExpressionDataset("train", "rafdb", "classification", 24, 4, seed=5, render_size=100)
    assert torch.equal(rafdb.labels, synthetic.labels) and rafdb.load_image(0).shape == (100, 100, 3)
