"""Packed face stores: every face of a dataset decoded and cropped once, at INPUT.SIZE,
in one uint8 file that training memory-maps (DATASETS.PACKED). Every rank and loader
worker on a machine maps the same file, so the faces sit once in the page cache.

A store file is ``<DATASETS.PACKED_DIR>/<dataset name>.faces``:

    FECFACES\\n | header length (8 bytes, little-endian) | JSON header | zero padding
    | N × S × S × C uint8 faces, row i = face i of the dataset, from offset DATA_ALIGN

The header holds ``shape`` and the ``fingerprint`` of what the store was made from:
the dataset name, the SHA-1 of its CSV files, the SHA-1 of its face keys in order
(FEC crop ids, AffectNet image paths and boxes, FER2013 CSV lines), its crop settings,
the size and the channels (1 for grey datasets). A dataset reads its store only when
the fingerprint is the one it would write now; anything else is an error that names
the difference and the command that rebuilds the store. tools/pack_faces.py writes
stores (fec.data.pack).
"""
import hashlib
import json
import os
import struct

import numpy as np

from fec.utils.errors import DatasetError

MAGIC = b"FECFACES\n"
DATA_ALIGN = 4096
FORMAT = 1


def store_dir(cfg):
    return cfg.DATASETS.PACKED_DIR or os.path.join(cfg.DATASETS.ROOT, "packed")


def store_path(cfg, name):
    return os.path.join(store_dir(cfg), f"{name}.faces")


def rebuild_command(cfg, name):
    return (f"python tools/pack_faces.py --config-file <your config> --datasets {name} "
            f"INPUT.SIZE {cfg.INPUT.SIZE} DATASETS.ROOT {cfg.DATASETS.ROOT}"
            + (f" DATASETS.PACKED_DIR {cfg.DATASETS.PACKED_DIR}" if cfg.DATASETS.PACKED_DIR else ""))


def _sha1_file(path, chunk=1 << 22):
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def fingerprint(name, dataset, size):
    """What a store of ``dataset`` at ``size`` px is made from, or None for a dataset
    that has no files to pack (synthetic ones render on the fly).

    ``dataset.pack_identity()`` gives {"sources": [files], "keys": [str per face],
    "settings": {crop settings}, "channels": 1 or 3}."""
    identity = getattr(dataset, "pack_identity", None)
    if identity is None:
        return None
    identity = identity()
    keys = hashlib.sha1("\n".join(identity["keys"]).encode("utf-8")).hexdigest()
    return {
        "format": FORMAT,
        "dataset": name,
        "sources": {os.path.basename(p): _sha1_file(p) for p in identity["sources"]},
        "faces": len(identity["keys"]),
        "face_keys_sha1": keys,
        "settings": identity["settings"],
        "size": int(size),
        "channels": int(identity["channels"]),
    }


def header_bytes(fp):
    shape = [fp["faces"], fp["size"], fp["size"], fp["channels"]]
    body = json.dumps({"shape": shape, "fingerprint": fp}, sort_keys=True).encode("utf-8")
    head = MAGIC + struct.pack("<Q", len(body)) + body
    if len(head) > DATA_ALIGN:
        raise ValueError(f"store header of {len(head)} bytes exceeds {DATA_ALIGN}")
    return head + b"\0" * (DATA_ALIGN - len(head))


def read_header(path):
    """(shape, fingerprint) of the store at ``path``; ValueError when it is not one."""
    with open(path, "rb") as f:
        head = f.read(DATA_ALIGN)
        size = os.fstat(f.fileno()).st_size
    if not head.startswith(MAGIC) or len(head) < len(MAGIC) + 8:
        raise ValueError(f"{path} is not a packed face store")
    (length,) = struct.unpack("<Q", head[len(MAGIC):len(MAGIC) + 8])
    try:
        meta = json.loads(head[len(MAGIC) + 8:len(MAGIC) + 8 + length])
        shape = tuple(int(v) for v in meta["shape"])
        fp = meta["fingerprint"]
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"{path} has a damaged header") from None
    if size != DATA_ALIGN + int(np.prod(shape)):
        raise ValueError(f"{path} holds {size - DATA_ALIGN} bytes of faces, its header says {shape}: "
                         "it is incomplete")
    return shape, fp


_FIELDS = {"format": "store format", "sources": "source files", "face_keys_sha1": "faces (ids or boxes)",
           "faces": "number of faces", "settings": "crop settings", "size": "size (INPUT.SIZE)",
           "channels": "channels"}


def _differences(have, want):
    out = []
    for key, label in _FIELDS.items():
        if have.get(key) != want.get(key):
            shown = key not in ("sources", "face_keys_sha1")
            out.append(f"{label}: store {have.get(key)}, now {want.get(key)}" if shown else f"{label} differ")
    return out


class FaceStore:
    """Row i of a store file as an S×S×3 uint8 array (grey rows replicated to three
    channels). Pickles as its path: a worker maps the file itself, never a copy. The
    map is copy-on-write: a face is a view of the page cache that a caller may even
    write to without touching the file or another process's view."""

    def __init__(self, path, shape):
        self.path, self.shape = path, tuple(shape)
        self._faces = None

    def __len__(self):
        return self.shape[0]

    def __getstate__(self):
        return {"path": self.path, "shape": self.shape, "_faces": None}

    @property
    def faces(self):
        if self._faces is None:
            self._faces = np.memmap(self.path, dtype=np.uint8, mode="c", offset=DATA_ALIGN, shape=self.shape)
        return self._faces

    def face(self, i):
        face = self.faces[i]
        return np.repeat(face, 3, axis=2) if face.shape[2] == 1 else face


def open_store(cfg, name, dataset):
    """The FaceStore of ``dataset`` (catalog ``name``) checked against the dataset as
    it is now, or None for a dataset that needs none."""
    want = fingerprint(name, dataset, cfg.INPUT.SIZE)
    if want is None:
        return None
    path = store_path(cfg, name)
    fix = f"rebuild it with: {rebuild_command(cfg, name)}"
    if not os.path.exists(path):
        raise DatasetError(f"DATASETS.PACKED is on but {name} has no packed store {path}; {fix}")
    try:
        shape, have = read_header(path)
    except ValueError as e:
        raise DatasetError(f"{e}; {fix}") from None
    diff = _differences(have, want)
    if diff:
        raise DatasetError(f"the packed store {path} was made from other data than {name} now: {'; '.join(diff)}; "
                         f"{fix}")
    return FaceStore(path, shape)
