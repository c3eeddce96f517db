"""tools/demo.py: headless on a video and on an image folder, clear errors for bad
inputs and an absent camera."""
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from helpers.tools import load_tool
from skimage import data

from helpers.cli import exit_code


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICKSTART = os.path.join(ROOT, "config", "quickstart.yaml")
DEMO = os.path.join(ROOT, "tools", "demo.py")
FRAMES = 6


demo = load_tool("demo")




def _frame(i, size=(320, 240)):
    """A grey frame with the astronaut's face sliding across it (BGR)."""
    w, h = size
    frame = np.full((h, w, 3), 100, np.uint8)
    face = cv2.resize(cv2.cvtColor(data.astronaut()[40:200, 140:300], cv2.COLOR_RGB2BGR), (120, 120))
    x = 30 + 20 * i
    frame[60:180, x:x + 120] = face
    return frame


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("video") / "clip.mp4")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 12.0, (320, 240))
    assert writer.isOpened()
    for i in range(FRAMES):
        writer.write(_frame(i))
    writer.release()
    return path


def _read_all(path):
    cap = cv2.VideoCapture(path)
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            return frames, cap.get(cv2.CAP_PROP_FPS)
        frames.append(frame)


def _green(frame):
    """Pixels of the box colour (BGR 60, 220, 60), allowing for compression."""
    b, g, r = (frame[..., k].astype(int) for k in range(3))
    return int(((g > 170) & (r < 120) & (b < 120)).sum())


@pytest.mark.slow
def test_demo_writes_an_annotated_video_with_every_frame(quickstart_ckpt, video, tmp_path):
    out = tmp_path / "annotated.mp4"
    cmd = [sys.executable, DEMO, "--config-file", QUICKSTART, "--ckpt", quickstart_ckpt, "--input", video,
           "--output", str(out), "--device", "cpu"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    frames, fps = _read_all(str(out))
    inputs, in_fps = _read_all(video)
    assert len(frames) == len(inputs) == FRAMES and fps == pytest.approx(in_fps)
    assert frames[0].shape == (240, 320, 3)
    # Boxes were drawn on every frame (the input has none of that green).
    assert all(_green(f) > 200 for f in frames) and all(_green(f) < 20 for f in inputs)
    assert f"frames: {FRAMES} in" in proc.stdout and "frames/s" in proc.stdout
    for stage in ("decode", "detect", "model", "draw"):
        assert f"{stage} " in proc.stdout
    assert not [n for n in os.listdir(tmp_path) if ".tmp" in n]


def test_demo_on_an_image_folder_with_a_reference(quickstart_ckpt, tmp_path, capsys):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    for name, i in (("a.jpg", 0), ("sub/b.png", 3)):
        cv2.imwrite(str(src / name), _frame(i))
    ref = tmp_path / "ref.png"
    cv2.imwrite(str(ref), _frame(1))
    out = tmp_path / "out"
    rc = demo.main(["--config-file", QUICKSTART, "--ckpt", quickstart_ckpt, "--input", str(src), "--output", str(out),
                    "--reference", str(ref), "--device", "cpu", "--detector", "haar"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "frames: 2 in" in printed and "faces: 2 " in printed
    for name in ("a.jpg", "sub/b.png"):
        annotated = cv2.imread(str(out / name))
        assert annotated.shape == (240, 320, 3) and _green(annotated) > 200


def _error(argv, capsys):
    return exit_code(demo.main, argv), capsys.readouterr().err


def test_unreadable_inputs_are_clear_errors(quickstart_ckpt, tmp_path, capsys):
    base = ["--config-file", QUICKSTART, "--ckpt", quickstart_ckpt, "--device", "cpu"]
    missing = str(tmp_path / "missing.mp4")
    rc, err = _error(base + ["--input", missing], capsys)
    assert rc == 2 and f"input not found: {missing}" in err
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(os.urandom(2048))
    rc, err = _error(base + ["--input", str(junk), "--output", str(tmp_path / "o.mp4")], capsys)
    assert rc == 2 and "cannot read video" in err and str(junk) in err
    assert not (tmp_path / "o.mp4").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    rc, err = _error(base + ["--input", str(empty)], capsys)
    assert rc == 2 and "no images" in err


def test_absent_camera_is_a_clear_error(quickstart_ckpt, capsys):
    rc, err = _error(["--config-file", QUICKSTART, "--ckpt", quickstart_ckpt, "--input", "9"], capsys)
    assert rc == 2 and "no camera at index 9" in err


def _headless():
    line = next((ln for ln in cv2.getBuildInformation().splitlines() if ln.strip().startswith("GUI:")), "")
    return line.split(":", 1)[-1].strip() == "NONE"


@pytest.mark.skipif(not _headless(), reason="this OpenCV has GUI support")
def test_show_without_gui_support_says_so(quickstart_ckpt, video, capsys):
    rc, err = _error(["--config-file", QUICKSTART, "--ckpt", quickstart_ckpt, "--input", video, "--show"], capsys)
    assert rc == 2 and "--show needs OpenCV with GUI support" in err
