"""Packed face stores (tools/pack_faces.py, DATASETS.PACKED) on FEC, AffectNet and
FER2013 files written in their real formats: the faces read back are the JPEG/CSV
path's pixels, stale or missing stores are refused with the rebuild command, and a
killed pack leaves nothing that looks usable."""
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from fec.config import load_config
from fec.data import build_dataset
from fec.data.face_store import read_header, store_path
from fec.data.pack import face_loader, pack_dataset, raw_dataset
from fec.data.transforms import _resize
from fec.utils.errors import DatasetError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "config", "quickstart.yaml")
pytestmark = pytest.mark.slow


def _sh(*cmd):
    proc = subprocess.run([sys.executable, *cmd], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("datasets")
    _sh("tools/make_synthetic_fec.py", "--out", str(root / "fec"), "--size", "64", "--train-identities", "6",
        "--test-identities", "4", "--faces-per-identity", "4", "--train-triplets", "120", "--test-triplets", "41",
        "--seed", "3")
    _sh("tools/make_synthetic_expressions.py", "--out", str(root), "--train-images", "24", "--test-images", "8",
        "--images-per-identity", "4", "--affectnet-size", "80")
    return root


def _cfg(root, *opts, size=64):
    return load_config(CONFIG, ["DATASETS.ROOT", str(root), "INPUT.SIZE", str(size),
                                "DATASETS.PACKED_DIR", str(root / "packed"), *opts])


@pytest.mark.parametrize("name", ["fec_train", "affectnet_va_train", "fer2013_train"])
def test_store_holds_the_pixels_the_image_path_decodes(root, name):
    size = 48 if name.startswith("fer") else 64
    cfg = _cfg(root, size=size)
    path = pack_dataset(cfg, name, workers=2, progress=False)
    shape, fp = read_header(path)
    raw = raw_dataset(cfg, name)
    n, load = face_loader(raw)
    assert shape == (n, size, size, 1 if name.startswith("fer") else 3) and fp["dataset"] == name
    plain = build_dataset(cfg, name, is_train=False)
    packed = build_dataset(_cfg(root, "DATASETS.PACKED", "True", size=size), name, is_train=False)
    assert plain.store is None and packed.store is not None
    for i in range(n):
        assert np.array_equal(packed.store.face(i), _resize(load(i), size)), i
    for i in range(len(plain)):
        assert torch.equal(plain[i]["image"], packed[i]["image"]), i
    # Training items too: same augmentation draws on the same pixels.
    plain_t = build_dataset(cfg, name, is_train=True)
    packed_t = build_dataset(_cfg(root, "DATASETS.PACKED", "True", size=size), name, is_train=True)
    key = "images" if name.startswith("fec") else "image"
    for i in range(4):
        assert torch.equal(plain_t[(i, 100 + i)][key], packed_t[(i, 100 + i)][key])


def test_fer2013_store_is_grey_and_a_third_of_rgb(root):
    cfg = _cfg(root, size=48)
    path = pack_dataset(cfg, "fer2013_public_test", workers=0, progress=False)
    shape, _ = read_header(path)
    assert shape[3] == 1 and os.path.getsize(path) == 4096 + shape[0] * 48 * 48


def test_a_store_of_another_size_or_csv_is_refused_with_the_rebuild_command(root, tmp_path):
    cfg = _cfg(root)
    pack_dataset(cfg, "fec_test", workers=0, progress=False)
    with pytest.raises(DatasetError, match=r"size \(INPUT.SIZE\): store 64, now 72.*pack_faces.py --config-file"):
        build_dataset(_cfg(root, "DATASETS.PACKED", "True", size=72), "fec_test", is_train=False)
    # Another CSV: the same faces listed with one row fewer.
    csv = root / "fec" / "faceexp-comparison-data-test-public.csv"
    original = csv.read_bytes()
    try:
        csv.write_bytes(b"".join(original.splitlines(keepends=True)[:-1]))
        with pytest.raises(DatasetError, match="source files differ.*--datasets fec_test"):
            build_dataset(_cfg(root, "DATASETS.PACKED", "True"), "fec_test", is_train=False)
    finally:
        csv.write_bytes(original)
    assert build_dataset(_cfg(root, "DATASETS.PACKED", "True"), "fec_test", is_train=False).store is not None
    with pytest.raises(DatasetError, match="no packed store .*pack_faces.py"):
        build_dataset(_cfg(root, "DATASETS.PACKED", "True", "DATASETS.PACKED_DIR", str(tmp_path)), "fec_test",
                      is_train=False)


KILLED_PACK = """
import os, signal, sys
sys.path.insert(0, {root!r})
from fec.data.datasets.fec_triplets import FECTripletDataset
load = FECTripletDataset.load_face
def load_then_die(self, i):
    if i == 10:
        os.kill(os.getpid(), signal.SIGKILL)
    return load(self, i)
FECTripletDataset.load_face = load_then_die
sys.argv = ["pack_faces.py", "--config-file", {config!r}, "--datasets", "fec_train", "--workers", "0",
            "DATASETS.ROOT", {data!r}, "INPUT.SIZE", "64", "DATASETS.PACKED_DIR", {out!r}]
sys.path.insert(0, os.path.join({root!r}, "tools"))
import fec.data.pack
import pack_faces
fec.data.pack.CHUNK = 4  # two chunks written before face 10
pack_faces.main()
"""


def test_a_killed_pack_leaves_no_usable_store_and_a_rerun_completes(root, tmp_path):
    out = tmp_path / "packed"
    script = KILLED_PACK.format(root=ROOT, config=CONFIG, data=str(root), out=str(out))
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    cfg = _cfg(root, "DATASETS.PACKED", "True", "DATASETS.PACKED_DIR", str(out))
    final = store_path(cfg, "fec_train")
    left = [p for p in os.listdir(out) if p.startswith("fec_train.faces.tmp.")]
    assert not os.path.exists(final) and len(left) == 1 and os.path.getsize(out / left[0]) > 4096
    with pytest.raises(DatasetError, match="no packed store"):
        build_dataset(cfg, "fec_train", is_train=True)
    train = subprocess.run([sys.executable, "tools/train_net.py", "--config-file", CONFIG, "DATASETS.ROOT", str(root),
                            "DATASETS.TRAIN", "('fec_train',)", "DATASETS.TEST", "()", "DATASETS.PACKED", "True",
                            "DATASETS.PACKED_DIR", str(out), "MODEL.WEIGHTS", "", "OUTPUT_DIR", str(tmp_path / "run")],
                           cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert train.returncode == 2, train.stderr[-3000:]
    assert "error: DATASETS.PACKED is on but fec_train has no packed store" in train.stderr
    _sh("tools/pack_faces.py", "--config-file", CONFIG, "--datasets", "fec_train", "--workers", "2", "--quiet",
        "DATASETS.ROOT", str(root), "INPUT.SIZE", "64", "DATASETS.PACKED_DIR", str(out))
    assert os.listdir(out) == ["fec_train.faces"]
    dataset = build_dataset(cfg, "fec_train", is_train=False)
    raw = raw_dataset(cfg, "fec_train")
    assert all(np.array_equal(dataset.store.face(i), raw.load_face(i)) for i in range(raw.num_faces))
