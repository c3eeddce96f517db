"""INPUT.AUGMENT_ON device: the loader draws each face's parameters as the loader path
does, the batched crop/flip/jitter gives the loader path's pixels within a grey level
or two, and training from a packed store with it resumes bit-identically, also with
two processes (gloo) reading one store."""
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from skimage import data

from fec.data.device_augment import DeviceAugmentation
from fec.data.transforms import DeferredTrainTransform, TrainTransform
from helpers.checkpoints import assert_same_weights, weights

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "config", "quickstart.yaml")


def _faces(size, grey=False):
    photos = [data.astronaut(), data.chelsea(), data.coffee()]
    faces = [cv2.resize(p[:min(p.shape[:2]), :min(p.shape[:2])], (size, size), interpolation=cv2.INTER_AREA)
             for p in photos]
    if grey:
        faces = [np.repeat(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)[..., None], 3, 2) for f in faces]
    return faces


@pytest.mark.parametrize("size,grey,jitter", [(224, False, 0.2), (64, False, 0.4), (48, True, 0.2), (96, False, 0.0)])
def test_device_augmentation_matches_the_loader_for_the_same_draws(size, grey, jitter):
    train = TrainTransform(size, (0.5, 1.0), 0.5, jitter)
    deferred = DeferredTrainTransform(train)
    images, params, expected = [], [], []
    for k, face in enumerate(_faces(size, grey) * 8):
        gen = torch.Generator().manual_seed(1000 + k)
        image, p = deferred(face, gen)
        images.append(image)
        params.append(p)
        # the same generator gives the loader path the same draws
        assert torch.equal(train(face, torch.Generator().manual_seed(1000 + k)), train.apply(face, p.tolist()))
        expected.append(train.apply(face, p.tolist()))
    params = torch.stack(params)
    assert 0 < params[:, 4].sum() < len(params)  # some flipped, some not
    assert (params[:, 2] < size).any()  # some cropped
    out = DeviceAugmentation(size, jitter, "cpu")({"image": torch.stack(images), "augment": params})
    assert "augment" not in out and out["image"].dtype == torch.float32
    diff = (out["image"] - torch.stack(expected).float()).abs()
    # Inside, rounding only; the outer ring of pixels samples up to half a pixel past
    # the crop edge (roi_align clamps to the image, OpenCV to the crop).
    assert diff[:, :, 1:-1, 1:-1].max() <= 2
    assert diff.mean() < 0.3
    if grey:
        img = out["image"]
        assert torch.equal(img[:, 0], img[:, 1]) and torch.equal(img[:, 1], img[:, 2])


def test_triplet_batches_keep_their_shape_and_faces():
    size = 64
    faces = _faces(size)
    deferred = DeferredTrainTransform(TrainTransform(size, (0.7, 1.0), 0.5, 0.2))
    gen = torch.Generator().manual_seed(5)
    drawn = [deferred(f, gen) for f in faces]
    batch = {"images": torch.stack([d[0] for d in drawn])[None].repeat(2, 1, 1, 1, 1),
             "augment": torch.stack([d[1] for d in drawn])[None].repeat(2, 1, 1), "type": torch.tensor([0, 1])}
    out = DeviceAugmentation(size, 0.2, "cpu")(batch)
    assert out["images"].shape == (2, 3, 3, size, size) and torch.equal(out["type"], batch["type"])
    single = DeviceAugmentation(size, 0.2, "cpu")({"image": batch["images"][0], "augment": batch["augment"][0]})
    assert torch.equal(out["images"][1], single["image"])
    assert not torch.equal(out["images"][0, 0], out["images"][0, 1])


@pytest.mark.cuda
def test_device_augmentation_on_cuda_matches_cpu():
    size = 128
    deferred = DeferredTrainTransform(TrainTransform(size, (0.5, 1.0), 0.5, 0.3))
    gen = torch.Generator().manual_seed(0)
    drawn = [deferred(f, gen) for f in _faces(size) * 4]
    batch = {"image": torch.stack([d[0] for d in drawn]), "augment": torch.stack([d[1] for d in drawn])}
    cpu = DeviceAugmentation(size, 0.3, "cpu")(dict(batch))["image"]
    gpu = DeviceAugmentation(size, 0.3, "cuda")(dict(batch))["image"].cpu()
    assert (cpu - gpu).abs().max() <= 1


# --------------------------------------------------------------------------- #
# Training from a store with device augmentation
# --------------------------------------------------------------------------- #
def _sh(*cmd, env=None):
    proc = subprocess.run(list(cmd), cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def packed_root(tmp_path_factory):
    """An FEC folder packed at 64 px, its JPEGs then emptied: only the store can feed training."""
    root = tmp_path_factory.mktemp("datasets")
    _sh(sys.executable, "tools/make_synthetic_fec.py", "--out", str(root / "fec"), "--size", "64",
        "--train-identities", "6", "--test-identities", "4", "--faces-per-identity", "4",
        "--train-triplets", "120", "--test-triplets", "41", "--seed", "3")
    _sh(sys.executable, "tools/pack_faces.py", "--config-file", CONFIG, "--datasets", "fec_train", "fec_test",
        "--workers", "2", "--quiet", "DATASETS.ROOT", str(root), "INPUT.SIZE", "64")
    for name in os.listdir(root / "fec" / "images"):
        open(root / "fec" / "images" / name, "wb").close()
    return root


def _train_args(root, out, *extra, flags=()):
    return [os.path.join(ROOT, "tools", "train_net.py"), *flags, "--config-file", CONFIG,
            "MODEL.WEIGHTS", "", "MODEL.BACKBONE.FREEZE_AT", "0", "DATASETS.ROOT", str(root),
            "DATASETS.TRAIN", "('fec_train',)", "DATASETS.TEST", "()", "DATASETS.PACKED", "True",
            "INPUT.AUGMENT_ON", "device", "INPUT.CROP_SCALE", "[0.7, 1.0]", "SOLVER.IMS_PER_BATCH", "4",
            "SOLVER.MAX_ITER", "8", "SOLVER.CHECKPOINT_PERIOD", "4", "SOLVER.WARMUP_ITERS", "2",
            "DATALOADER.NUM_WORKERS", "2", "LOG_PERIOD", "4", "OUTPUT_DIR", str(out), *extra]


@pytest.mark.slow
def test_packed_device_augmented_training_resumes_bit_identically(packed_root, tmp_path):
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    _sh(sys.executable, *_train_args(packed_root, full))
    resumed.mkdir()
    shutil.copy(full / "model_0000004.pth", resumed / "model_0000004.pth")
    (resumed / "last_checkpoint").write_text("model_0000004.pth")
    # another worker count: the draws must not depend on it
    log = _sh(sys.executable, *_train_args(packed_root, resumed, "DATALOADER.NUM_WORKERS", "1", flags=["--resume"]))
    assert "Start training at iteration 4 of 8" in log
    assert_same_weights(weights(full / "model_final.pth"), weights(resumed / "model_final.pth"))
    # Other draws (another seed) give other weights: the comparison can fail.
    other = tmp_path / "other"
    _sh(sys.executable, *_train_args(packed_root, other, "SEED", "1"))
    assert not all(torch.equal(a, b) for a, b in zip(weights(full / "model_final.pth").values(),
                                                     weights(other / "model_final.pth").values()))


@pytest.mark.slow
@pytest.mark.multiprocess
def test_two_gloo_processes_train_from_one_store(packed_root, tmp_path):
    log = _sh(sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
              *_train_args(packed_root, tmp_path, "DATALOADER.NUM_WORKERS", "1"))
    assert "Using 2 process(es), backend gloo" in (tmp_path / "log.txt").read_text() + log
    assert os.path.exists(tmp_path / "model_final.pth")
    # the JPEGs are empty files: every face came from the one store
    assert sorted(os.listdir(packed_root / "packed")) == ["fec_test.faces", "fec_train.faces"]


def test_loader_cost_counts_every_face_of_the_timed_batches():
    from fec.config import load_config
    from fec.data.loader_cost import loader_cpu_cost

    cfg = load_config(CONFIG, ["INPUT.AUGMENT_ON", "device", "SOLVER.IMS_PER_BATCH", "4", "DATALOADER.NUM_WORKERS", "2",
                               "DATASETS.SYNTHETIC.TRAIN_IDENTITIES", "10", "DATASETS.SYNTHETIC.TRAIN_TRIPLETS", "100"])
    threads = torch.get_num_threads()
    cost = loader_cpu_cost(cfg, batches=3, warmup=1)
    assert cost.faces == 3 * 4 * 3  # three batches of four triplets
    assert cost.cpu_seconds > 0 and cost.faces_per_s_per_worker == pytest.approx(1000 / cost.cpu_ms_per_face)
    # timed on one thread, as in a worker; the caller's settings are left alone
    assert torch.get_num_threads() == threads and cfg.DATALOADER.NUM_WORKERS == 2
