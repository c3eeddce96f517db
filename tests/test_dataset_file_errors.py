"""A dataset file whose contents break its format (one bad line among good ones, each file
written as downloaded) stops with a DatasetFormatError: a UserError, so the CLIs print one
``error:`` line, and still a ValueError for code that catches that. Its message names the
file, the line as an editor numbers it, and the fix."""
import os
import subprocess
import sys

import numpy as np
import pytest

from fec.data.datasets.affectnet import read_affectnet_csv
from fec.data.datasets.fer2013 import parse_fer2013_csv
from fec.data.datasets.ferplus import parse_ferplus_csv
from fec.data.datasets.rafdb import parse_label_file
from fec.data.fec_csv import format_fec_row
from fec.data.fec_index import load_fec_table
from fec.utils.errors import DatasetFormatError, UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = "fix or delete that line"
PIXELS = " ".join(str(v) for v in np.random.default_rng(0).integers(0, 256, 48 * 48))


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _raises(read, path, line, *words):
    """``read(path)`` fails naming ``path``, ``line`` and ``words``; the message is returned."""
    with pytest.raises(DatasetFormatError) as err:
        read(path)
    assert isinstance(err.value, UserError) and isinstance(err.value, ValueError)
    message = str(err.value)
    assert f"{path}, line {line}:" in message, message
    for word in words:
        assert word in message, (word, message)
    return message


@pytest.mark.parametrize("bad, words", [
    ("3,{px}", ["2 fields, expected 3"]),
    ("9,{px},Training", ["emotion '9' is not one of 0..6"]),
    ("happy,{px},Training", ["emotion 'happy' is not one of 0..6"]),
    ("3,{short},Training", ["2303 pixel values, expected 2304"]),
])
def test_fer2013_csv(tmp_path, bad, words):
    good = [f"{k},{PIXELS},Training" for k in range(3)]
    bad = bad.format(px=PIXELS, short=PIXELS.rsplit(" ", 1)[0])
    path = _write(tmp_path / "fer2013.csv", ["emotion,pixels,Usage", *good, "", bad, good[0]])
    _raises(parse_fer2013_csv, path, 6, *words, FIX)


def test_fer2013_icml_form_header(tmp_path):
    path = _write(tmp_path / "icml_face_data.csv", ["emotion, Usage, pixel", f"0,Training,{PIXELS}"])
    _raises(parse_fer2013_csv, path, 1, "no 'pixels' column", "emotion,pixels,Usage")


FERPLUS_HEADER = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"


@pytest.mark.parametrize("bad, words", [
    ("Training,fer0000003.png,10,0,0,0,0,0,0,0,0", ["11 fields, expected 12"]),
    ("Training,fer0000003.png,ten,0,0,0,0,0,0,0,0,0", ["votes must be whole numbers"]),
    ("Training,fer0000003.png,10,-1,0,0,0,0,0,0,0,0", ["negative vote count"]),
])
def test_ferplus_csv(tmp_path, bad, words):
    good = [f"Training,fer{k:07d}.png,10,0,0,0,0,0,0,0,0,0" for k in range(3)]
    path = _write(tmp_path / "fer2013new.csv", [FERPLUS_HEADER, *good, bad])
    _raises(parse_ferplus_csv, path, 5, *words, FIX, "download fer2013new.csv again")


def test_ferplus_csv_lines_skip_blank_lines(tmp_path):
    good = [f"Training,fer{k:07d}.png,10,0,0,0,0,0,0,0,0,0" for k in range(3)]
    path = _write(tmp_path / "fer2013new.csv", [FERPLUS_HEADER, good[0], "", good[1], good[2]])
    assert parse_ferplus_csv(path)[3].tolist() == [2, 4, 5]


@pytest.mark.parametrize("bad, words", [
    ("train_00004.jpg", ["expected '<image name> <label 1-7>'"]),
    ("train_00004.jpg 4 1", ["expected '<image name> <label 1-7>'"]),
    ("train_00004.jpg happy", ["label 'happy' is not one of 1..7"]),
    ("train_00004.jpg 0", ["label '0' is not one of 1..7"]),
])
def test_rafdb_label_file(tmp_path, bad, words):
    good = ["train_00001.jpg 5", "train_00002.jpg 1", "test_0001.jpg 7"]
    path = _write(tmp_path / "list_patition_label.txt", [*good, bad])
    _raises(parse_label_file, path, 4, *words, FIX)


AFFECTNET_HEADER = ("subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,"
                    "valence,arousal")


@pytest.mark.parametrize("bad, words", [
    ("12/b.jpg,1,2,30,30", ["5 fields, expected 9"]),
    ("12/b.jpg,1,2,30,30,,sad,0.1,0.1", ["expression 'sad' is not one of 0..10"]),
    ("12/b.jpg,1,2,30,30,,11,0.1,0.1", ["expression '11' is not one of 0..10"]),
    ("12/b.jpg,1,2,wide,30,,1,0.1,0.1", ["must be numbers"]),
])
def test_affectnet_csv(tmp_path, bad, words):
    good = '12/a.jpg,1,2,30,30,"1.0;2.0",1,0.25,-0.5'
    path = _write(tmp_path / "training.csv", [AFFECTNET_HEADER, good, good, bad])
    _raises(read_affectnet_csv, path, 4, *words, FIX)


def _fec_row(k, vote="1"):
    urls = [f"https://example.org/{k}/{j}.jpg" for j in range(3)]
    boxes = [(0.1, 0.6, 0.2, 0.7)] * 3
    row = format_fec_row(urls, boxes, "ONE_CLASS_TRIPLET", [(f"a{j}", 1) for j in range(6)])
    return row[:-1] + vote


@pytest.mark.parametrize("bad, words", [
    (lambda: _fec_row(9).rsplit(",", 2)[0], ["wrong column count", "26 columns, expected 28"]),
    (lambda: _fec_row(9, vote="x"), ["bad annotation", "'x' in column 28, expected 1, 2 or 3"]),
    (lambda: _fec_row(9, vote="4"), ["bad annotation", "'4' in column 28"]),
])
def test_fec_csv_through_its_index(tmp_path, bad, words):
    path = _write(tmp_path / "faceexp-comparison-data-train-public.csv", [_fec_row(0), _fec_row(1), bad()])
    _raises(load_fec_table, path, 3, *words, FIX)
    assert not os.path.exists(path + ".index.npz")  # nothing indexed from a broken file


@pytest.mark.slow  # starts the CLI
def test_train_net_prints_one_error_line(tmp_path):
    folder = tmp_path / "datasets" / "fer2013"
    folder.mkdir(parents=True)
    good = [f"{k % 7},{PIXELS},{usage}" for k, usage in enumerate(["Training"] * 8 + ["PublicTest", "PrivateTest"])]
    csv_path = _write(folder / "fer2013.csv", ["emotion,pixels,Usage", *good[:4], f"7,{PIXELS},Training", *good[4:]])
    cmd = [sys.executable, os.path.join(ROOT, "tools", "train_net.py"), "--config-file",
           os.path.join(ROOT, "config", "fer2013", "deep_emotion.yaml"), "DATASETS.ROOT", str(tmp_path / "datasets"),
           "DATASETS.FER2013.CACHE_DIR", str(tmp_path / "cache"), "OUTPUT_DIR", str(tmp_path / "out"),
           "SOLVER.MAX_ITER", "2", "SOLVER.IMS_PER_BATCH", "4", "SOLVER.WARMUP_ITERS", "1",
           "DATALOADER.NUM_WORKERS", "0", "TEST.EVAL_PERIOD", "0"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT})
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert f"{csv_path}, line 6: emotion '7' is not one of 0..6" in lines[0] and FIX in lines[0], lines[0]
    log = (tmp_path / "out" / "log.txt").read_text()
    assert "Traceback" in log and "DatasetFormatError" in log  # the traceback went to the log


def test_fer2013_image_folder(tmp_path):
    from fec.data.datasets.fer2013_release import read_image_folder

    (tmp_path / "train" / "joy").mkdir(parents=True)
    with pytest.raises(DatasetFormatError, match="class folders must be named angry, .*; found joy"):
        read_image_folder(str(tmp_path / "train"))
    (tmp_path / "train" / "joy").rename(tmp_path / "train" / "happy")
    (tmp_path / "train" / "happy" / "a.jpg").write_bytes(b"not a JPEG")
    with pytest.raises(DatasetFormatError, match=r"happy/a\.jpg is not an image OpenCV can read; replace or delete it"):
        read_image_folder(str(tmp_path / "train"))


def test_affectnet_missing_images_are_a_user_error(tmp_path):
    from fec.data.datasets.affectnet import check_images

    (tmp_path / "Manually_Annotated_Images" / "12").mkdir(parents=True)
    path = _write(tmp_path / "training.csv", [AFFECTNET_HEADER, '12/a.jpg,1,2,30,30,"1.0;2.0",1,0.25,-0.5'])
    table = read_affectnet_csv(path)
    with pytest.raises(FileNotFoundError, match=r"1 of 1 listed images are missing: .*12/a\.jpg \(line 2\)") as err:
        check_images(str(tmp_path / "Manually_Annotated_Images"), table.paths, table.lines, path)
    assert isinstance(err.value, UserError)
