"""Writing packed face stores (fec.data.face_store): each face decoded and cropped by
the dataset's own loader, resized to INPUT.SIZE as the loader's transforms do, and
streamed to the file in order, a chunk at a time (the FEC train split at 224 px is
~20 GB), by ``workers`` processes. The file is written under a temporary name and
renamed when complete, so an interrupted pack leaves no store that looks usable; the
next pack removes what a killed one left."""
import glob
import logging
import multiprocessing as mp
import os

import numpy as np
from tqdm import tqdm

from .face_store import DATA_ALIGN, fingerprint, header_bytes, read_header, store_path
from .transforms import _resize

logger = logging.getLogger(__name__)

CHUNK = 64  # faces per task of a worker

_source = None  # (load, size, channels) of the dataset being packed, inherited by forked workers


def raw_dataset(cfg, name):
    """The catalog dataset ``name`` reading its own files (never a store), evaluation mode."""
    from fec.config import paths_catalog

    from .datasets import DATASETS

    factory, args = paths_catalog.get(name, cfg.DATASETS.ROOT)
    return DATASETS[factory](cfg, False, **args)


def face_loader(dataset):
    """(number of faces, load(i) → H×W×3 uint8 RGB) of a triplet or expression dataset."""
    if hasattr(dataset, "load_face"):
        return dataset.num_faces, dataset.load_face
    return len(dataset), dataset.load_image


def _load_chunk(bounds):
    load, size, channels = _source
    faces = np.empty((bounds[1] - bounds[0], size, size, channels), np.uint8)
    for k, i in enumerate(range(*bounds)):
        face = _resize(load(i), size)
        faces[k] = face[:, :, :channels]
    return faces


def _remove_leftovers(path):
    """Temporary files of packs that were killed (their process is gone)."""
    for tmp in glob.glob(glob.escape(path) + ".tmp.*"):
        try:
            pid = int(tmp.rsplit(".", 1)[1])
            os.kill(pid, 0)
            continue  # a pack still running
        except ProcessLookupError:
            pass
        except (ValueError, PermissionError):
            continue
        logger.info("removing %s, left by an interrupted pack", tmp)
        os.remove(tmp)


def pack_dataset(cfg, name, workers=0, progress=True, force=False):
    """Writes the store of catalog dataset ``name``; returns its path, or None when the
    dataset needs no store. An up-to-date store is kept unless ``force``."""
    global _source
    dataset = raw_dataset(cfg, name)
    fp = fingerprint(name, dataset, cfg.INPUT.SIZE)
    if fp is None:
        logger.info("%s renders its faces on the fly: it needs no store", name)
        return None
    path = store_path(cfg, name)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    _remove_leftovers(path)
    if not force and os.path.exists(path):
        try:
            if read_header(path)[1] == fp:
                logger.info("%s: %s is up to date", name, path)
                return path
        except ValueError:
            pass
    n, load = face_loader(dataset)
    size, channels = fp["size"], fp["channels"]
    _source = (load, size, channels)
    chunks = [(a, min(a + CHUNK, n)) for a in range(0, n, CHUNK)]
    tmp = f"{path}.tmp.{os.getpid()}"
    pool = mp.get_context("fork").Pool(workers) if workers > 0 else None
    try:
        with open(tmp, "wb") as f, tqdm(total=n, desc=f"packing {name}", unit=" faces", disable=not progress) as bar:
            f.write(header_bytes(fp))
            results = pool.imap(_load_chunk, chunks) if pool else map(_load_chunk, chunks)
            for faces in results:
                f.write(faces.tobytes())
                bar.update(len(faces))
            f.flush()
            os.fsync(f.fileno())
        if os.path.getsize(tmp) != DATA_ALIGN + n * size * size * channels:
            raise OSError(f"{tmp} came out at {os.path.getsize(tmp)} bytes: the disk may be full")
        os.replace(tmp, path)
    finally:
        _source = None
        if pool:
            pool.terminate()
            pool.join()
        if os.path.exists(tmp):
            os.remove(tmp)
    logger.info("%s: %d faces of %d×%d×%d in %s (%.1f MB)", name, n, size, size, channels, path,
                os.path.getsize(path) / 2**20)
    return path
