"""An FEC-shaped CSV of any size, for tests and tools/benchmark.py read-fec-csv."""
import numpy as np

from fec.data.fec_csv import format_fec_row


def write_fec_like_csv(path, rows, seed=0):
    """An FEC-shaped CSV: ~156K faces per 450K rows (each face in ~9 triplets, some
    images with several faces), flickr-like quoted URLs, boxes with 3-4 decimals,
    hash-like annotator ids, votes agreeing ~75% of the time."""
    rng = np.random.default_rng(seed)
    n_faces = max(3, round(rows * 156 / 450))
    n_images = max(1, int(n_faces * 0.85))
    urls = [
        f"http://farm{f}.staticflickr.com/{s}/{p}_{h:010x}_b.jpg"
        for f, s, p, h in zip(rng.integers(1, 10, n_images), rng.integers(1000, 9999, n_images),
                              rng.integers(10**9, 10**11, n_images), rng.integers(0, 16**10, n_images))
    ]
    image_of_face = np.concatenate([np.arange(n_images), rng.integers(0, n_images, n_faces - n_images)])
    w = rng.uniform(0.12, 0.6, n_faces)
    h = np.clip(w * rng.uniform(0.8, 1.6, n_faces), 0.1, 0.95)
    left, top = rng.uniform(0, 1 - w), rng.uniform(0, 1 - h)
    boxes = np.stack([left, left + w, top, top + h], axis=1)
    decimals = np.where(rng.random(n_faces) < 0.5, 3, 4)[:, None]
    boxes = np.round(boxes * 10.0**decimals) / 10.0**decimals
    # Every face used at least once, then the rest at random; no face twice in a row.
    occ = np.concatenate([rng.permutation(n_faces), rng.integers(0, n_faces, max(0, rows * 3 - n_faces))])
    triplets = rng.permutation(occ)[: rows * 3].reshape(rows, 3)
    while True:
        dup = (triplets[:, 0] == triplets[:, 1]) | (triplets[:, 0] == triplets[:, 2]) | (triplets[:, 1] == triplets[:, 2])
        if not dup.any():
            break
        triplets[dup] = rng.integers(0, n_faces, (int(dup.sum()), 3))
    types = rng.choice(3, size=rows, p=[0.36, 0.33, 0.31])
    annotator_pool = [f"{a:016x}{b:016x}" for a, b in rng.integers(0, 2**63, (2000, 2)).tolist()]
    annotators = rng.integers(0, len(annotator_pool), (rows, 6))
    odd = rng.integers(1, 4, rows)[:, None]
    votes = np.where(rng.random((rows, 6)) < 0.75, odd, rng.integers(1, 4, (rows, 6)))
    box_list = boxes.tolist()
    with open(path, "w", newline="") as f:
        for t, ty, an, vo in zip(triplets.tolist(), types.tolist(), annotators.tolist(), votes.tolist()):
            f.write(format_fec_row([urls[image_of_face[i]] for i in t], [box_list[i] for i in t], ty,
                                   [(annotator_pool[a], v) for a, v in zip(an, vo)]) + "\n")
    return n_faces
