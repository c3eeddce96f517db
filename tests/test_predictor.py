"""fec.predictor: faces found, cropped as the FEC preparation crops, run through the
model in one batch, read by output key (embedding, class probabilities, valence/arousal)."""
import os

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data
from torch import nn

from fec.config import load_config
from fec.data.crop import crop_face
from fec.modeling import build_model
from fec.predictor import ExpressionPredictor, interpret_outputs, prediction_config, to_rgb
from fec.predictor.draw import face_label
from fec.predictor.predictor import crop_settings
from fec.utils.checkpoint import Checkpointer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICKSTART = os.path.join(ROOT, "config", "quickstart.yaml")
# Where the astronaut's face is in skimage.data.astronaut() (x0, y0, x1, y1), by eye.
ASTRONAUT_FACE = (175, 55, 275, 180)


@pytest.fixture(scope="module")
def predictor(quickstart_ckpt):
    return ExpressionPredictor.from_config(QUICKSTART, quickstart_ckpt, device="cpu")


def _inside(box, region):
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return region[0] < cx < region[2] and region[1] < cy < region[3]


def test_finds_the_astronaut_face_and_returns_a_unit_embedding(predictor):
    faces = predictor(data.astronaut())
    assert len(faces) == 1
    face = faces[0]
    assert _inside(face.box, ASTRONAUT_FACE) and 60 < face.box[2] - face.box[0] < 130
    assert face.score > 0.95 and face.image_index == 0
    assert face.embedding.shape == (16,) and face.embedding.dtype == np.float32
    assert abs(np.linalg.norm(face.embedding) - 1) < 1e-5
    assert face.probabilities is None and face.valence is None and face.label is None
    assert set(face.to_dict()) == {"image_index", "box", "score", "embedding"}


def test_crop_is_the_fec_preparation_crop_and_the_embedding_is_the_models(predictor):
    rgb = data.astronaut()
    face = predictor(rgb, keep_crops=True)[0]
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = face.box
    expected = crop_face(rgb, (x0 / w, x1 / w, y0 / h, y1 / h), 64)
    np.testing.assert_array_equal(face.crop, expected)
    with torch.inference_mode():
        direct = predictor.model({"image": torch.from_numpy(expected).permute(2, 0, 1)[None]})["embedding"][0]
    np.testing.assert_allclose(face.embedding, direct.numpy(), atol=1e-6)


def test_paths_pil_rgb_and_bgr_arrays_give_the_same_faces(predictor, tmp_path):
    rgb = data.astronaut()
    path = tmp_path / "astronaut.png"  # lossless: the same pixels come back
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    ref = predictor(rgb)[0]
    by_path = predictor(str(path))[0]
    by_pil = predictor(Image.fromarray(rgb))[0]
    by_bgr = predictor(np.ascontiguousarray(rgb[..., ::-1]), color="bgr")[0]
    for face in (by_path, by_pil, by_bgr):
        np.testing.assert_allclose(face.box, ref.box, atol=1e-3)
        np.testing.assert_allclose(face.embedding, ref.embedding, atol=1e-5)
    # Read as RGB, a BGR array is another picture: the colour order matters (an
    # untrained embedding moves little, but ten times more than the tolerance above).
    swapped = predictor(np.ascontiguousarray(rgb[..., ::-1]))
    assert len(swapped) == 1, "the face must be found in the swapped picture too, or nothing is compared"
    assert np.abs(swapped[0].embedding - ref.embedding).max() > 1e-4


def test_a_batch_goes_through_the_model_at_once(predictor):
    rgb = data.astronaut()
    blank = np.full((240, 320, 3), 128, np.uint8)
    calls = []
    forward = predictor.model.forward
    predictor.model.forward = lambda batch: calls.append(len(batch["image"])) or forward(batch)
    try:
        results = predictor([rgb, blank, np.ascontiguousarray(rgb[:, ::-1]), Image.fromarray(rgb)])
    finally:
        del predictor.model.forward
    assert [len(r) for r in results] == [1, 0, 1, 1]
    assert calls == [3]  # three faces of three images, one forward pass
    assert [r[0].image_index for r in results if r] == [0, 2, 3]
    # The mirrored face is found mirrored.
    assert abs(results[2][0].box[0] - (512 - results[0][0].box[2])) < 3


def test_haar_detector_finds_the_face_too(quickstart_ckpt):
    p = ExpressionPredictor.from_config(QUICKSTART, quickstart_ckpt, detector="haar", device="cpu")
    faces = p(data.astronaut())
    assert len(faces) == 1 and _inside(faces[0].box, ASTRONAUT_FACE)
    assert faces[0].score >= 1 and abs(np.linalg.norm(faces[0].embedding) - 1) < 1e-5
    assert set(p.seconds) == {"detect", "crop", "model"}


def test_bad_inputs_are_clear_errors(predictor, tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.jpg"):
        predictor(str(tmp_path / "nothere.jpg"))
    bad = tmp_path / "bad.jpg"
    bad.write_text("not a jpeg")
    with pytest.raises(ValueError, match="bad.jpg"):
        predictor(str(bad))
    with pytest.raises(ValueError, match="uint8"):
        predictor(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(ValueError, match="color"):
        predictor(data.astronaut(), color="hsv")
    with pytest.raises(TypeError):
        predictor(42)
    with pytest.raises(ValueError, match="unknown face detector"):
        ExpressionPredictor(nn.Identity(), 64, detector="yolo")


def test_grey_and_rgba_arrays_become_rgb():
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert (to_rgb(grey) == grey[..., None]).all() and to_rgb(grey).shape == (3, 4, 3)
    rgba = np.random.default_rng(0).integers(0, 255, (5, 6, 4), dtype=np.uint8)
    np.testing.assert_array_equal(to_rgb(rgba, "bgr"), rgba[..., 2::-1])


def test_checkpoint_of_another_model_is_refused(tmp_path):
    torch.manual_seed(0)
    cfg = load_config(QUICKSTART, ["MODEL.HEAD.EMBEDDING_DIM", "8"])
    Checkpointer(build_model(cfg), save_dir=str(tmp_path)).save("other", 0)
    with pytest.raises(RuntimeError, match="other.pth"):
        ExpressionPredictor.from_config(QUICKSTART, str(tmp_path / "other.pth"), device="cpu")
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        ExpressionPredictor.from_config(QUICKSTART, str(tmp_path / "missing.pth"), device="cpu")


def test_prediction_config_never_downloads_backbone_weights():
    cfg = prediction_config(QUICKSTART, ["MODEL.BACKBONE.WEIGHTS", "imagenet"])
    assert cfg.MODEL.BACKBONE.WEIGHTS == "" and cfg.INPUT.SIZE == 64
    assert crop_settings(cfg) == (0.15, False)


class TinyExpressionNet(nn.Module):
    """The eval contract of the classification and valence/arousal models: uint8
    images in, {"logits": (N, C)} and/or {"valence_arousal": (N, 2)} out."""

    def __init__(self, num_classes=0, regress=False):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, stride=4)
        self.cls = nn.Linear(8, num_classes) if num_classes else None
        self.va = nn.Linear(8, 2) if regress else None

    def forward(self, batch):
        x = self.conv(batch["image"].float() / 255).mean((2, 3))
        out = {}
        if self.cls is not None:
            out["logits"] = self.cls(x)
        if self.va is not None:
            out["valence_arousal"] = torch.tanh(self.va(x))
        return out


NAMES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def test_classifier_outputs_become_named_probabilities():
    p = ExpressionPredictor(TinyExpressionNet(num_classes=7), 64, detector="mtcnn", class_names=NAMES)
    faces = p([data.astronaut(), data.astronaut()])
    assert [len(f) for f in faces] == [1, 1]
    face = faces[0][0]
    assert face.probabilities.shape == (7,) and abs(face.probabilities.sum() - 1) < 1e-5
    assert (face.probabilities > 0).all() and face.class_names == NAMES
    name, prob = face.label
    assert name == NAMES[int(face.probabilities.argmax())] and prob == pytest.approx(face.probabilities.max())
    assert face.embedding is None and face.valence is None
    assert face_label(face) == f"{name} {prob:.2f}"
    assert sum(face.to_dict()["probabilities"].values()) == pytest.approx(1, abs=1e-5)


def test_regressor_and_joint_outputs():
    crops = [np.full((64, 64, 3), v, np.uint8) for v in (0, 90, 250)]
    reg = ExpressionPredictor(TinyExpressionNet(regress=True), 64, detector="none")
    faces = reg(crops)
    assert all(len(f) == 1 and -1 <= f[0].valence <= 1 and -1 <= f[0].arousal <= 1 for f in faces)
    assert faces[0][0].valence != faces[2][0].valence
    assert faces[0][0].box == (0.0, 0.0, 64.0, 64.0) and faces[0][0].probabilities is None
    assert face_label(faces[0][0]).startswith("V") and " A" in face_label(faces[0][0])
    joint = ExpressionPredictor(TinyExpressionNet(num_classes=3, regress=True), 64, detector="none")
    face = joint(crops[1])[0]
    assert face.class_names == ("class_0", "class_1", "class_2") and face.valence is not None
    assert face_label(face).startswith(face.label[0]) and "V" in face_label(face)


def test_embedding_label_is_the_distance_to_the_reference(predictor):
    face = predictor(data.astronaut())[0]
    assert face_label(face) == f"face {face.score:.2f}"
    assert face_label(face, reference=face.embedding) == "d2 0.00"
    assert face_label(face, reference=-face.embedding) == "d2 4.00"


def test_interpret_outputs_checks_keys_and_class_names():
    with pytest.raises(ValueError, match="boxes"):
        interpret_outputs({"boxes": torch.zeros(1, 4)})
    with pytest.raises(ValueError, match="CLASS_NAMES"):
        interpret_outputs({"logits": torch.zeros(2, 3)}, ("a", "b"))
    out = interpret_outputs({"logits": torch.tensor([[0.0, 0.0], [10.0, 0.0]])}, ("a", "b"))
    np.testing.assert_allclose(out["probabilities"][0], [0.5, 0.5])
    assert out["probabilities"][1, 0] > 0.99


FER_QUICKSTART = os.path.join(ROOT, "config", "quickstart_fer.yaml")
VA_QUICKSTART = os.path.join(ROOT, "config", "quickstart_affect_va.yaml")


def _fresh_checkpoint(config, out):
    """A freshly built model of ``config`` saved as training saves it (no training)."""
    torch.manual_seed(0)
    Checkpointer(build_model(prediction_config(config)), save_dir=str(out)).save("model_final", 0)
    return str(out / "model_final.pth")


def test_classifier_config_gives_probabilities_summing_to_one(tmp_path):
    p = ExpressionPredictor.from_config(FER_QUICKSTART, _fresh_checkpoint(FER_QUICKSTART, tmp_path), device="cpu")
    faces = p(data.astronaut(), keep_crops=True)
    assert len(faces) == 1 and _inside(faces[0].box, ASTRONAUT_FACE)
    face = faces[0]
    names = tuple(load_config(FER_QUICKSTART).MODEL.CLASSIFIER.CLASS_NAMES)
    assert face.class_names == names and face.probabilities.shape == (len(names),)
    assert abs(face.probabilities.sum() - 1) < 1e-5 and (face.probabilities >= 0).all()
    assert face.label[0] in names and face.embedding is None and face.valence is None
    # FER2013 faces are 48 px grey: the model sees the crop that way.
    assert face.crop.shape == (48, 48, 3) and (face.crop == face.crop[..., :1]).all()
    assert p.grey and p.box_expansion == 0.15


def test_regressor_config_gives_valence_and_arousal(tmp_path):
    # Its MODEL.WEIGHTS names a classifier checkpoint to start training from; predicting
    # needs only --ckpt.
    ckpt = _fresh_checkpoint(VA_QUICKSTART, tmp_path)
    p = ExpressionPredictor.from_config(VA_QUICKSTART, ckpt, device="cpu")
    results = p([data.astronaut(), np.full((100, 100, 3), 128, np.uint8)])
    assert [len(r) for r in results] == [1, 0]
    face = results[0][0]
    assert np.isfinite([face.valence, face.arousal]).all()
    assert face.probabilities is None and face.embedding is None
    assert face_label(face) == f"V{face.valence:+.2f} A{face.arousal:+.2f}"
    assert set(face.to_dict()) == {"image_index", "box", "score", "valence", "arousal"}


class MeanValenceArousal(nn.Module):
    """valence = the image's mean pixel / 255, arousal = minus half of it: each output
    says which face it came from and which column it was."""

    def forward(self, batch):
        m = batch["image"].float().mean((1, 2, 3)) / 255
        return {"valence_arousal": torch.stack([m, -m / 2], 1)}


def test_valence_arousal_order_and_faces_spanning_several_batches():
    levels = (10, 60, 110, 160, 210)
    crops = [np.full((64, 64, 3), v, np.uint8) for v in levels]
    p = ExpressionPredictor(MeanValenceArousal(), 64, detector="none", batch_size=2)  # batches of 2, 2, 1
    faces = p(crops)
    assert [len(f) for f in faces] == [1] * 5
    for v, (face,) in zip(levels, faces):
        assert face.valence == pytest.approx(v / 255, abs=1e-6)
        assert face.arousal == pytest.approx(-v / 510, abs=1e-6)


def test_crop_settings_come_from_the_checkpoint_then_its_config_yaml_then_the_config(tmp_path):
    cfg = prediction_config(QUICKSTART, ["INPUT.FACE_BOX_EXPANSION", "0.3", "INPUT.FACE_COLOR", "grey"])
    model = build_model(prediction_config(QUICKSTART))
    Checkpointer(model, save_dir=str(tmp_path), cfg=cfg).save("model_final", 0)
    ckpt = str(tmp_path / "model_final.pth")
    assert "config" in torch.load(ckpt, map_location="cpu", weights_only=True)
    (tmp_path / "config.yaml").write_text("INPUT:\n  FACE_BOX_EXPANSION: 0.6\n  FACE_COLOR: rgb\n")
    p = ExpressionPredictor.from_config(QUICKSTART, ckpt, detector="none", device="cpu")
    assert p.box_expansion == 0.3 and p.grey
    # a checkpoint that records no config: the config.yaml beside it
    Checkpointer(model, save_dir=str(tmp_path)).save("plain", 0)
    p = ExpressionPredictor.from_config(QUICKSTART, str(tmp_path / "plain.pth"), detector="none", device="cpu")
    assert p.box_expansion == 0.6 and not p.grey
    # neither: the given config
    os.remove(tmp_path / "config.yaml")
    given = ["INPUT.FACE_BOX_EXPANSION", "0.2"]
    p = ExpressionPredictor.from_config(QUICKSTART, str(tmp_path / "plain.pth"), given, detector="none", device="cpu")
    assert p.box_expansion == 0.2 and not p.grey
    assert crop_settings(cfg) == (0.3, True)
