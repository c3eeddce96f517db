"""AffectNet CSVs and image folders written in the real format, read through the catalog."""
import logging

import cv2
import numpy as np
import pytest
import torch
from skimage.data import astronaut

from fec.config import load_config
from fec.data import build_dataset, make_data_loader
from fec.data.datasets.affectnet import AffectNetDataset, read_affectnet_csv

CLASSES = ["neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt"]
# As in some copies of the real files: spaces after the commas of the header.
HEADER = ("subDirectory_filePath, face_x, face_y, face_width, face_height, facial_landmarks, expression, "
          "valence, arousal")
LANDMARKS = ";".join(f"{v:.2f}" for v in np.linspace(100, 300, 136))

# (image, x, y, w, h, expression, valence, arousal)
ROWS = [
    ("12/astro.png", 180, 30, 120, 140, 1, 0.5, 0.2),  # happy; non-square box
    ("12/astro.png", 150, 40, 150, 150, 8, 0.1, -0.3),  # none
    ("12/astro.png", 150, 40, 150, 150, 9, -0.4, 0.6),  # uncertain
    ("7/flip.png", 0, 0, 100, 100, 10, -2, -2),  # no face
    ("7/flip.png", 20, 30, 60, 60, 3, -2, -2),  # surprise, valence/arousal missing
    ("7/flip.png", 450, 300, 100, 100, 7, -0.6, 0.1),  # contempt; box past the right border
    ("12/astro.jpg", 180, 30, 120, 140, 6, -0.9, 0.95),  # anger, JPEG
]
CLS_ROWS, VA_ROWS, AFFECT_ROWS = [0, 4, 5, 6], [0, 1, 2, 5, 6], [0, 5, 6]


@pytest.fixture(scope="module")
def photos():
    a = astronaut()
    return {"12/astro.png": a, "7/flip.png": np.ascontiguousarray(a[::-1, ::-1]), "12/astro.jpg": a}


def write_affectnet(root, photos, rows=ROWS, csv_name="training.csv", header=HEADER, extra_lines=()):
    folder = root / "affectnet"
    for rel, rgb in photos.items():
        path = folder / "Manually_Annotated_Images" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        params = [cv2.IMWRITE_JPEG_QUALITY, 95] if rel.endswith(".jpg") else []
        cv2.imwrite(str(path), rgb[..., ::-1], params)
    lines = [header]
    for rel, x, y, w, h, e, v, a in rows:
        lines.append(f'{rel},{x},{y},{w},{h},"{LANDMARKS}",{e},{v},{a}')
    lines.extend(extra_lines)
    (folder / csv_name).write_text("\n".join(lines) + "\n")
    return folder / csv_name


def _cfg(root, *opts):
    # The box as annotated, as the AffectNet configs crop it.
    return load_config(None, ["DATASETS.ROOT", str(root), "INPUT.SIZE", "64", "DATALOADER.NUM_WORKERS", "0",
                              "INPUT.FACE_BOX_EXPANSION", "0.0", *opts])


@pytest.fixture()
def root(tmp_path, photos):
    write_affectnet(tmp_path, photos)
    write_affectnet(tmp_path, photos, ROWS[:1] + ROWS[5:6], "validation.csv")
    return tmp_path


def test_read_csv_keeps_every_row(root):
    table = read_affectnet_csv(str(root / "affectnet" / "training.csv"))
    assert table.paths == [r[0] for r in ROWS]
    assert table.expression.tolist() == [r[5] for r in ROWS]
    np.testing.assert_allclose(table.valence_arousal, [r[6:] for r in ROWS], atol=1e-7)
    np.testing.assert_array_equal(table.boxes, [r[1:5] for r in ROWS])
    assert table.lines.tolist() == list(range(2, 2 + len(ROWS)))


@pytest.mark.parametrize("name, task, rows, dropped", [
    ("affectnet_train", "classification", CLS_ROWS, {"none": 1, "uncertain": 1, "no-face": 1}),
    ("affectnet_va_train", "regression", VA_ROWS, {"no-face": 1, "missing valence/arousal": 1}),
    ("affectnet_affect_train", "affect", AFFECT_ROWS,
     {"none": 1, "uncertain": 1, "no-face": 1, "missing valence/arousal": 1}),
])
def test_tasks_keep_and_count_rows(root, caplog, name, task, rows, dropped):
    with caplog.at_level(logging.INFO, logger="fec.data.datasets.affectnet"):
        ds = build_dataset(_cfg(root), name, is_train=False)
    assert ds.task == task and ds.class_names == CLASSES
    assert len(ds) == len(rows) and ds.lines.tolist() == [r + 2 for r in rows]
    assert ds.dropped == dropped
    assert f"kept {len(rows)} of {len(ROWS)} rows" in caplog.text
    for reason, n in dropped.items():
        assert f"{reason} {n}" in caplog.text
    if task != "regression":
        assert ds.labels.dtype == torch.int64 and ds.labels.tolist() == [ROWS[r][5] for r in rows]
    else:
        with pytest.raises(ValueError):
            ds.labels
    if task != "classification":
        assert ds.valence_arousal.dtype == torch.float32 and ds.valence_arousal.shape == (len(rows), 2)
        np.testing.assert_allclose(ds.valence_arousal.numpy(), [ROWS[r][6:] for r in rows], atol=1e-7)
    item = ds[0]
    expected_keys = {"classification": {"label"}, "regression": {"valence_arousal"},
                     "affect": {"label", "valence_arousal"}}[task]
    assert set(item) == {"image", "index"} | expected_keys
    assert item["image"].shape == (3, 64, 64) and item["image"].dtype == torch.uint8
    if "label" in item:
        assert item["label"].dtype == torch.int64 and item["label"].shape == () and int(item["label"]) == 1
    if "valence_arousal" in item:
        assert item["valence_arousal"].dtype == torch.float32
        assert item["valence_arousal"].tolist() == pytest.approx([0.5, 0.2])
    train_item = build_dataset(_cfg(root), name, is_train=True)[(0, 99)]
    assert set(train_item) == set(item) and train_item["image"].shape == (3, 64, 64)


def test_crops_are_the_square_box_of_the_photo(root, photos):
    ds = build_dataset(_cfg(root), "affectnet_train", is_train=False)
    astro, flipped = photos["12/astro.png"], photos["7/flip.png"]
    # Box x 180, y 30, 120×140: squared to 140 around its centre (240, 100).
    np.testing.assert_array_equal(ds.load_image(0), astro[30:170, 170:310])
    # Box x 450, y 300, 100×100 in a 512-wide photo: clipped at the right border.
    crop = ds.load_image(2)
    assert crop.shape == (100, 62, 3)
    np.testing.assert_array_equal(crop, flipped[300:400, 450:512])
    # The JPEG copy: the same region up to compression.
    jpeg = ds.load_image(3).astype(np.float64)
    assert jpeg.shape == (140, 140, 3) and np.abs(jpeg - astro[30:170, 170:310]).mean() < 3
    # The model input is that crop resized.
    expected = cv2.resize(astro[30:170, 170:310], (64, 64), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(ds[0]["image"].permute(1, 2, 0).numpy(), expected)


def test_box_expansion_option(root, photos):
    ds = build_dataset(_cfg(root, "INPUT.FACE_BOX_EXPANSION", "0.5"), "affectnet_train", is_train=False)
    # 140 × 1.5 = 210 around (240, 100): x 135..345, y -5..205 → clipped at the top.
    np.testing.assert_array_equal(ds.load_image(0), photos["12/astro.png"][0:205, 135:345])


def test_validation_split_and_loader(root):
    cfg = _cfg(root, "DATASETS.TRAIN", "('affectnet_affect_train',)", "DATASETS.TEST", "('affectnet_affect_val',)",
               "SOLVER.IMS_PER_BATCH", "3", "SOLVER.MAX_ITER", "2", "TEST.IMS_PER_BATCH", "2")
    for b in make_data_loader(cfg, is_train=True):
        assert b["image"].shape == (3, 3, 64, 64) and b["label"].shape == (3,)
        assert b["valence_arousal"].shape == (3, 2) and b["valence_arousal"].dtype == torch.float32
    [(name, loader)] = make_data_loader(cfg, is_train=False)
    [batch] = list(loader)
    assert name == "affectnet_affect_val" and batch["label"].tolist() == [1, 7]
    np.testing.assert_allclose(batch["valence_arousal"].numpy(), [[0.5, 0.2], [-0.6, 0.1]], atol=1e-7)


def test_header_without_spaces_and_unused_columns_in_any_order(tmp_path, photos):
    header = "expression,arousal,valence,subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks"
    folder = tmp_path / "affectnet"
    write_affectnet(tmp_path, photos, rows=[])
    (folder / "training.csv").write_text(f"{header}\n3,0.25,-0.5,12/astro.png,180,30,120,140,\n")
    ds = AffectNetDataset(str(folder / "training.csv"), str(folder / "Manually_Annotated_Images"), "affect")
    assert ds.labels.tolist() == [3] and ds.valence_arousal.tolist() == [[-0.5, 0.25]]


def test_missing_images_are_named_with_their_lines(root, photos):
    folder = root / "affectnet"
    (folder / "Manually_Annotated_Images" / "7" / "flip.png").unlink()
    with pytest.raises(FileNotFoundError) as err:
        build_dataset(_cfg(root), "affectnet_train", is_train=False)
    msg = str(err.value)
    assert "training.csv: 2 of 4 listed images are missing" in msg
    assert "7/flip.png (line 6)" in msg and "7/flip.png (line 7)" in msg
    # A whole sub-folder gone.
    for p in (folder / "Manually_Annotated_Images" / "12").iterdir():
        p.unlink()
    (folder / "Manually_Annotated_Images" / "12").rmdir()
    with pytest.raises(FileNotFoundError, match=r"12/astro.png \(line 2\)"):
        build_dataset(_cfg(root), "affectnet_val", is_train=False)
    with pytest.raises(FileNotFoundError, match="make link AFFECTNET="):
        build_dataset(_cfg(root / "nowhere"), "affectnet_val", is_train=False)


def test_unreadable_image_is_named_when_loaded(root):
    bad = root / "affectnet" / "Manually_Annotated_Images" / "12" / "astro.jpg"
    bad.write_bytes(b"not an image")
    ds = build_dataset(_cfg(root), "affectnet_train", is_train=False)
    with pytest.raises(OSError, match=rf"cannot read AffectNet image .*{bad.name} \(line 8 of"):
        ds[3]


@pytest.mark.parametrize("line, message", [
    ("12/astro.png,1,2,30,30,,11,0.1,0.1", "expression '11' is not one of 0..10"),
    ("12/astro.png,1,2,30,30,,x,0.1,0.1", "expression 'x' is not one of 0..10"),
    ("12/astro.png,1,2,30,30,,1,1.5,0.1", r"valence 1.5 is outside \[-1, 1\]"),
    ("12/astro.png,1,2,30,30,,1,0.1,-1.01", r"arousal -1.01 is outside \[-1, 1\]"),
    ("12/astro.png,1,2,30,30,,1,0.1,nan", "arousal nan is outside"),
    ("12/astro.png,one,2,30,30,,1,0.1,0.1", "could not convert string to float"),
    ("12/astro.png,1,2,0,30,,1,0.1,0.1", "positive width and height"),
    ("../../etc/passwd,1,2,30,30,,1,0.1,0.1", "must be a relative path inside the image folder"),
    ("/etc/passwd,1,2,30,30,,1,0.1,0.1", "must be a relative path inside the image folder"),
    ("12/astro.png,1,2,30,30", "5 fields, expected 9"),
])
def test_malformed_rows_name_file_and_line(tmp_path, photos, line, message):
    csv_path = write_affectnet(tmp_path, photos, rows=ROWS[:2], extra_lines=[line])
    with pytest.raises(ValueError, match=message) as err:
        read_affectnet_csv(str(csv_path))
    assert f"{csv_path}, line 4" in str(err.value)


def test_bad_header_and_no_usable_rows(tmp_path, photos):
    csv_path = write_affectnet(tmp_path, photos, header="subDirectory_filePath,face_x,face_y,expression")
    with pytest.raises(ValueError, match="the header lacks face_width, face_height, facial_landmarks, valence"):
        read_affectnet_csv(str(csv_path))
    csv_path = write_affectnet(tmp_path, photos, rows=[ROWS[1], ROWS[3]])
    with pytest.raises(ValueError, match="no rows usable for classification.*none 1.*no-face 1"):
        AffectNetDataset(str(csv_path), str(csv_path.parent / "Manually_Annotated_Images"), "classification")
