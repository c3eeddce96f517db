"""RAF-DB basic, read from a list_patition_label.txt and aligned faces written here."""
import cv2
import numpy as np
import pytest
import torch
from skimage.data import astronaut

from fec.config import load_config
from fec.data import build_dataset

RAFDB = ["surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral"]
LINES = ["train_00001.jpg 5", "train_00002.jpg 1", "test_0001.jpg 7", "train_00003.jpg 4", "test_0002.jpg 2"]


@pytest.fixture
def rafdb(tmp_path):
    """datasets/rafdb with five aligned 100×100 faces (crops of a real photo)."""
    root = tmp_path / "rafdb"
    (root / "EmoLabel").mkdir(parents=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(LINES) + "\n")
    (root / "Image" / "aligned").mkdir(parents=True)
    photo = astronaut()
    faces = {}
    for k, line in enumerate(LINES):
        name = line.split()[0]
        face = np.ascontiguousarray(photo[20 * k:20 * k + 100, 150:250])
        path = root / "Image" / "aligned" / name.replace(".jpg", "_aligned.jpg")
        assert cv2.imwrite(str(path), face[..., ::-1])
        faces[name] = cv2.imread(str(path))[..., ::-1]  # as decoded: JPEG loss included
    return tmp_path, faces


def _cfg(root, *opts):
    return load_config(None, ["DATASETS.ROOT", str(root), "INPUT.SIZE", "100", *opts])


def test_splits_labels_and_aligned_faces(rafdb):
    root, faces = rafdb
    train = build_dataset(_cfg(root), "rafdb_train", False)
    assert train.class_names == RAFDB and len(train) == 3
    assert train.labels.tolist() == [4, 0, 3]  # labels 1-7 → classes 0-6: sadness, surprise, happiness
    assert [RAFDB[k] for k in train.labels] == ["sadness", "surprise", "happiness"]
    item = train[0]
    assert item["image"].shape == (3, 100, 100) and int(item["label"]) == 4
    np.testing.assert_array_equal(item["image"].permute(1, 2, 0).numpy(), faces["train_00001.jpg"])  # RGB
    test = build_dataset(_cfg(root), "rafdb_test", False)
    assert test.labels.tolist() == [6, 1] and test.files[0].endswith("Image/aligned/test_0001_aligned.jpg")


def test_missing_faces_and_bad_labels_are_named(rafdb):
    root, _ = rafdb
    (root / "rafdb" / "Image" / "aligned" / "train_00002_aligned.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="1 of the 3 train faces .* missing, e.g. .*train_00002_aligned.jpg"):
        build_dataset(_cfg(root), "rafdb_train", False)
    label_file = root / "rafdb" / "EmoLabel" / "list_patition_label.txt"
    label_file.write_text("train_00001.jpg 8\n")
    with pytest.raises(ValueError, match=r"line 1: label '8' is not one of 1..7"):
        build_dataset(_cfg(root), "rafdb_train", False)
    label_file.unlink()
    with pytest.raises(FileNotFoundError, match="make link RAFDB="):
        build_dataset(_cfg(root), "rafdb_test", False)


def test_classifier_with_other_class_names_is_refused(rafdb):
    root, _ = rafdb
    # FER2013's seven names (the default) in a classifier: the dataset's are RAF-DB's
    cfg = _cfg(root, "MODEL.META_ARCHITECTURE", "Classifier")
    with pytest.raises(ValueError, match=r"rafdb_train has the classes \['surprise', .*CLASS_NAMES is \['angry'"):
        build_dataset(cfg, "rafdb_train", False)
    cfg = _cfg(root, "MODEL.META_ARCHITECTURE", "Classifier", "MODEL.CLASSIFIER.CLASS_NAMES", str(RAFDB))
    assert torch.equal(build_dataset(cfg, "rafdb_train", False).labels, torch.tensor([4, 0, 3]))
