"""One model-output contract: every meta-architecture declares its eval outputs
(fec.modeling.meta_arch.base.OUTPUTS), and the predictor, the demo, retrieval and export
serve each of them. The crop and colour the predictor uses are the training config's
INPUT.FACE_BOX_EXPANSION and INPUT.FACE_COLOR, whatever the datasets are called."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from skimage import data

from fec.config import load_config
from fec.data.crop import crop_face, grey_face
from fec.modeling import build_model
from fec.modeling.meta_arch import OUTPUT_KEYS, OUTPUTS
from fec.predictor import ExpressionPredictor, prediction_config
from fec.predictor.draw import face_label
from fec.predictor.export import ExportModule, check_parity, export_torchscript, load_exported, sample_faces
from fec.predictor.retrieval import build_index, nearest
from fec.utils.checkpoint import Checkpointer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def config(name):
    return os.path.join(ROOT, "config", name)


# meta-architecture → (config, overrides, its eval outputs, the Face fields they fill)
ARCHS = {
    "TripletEmbeddingNet": (config("quickstart.yaml"), [], ("embedding",), {"embedding"}),
    "Classifier": (config("quickstart_fer.yaml"), [], ("logits",), {"probabilities"}),
    "ValenceArousalRegressor": (config("quickstart_affect_va.yaml"), [], ("valence_arousal",), {"valence"}),
    "ClassifierRegressor": (config("quickstart_affect_va.yaml"), ["MODEL.META_ARCHITECTURE", "ClassifierRegressor"],
                            ("logits", "valence_arousal"), {"probabilities", "valence"}),
    "IntensityRegressor": (config("quickstart_pretrain.yaml"), [], ("intensities",), {"intensities"}),
}
FIELDS = {"embedding", "probabilities", "valence", "intensities"}


@pytest.fixture(scope="module", params=sorted(ARCHS))
def arch(request, tmp_path_factory):
    """(name, config, overrides, output keys, Face fields, checkpoint) of a freshly built
    model saved as training saves it."""
    cfg_file, opts, keys, fields = ARCHS[request.param]
    torch.manual_seed(0)
    model = build_model(prediction_config(cfg_file, opts))
    assert type(model).__name__ == request.param
    path = tmp_path_factory.mktemp(request.param) / "model_final.pth"
    Checkpointer(model, save_dir=str(path.parent)).save("model_final", 0)
    return request.param, cfg_file, opts, keys, fields, str(path)


def test_the_contract_lists_every_meta_architectures_outputs():
    assert OUTPUT_KEYS == ("embedding", "logits", "valence_arousal", "intensities") == tuple(OUTPUTS)
    declared = {k for _, _, keys, _ in ARCHS.values() for k in keys}
    assert declared == set(OUTPUT_KEYS)


def test_each_model_returns_what_it_declares(arch):
    name, cfg_file, opts, keys, _, _ = arch
    model = build_model(prediction_config(cfg_file, opts)).eval()
    size = load_config(cfg_file).INPUT.SIZE
    with torch.inference_mode():
        out = model({"image": sample_faces(2, size)})
    assert model.output_keys == keys and tuple(out) == keys, name
    assert all(v.dtype == torch.float32 and v.shape[0] == 2 for v in out.values())


def test_predictor_and_demo_label_serve_each_model(arch):
    name, cfg_file, opts, _, fields, ckpt = arch
    p = ExpressionPredictor.from_config(cfg_file, ckpt, opts, detector="none", device="cpu")
    crops = [grey_face(data.astronaut()[40:220, 130:310]), np.full((90, 90, 3), 40, np.uint8)]
    faces = [f[0] for f in p(crops)]
    for face in faces:
        assert {f for f in FIELDS if getattr(face, f) is not None} == fields, name
        assert np.isfinite(face.vector).all()
    assert np.abs(faces[0].vector - faces[1].vector).max() > 0  # different faces, different outputs
    label = face_label(faces[0])
    if fields == {"embedding"}:
        assert label == "face 1.00" and face_label(faces[0], faces[0].embedding) == "d2 0.00"
    else:
        assert not label.startswith("face ")
    if "intensities" in fields:
        names = tuple(load_config(cfg_file).MODEL.INTENSITY.NAMES)
        assert faces[0].intensity_names == names and faces[0].intensities.shape == (len(names),)
        top = names[int(np.argmax(faces[0].intensities))]
        assert label.startswith(f"{top} ")
        assert set(faces[0].to_dict()["intensities"]) == set(names)


def test_export_serves_each_model(arch, tmp_path):
    name, cfg_file, opts, keys, _, ckpt = arch
    cfg = prediction_config(cfg_file, opts)
    model = build_model(cfg)
    Checkpointer(model).load(ckpt)
    module = ExportModule(model, cfg.INPUT.SIZE)
    assert tuple(module.output_names) == keys, name
    faces = sample_faces(3, cfg.INPUT.SIZE, seed=1)
    export_torchscript(module, faces[:2], str(tmp_path / "m.pt"))
    diffs = check_parity(module, load_exported(str(tmp_path / "m.pt"), "torchscript"), faces, (1, 3))
    assert max(diffs.values()) < 1e-4


def test_retrieval_serves_each_model(arch, tmp_path):
    name, cfg_file, opts, _, _, ckpt = arch
    p = ExpressionPredictor.from_config(cfg_file, ckpt, opts, detector="none", device="cpu")
    folder = tmp_path / "faces"
    folder.mkdir()
    size = p.input_size
    faces = sample_faces(4, size, seed=3).permute(0, 2, 3, 1).numpy()
    for i, face in enumerate(faces):
        Image.fromarray(face).save(folder / f"{i}.png")
    index = build_index(p, str(folder), str(tmp_path / "index.npz"), ckpt, progress=False)
    assert len(index) == 4, name
    query = p(faces[2])[0]
    order, dist = nearest(index, query.vector, k=2)
    assert index.paths[order[0]] == "2.png" and dist[0] < 1e-8


def _train_classifier(out, *opts):
    """tools/train_net.py for two iterations: a Classifier on synthetic_affect_train, a
    catalog name that says nothing about how its faces are cut or coloured."""
    cmd = [sys.executable, os.path.join(ROOT, "tools", "train_net.py"), "--config-file", config("quickstart_fer.yaml"),
           "DATASETS.TRAIN", "('synthetic_affect_train',)", "DATASETS.TEST", "()",
           "MODEL.CLASSIFIER.NUM_CLASSES", "8", "MODEL.CLASSIFIER.CLASS_NAMES",
           "['neutral','happy','sad','surprise','fear','disgust','anger','contempt']",
           "SOLVER.MAX_ITER", "2", "SOLVER.IMS_PER_BATCH", "4", "DATALOADER.NUM_WORKERS", "0",
           "MODEL.DEVICE", "cpu", "OUTPUT_DIR", str(out), *opts]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.slow
def test_a_model_is_served_with_the_crop_and_colour_its_training_recorded(tmp_path):
    _train_classifier(tmp_path, "INPUT.FACE_COLOR", "grey", "INPUT.FACE_BOX_EXPANSION", "0.4")
    recorded = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert recorded["INPUT"]["FACE_COLOR"] == "grey" and recorded["INPUT"]["FACE_BOX_EXPANSION"] == 0.4
    p = ExpressionPredictor.from_config(str(tmp_path / "config.yaml"), str(tmp_path / "model_final.pth"),
                                        detector="haar", device="cpu")
    rgb = data.astronaut()
    face = p(rgb, keep_crops=True)[0]
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = face.box
    np.testing.assert_array_equal(face.crop, grey_face(crop_face(rgb, (x0 / w, x1 / w, y0 / h, y1 / h), 48, 0.4)))
    assert face.class_names[0] == "neutral" and abs(face.probabilities.sum() - 1) < 1e-5
    # the checkpoint alone, copied away from its config.yaml, still says how its faces were cut
    stored = torch.load(tmp_path / "model_final.pth", map_location="cpu", weights_only=True)["config"]
    assert yaml.safe_load(stored)["INPUT"] == recorded["INPUT"]
    copy = tmp_path / "elsewhere" / "copied.pth"
    copy.parent.mkdir()
    shutil.copy(tmp_path / "model_final.pth", copy)
    # a config that says otherwise (rgb, 0.15) gives way to what the checkpoint records
    given = ["MODEL.CLASSIFIER.NUM_CLASSES", "8", "MODEL.CLASSIFIER.CLASS_NAMES", str(recorded["MODEL"]["CLASSIFIER"][
        "CLASS_NAMES"]), "INPUT.FACE_COLOR", "rgb", "INPUT.FACE_BOX_EXPANSION", "0.15"]
    moved = ExpressionPredictor.from_config(config("quickstart_fer.yaml"), str(copy), given, detector="haar",
                                            device="cpu")
    assert moved.box_expansion == 0.4 and moved.grey
    np.testing.assert_array_equal(moved(rgb, keep_crops=True)[0].crop, face.crop)


def test_grey_training_faces_are_grey_in_the_loader():
    from fec.data import build_dataset

    cfg = load_config(config("quickstart_affect_va.yaml"), ["INPUT.FACE_COLOR", "grey"])
    image = build_dataset(cfg, "synthetic_affectnet_va_train", is_train=True)[(0, 5)]["image"]
    assert (image == image[:1]).all()
    colour = build_dataset(load_config(config("quickstart_affect_va.yaml")), "synthetic_affectnet_va_train",
                           is_train=False)[0]["image"]
    assert not (colour == colour[:1]).all()


def test_a_config_with_the_former_affectnet_key_still_loads(tmp_path):
    old = tmp_path / "old.yaml"
    old.write_text("MODEL:\n  META_ARCHITECTURE: AffectRegressor\nDATASETS:\n  AFFECTNET:\n    BOX_EXPANSION: 0.25\n")
    cfg = load_config(str(old))
    assert cfg.INPUT.FACE_BOX_EXPANSION == 0.25 and "AFFECTNET" not in cfg.DATASETS
    assert load_config(None, ["DATASETS.AFFECTNET.BOX_EXPANSION", "0.3"]).INPUT.FACE_BOX_EXPANSION == 0.3
    with pytest.raises(ValueError, match="FACE_COLOR"):
        load_config(None, ["INPUT.FACE_COLOR", "gray"])
