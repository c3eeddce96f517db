"""A parsed FEC CSV cached beside it as ``<csv>.index.npz``, so that every rank of
every run does not parse the 450K-row train CSV again.

The cache holds the FECTable's arrays (URLs as one byte string with offsets, no
pickles) and a fingerprint of the CSV: its size, its modification time and a hash of
its first and last MiB. A cache whose fingerprint or format differs is rebuilt from the
CSV; one that cannot be written (a read-only dataset folder) is skipped with a warning.
"""
import hashlib
import json
import logging
import os
import zipfile

import numpy as np

from fec.utils.io import atomic_path

from .fec_csv import FECTable, read_fec_csv

FORMAT = 2
_EDGE = 1 << 20


def index_path(csv_path):
    return f"{csv_path}.index.npz"


def fingerprint(csv_path):
    """Size, mtime (ns) and SHA-1 of the first and last MiB of ``csv_path``."""
    st = os.stat(csv_path)
    h = hashlib.sha1()
    with open(csv_path, "rb") as f:
        h.update(f.read(_EDGE))
        if st.st_size > _EDGE:
            f.seek(max(_EDGE, st.st_size - _EDGE))
            h.update(f.read())
    return f"v{FORMAT}:{st.st_size}:{st.st_mtime_ns}:{h.hexdigest()}"


def _pack_strings(strings):
    """One UTF-8 byte array and the character offsets of each string in its text."""
    offsets = np.zeros(len(strings) + 1, np.int64)
    np.cumsum([len(s) for s in strings], out=offsets[1:])
    return np.frombuffer("".join(strings).encode("utf-8"), np.uint8), offsets


def _unpack_strings(data, offsets):
    text = data.tobytes().decode("utf-8")
    bounds = offsets.tolist()
    return [text[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


_ARRAYS = ("faces_box", "triplets", "types", "votes", "annotators", "label", "agreement", "line")


def _write(table, path, stamp, strict):
    urls, url_offsets = _pack_strings(table.faces_url)
    names, name_offsets = _pack_strings(table.annotator_names)
    meta = json.dumps({"fingerprint": stamp, "strict": bool(strict), "skipped": table.skipped})
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, meta=np.frombuffer(meta.encode("utf-8"), np.uint8), urls=urls, url_offsets=url_offsets,
                     names=names, name_offsets=name_offsets, **{k: getattr(table, k) for k in _ARRAYS})


def _read(path, csv_path, stamp, strict):
    """The cached table, or None when the cache is missing, stale or unreadable."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(z["meta"].tobytes().decode("utf-8"))
            if meta.get("fingerprint") != stamp or meta.get("strict") != bool(strict):
                return None
            arrays = {k: z[k] for k in _ARRAYS}
            urls = _unpack_strings(z["urls"], z["url_offsets"])
            names = _unpack_strings(z["names"], z["name_offsets"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    return FECTable(path=csv_path, faces_url=urls, annotator_names=names, skipped=meta.get("skipped", {}),
                    **arrays)


def load_fec_table(csv_path, strict=True):
    """:func:`read_fec_csv` of ``csv_path``, through its ``.index.npz`` cache."""
    logger = logging.getLogger(__name__)
    csv_path = str(csv_path)
    stamp = fingerprint(csv_path)
    path = index_path(csv_path)
    table = _read(path, csv_path, stamp, strict)
    if table is not None:
        return table
    table = read_fec_csv(csv_path, strict=strict)
    try:
        _write(table, path, stamp, strict)
        logger.info("Indexed %s into %s (%d triplets, %d faces)", csv_path, path, len(table), table.num_faces)
    except OSError as e:
        logger.warning("cannot write the index %s (%s); %s will be parsed again next time", path,
                       e.strerror or e, csv_path)
    return table
