"""``ExpressionPredictor``: a trained fec model, one call away from images.

    predictor = ExpressionPredictor.from_config("config/quickstart.yaml", "output/quickstart/model_final.pth")
    faces = predictor("photo.jpg")                    # one image → list of Face
    faces = predictor([frame_bgr, pil_img], color="bgr")  # several → one list per image

It finds the faces, crops each as the training faces were cropped
(``fec.data.crop.crop_face``: the detector's box grown by INPUT.FACE_BOX_EXPANSION,
squared, clipped, resized to INPUT.SIZE, grey when INPUT.FACE_COLOR is grey; both
read from the config the checkpoint records, else the config.yaml beside it, else the
given config: ``crop_settings``), runs the crops of all images through the model in
batches, and reads the model's eval outputs by the keys every meta-architecture
declares (fec.modeling.meta_arch.base.OUTPUTS): ``embedding`` (unit vector), ``logits``
(softmax probabilities, with MODEL.CLASSIFIER.CLASS_NAMES), ``valence_arousal``,
``intensities`` (with MODEL.INTENSITY.NAMES). A model may give several.
"""
import os
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import yaml
from yacs.config import CfgNode

from fec.config import load_config
from fec.config.setup import rename_old_keys
from fec.data.crop import BOX_EXPANSION, crop_face, grey_face
from fec.data.detect import build_detector
from fec.data.transforms import EvalTransform
from fec.modeling import build_model
from fec.modeling.meta_arch.base import check_output_keys
from fec.utils.checkpoint import Checkpointer, device_of
from fec.utils.device import resolve_device

from .images import is_batch, to_rgb


@dataclass
class Face:
    """One face found in input image ``image_index``.

    ``box``: the detector's box (x0, y0, x1, y1) in pixels of the input image (the
    crop the model saw is this box grown by the model's INPUT.FACE_BOX_EXPANSION and
    squared). ``score``: the detector's
    score (see fec.data.detect). Then what the model gives: ``embedding`` (D,)
    unit-norm; ``probabilities`` (C,) summing to 1 over ``class_names``; ``valence``
    and ``arousal`` in the model's scale ([-1, 1] when trained on AffectNet);
    ``intensities`` (K,) named by ``intensity_names``.
    ``crop``: the S×S×3 RGB model input, when asked for with ``keep_crops``.
    """

    image_index: int
    box: tuple
    score: float
    embedding: Optional[np.ndarray] = None
    probabilities: Optional[np.ndarray] = None
    class_names: Optional[tuple] = None
    valence: Optional[float] = None
    arousal: Optional[float] = None
    intensities: Optional[np.ndarray] = None
    intensity_names: Optional[tuple] = None
    crop: Optional[np.ndarray] = None

    @property
    def vector(self):
        """Everything the model says about the expression, as one float32 vector (what
        retrieval compares faces by): the embedding, class probabilities,
        valence/arousal and intensities that the model gives, in that order."""
        parts = [self.embedding, self.probabilities,
                 None if self.valence is None else np.array([self.valence, self.arousal]), self.intensities]
        return np.concatenate([np.asarray(p, np.float32).reshape(-1) for p in parts if p is not None])

    @property
    def label(self):
        """(class name, probability) of the most probable class, or None."""
        if self.probabilities is None:
            return None
        k = int(np.argmax(self.probabilities))
        return self.class_names[k], float(self.probabilities[k])

    def to_dict(self):
        """JSON-ready fields (the crop left out)."""
        out = {"image_index": self.image_index, "box": [round(float(v), 2) for v in self.box],
               "score": float(self.score)}
        if self.embedding is not None:
            out["embedding"] = [float(v) for v in self.embedding]
        if self.probabilities is not None:
            out["probabilities"] = {n: float(p) for n, p in zip(self.class_names, self.probabilities)}
        if self.valence is not None:
            out["valence"], out["arousal"] = self.valence, self.arousal
        if self.intensities is not None:
            out["intensities"] = {n: float(v) for n, v in zip(self.intensity_names, self.intensities)}
        return out


def class_names_from_config(cfg):
    """MODEL.CLASSIFIER.CLASS_NAMES, or () where the config has none."""
    node = cfg.MODEL.get("CLASSIFIER")
    return tuple(node.get("CLASS_NAMES", ())) if node is not None else ()


def intensity_names_from_config(cfg):
    """MODEL.INTENSITY.NAMES, or () where the config has none."""
    node = cfg.MODEL.get("INTENSITY")
    return tuple(node.get("NAMES", ())) if node is not None else ()


def interpret_outputs(outputs, class_names=()):
    """A model's eval outputs (dict of (N, ...) tensors) → dict of NumPy arrays:
    ``embedding`` (N, D), ``probabilities`` (N, C) (softmax of ``logits``),
    ``valence_arousal`` (N, 2), ``intensities`` (N, K). Keys it does not know are an
    error, not ignored."""
    check_output_keys(outputs)
    out = {}
    if "embedding" in outputs:
        out["embedding"] = outputs["embedding"].float().cpu().numpy()
    if "logits" in outputs:
        logits = outputs["logits"].float()
        if class_names and len(class_names) != logits.shape[1]:
            raise ValueError(f"MODEL.CLASSIFIER.CLASS_NAMES has {len(class_names)} names but the model gives "
                             f"{logits.shape[1]} logits")
        out["probabilities"] = torch.softmax(logits, dim=1).cpu().numpy()
    for key in ("valence_arousal", "intensities"):
        if key in outputs:
            out[key] = outputs[key].float().cpu().numpy()
    return out


def _recorded_input(text):
    """INPUT.FACE_BOX_EXPANSION and INPUT.FACE_COLOR of a config's YAML text (an older
    config's DATASETS.AFFECTNET.BOX_EXPANSION too), those it has."""
    root = yaml.safe_load(text) if text else None
    if not isinstance(root, dict):
        return {}
    node = root.get("INPUT") or {}
    found = {k: node[k] for k in ("FACE_BOX_EXPANSION", "FACE_COLOR") if k in node}
    old = ((root.get("DATASETS") or {}).get("AFFECTNET") or {}).get("BOX_EXPANSION")
    if "FACE_BOX_EXPANSION" not in found and old is not None:
        found["FACE_BOX_EXPANSION"] = old
    return found


def crop_settings(cfg, ckpt=None, recorded=None):
    """(box expansion, grey) of the training faces: INPUT.FACE_BOX_EXPANSION and
    INPUT.FACE_COLOR as the checkpoint records them (``recorded``: the config text
    Checkpointer stores), else as the config.yaml beside ``ckpt`` (the run's OUTPUT_DIR)
    records them, else as ``cfg`` has them."""
    beside = os.path.join(os.path.dirname(os.path.abspath(ckpt)), "config.yaml") if ckpt else ""
    sources = [_recorded_input(recorded)]
    if os.path.isfile(beside):
        with open(beside) as f:
            sources.append(_recorded_input(f.read()))
    sources.append({"FACE_BOX_EXPANSION": cfg.INPUT.FACE_BOX_EXPANSION, "FACE_COLOR": cfg.INPUT.FACE_COLOR})
    expansion = next(s["FACE_BOX_EXPANSION"] for s in sources if "FACE_BOX_EXPANSION" in s)
    color = next(s["FACE_COLOR"] for s in sources if "FACE_COLOR" in s)
    return float(expansion), color == "grey"


def prediction_config(config=None, opts=()):
    """The frozen config of a model to predict with: ``config`` a YAML path, a CfgNode
    or None (the defaults), with ``opts`` (KEY VALUE pairs) merged in. Pretrained
    backbone weights are switched off: the checkpoint gives every weight, and building
    the model must not download anything."""
    if isinstance(config, CfgNode):
        config = config.clone()
        rename_old_keys(config)
        cfg = load_config(None)
        cfg.defrost()
        cfg.merge_from_other_cfg(config)
        cfg.merge_from_list(list(opts))
    else:
        cfg = load_config(config, opts).clone()
    cfg.defrost()
    cfg.MODEL.BACKBONE.WEIGHTS = ""
    cfg.MODEL.WEIGHTS = ""
    cfg.freeze()
    return cfg


class ExpressionPredictor:
    """``model``: a fec model (eval input ``{"image": (N, 3, S, S) uint8 RGB}``).
    ``detector``: "mtcnn" (default), "haar", "none" (inputs are face crops) or a callable
    as in fec.data.detect. ``device``: where the model runs (None: where it is).
    ``box_expansion``: how much the detector's box is grown (of its longer side) before
    squaring; ``grey``: turn the crops grey (replicated to
    three channels), for models trained on grey faces. ``seconds``: time spent per
    stage (detect, crop, model) since the last ``reset_timings``."""

    def __init__(self, model, input_size, detector="mtcnn", class_names=(), batch_size=64, device=None,
                 min_score=0.9, min_face_size=20, box_expansion=BOX_EXPANSION, grey=False, intensity_names=()):
        # the model stays where it is unless told otherwise
        self.device = device_of(model) if device is None else torch.device(device)
        self.model = model.to(self.device).eval()
        self.input_size = int(input_size)
        self.transform = EvalTransform(self.input_size)
        self.detector = build_detector(detector, self.device, min_face_size, min_score) \
            if isinstance(detector, str) else detector
        self.detector_name = getattr(self.detector, "name", type(self.detector).__name__)
        self.class_names = tuple(class_names)
        self.intensity_names = tuple(intensity_names)
        self.batch_size = int(batch_size)
        self.box_expansion = float(box_expansion)
        self.grey = bool(grey)
        self.seconds = defaultdict(float)
        self.cfg = None

    @classmethod
    def from_config(cls, config, ckpt, opts=(), detector="mtcnn", device=None, batch_size=None, **kwargs):
        """Build the model that ``config`` (a YAML file, a CfgNode) describes, load the
        weights of ``ckpt`` (a fec checkpoint or a plain state_dict; loaded with
        weights_only=True) and wrap it. ``device``: "cpu", "cuda", ...; None follows
        MODEL.DEVICE ("auto": the GPU when there is one). Box expansion and grey follow
        the training run's record (``crop_settings``) unless given."""
        cfg = prediction_config(config, opts)
        kwargs.setdefault("intensity_names", intensity_names_from_config(cfg))
        if device is not None:
            cfg.defrost()
            cfg.MODEL.DEVICE = str(device)
            cfg.freeze()
        dev = resolve_device(cfg)
        model = build_model(cfg)
        checkpointer = Checkpointer(model)
        checkpointer.load(str(ckpt))
        expansion, grey = crop_settings(cfg, str(ckpt), checkpointer.loaded_config)
        kwargs.setdefault("box_expansion", expansion)
        kwargs.setdefault("grey", grey)
        predictor = cls(model, cfg.INPUT.SIZE, detector, class_names_from_config(cfg),
                        batch_size or cfg.TEST.IMS_PER_BATCH, dev, **kwargs)
        predictor.cfg = cfg
        return predictor

    def reset_timings(self):
        self.seconds = defaultdict(float)

    def detect(self, rgbs):
        """Per RGB image: (boxes (K, 4) x0 y0 x1 y1 pixels, scores (K,)), best first."""
        start = time.perf_counter()
        found = self.detector(list(rgbs))
        self.seconds["detect"] += time.perf_counter() - start
        return found

    def crop(self, rgb, boxes):
        """The model input (S×S×3 RGB) for each pixel box of ``rgb``, cut as the FEC
        preparation cuts (fec.data.crop.crop_face)."""
        start = time.perf_counter()
        h, w = rgb.shape[:2]
        if self.detector_name == "none":  # the image is the crop, resized as at test time
            crops = [self.transform(rgb).permute(1, 2, 0).numpy() for _ in boxes]
        else:
            crops = [crop_face(rgb, (x0 / w, x1 / w, y0 / h, y1 / h), self.input_size, self.box_expansion)
                     for x0, y0, x1, y1 in np.asarray(boxes, np.float64).reshape(-1, 4)]
        if self.grey:
            crops = [grey_face(c) for c in crops]
        self.seconds["crop"] += time.perf_counter() - start
        return crops

    @torch.inference_mode()
    def run_model(self, crops):
        """S×S×3 RGB crops → interpret_outputs of the model, in batches of batch_size."""
        start = time.perf_counter()
        parts = []
        for i in range(0, len(crops), self.batch_size):
            batch = torch.stack([self.transform(c) for c in crops[i:i + self.batch_size]]).to(self.device)
            parts.append(interpret_outputs(self.model({"image": batch}), self.class_names))
        out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts else {}
        self.seconds["model"] += time.perf_counter() - start
        return out

    def predict_rgb(self, rgbs, keep_crops=False):
        """RGB arrays → one list of Face per image; the faces of all images go
        through the model together."""
        rgbs = list(rgbs)
        found = self.detect(rgbs)
        crops, faces = [], []
        for i, (rgb, (boxes, scores)) in enumerate(zip(rgbs, found)):
            crops += self.crop(rgb, boxes)
            faces += [Face(i, tuple(float(v) for v in b), float(s)) for b, s in zip(boxes, scores)]
        out = self.run_model(crops)
        for j, face in enumerate(faces):
            if "embedding" in out:
                face.embedding = out["embedding"][j]
            if "probabilities" in out:
                face.probabilities = out["probabilities"][j]
                face.class_names = self.class_names or tuple(f"class_{k}" for k in range(out["probabilities"].shape[1]))
            if "valence_arousal" in out:
                face.valence, face.arousal = (float(v) for v in out["valence_arousal"][j])
            if "intensities" in out:
                face.intensities = out["intensities"][j]
                face.intensity_names = self.intensity_names or tuple(
                    f"intensity_{k}" for k in range(out["intensities"].shape[1]))
            if keep_crops:
                face.crop = crops[j]
        per_image = [[] for _ in rgbs]
        for face in faces:
            per_image[face.image_index].append(face)
        return per_image

    def __call__(self, images, color="rgb", keep_crops=False):
        """``images``: one image or a list of them (paths, PIL images, NumPy arrays).
        NumPy arrays are read in ``color`` order: "rgb" (default; as PIL, scikit-image
        and the rest of fec give) or "bgr" (as cv2.imread and cv2.VideoCapture give).
        Returns a list of Face for one image, a list of such lists for several."""
        if is_batch(images):
            return self.predict_rgb([to_rgb(img, color) for img in images], keep_crops)
        return self.predict_rgb([to_rgb(images, color)], keep_crops)[0]
