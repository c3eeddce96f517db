"""What every expression-classification and valence/arousal dataset provides.

An expression dataset holds N face images, each with an expression label, a
(valence, arousal) pair, or both; ``task`` says which, and picks the evaluator:

- ``"classification"``: item ``{"image", "label", "index"}``; ``labels`` (N,) int64
  into ``class_names``.
- ``"regression"``: item ``{"image", "valence_arousal", "index"}``;
  ``valence_arousal`` (N, 2) float32 in [-1, 1].
- ``"affect"``: both.
- ``"intensity"``: item ``{"image", "intensities", "index"}``; ``intensities`` (N, K)
  float32, one column per name in ``intensity_names`` (e.g. action-unit intensities).

``image`` is a 3×S×S uint8 tensor (S = INPUT.SIZE; grey images are replicated to three
channels), ``label`` an int64 scalar tensor, ``valence_arousal`` a float32 (2,)
tensor, ``index`` the item's index. The item is the same in training and evaluation
mode; training mode only augments the image.
"""
import numpy as np
import torch
from torch.utils.data import Dataset

from fec.data.samplers import sample_generator, split_key
from fec.data.transforms import apply_transform

TASKS = ("classification", "regression", "affect", "intensity")

# FER2013's classes in label order (``emotion`` 0-6) and its faces' side in pixels,
# defined here only (the configs list the names for the classifier head).
FER2013_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER_SIZE = 48
AFFECTNET_CLASSES = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt")


def grey_to_rgb(img):
    """H×W uint8 grey → H×W×3 uint8, the channel replicated, so any backbone takes it."""
    return np.repeat(img[:, :, None], 3, axis=2)


class ExpressionDataset(Dataset):
    """Subclasses implement ``load_image(i)`` → H×W×3 uint8 RGB array."""

    def __init__(self, name, task, class_names, labels=None, valence_arousal=None, is_train=True, source=None,
                 intensities=None, intensity_names=()):
        # ``source``: the file the data came from, named in errors.
        self.source = source or name
        if task not in TASKS:
            raise ValueError(f"{name}: task must be one of {TASKS}, got {task!r}")
        self.name, self.task, self.is_train = name, task, is_train
        self.class_names = list(class_names)
        self._labels = None if labels is None else torch.as_tensor(np.asarray(labels), dtype=torch.int64)
        self._va = None if valence_arousal is None else torch.as_tensor(
            np.asarray(valence_arousal, dtype=np.float32).reshape(-1, 2))
        if task in ("classification", "affect") and self._labels is not None:
            bad = (self._labels < 0) | (self._labels >= len(self.class_names))
            if bad.any():
                raise ValueError(f"{name}: label {int(self._labels[bad][0])} is outside 0..{len(self.class_names) - 1}")
        if task in ("regression", "affect") and self._va is None:
            raise ValueError(f"{name}: task {task!r} needs valence/arousal values")
        if self._labels is not None and self._va is not None and len(self._labels) != len(self._va):
            raise ValueError(f"{name}: {len(self._labels)} labels but {len(self._va)} valence/arousal pairs")
        self.intensity_names = list(intensity_names)
        self._intensities = None
        if intensities is not None:
            self._intensities = torch.as_tensor(np.asarray(intensities, dtype=np.float32))
            if self._intensities.dim() != 2 or self._intensities.shape[1] != len(self.intensity_names):
                raise ValueError(f"{name}: intensities must be (N, {len(self.intensity_names)}), one column per "
                                 f"name in {self.intensity_names}, got {tuple(self._intensities.shape)}")
        if task == "intensity" and self._intensities is None:
            raise ValueError(f"{name}: task 'intensity' needs intensity values")
        # Set by make_data_loader: callable(H×W×3 uint8 array, torch.Generator or None)
        # returning a 3×S×S uint8 tensor (or, for INPUT.AUGMENT_ON device, it and its parameters).
        self.transform = None
        # Set by make_data_loader with DATASETS.PACKED: a fec.data.face_store.FaceStore
        # whose row i is image i, read instead of load_image.
        self.store = None

    @property
    def labels(self):
        """(N,) int64 class indices into ``class_names``."""
        if self._labels is None:
            raise ValueError(f"{self.source} has no expression labels: it can be predicted on, "
                             "not trained or evaluated on")
        return self._labels

    @property
    def valence_arousal(self):
        """(N, 2) float32 valence and arousal in [-1, 1]."""
        if self._va is None:
            raise ValueError(f"{self.source} has no valence/arousal values")
        return self._va

    @property
    def intensities(self):
        """(N, K) float32 intensities, columns as ``intensity_names``."""
        if self._intensities is None:
            raise ValueError(f"{self.source} has no intensity values")
        return self._intensities

    @property
    def has_labels(self):
        return self._labels is not None

    def load_image(self, i):
        raise NotImplementedError

    def __len__(self):
        raise NotImplementedError

    def __getitem__(self, key):
        index, seed = split_key(key)
        gen = sample_generator(seed)
        img = self.load_image(index) if self.store is None else self.store.face(index)
        image, params = apply_transform(self.transform, img, gen)
        item = {"image": image, "index": index}
        if params is not None:  # INPUT.AUGMENT_ON device: applied to the batch
            item["augment"] = params
        # Fresh tensors, not views: a view would carry the whole (N,) storage with it.
        # An unlabelled file (prediction only) gives items without a label.
        if self.task in ("classification", "affect") and self._labels is not None:
            item["label"] = torch.tensor(int(self._labels[index]), dtype=torch.int64)
        if self.task in ("regression", "affect"):
            item["valence_arousal"] = self._va[index].clone()
        if self.task == "intensity":
            item["intensities"] = self._intensities[index].clone()
        return item
