"""Every tool answers a user error as train_net does: one line ``error: ...`` naming the
thing, exit code 2, no traceback; a bug keeps its traceback."""
import cv2
import numpy as np
import pytest

from helpers.cli import assert_user_error, exit_code, run, tool
from helpers.tools import load_tool

QUICKSTART = "config/quickstart.yaml"


@pytest.fixture
def not_a_checkpoint(tmp_path):
    path = tmp_path / "passwd"
    path.write_text("root:x:0:0:root:/root:/bin/bash\n")
    return str(path)


@pytest.mark.slow
def test_demo_missing_input(tmp_path, not_a_checkpoint):
    missing = str(tmp_path / "holiday.mp4")
    proc = run(tool("demo.py", "--config-file", QUICKSTART, "--ckpt", not_a_checkpoint, "--input", missing), tmp_path)
    assert_user_error(proc, f"input not found: {missing}")


@pytest.mark.slow
def test_export_not_a_checkpoint(tmp_path, not_a_checkpoint):
    out = tmp_path / "model.pt"
    proc = run(tool("export.py", "--config-file", QUICKSTART, "--ckpt", not_a_checkpoint, "--format", "torchscript",
                    "--out", str(out)), tmp_path)
    assert_user_error(proc, not_a_checkpoint, "not a PyTorch checkpoint")
    assert not out.exists()


@pytest.mark.slow
def test_demo_not_a_checkpoint(tmp_path, not_a_checkpoint):
    image = tmp_path / "face.png"
    cv2.imwrite(str(image), np.full((64, 64, 3), 128, np.uint8))
    proc = run(tool("demo.py", "--config-file", QUICKSTART, "--ckpt", not_a_checkpoint, "--input", str(image),
                    "--detector", "haar", "--device", "cpu"), tmp_path)
    assert_user_error(proc, not_a_checkpoint, "not a PyTorch checkpoint")


@pytest.mark.slow
def test_retrieve_missing_index(tmp_path):
    image = tmp_path / "face.png"
    cv2.imwrite(str(image), np.full((64, 64, 3), 128, np.uint8))
    missing = str(tmp_path / "faces.npz")
    proc = run(tool("retrieve.py", "query", missing, str(image)), tmp_path)
    assert_user_error(proc, f"index not found: {missing}")


@pytest.mark.slow
def test_prepare_fec_missing_csv(tmp_path):
    missing = str(tmp_path / "faceexp-comparison-data-train-public.csv")
    proc = run(tool("prepare_fec.py", "--csv", missing, "--out", str(tmp_path / "fec"), "--no-progress"), tmp_path)
    assert_user_error(proc, missing, "no such file")


@pytest.mark.slow
def test_benchmark_bad_parts(tmp_path):
    proc = run(tool("benchmark.py", "train", "--parts", "model,gpu"), tmp_path)
    assert_user_error(proc, "--parts model,gpu", "model,loader,e2e")


@pytest.mark.slow
def test_pack_faces_unknown_dataset(tmp_path):
    proc = run(tool("pack_faces.py", "--datasets", "fec_trian", "--workers", "0"), tmp_path)
    assert_user_error(proc, "fec_trian", "not in the catalog")


@pytest.mark.slow
@pytest.mark.parametrize("name, flag", [("make_synthetic_fec", "--train-triplets"),
                                        ("make_synthetic_expressions", "--train-images")])
def test_synthetic_writers_refuse_negative_counts(tmp_path, name, flag):
    proc = run(tool(f"{name}.py", "--out", str(tmp_path / "out"), flag, "-3"), tmp_path)
    assert_user_error(proc, f"{flag} -3", "1 or more")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_argparse_usage_errors_stay_argparse(tmp_path):
    proc = run(tool("retrieve.py", "query"), tmp_path)
    assert proc.returncode == 2 and "usage: retrieve.py" in proc.stderr and "Traceback" not in proc.stderr


def test_bugs_in_tools_keep_their_traceback(tmp_path, monkeypatch):
    # the kinds of exception the tools used to catch and print as one line
    demo = load_tool("demo")

    def broken_source(args, stats):
        raise ValueError("a bug in the frame source")

    monkeypatch.setattr(demo, "make_source", broken_source)
    with pytest.raises(ValueError, match="a bug in the frame source"):
        exit_code(demo.main, ["--ckpt", "model.pth", "--input", "0"])

    prepare_fec = load_tool("prepare_fec")

    def broken_prepare(options):
        raise OSError("a bug in prepare")

    monkeypatch.setattr(prepare_fec, "prepare", broken_prepare)
    with pytest.raises(OSError, match="a bug in prepare"):
        exit_code(prepare_fec.main, ["--csv", "train.csv", "--out", str(tmp_path / "fec")])

    retrieve = load_tool("retrieve")

    def broken_load(path):
        raise RuntimeError("a bug in the index reader")

    monkeypatch.setattr(retrieve, "load_index", broken_load)
    with pytest.raises(RuntimeError, match="a bug in the index reader"):
        exit_code(retrieve.main, ["query", "faces.npz", "face.png"])
