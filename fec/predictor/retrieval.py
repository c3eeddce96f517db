"""Expression retrieval: an index of the face embeddings of a folder of images, queried
for the nearest expressions by squared L2 distance (the distance the model was trained on).
A model without an embedding is served by what it does give (``Face.vector``: class
probabilities, valence/arousal, intensities).

An index is one ``.npz`` file, read without pickle: ``embeddings`` (N, D) float32 (the
faces' ``Face.vector``),
``paths`` (N,) relative to the indexed folder, ``boxes`` (N, 4) pixel boxes (x0, y0,
x1, y1) of the faces, ``scores`` (N,), ``done`` (the images processed, faces or not)
and ``meta`` (JSON: folder, checkpoint, detector, the model's full config). Building
one saves a ``.partial`` file now and then and when interrupted (Ctrl-C); run again
with the same arguments and it goes on from there.
"""
import json
import logging
import os
import time
from dataclasses import dataclass
from io import BytesIO

import cv2
import numpy as np
from tqdm import tqdm

from fec.data.crop import crop_face
from fec.utils.errors import InputError, MissingFileError, UserError
from fec.utils.io import atomic_write

from .images import list_images, read_image

logger = logging.getLogger(__name__)

INDEX_FORMAT = 1


@dataclass
class Index:
    embeddings: np.ndarray
    paths: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    done: np.ndarray
    meta: dict

    def __len__(self):
        return len(self.embeddings)


def _save(index, path):
    buf = BytesIO()
    np.savez(buf, embeddings=index.embeddings, paths=index.paths, boxes=index.boxes, scores=index.scores,
             done=index.done, meta=np.array(json.dumps(index.meta)))
    atomic_write(path, buf.getvalue())


def load_index(path):
    if not os.path.isfile(path):
        raise MissingFileError(f"index not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("embeddings", "paths", "boxes", "scores", "done", "meta")}
    except (OSError, ValueError, KeyError) as e:
        raise InputError(f"{path} is not a fec retrieval index ({e})") from None
    meta = json.loads(str(arrays.pop("meta")))
    if meta.get("format") != INDEX_FORMAT:
        raise InputError(f"{path}: index format {meta.get('format')}, this fec reads {INDEX_FORMAT}")
    return Index(meta=meta, **arrays)


def _cat(arrays, empty):
    arrays = [a for a in arrays if len(a)]
    return np.concatenate(arrays) if arrays else empty


def _model_config(cfg):
    """What the index records of the model: its config, less the device it ran on (an
    index built on a GPU is queried and resumed on any device)."""
    if cfg is None:
        return ""
    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.DEVICE = "auto"
    return cfg.dump()


def build_index(predictor, folder, out, checkpoint, save_every_s=60.0, progress=True):
    """Embed every face of the images under ``folder`` with ``predictor`` and write the
    index to ``out``. Returns the Index. Unreadable images and images without a face
    are skipped and counted in the log."""
    paths = list_images(folder)
    if not paths:
        raise InputError(f"no images under {folder}")
    meta = {"format": INDEX_FORMAT, "folder": os.path.abspath(folder), "checkpoint": os.path.abspath(checkpoint),
            "detector": predictor.detector_name, "config": _model_config(predictor.cfg)}
    partial = out + ".partial"
    index = None
    if os.path.exists(partial):
        index = load_index(partial)
        if index.meta != meta:
            raise InputError(f"{partial} was left by an index of another folder, model or detector; "
                             "delete it to start again")
        logger.info("Resuming from %s: %d of %d images done", partial, len(index.done), len(paths))
    done = set(index.done.tolist()) if index is not None else set()
    todo = [p for p in paths if p not in done]
    parts = {k: [getattr(index, k)] if index is not None else [] for k in ("embeddings", "paths", "boxes", "scores")}
    done_list = list(index.done) if index is not None else []
    unreadable, faceless = [], []
    last_save = time.monotonic()

    def snapshot():
        return Index(_cat(parts["embeddings"], np.zeros((0, 0), np.float32)),
                     _cat(parts["paths"], np.array([], dtype=str)),
                     _cat(parts["boxes"], np.zeros((0, 4), np.float32)),
                     _cat(parts["scores"], np.zeros((0,), np.float32)),
                     np.array(done_list, dtype=str), meta)

    bar = tqdm(total=len(paths), initial=len(paths) - len(todo), desc="index", unit="img", disable=not progress)
    try:
        for i in range(0, len(todo), predictor.batch_size):
            chunk, rgbs = [], []
            for rel in todo[i:i + predictor.batch_size]:
                try:
                    rgbs.append(read_image(os.path.join(folder, rel)))
                    chunk.append(rel)
                except UserError as e:  # not an image, or not readable: the others still count
                    unreadable.append(rel)
                    logger.warning("skipping %s", e)
            faces = [(rel, f) for rel, found in zip(chunk, predictor.predict_rgb(rgbs)) for f in found]
            faceless += sorted(set(chunk) - {rel for rel, _ in faces})
            # Faces and the images they came from are recorded together, so an interrupt
            # never leaves an image half-recorded.
            if faces:
                parts["embeddings"].append(np.stack([f.vector for _, f in faces]).astype(np.float32))
                parts["paths"].append(np.array([rel for rel, _ in faces], dtype=str))
                parts["boxes"].append(np.array([f.box for _, f in faces], np.float32))
                parts["scores"].append(np.array([f.score for _, f in faces], np.float32))
            done_list.extend(todo[i:i + predictor.batch_size])
            bar.update(len(todo[i:i + predictor.batch_size]))
            if time.monotonic() - last_save > save_every_s:
                _save(snapshot(), partial)
                last_save = time.monotonic()
    except KeyboardInterrupt:
        _save(snapshot(), partial)  # keep what is done; the next run goes on from here
        raise
    finally:
        bar.close()
    index = snapshot()
    if len(index) == 0:
        raise InputError(f"no face found in the {len(paths)} images under {folder} "
                         f"(detector {predictor.detector_name}; --detector none for folders of face crops)")
    _save(index, out)
    if os.path.exists(partial):
        os.remove(partial)
    if unreadable or faceless:
        logger.warning("%d unreadable images and %d images without a face were skipped (e.g. %s)",
                       len(unreadable), len(faceless), ", ".join((unreadable + faceless)[:3]))
    return index


def nearest(index, embedding, k=8):
    """(positions, squared L2 distances) of the ``k`` faces of ``index`` nearest to
    ``embedding``, nearest first (ties in index order)."""
    d = ((index.embeddings.astype(np.float64) - np.asarray(embedding, np.float64)[None]) ** 2).sum(1)
    order = np.argsort(d, kind="stable")[:k]
    return order, d[order]


def face_tile(rgb, box, detector, size):
    """A ``size``×``size`` picture of a face for the contact sheet: the box grown by
    crop_face's default margin and squared, or the whole image when the images are face
    crops."""
    if detector == "none":
        return cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = (float(v) for v in box)
    return crop_face(rgb, (x0 / w, x1 / w, y0 / h, y1 / h), size)


def _caption(tile, lines, height):
    strip = np.full((height, tile.shape[1], 3), 255, np.uint8)
    for j, text in enumerate(lines):
        # Shorten from the left: the end of a file name tells more than its folder.
        while len(text) > 4 and cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)[0][0] > tile.shape[1] - 4:
            text = "..." + text[4:]
        cv2.putText(strip, text, (2, 14 + 15 * j), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([tile, strip])


def make_grid(query_tile, query_name, tiles, names, distances, columns=5, caption_height=36):
    """RGB picture: the query (framed in red) then its neighbours, each captioned with
    its rank, squared distance and file name, ``columns`` to a row."""
    framed = cv2.copyMakeBorder(query_tile[3:-3, 3:-3], 3, 3, 3, 3, cv2.BORDER_CONSTANT, value=(220, 0, 0))
    cells = [_caption(framed, ["query", query_name], caption_height)]
    cells += [_caption(t, [f"{r + 1}: d2 {d:.4f}", n], caption_height)
              for r, (t, n, d) in enumerate(zip(tiles, names, distances))]
    blank = np.full_like(cells[0], 255)
    rows = []
    for i in range(0, len(cells), columns):
        row = cells[i:i + columns] + [blank] * (columns - len(cells[i:i + columns]) if len(cells) > columns else 0)
        rows.append(np.concatenate([np.pad(c, ((2, 2), (2, 2), (0, 0)), constant_values=255) for c in row], 1))
    return np.concatenate(rows)


def write_png(path, rgb):
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"cannot encode {path}")
    atomic_write(path, buf.tobytes())
