"""Synthetic faces for every expression task: classes, valence/arousal, intensities.

The faces of fec.data.datasets.synthetic_faces (drawn from a 6-d expression vector), given
what FER2013 and AffectNet annotate, as a deterministic function of the vector:

- the category is the nearest prototype (Euclidean) among the style's classes:
  FER2013's seven (FER2013_CLASSES) or AffectNet's eight (AFFECTNET_CLASSES, which
  add contempt to the seven prototypes of the triplet data);
- valence and arousal are the classes' places on Russell's circumplex
  (``CIRCUMPLEX``) averaged with weights softmax(−d² / VA_TEMPERATURE) over the
  distances d to AffectNet's eight prototypes: a prototype lands near its own place
  (within 0.12), faces between two expressions in between, always within [−1, 1].

Three styles: ``"fer"`` renders FER2013-like 48×48 grey faces (the pixels the FER2013
CSV writer stores), ``"affectnet"`` and ``"rafdb"`` colour faces at ``render_size``
(with AffectNet's eight and RAF-DB's seven classes). The same function
of (seed, style, split) draws identities and expressions for the on-the-fly datasets
(catalog ``synthetic_fer_*``, ``synthetic_affectnet_*``, ``synthetic_affect_*``) and for
tools/make_synthetic_expressions.py, which writes them as FER2013 and AffectNet files.
"""
import logging
import zlib

import cv2
import numpy as np

from .triplet import DATASETS
from .expression import AFFECTNET_CLASSES, FER2013_CLASSES, FER_SIZE, ExpressionDataset, grey_to_rgb
from .ferplus import FERPLUS_CLASSES
from .rafdb import RAFDB_CLASSES
from .synthetic_faces import CATEGORY_NAMES, EXPRESSION_NAMES, EXPRESSION_SPREAD, PROTOTYPES, random_identities, render_face

logger = logging.getLogger(__name__)

# Contempt, absent from the triplet data's seven: a slight closed-mouth smile, narrowed
# eyes, brows drawn down, a touch of nose wrinkle. Columns as EXPRESSION_NAMES.
CONTEMPT_PROTOTYPE = np.array([0.35, -0.70, -0.10, -0.35, -0.55, 0.15], dtype=np.float32)
# AffectNet's, FER+'s and RAF-DB's names → the triplet data's
_SAME_AS = {"anger": "angry", "happiness": "happy", "sadness": "sad"}


def _prototypes(class_names):
    rows = [CONTEMPT_PROTOTYPE if c == "contempt" else PROTOTYPES[CATEGORY_NAMES.index(_SAME_AS.get(c, c))]
            for c in class_names]
    return np.stack(rows).astype(np.float32)


FER_PROTOTYPES = _prototypes(FER2013_CLASSES)
AFFECTNET_PROTOTYPES = _prototypes(AFFECTNET_CLASSES)
FERPLUS_PROTOTYPES = _prototypes(FERPLUS_CLASSES)
# "rafdb": colour faces like "affectnet", RAF-DB's seven classes.
STYLES = {"fer": (FER2013_CLASSES, FER_PROTOTYPES), "affectnet": (AFFECTNET_CLASSES, AFFECTNET_PROTOTYPES),
          "rafdb": (RAFDB_CLASSES, _prototypes(RAFDB_CLASSES))}

# (valence, arousal) of each AffectNet class, in AFFECTNET_CLASSES order.
CIRCUMPLEX = np.array(
    [
        [0.00, 0.00],  # neutral
        [0.75, 0.35],  # happy
        [-0.65, -0.35],  # sad
        [0.15, 0.75],  # surprise
        [-0.60, 0.70],  # fear
        [-0.60, 0.35],  # disgust
        [-0.55, 0.65],  # anger
        [-0.40, 0.15],  # contempt
    ],
    dtype=np.float64,
)
VA_TEMPERATURE = 0.5


def _squared_distances(expressions, prototypes):
    e = np.asarray(expressions, dtype=np.float64).reshape(-1, prototypes.shape[1])
    return ((e[:, None, :] - prototypes[None].astype(np.float64)) ** 2).sum(-1)


def expression_class(expressions, style):
    """(N,) int64: the nearest of the style's prototypes to each (N, 6) expression."""
    return _squared_distances(expressions, STYLES[style][1]).argmin(1).astype(np.int64)


def valence_arousal(expressions):
    """(N, 2) float32 valence and arousal in [-1, 1] of (N, 6) expressions."""
    d2 = _squared_distances(expressions, AFFECTNET_PROTOTYPES)
    w = np.exp(-(d2 - d2.min(1, keepdims=True)) / VA_TEMPERATURE)
    return ((w / w.sum(1, keepdims=True)) @ CIRCUMPLEX).astype(np.float32)


def render_fer_face(expression, identity, rng=None):
    """A FER2013-like face: 48×48 uint8 grey."""
    return cv2.cvtColor(render_face(expression, identity, FER_SIZE, rng), cv2.COLOR_RGB2GRAY)


class SyntheticExpressionDataset(ExpressionDataset):
    """``num_images`` synthetic faces of one split, ``images_per_identity`` per person
    (splits never share a person). Each face's class is drawn uniformly among the
    style's classes, its expression is that prototype plus Gaussian spread (clipped to
    [-1, 1]); its label and valence/arousal are then functions of the expression, and
    its intensities (task "intensity") are the expression itself, one per EXPRESSION_NAMES.

    Attributes beyond ExpressionDataset's: ``style``, ``expression_vectors`` (N, 6)
    float32, ``identities``, ``identity_of`` (N,) int64, ``render_size``.
    """

    def __init__(self, split, style, task, num_images, images_per_identity=8, seed=0, render_size=64,
                 is_train=True):
        if style not in STYLES:
            raise ValueError(f"style must be one of {sorted(STYLES)}, got {style!r}")
        if num_images < 1 or images_per_identity < 1:
            raise ValueError("num_images and images_per_identity must be positive")
        self.split, self.style, self.seed = split, style, int(seed)
        self.render_size = FER_SIZE if style == "fer" else int(render_size)
        class_names, prototypes = STYLES[style]
        num_identities = -(-num_images // images_per_identity)
        self.identities = random_identities(self.random_stream(0), num_identities)
        self.identity_of = np.arange(num_images, dtype=np.int64) // images_per_identity
        rng = self.random_stream(1)
        drawn = rng.integers(0, len(prototypes), num_images)
        spread = rng.normal(0.0, EXPRESSION_SPREAD, (num_images, prototypes.shape[1]))
        self.expression_vectors = np.clip(prototypes[drawn] + spread, -1, 1).astype(np.float32)
        labels = expression_class(self.expression_vectors, style)
        va = valence_arousal(self.expression_vectors)
        super().__init__(f"synthetic_{style}_{split}", task, class_names, labels, va, is_train,
                         intensities=self.expression_vectors, intensity_names=EXPRESSION_NAMES)
        counts = np.bincount(labels, minlength=len(class_names))
        logger.info("%s (%s): %d faces of %d identities; per class %s", self.name, task, num_images,
                    num_identities, ", ".join(f"{c} {n}" for c, n in zip(class_names, counts.tolist())))

    def random_stream(self, *keys):
        """A Generator seeded by (seed, style, split, *keys); streams 0, 1 and (4, i)
        are this dataset's own (identities, expressions, pixel noise of face i)."""
        return np.random.default_rng([self.seed, zlib.crc32(self.style.encode()), zlib.crc32(self.split.encode()),
                                      *keys])

    def __len__(self):
        return len(self.expression_vectors)

    def render(self, i):
        """Face ``i`` as rendered: 48×48 grey for "fer", render_size² RGB for "affectnet"."""
        i = int(i)
        args = (self.expression_vectors[i], self.identities[self.identity_of[i]])
        if self.style == "fer":
            return render_fer_face(*args, self.random_stream(4, i))
        return render_face(*args, self.render_size, self.random_stream(4, i))

    def load_image(self, i):
        img = self.render(i)
        return grey_to_rgb(img) if img.ndim == 2 else img


@DATASETS.register("SyntheticExpressionDataset")
def build_synthetic_affect_dataset(cfg, is_train, split, style, task):
    c = cfg.DATASETS.SYNTHETIC_AFFECT
    return SyntheticExpressionDataset(
        split, style, task,
        num_images=c.TRAIN_IMAGES if split == "train" else c.TEST_IMAGES,
        images_per_identity=c.IMAGES_PER_IDENTITY,
        seed=c.SEED,
        render_size=c.RENDER_SIZE or cfg.INPUT.SIZE,
        is_train=is_train,
    )
