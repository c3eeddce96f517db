import hashlib
import logging
import re

import cv2
import numpy as np
import pytest
import torch
from helpers.fec_like import write_fec_like_csv
from skimage import data as skdata

from fec.config import paths_catalog
from fec.data import fec_csv
from fec.data.datasets import DATASETS
from fec.data.datasets.fec_triplets import FECTripletDataset
from fec.data.fec_csv import crop_id, format_fec_row, read_fec_csv

URLS = [f"http://farm{k}.staticflickr.com/{k}00{k}/1234{k}_abcdef{k}_b.jpg" for k in range(1, 10)]
# Face k: URLS[k] with this box; face 8 shares its URL with face 0 (two faces, one image).
BOXES = [("0.1", "0.5", "0.2", "0.6"), ("0.25", "0.75", "0.1", "0.9"), ("0.3333", "0.6667", "0.05", "0.55"),
         ("0.0", "1.0", "0.0", "1.0"), ("0.12", "0.34", "0.56", "0.78"), ("0.4", "0.6", "0.4", "0.6"),
         ("0.2", "0.3", "0.2", "0.3"), ("0.6", "0.9", "0.1", "0.4"), ("0.55", "0.95", "0.2", "0.6")]
FACE_URL = URLS[:8] + [URLS[0]]


def line(faces, type_name="ONE_CLASS_TRIPLET", votes=(1, 1, 1, 1, 1, 1), quote=True, box_of=None):
    """One row written by hand in the official layout."""
    fields = []
    for f in faces:
        url = FACE_URL[f]
        fields += [f'"{url}"' if quote else url, *(box_of or BOXES)[f]]
    fields.append(type_name)
    for k, v in enumerate(votes):
        fields += [f"a{k}7f3e9c{k}", str(v)]
    return ",".join(fields)


def write(path, lines, newline="\n"):
    with open(path, "w", newline="") as f:
        f.write("".join(text + newline for text in lines))
    return str(path)


def test_parses_boxes_types_votes_quoted_unquoted_crlf(tmp_path):
    path = tmp_path / "a.csv"
    with open(path, "w", newline="") as f:
        f.write(line([0, 1, 2], votes=(1, 2, 3, 1, 2, 3)) + "\r\n")
        f.write("\r\n")  # blank line: ignored, still counted in line numbers
        f.write(line([3, 4, 5], "TWO_CLASS_TRIPLET", (3, 3, 3, 3, 3, 2), quote=False) + "\r\n")
        f.write(line([6, 7, 8], "THREE_CLASS_TRIPLET", (2, 2, 2, 2, 1, 2)) + "   \n")
    t = read_fec_csv(path)
    assert len(t) == 3 and t.num_faces == 9 and t.skipped == {}
    assert t.faces_url == FACE_URL
    np.testing.assert_array_equal(t.faces_box, np.array(BOXES, dtype=np.float32))
    assert t.faces_box.dtype == np.float32
    np.testing.assert_array_equal(t.triplets, [[0, 1, 2], [3, 4, 5], [6, 7, 8]])
    np.testing.assert_array_equal(t.types, [0, 1, 2])
    np.testing.assert_array_equal(t.votes, [[1, 2, 3, 1, 2, 3], [3, 3, 3, 3, 3, 2], [2, 2, 2, 2, 1, 2]])
    np.testing.assert_array_equal(t.line, [1, 3, 4])
    assert [t.annotator_names[i] for i in t.annotators[0]] == [f"a{k}7f3e9c{k}" for k in range(6)]
    np.testing.assert_array_equal(t.annotators[0], t.annotators[2])


@pytest.mark.parametrize("votes, label, agreement", [
    ((1, 1, 1, 2, 3, 1), 1, 4),
    ((1, 1, 1, 2, 2, 2), 0, 3),
    ((1, 1, 2, 2, 3, 3), 0, 2),
    ((2, 2, 2, 1, 1, 3), 2, 3),
    ((3, 3, 3, 3, 3, 3), 3, 6),
    ((3, 1, 3, 2, 3, 1), 3, 3),
])
def test_majority_label_and_agreement(tmp_path, votes, label, agreement):
    t = read_fec_csv(write(tmp_path / "m.csv", [line([0, 1, 2], votes=votes)]))
    assert (int(t.label[0]), int(t.agreement[0])) == (label, agreement)


def test_similar_pair_order(tmp_path):
    rows = [line([0, 1, 2], votes=(1,) * 6), line([3, 4, 5], votes=(2,) * 6),
            line([6, 7, 8], votes=(3,) * 6), line([0, 3, 6], votes=(1, 1, 2, 2, 3, 3))]
    t = read_fec_csv(write(tmp_path / "o.csv", rows))
    np.testing.assert_array_equal(t.label, [1, 2, 3, 0])
    # (a, b) the similar pair, c the image named by the annotation.
    np.testing.assert_array_equal(t.similar_pair_order(), [[1, 2, 0], [3, 5, 4], [6, 7, 8], [-1, -1, -1]])


def test_faces_shared_between_rows_are_one_face(tmp_path):
    spelled = list(BOXES)
    spelled[1] = ("0.250", " 0.75", "0.10 ", "0.9000")  # same box written differently
    rows = [line([0, 1, 2]), line([2, 0, 8]), line([1, 3, 4], box_of=spelled, quote=False)]
    t = read_fec_csv(write(tmp_path / "d.csv", rows))
    # Face 8 shares face 0's URL with another box: a face of its own.
    assert t.num_faces == 6
    np.testing.assert_array_equal(t.triplets, [[0, 1, 2], [2, 0, 3], [1, 4, 5]])
    assert t.faces_url[3] == t.faces_url[0] and tuple(t.faces_box[3]) != tuple(t.faces_box[0])


def test_crop_ids_of_table_match_crop_id_of_csv_text(tmp_path):
    t = read_fec_csv(write(tmp_path / "c.csv", [line([0, 2, 4])]))
    # float32 storage must not move a box across a sixth decimal.
    assert t.face_crop_ids() == [crop_id(FACE_URL[f], [float(v) for v in BOXES[f]]) for f in (0, 2, 4)]


MALFORMED = {
    "wrong column count": lambda: line([0, 1, 2]).rsplit(",", 1)[0],
    "bad float": lambda: line([0, 1, 2]).replace(",0.75,", ",0.7x5,"),
    "box outside [0, 1]": lambda: line([0, 1, 2]).replace(",0.75,", ",1.25,"),
    "empty box": lambda: line([0, 1, 2]).replace(",0.25,0.75,", ",0.75,0.25,"),
    "unknown triplet type": lambda: line([0, 1, 2], "FOUR_CLASS_TRIPLET"),
    "bad annotation": lambda: line([0, 1, 2], votes=(1, 1, 4, 1, 1, 1)),
    "empty url": lambda: line([0, 1, 2]).replace(f'"{URLS[1]}"', '""'),
}


@pytest.mark.parametrize("reason", sorted(MALFORMED))
def test_malformed_row_strict_names_file_line_reason(tmp_path, reason):
    path = write(tmp_path / "bad.csv", [line([0, 1, 2]), line([3, 4, 5]), MALFORMED[reason](), line([6, 7, 8])])
    with pytest.raises(ValueError) as err:
        read_fec_csv(path)
    assert f"{path}, line 3: {reason}" in str(err.value)


@pytest.mark.parametrize("reason", sorted(MALFORMED))
def test_malformed_row_skipped_and_counted(tmp_path, reason):
    path = write(tmp_path / "bad.csv", [line([0, 1, 2]), MALFORMED[reason](), line([3, 4, 5]), MALFORMED[reason]()])
    t = read_fec_csv(path, strict=False)
    assert t.skipped == {reason: 2}
    np.testing.assert_array_equal(t.line, [1, 3])
    np.testing.assert_array_equal(t.triplets, [[0, 1, 2], [3, 4, 5]])


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 1000])
def test_skipping_matches_reading_the_clean_file(tmp_path, monkeypatch, chunk_rows):
    # Bad rows that bring new valid faces (8, 5) must not leave them behind; faces
    # seen in earlier chunks must keep their index across chunk boundaries.
    monkeypatch.setattr(fec_csv, "_CHUNK_ROWS", chunk_rows)
    good = [line([0, 1, 2], votes=(2, 2, 2, 1, 1, 3)), line([2, 3, 4], "TWO_CLASS_TRIPLET"),
            line([4, 0, 6], votes=(3,) * 6), line([6, 7, 1], "THREE_CLASS_TRIPLET", (1, 2, 1, 2, 1, 2))]
    bad = [line([8, 5, 3]).replace(",0.0,1.0,0.0,1.0,", ",1.0,0.0,0.0,1.0,"), line([5, 7, 8], votes=(0, 1, 1, 1, 1, 1))]
    mixed = write(tmp_path / "mixed.csv", [good[0], bad[0], good[1], good[2], bad[1], good[3]])
    clean = read_fec_csv(write(tmp_path / "clean.csv", good))
    t = read_fec_csv(mixed, strict=False)
    assert t.skipped == {"empty box": 1, "bad annotation": 1}
    assert t.faces_url == clean.faces_url and t.num_faces == 7
    for name in ("faces_box", "triplets", "types", "votes", "label", "agreement"):
        np.testing.assert_array_equal(getattr(t, name), getattr(clean, name), err_msg=name)
    np.testing.assert_array_equal(t.line, [1, 3, 4, 6])


def test_format_fec_row_round_trip(tmp_path):
    rows = [(URLS[:3], [[0.1, 0.5, 0.2, 0.6], [0.123456, 0.9, 0.0, 1.0], [0.25, 0.5, 0.3, 0.7]], 2,
             [(f"w{k}", 1 + k % 3) for k in range(6)]),
            (URLS[3:6], [[0.3, 0.4, 0.3, 0.4]] * 3, "TWO_CLASS_TRIPLET", [("w0", 2)] * 6)]
    text = [format_fec_row(*r) for r in rows]
    assert text[0].startswith(f'"{URLS[0]}",0.1,0.5,0.2,0.6,"{URLS[1]}",0.123456,0.9,0,1,')
    t = read_fec_csv(write(tmp_path / "f.csv", text))
    assert t.faces_url == URLS[:6]
    np.testing.assert_allclose(t.faces_box[:3], rows[0][1], atol=1e-7)
    np.testing.assert_array_equal(t.types, [2, 1])
    np.testing.assert_array_equal(t.votes[0], [1, 2, 3, 1, 2, 3])
    assert [t.annotator_names[i] for i in t.annotators[0]] == [f"w{k}" for k in range(6)]
    for args in [(URLS[:3], rows[0][1], 2, rows[0][3][:5]), (URLS[:3], rows[0][1], 2, [("w", 4)] * 6),
                 (URLS[:3], [[0.5, 0.5, 0.2, 0.6]] * 3, 0, rows[0][3]), (["", *URLS[:2]], rows[0][1], 0, rows[0][3])]:
        with pytest.raises(ValueError):
            format_fec_row(*args)


def test_crop_id_is_stable_hex_and_distinct():
    box = (0.1, 0.5, 0.2, 0.6)
    expected = hashlib.sha1(f"{URLS[0]}|0.100000,0.500000,0.200000,0.600000".encode()).hexdigest()[:20]
    assert crop_id(URLS[0], box) == expected == crop_id(f"  {URLS[0]} ", list(box))
    assert crop_id(URLS[0], (0.1, 0.5, 0.2, 0.61)) != expected
    assert crop_id(URLS[1], box) != expected
    for url in ["http://x.com/../../etc/passwd", "http://x.com/a.jpg?size=big&x=/../y", "..\\..\\a b.jpg"]:
        assert re.fullmatch(r"[0-9a-f]{20}", crop_id(url, box))


def test_benchmark_generator_writes_a_valid_fec_like_file(tmp_path):
    n_faces = write_fec_like_csv(str(tmp_path / "b.csv"), 600, seed=1)
    t = read_fec_csv(tmp_path / "b.csv")
    assert (len(t), t.num_faces, n_faces, t.skipped) == (600, 208, 208, {})
    assert len(np.unique(t.triplets)) == 208 and set(np.unique(t.types)) == {0, 1, 2}


# --------------------------------------------------------------------------- #
# FECTripletDataset
# --------------------------------------------------------------------------- #
def astronaut_faces(n, size=48):
    """n distinct RGB face crops of scikit-image's astronaut."""
    img = skdata.astronaut()
    crops = []
    for k in range(n):
        y, x = 20 + 12 * k, 140 + 9 * k
        face = img[y:y + 200, x:x + 200]
        crops.append(cv2.resize(face[:, ::-1] if k % 2 else face, (size, size), interpolation=cv2.INTER_AREA))
    return crops


@pytest.fixture
def fec_dir(tmp_path):
    """datasets/fec layout: 9 faces, crops of faces 5 and 7 missing, face 8's unreadable."""
    root = tmp_path / "datasets"
    images = root / "fec" / "images"
    images.mkdir(parents=True)
    faces = astronaut_faces(8)
    for f in (0, 1, 2, 3, 4, 6):
        cv2.imwrite(str(images / (crop_id(FACE_URL[f], [float(v) for v in BOXES[f]]) + ".jpg")),
                    cv2.cvtColor(faces[f], cv2.COLOR_RGB2BGR))
    (images / (crop_id(FACE_URL[8], [float(v) for v in BOXES[8]]) + ".jpg")).write_bytes(b"not a jpeg")
    (images / "notes.txt").write_text("ignored")
    rows = [
        line([0, 1, 2], votes=(1, 1, 1, 2, 3, 1)),                            # kept: (1, 2, 0)
        line([0, 3, 4], "TWO_CLASS_TRIPLET", (3, 3, 3, 3, 1, 2)),             # kept: (0, 3, 4)
        line([1, 2, 5], votes=(2,) * 6),                                      # crop 5 missing
        line([2, 3, 6], votes=(1, 1, 2, 2, 3, 3)),                            # tie: face 6 unused
        line([3, 4, 7], "TWO_CLASS_TRIPLET", (1, 1, 1, 2, 2, 2)),             # tie and missing
        line([0, 1, 2], votes=(1, 1, 9, 1, 1, 1)),                            # malformed
        line([4, 2, 1], "THREE_CLASS_TRIPLET", (2, 2, 3, 2, 1, 2)),           # kept: (4, 1, 2)
        line([8, 0, 1], "THREE_CLASS_TRIPLET", (1,) * 6),                     # kept, face 8 unreadable
    ]
    write(root / "fec" / "faceexp-comparison-data-test-public.csv", rows)
    return root, faces


def expected_crops(triplets):
    return [[crop_id(FACE_URL[f], [float(v) for v in BOXES[f]]) for f in t] for t in triplets]


def test_dataset_keeps_expected_triplets_and_logs_counts(fec_dir, caplog):
    root, _ = fec_dir
    factory, args = paths_catalog.get("fec_test", str(root))
    with caplog.at_level(logging.INFO, logger="fec.data.datasets.fec_triplets"):
        ds = DATASETS[factory](None, True, **args)
    assert isinstance(ds, FECTripletDataset)
    got = [[ds.crop_ids[f] for f in t] for t in ds.triplets]
    assert got == expected_crops([(1, 2, 0), (0, 3, 4), (4, 1, 2), (0, 1, 8)])
    np.testing.assert_array_equal(ds.types, [0, 1, 2, 2])
    np.testing.assert_array_equal(ds.csv_lines, [1, 2, 7, 8])
    assert ds.num_faces == 6 and ds.crop_ids == [c for c in expected_crops([(0, 1, 2, 3, 4, 8)])[0]]
    log = caplog.text
    assert "skipped 1 malformed rows (bad annotation: 1)" in log
    assert "7 triplets over 9 faces; dropped 2 without a unique majority vote" in log
    assert "dropped 1 triplets with a missing crop (7 of 9 faces have one)" in log
    assert ("kept 4 triplets over 6 faces (ONE_CLASS_TRIPLET: 1, TWO_CLASS_TRIPLET: 1, "
            "THREE_CLASS_TRIPLET: 2)") in log
    assert ds.type_counts() == dict(zip(fec_csv.TRIPLET_TYPES, [1, 1, 2]))


def test_dataset_items_train_and_eval(fec_dir):
    root, faces = fec_dir
    csv_path = str(root / "fec" / "faceexp-comparison-data-test-public.csv")
    image_dir = str(root / "fec" / "images")
    S = 32
    train = FECTripletDataset(csv_path, image_dir, is_train=True)
    train.transform = lambda img, gen: torch.from_numpy(cv2.resize(img, (S, S))).permute(2, 0, 1)
    assert len(train) == 4
    item = train[(1, 123)]
    assert item["images"].shape == (3, 3, S, S) and item["images"].dtype == torch.uint8
    assert (item["type"], item["index"]) == (1, 1)
    # Triplet 1 is faces (0, 3, 4): each image is that face, in RGB order (JPEG is lossy).
    for k, f in enumerate((0, 3, 4)):
        want = torch.from_numpy(cv2.resize(faces[f], (S, S))).permute(2, 0, 1).float()
        got = item["images"][k].float()
        assert (got - want).abs().mean() < 6 < (got - want.flip(0)).abs().mean()

    ev = FECTripletDataset(csv_path, image_dir, is_train=False)
    assert len(ev) == 6
    sample = ev[3]
    assert sample["index"] == 3 and sample["image"].shape == (3, 48, 48)
    assert ev.crop_ids[3] == expected_crops([(3,)])[0][0]
    with pytest.raises(OSError, match=re.escape(ev.face_path(5))):
        ev[5]


def test_dataset_missing_paths_say_how_to_link(tmp_path, fec_dir):
    root, _ = fec_dir
    csv_path = str(root / "fec" / "faceexp-comparison-data-test-public.csv")
    missing = str(tmp_path / "nowhere" / "images")
    with pytest.raises(FileNotFoundError, match=re.escape(missing) + ".*make link FEC=/path/to/prepared/fec"):
        FECTripletDataset(csv_path, missing, is_train=True)
    with pytest.raises(FileNotFoundError, match="nowhere.csv.*make link FEC="):
        FECTripletDataset(str(tmp_path / "nowhere.csv"), str(root / "fec" / "images"), is_train=True)
