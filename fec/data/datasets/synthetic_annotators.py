"""Simulated FEC annotation: triplets sampled like FEC's (one-, two- and three-class by
category, about a third each), and six simulated annotators per triplet voting for the
odd one out by comparing noisy Euclidean distances between expression vectors."""
import numpy as np

from .synthetic_faces import PROTOTYPES

NUM_ANNOTATORS = 40
VOTES_PER_TRIPLET = 6
# Probability that an annotator votes at random (a slip, whatever the faces).
LAPSE_RATE = 0.03
# Annotator noise is ANNOTATOR_NOISE times this, in expression units: 0.1 leaves a
# ceiling of about 95% on the default test split.
ANNOTATOR_NOISE_SCALE = 1.3


def _sample_categories(rng, types, sizes):
    """Categories of the three faces of each triplet, by type: (c, c, c), (c, c, d),
    (c, d, e), each category picked in proportion to its size so faces are used evenly."""
    num = len(sizes)
    cats = np.empty((len(types), 3), np.int64)

    def log_size(min_size, k=1):
        logp = np.where(sizes >= min_size, np.log(np.maximum(sizes, 1)), -np.inf)
        if np.isfinite(logp).sum() < k:
            raise ValueError(f"too few faces per category for all triplet types: category sizes {sizes.tolist()}")
        return logp

    def gumbel_top(k, n, min_size):
        # The top k of log-weights plus Gumbel noise: k categories without replacement.
        return np.argsort(-(log_size(min_size, k) + rng.gumbel(size=(n, num))), axis=1)[:, :k]

    for t in range(3):
        sel = np.flatnonzero(types == t)
        if len(sel) == 0:
            continue
        if t == 0:
            cats[sel] = np.repeat(gumbel_top(1, len(sel), 3), 3, axis=1)
        elif t == 1:
            first = gumbel_top(1, len(sel), 2)[:, 0]
            keys = log_size(1, 2) + rng.gumbel(size=(len(sel), num))
            keys[np.arange(len(sel)), first] = -np.inf
            cats[sel] = np.stack([first, first, keys.argmax(1)], 1)
        else:
            cats[sel] = gumbel_top(3, len(sel), 1)
    return cats


def sample_triplets(rng, categories, identity_of, num_triplets):
    """(M, 3) face indices and (M,) types. Types are a third each; within a category
    faces come from a reshuffled queue, so each face is used about equally often, and
    the three faces of a triplet come from different identities where possible."""
    types = rng.permutation(np.arange(num_triplets) % 3)
    members = [np.flatnonzero(categories == c) for c in range(len(PROTOTYPES))]
    cats = _sample_categories(rng, types, np.array([len(m) for m in members]))
    queues = [[[], 0] for _ in members]

    def draw(c, taken):
        q = queues[c]
        if q[1] == len(q[0]):
            q[0], q[1] = list(rng.permutation(members[c])), 0
        order, pos = q
        busy = {identity_of[f] for f in taken}
        for j in range(pos, len(order)):
            if identity_of[order[j]] not in busy:
                order[pos], order[j] = order[j], order[pos]
                q[1] += 1
                return order[pos]
        # Nothing left in this pass from another identity: any face not yet taken.
        rest = [f for f in members[c] if f not in taken]
        return rest[rng.integers(len(rest))]

    faces = np.empty((num_triplets, 3), np.int64)
    for m in range(num_triplets):
        taken = []
        for c in cats[m]:
            taken.append(draw(c, taken))
        faces[m] = taken
    # Shuffle within each triplet, so the odd category is not always third.
    return np.take_along_axis(faces, rng.random((num_triplets, 3)).argsort(1), 1), types


def pair_distances(expressions, faces):
    """(M, 3) Euclidean expression distances; column k is the pair that leaves out face k."""
    e = expressions[faces].astype(np.float64)  # (M, 3, K)
    return np.stack([np.linalg.norm(e[:, i] - e[:, j], axis=1) for i, j in ((1, 2), (0, 2), (0, 1))], 1)


def sample_clear_triplets(rng, expressions, categories, identity_of, num_triplets, min_gap):
    """Like ``sample_triplets``, keeping only triplets whose closest pair is closer than
    the next by at least ``min_gap`` (expression units): FEC's raters agree on most
    triplets, and near-ties neither teach nor measure much. A third of each type."""
    want = np.bincount(np.arange(num_triplets) % 3, minlength=3)
    kept = [[] for _ in range(3)]
    for _ in range(100):
        if all(sum(len(k) for k in kept[t]) >= want[t] for t in range(3)):
            break
        faces, types = sample_triplets(rng, categories, identity_of, max(2 * num_triplets, 300))
        d = np.sort(pair_distances(expressions, faces), 1)
        clear = d[:, 1] - d[:, 0] >= min_gap
        for t in range(3):
            kept[t].append(faces[clear & (types == t)])
    else:
        raise ValueError(f"too few triplets with MIN_GAP {min_gap}: lower DATASETS.SYNTHETIC.MIN_GAP")
    faces = np.concatenate([np.concatenate(kept[t])[: want[t]] for t in range(3)])
    types = np.repeat(np.arange(3), want)
    order = rng.permutation(num_triplets)
    return faces[order], types[order]


def simulate_votes(rng, expressions, faces, noise):
    """Six distinct annotators per triplet vote for the odd one out: (M, 6) annotator
    ids and (M, 6) votes 1/2/3 naming the face not in the closest pair, with distances
    perturbed by Gaussian noise (std ``noise`` × the annotator's own factor) and a
    ``LAPSE_RATE`` chance of a random vote."""
    m = len(faces)
    dist = pair_distances(expressions, faces)
    annotator_noise = rng.uniform(0.6, 1.4, NUM_ANNOTATORS)
    annotators = rng.random((m, NUM_ANNOTATORS)).argsort(1)[:, :VOTES_PER_TRIPLET]
    sigma = noise * ANNOTATOR_NOISE_SCALE * annotator_noise[annotators]
    perceived = dist[:, None, :] + rng.standard_normal((m, VOTES_PER_TRIPLET, 3)) * sigma[..., None]
    votes = perceived.argmin(2) + 1
    lapse = rng.random(votes.shape) < LAPSE_RATE
    votes[lapse] = rng.integers(1, 4, int(lapse.sum()))
    return annotators, votes



