"""FER2013 CSVs written in Kaggle's format (and its variants), read through the catalog."""
import logging
import os

import cv2
import numpy as np
import pytest
import torch
from skimage.data import lfw_subset

from fec.config import load_config
from fec.data import build_dataset, make_data_loader
from fec.data.datasets import DATASETS
from fec.data.datasets import fer2013 as fer
from fec.data.datasets.fer2013 import FER2013Dataset, cache_path, load_fer2013

CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
USAGES = ["Training"] * 6 + ["PublicTest"] * 3 + ["PrivateTest"] * 3


@pytest.fixture(scope="module")
def faces():
    """Twelve real faces (LFW), 48×48 uint8 grey like FER2013's."""
    lfw = lfw_subset()[:12]
    return np.stack([cv2.resize((f * 255).round().astype(np.uint8), (48, 48), interpolation=cv2.INTER_LINEAR)
                     for f in lfw])


def _row(fields, order):
    return ",".join(str(fields[k]) for k in order)


def write_fer(path, faces, labels=None, usages=None, header=("emotion", "pixels", "Usage"), extra_lines=()):
    """A FER2013 CSV; ``header`` names are written as given (spaces included) and map,
    stripped and lower-cased, to the columns."""
    keys = [h.strip().lower() for h in header]
    lines = [",".join(header)]
    for i, face in enumerate(faces):
        fields = {"pixels": " ".join(map(str, face.ravel().tolist()))}
        if labels is not None:
            fields["emotion"] = labels[i]
        if usages is not None:
            fields["usage"] = usages[i]
        lines.append(_row(fields, keys))
    lines.extend(extra_lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def _labels(n=12):
    return [i % 7 for i in range(n)]


def _cfg(root, *opts):
    return load_config(None, ["DATASETS.ROOT", str(root), "INPUT.SIZE", "64", "DATALOADER.NUM_WORKERS", "0", *opts])


@pytest.mark.parametrize("header", [
    ("emotion", "pixels", "Usage"),  # Kaggle's fer2013.csv
    ("emotion", " Usage", " pixels"),  # icml_face_data.csv: other order, spaces
    (" emotion ", "pixels ", "Usage "),
])
def test_catalog_splits_by_usage_with_counts_labels_and_pixels(tmp_path, faces, header):
    write_fer(tmp_path / "fer2013" / "fer2013.csv", faces, _labels(), USAGES, header)
    cfg = _cfg(tmp_path)
    expected = {"fer2013_train": range(0, 6), "fer2013_public_test": range(6, 9), "fer2013_private_test": range(9, 12)}
    for name, rows in expected.items():
        ds = build_dataset(cfg, name, is_train=False)
        assert ds.task == "classification" and ds.class_names == CLASSES
        assert len(ds) == len(rows)
        assert ds.labels.dtype == torch.int64 and ds.labels.tolist() == [_labels()[r] for r in rows]
        np.testing.assert_array_equal(ds.pixels, faces[list(rows)])
        assert ds.lines.tolist() == [r + 2 for r in rows]  # header is line 1
        img = ds.load_image(1)
        assert img.shape == (48, 48, 3) and img.dtype == np.uint8
        for c in range(3):
            np.testing.assert_array_equal(img[..., c], faces[rows[1]])


def test_items_in_eval_and_train_mode(tmp_path, faces):
    write_fer(tmp_path / "fer2013" / "fer2013.csv", faces, _labels(), USAGES)
    cfg = _cfg(tmp_path)
    for is_train, key in ((False, 4), (True, (4, 12345))):
        ds = build_dataset(cfg, "fer2013_train", is_train)
        item = ds[key]
        assert set(item) == {"image", "label", "index"}
        assert item["image"].shape == (3, 64, 64) and item["image"].dtype == torch.uint8
        assert item["label"].dtype == torch.int64 and item["label"].shape == () and int(item["label"]) == 4
        assert item["index"] == 4
        # grey replicated: the three channels are one image
        assert torch.equal(item["image"][0], item["image"][1]) and torch.equal(item["image"][0], item["image"][2])
    # eval mode is the face resized, nothing else
    expected = cv2.resize(faces[4], (64, 64), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(build_dataset(cfg, "fer2013_train", False)[4]["image"][0].numpy(), expected)


def test_data_loader_batches(tmp_path, faces):
    labels = [0] * 6 + [1] * 3 + [4, 5, 6]  # Training, PublicTest, PrivateTest
    write_fer(tmp_path / "fer2013" / "fer2013.csv", faces, labels, USAGES)
    cfg = _cfg(tmp_path, "DATASETS.TRAIN", "('fer2013_train', 'fer2013_public_test')",
               "DATASETS.TEST", "('fer2013_private_test',)", "SOLVER.IMS_PER_BATCH", "3", "SOLVER.MAX_ITER", "3",
               "TEST.IMS_PER_BATCH", "2")
    batches = list(make_data_loader(cfg, is_train=True))
    assert len(batches) == 3
    for b in batches:
        assert b["image"].shape == (3, 3, 64, 64) and b["image"].dtype == torch.uint8
        assert b["label"].shape == (3,) and b["label"].dtype == torch.int64
    # One epoch over Training + PublicTest, concatenated: each of their 9 rows once.
    assert sorted(torch.cat([b["label"] for b in batches]).tolist()) == labels[:9]
    [(name, loader)] = make_data_loader(cfg, is_train=False)
    got = [(int(i), int(lab)) for b in loader for i, lab in zip(b["index"], b["label"])]
    assert name == "fer2013_private_test" and got == [(0, 4), (1, 5), (2, 6)]


def test_unlabelled_test_csv_predicts_but_cannot_train_or_evaluate(tmp_path, faces):
    path = write_fer(tmp_path / "test.csv", faces[:5], header=("pixels",))
    ds = FER2013Dataset(str(path), require_labels=False)
    assert len(ds) == 5 and not ds.has_labels
    item = ds[2]
    assert set(item) == {"image", "index"}
    np.testing.assert_array_equal(item["image"][0].numpy(), faces[2])
    with pytest.raises(ValueError, match="test.csv has no expression labels"):
        ds.labels
    cfg = _cfg(tmp_path)
    for is_train in (True, False):
        with pytest.raises(ValueError, match=r"test\.csv has no 'emotion' column"):
            DATASETS["FER2013Dataset"](cfg, is_train, folder=str(path), usage=None)


def test_usage_not_in_file_lists_what_is(tmp_path, faces):
    path = write_fer(tmp_path / "fer2013.csv", faces[:4], _labels(4), ["Training"] * 4)
    with pytest.raises(ValueError, match="no rows of Usage.*PrivateTest.*it has: Training"):
        FER2013Dataset(str(path), "PrivateTest")
    no_usage = write_fer(tmp_path / "nousage.csv", faces[:4], _labels(4), header=("emotion", "pixels"))
    with pytest.raises(ValueError, match="nousage.csv has no 'Usage' column"):
        FER2013Dataset(str(no_usage), "Training")
    assert len(FER2013Dataset(str(no_usage), None)) == 4


@pytest.mark.parametrize("bad_line, message", [
    ("3,{px},Training", None),  # fine: control row
    ("7,{px},Training", "emotion '7' is not one of 0..6"),
    ("x,{px},Training", "emotion 'x' is not one of 0..6"),
    ("3,{short},Training", "2303 pixel values, expected 2304"),
    ("3,{float},Training", "pixels must be space-separated integers"),
    ("3,{big},Training", r"pixel values must be within 0..255, got 0..256"),
    ("3,{px}", "2 fields, expected 3"),
    ("3,{px},", "empty Usage"),
])
def test_malformed_rows_name_file_and_line(tmp_path, faces, bad_line, message):
    px = " ".join(["0"] * 2304)
    line = bad_line.format(px=px, short=" ".join(["0"] * 2303), float="1.5 " + " ".join(["0"] * 2303),
                           big="256 " + " ".join(["0"] * 2303))
    path = write_fer(tmp_path / "fer2013.csv", faces[:3], _labels(3), ["Training"] * 3, extra_lines=["", line])
    if message is None:
        assert len(FER2013Dataset(str(path), "Training")) == 4  # the blank line is skipped
        return
    with pytest.raises(ValueError, match=message) as err:
        FER2013Dataset(str(path), "Training")
    assert f"{path}, line 6" in str(err.value)
    assert not os.path.exists(cache_path(str(path)))  # nothing cached from a broken file


def test_header_without_pixels_and_empty_file(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text("emotion,Usage\n0,Training\n")
    with pytest.raises(ValueError, match="a.csv, line 1: no 'pixels' column"):
        load_fer2013(str(p))
    p.write_text("")
    with pytest.raises(ValueError, match="a.csv is empty"):
        load_fer2013(str(p))
    with pytest.raises(FileNotFoundError, match="make link FER2013="):
        load_fer2013(str(tmp_path / "missing.csv"))


def _no_parsing(*args, **kwargs):
    raise AssertionError("parsed the CSV although the cache is current")


def test_cache_is_used_then_invalidated_by_a_changed_csv(tmp_path, faces, monkeypatch, caplog):
    path = write_fer(tmp_path / "fer2013.csv", faces, _labels(), USAGES)
    first = FER2013Dataset(str(path), "Training")
    cache = cache_path(str(path))
    assert cache == str(path) + ".cache.npz" and os.path.exists(cache)

    with monkeypatch.context() as m:
        m.setattr(fer, "parse_fer2013_csv", _no_parsing)
        again = FER2013Dataset(str(path), "Training")
        np.testing.assert_array_equal(again.pixels, first.pixels)
        assert torch.equal(again.labels, first.labels) and again.lines.tolist() == first.lines.tolist()
        assert len(FER2013Dataset(str(path), ["PublicTest", "PrivateTest"])) == 6  # usages cached too

    # Same size, other content, newer mtime: the cache is stale.
    st = os.stat(path)
    changed = _labels()
    changed[0] = 6
    write_fer(path, faces, changed, USAGES)
    assert os.path.getsize(path) == st.st_size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    with caplog.at_level(logging.INFO, logger="fec.data.datasets.fer2013"):
        ds = FER2013Dataset(str(path), "Training")
    assert "is stale" in caplog.text
    assert int(ds.labels[0]) == 6

    # Other size, mtime put back to the cached one: stale as well.
    st = os.stat(path)
    write_fer(path, faces[:8], _labels(8), USAGES[:8])
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert len(FER2013Dataset(str(path), "PublicTest")) == 2


def test_corrupt_cache_is_rebuilt(tmp_path, faces, caplog):
    path = write_fer(tmp_path / "fer2013.csv", faces, _labels(), USAGES)
    FER2013Dataset(str(path), "Training")
    cache = cache_path(str(path))
    with open(cache, "r+b") as f:
        f.truncate(100)
    with caplog.at_level(logging.WARNING, logger="fec.data.datasets.fer2013"):
        ds = FER2013Dataset(str(path), "Training")
    assert "cannot read the cache" in caplog.text
    np.testing.assert_array_equal(ds.pixels, faces[:6])
    assert os.path.getsize(cache) > 6 * 2304  # written again, whole


def test_cache_dir_option_and_unwritable_cache(tmp_path, faces, caplog):
    write_fer(tmp_path / "fer2013" / "fer2013.csv", faces, _labels(), USAGES)
    cache_dir = tmp_path / "cache"
    cfg = _cfg(tmp_path, "DATASETS.FER2013.CACHE_DIR", str(cache_dir))
    build_dataset(cfg, "fer2013_train", False)
    [name] = os.listdir(cache_dir)
    assert name.startswith("fer2013.csv.") and name.endswith(".npz")
    assert not os.path.exists(tmp_path / "fer2013" / "fer2013.csv.cache.npz")

    # A cache folder that cannot exist (under a file): warn, and read the CSV anyway.
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    cfg = _cfg(tmp_path, "DATASETS.FER2013.CACHE_DIR", str(blocker / "cache"))
    with caplog.at_level(logging.WARNING, logger="fec.data.datasets.fer2013"):
        ds = build_dataset(cfg, "fer2013_public_test", False)
    assert len(ds) == 3 and "cannot write the cache" in caplog.text


# --- the other distributions: Kaggle's competition folder, the image-folder release ---


def test_competition_icml_face_data_csv_gives_every_split(tmp_path, faces):
    write_fer(tmp_path / "fer2013" / "icml_face_data.csv", faces, _labels(), USAGES, ("emotion", " Usage", " pixels"))
    cfg = _cfg(tmp_path)
    for name, rows in (("fer2013_train", range(0, 6)), ("fer2013_public_test", range(6, 9)),
                       ("fer2013_private_test", range(9, 12)), ("fer2013_test", range(6, 12))):
        ds = build_dataset(cfg, name, False)
        assert ds.labels.tolist() == [_labels()[r] for r in rows]
        np.testing.assert_array_equal(ds.pixels, faces[list(rows)])


def test_competition_train_csv_trains_and_its_test_csv_has_no_labels(tmp_path, faces):
    write_fer(tmp_path / "fer2013" / "train.csv", faces[:8], _labels(8), header=("emotion", "pixels"))
    write_fer(tmp_path / "fer2013" / "test.csv", faces[8:], header=("pixels",))
    cfg = _cfg(tmp_path)
    ds = build_dataset(cfg, "fer2013_train", False)
    assert len(ds) == 8 and ds.labels.tolist() == _labels(8)
    np.testing.assert_array_equal(ds.pixels, faces[:8])
    for name in ("fer2013_public_test", "fer2013_test"):
        with pytest.raises(ValueError, match="holds Kaggle's train.csv .* no labelled PublicTest"):
            build_dataset(cfg, name, False)
    assert len(FER2013Dataset(str(tmp_path / "fer2013" / "test.csv"), require_labels=False)) == 4


def _write_folders(root, faces):
    """train/ gets faces 0-7, test/ faces 8-11; face i in the folder of FER2013 class i % 7."""
    files = []
    for i, face in enumerate(faces):
        sub = "train" if i < 8 else "test"
        path = root / sub / CLASSES[i % 7] / f"{'Training' if i < 8 else 'PublicTest'}_{i:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(path), face)
        files.append(path)
    return files



def test_image_folder_release_maps_class_folders_to_fer2013_labels(tmp_path, faces):
    files = _write_folders(tmp_path / "fer2013", faces)
    cfg = _cfg(tmp_path)
    train = build_dataset(cfg, "fer2013_train", False)
    assert train.class_names == CLASSES and len(train) == 8
    by_file = {f: k for k, f in enumerate(train.files)}
    for i in range(8):
        k = by_file[str(files[i])]
        assert int(train.labels[k]) == i % 7  # the folder name, not its alphabetical place
        np.testing.assert_array_equal(train.pixels[k], cv2.imread(str(files[i]), cv2.IMREAD_GRAYSCALE))
    test = build_dataset(cfg, "fer2013_test", False)
    assert sorted(test.labels.tolist()) == sorted(i % 7 for i in range(8, 12))
    with pytest.raises(ValueError, match=r"test/ \(PublicTest and PrivateTest together\).*fer2013_test"):
        build_dataset(cfg, "fer2013_public_test", False)
    (tmp_path / "fer2013" / "train" / "joy").mkdir()
    with pytest.raises(ValueError, match="class folders must be named angry, disgust, .*; found .*joy"):
        build_dataset(cfg, "fer2013_train", False)


def test_a_folder_without_fer2013_lists_what_was_looked_for(tmp_path):
    (tmp_path / "fer2013").mkdir()
    (tmp_path / "fer2013" / "README.txt").write_text("")
    with pytest.raises(FileNotFoundError) as err:
        build_dataset(_cfg(tmp_path), "fer2013_train", False)
    for looked_for in ("fer2013.csv", "icml_face_data.csv", "train.csv", "train/<class>/*.jpg", "make link FER2013="):
        assert looked_for in str(err.value)
    with pytest.raises(FileNotFoundError, match="is not a folder.*fer2013.csv"):
        build_dataset(_cfg(tmp_path / "elsewhere"), "fer2013_train", False)
