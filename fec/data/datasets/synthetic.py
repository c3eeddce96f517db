"""Synthetic expression triplets: cartoon faces (synthetic_faces.py) annotated by
simulated raters (synthetic_annotators.py). The embedded default dataset (the real FEC
images cannot ship). Triplets with no unique majority are dropped. Everything is a
function of (seed, split): identities, expressions and triplets are drawn once, faces
are rendered on the fly in ``load_face``.
"""
import logging
import zlib

import numpy as np

from fec.data.fec_csv import majority_vote

from .synthetic_annotators import sample_clear_triplets, sample_triplets, simulate_votes
from .synthetic_faces import Identity, random_identities, render_face, sample_expressions
from .triplet import DATASETS, TripletDataset

logger = logging.getLogger(__name__)


def _split_key(split):
    return zlib.crc32(split.encode("utf-8"))


class SyntheticTripletDataset(TripletDataset):
    """Rendered faces and simulated FEC annotations for one split.

    Attributes beyond TripletDataset's: ``expression_vectors`` (N, K) float32,
    ``categories`` (N,) int64 into CATEGORY_NAMES, ``identity_of`` (N,) int64,
    ``identities`` (num_identities, len(Identity._fields)) float64, ``votes`` (M, 6)
    1/2/3 naming the odd one out in the stored (a, b, c) order (so the majority is 3),
    ``annotators`` (M, 6) annotator ids, ``num_dropped`` triplets without a unique majority.
    """

    def __init__(self, split, num_identities, faces_per_identity, num_triplets, seed=0,
                 annotator_noise=0.1, render_size=64, is_train=True, min_gap=0.0):
        self.split, self.seed, self.render_size = split, int(seed), int(render_size)
        # One stream per purpose, so that e.g. more triplets never change the faces.
        self.identities = random_identities(self.random_stream(0), num_identities)
        self.identity_of = np.repeat(np.arange(num_identities), faces_per_identity)
        expressions, self.categories = sample_expressions(self.random_stream(1), len(self.identity_of))
        if min_gap > 0:
            faces, types = sample_clear_triplets(self.random_stream(2), expressions, self.categories,
                                                 self.identity_of, num_triplets, min_gap)
        else:
            faces, types = sample_triplets(self.random_stream(2), self.categories, self.identity_of, num_triplets)
        annotators, votes = simulate_votes(self.random_stream(3), expressions, faces, annotator_noise)

        odd = majority_vote(votes)[0].astype(np.int64)
        keep = odd > 0
        self.num_dropped = int((~keep).sum())
        # New order per kept triplet: the majority pair in its sampled order, then the odd one.
        odd0 = odd[keep] - 1
        order = np.stack([np.where(odd0 == 0, 1, 0), np.where(odd0 == 2, 1, 2), odd0], 1)
        triplets = np.take_along_axis(faces[keep], order, 1)
        # Translate each vote from the sampled position to its position in the new order.
        new_pos = order.argsort(1)
        self.votes = np.take_along_axis(new_pos, votes[keep] - 1, 1) + 1
        self.annotators = annotators[keep]
        super().__init__(f"synthetic_fec_{split}", triplets, types[keep], len(self.identity_of), is_train)
        self.expression_vectors = expressions  # after TripletDataset's init, which sets None
        logger.info(
            "%s: %d faces of %d identities, %d triplets (%s), %d dropped with no unique majority",
            self.name, self.num_faces, num_identities, len(self.triplets),
            ", ".join(f"{k} {v}" for k, v in self.type_counts().items()), self.num_dropped,
        )

    def random_stream(self, *keys):
        """A Generator seeded by (seed, split, *keys); streams 0-4 are this dataset's
        own (identities, expressions, triplets, votes, pixel noise of face i: (4, i))."""
        return np.random.default_rng([self.seed, _split_key(self.split), *keys])

    def identity(self, person):
        return Identity(*(float(v) for v in self.identities[person]))

    def load_face(self, i):
        i = int(i)
        return render_face(self.expression_vectors[i], self.identities[self.identity_of[i]], self.render_size,
                           self.random_stream(4, i))


@DATASETS.register("SyntheticTripletDataset")
def build_synthetic_triplet_dataset(cfg, is_train, split):
    c = cfg.DATASETS.SYNTHETIC
    train = split == "train"
    return SyntheticTripletDataset(
        split,
        num_identities=c.TRAIN_IDENTITIES if train else c.TEST_IDENTITIES,
        faces_per_identity=c.FACES_PER_IDENTITY,
        num_triplets=c.TRAIN_TRIPLETS if train else c.TEST_TRIPLETS,
        seed=c.SEED,
        annotator_noise=c.ANNOTATOR_NOISE,
        render_size=c.RENDER_SIZE or cfg.INPUT.SIZE,
        is_train=is_train,
        min_gap=c.MIN_GAP,
    )
