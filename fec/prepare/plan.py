"""What a preparation run has to do: the splits read from the official CSVs, the
optional subset, the shard, and the faces to cut from each URL."""
import hashlib
import os
from dataclasses import dataclass
from urllib.parse import urlsplit

import numpy as np

from fec.data.fec_csv import CSV_NAME, FECTable, read_fec_csv
from fec.utils.errors import InputError, MissingFileError
from fec.utils.io import atomic_copy, atomic_write

# The file names the catalog (fec/config/paths_catalog.py) reads under DATASETS.ROOT/fec.
SPLITS = ("train", "test")


@dataclass
class Split:
    name: str  # train or test
    source: str  # the CSV it was read from
    table: FECTable
    rows: np.ndarray  # sorted indices of the rows kept (all, or the --max-triplets subset)
    crop_ids: list  # crop id of each face of the table
    sha256: str  # of the source CSV

    @property
    def csv_name(self):
        return CSV_NAME.format(self.name)

    @property
    def subset(self):
        return len(self.rows) != len(self.table)


def parse_csv_arg(arg):
    """(split, path) of ``--csv [train=|test=]PATH``; the split comes from the file name
    (``...-train-...``) unless given."""
    head, sep, tail = arg.partition("=")
    if sep and head in SPLITS:
        return head, tail
    name = os.path.basename(arg).lower()
    found = [s for s in SPLITS if s in name]
    if len(found) != 1:
        raise InputError(f"--csv {arg}: cannot tell train from test by the file name; "
                         f"write --csv train={arg} or --csv test={arg}")
    return found[0], arg


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def select_rows(table, split, max_triplets, seed):
    """All rows, or ``max_triplets`` rows drawn at random among those with a unique
    majority vote (the others are never trained on), in file order."""
    if not max_triplets:
        return np.arange(len(table))
    candidates = np.flatnonzero(table.label > 0)
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    chosen = rng.choice(candidates, size=min(max_triplets, len(candidates)), replace=False)
    return np.sort(chosen)


def load_splits(csv_args, max_triplets=0, seed=0):
    splits, seen = [], {}
    for arg in csv_args:
        name, path = parse_csv_arg(arg)
        if name in seen:
            raise InputError(f"two CSVs for the {name} split: {seen[name]} and {path}")
        if not os.path.isfile(path):
            raise MissingFileError(f"--csv {path}: no such file")
        seen[name] = path
        table = read_fec_csv(path, strict=False)
        splits.append(Split(name, path, table, select_rows(table, name, max_triplets, seed),
                            table.face_crop_ids(), file_sha256(path)))
    return splits


def face_box(table, i):
    """Box of face ``i`` as the CSV wrote it (six decimals, what crop_id sees), in float64."""
    return tuple(float(f"{v:.6f}") for v in table.faces_box[i].tolist())


def faces_by_url(splits):
    """{url: [(crop_id, box), ...]} of the faces the kept rows use, each face once."""
    faces = {}
    for s in splits:
        for i in np.unique(s.table.triplets[s.rows]).tolist():
            faces.setdefault(s.table.faces_url[i], {})[s.crop_ids[i]] = face_box(s.table, i)
    return {url: sorted(boxes.items()) for url, boxes in faces.items()}


def url_host(url):
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def shard_of(url, num_shards):
    """Shard of a URL: a stable hash, the same on every machine and Python version."""
    return int.from_bytes(hashlib.sha1(url.encode("utf-8")).digest()[:8], "big") % num_shards


def host_interleaved(urls):
    """``urls`` ordered so consecutive ones come from different hosts as far as possible
    (one busy host does not hold every worker waiting for its slots); deterministic."""
    rank, keyed = {}, []
    for url in sorted(urls):
        host = url_host(url)
        k = rank.get(host, 0)
        rank[host] = k + 1
        keyed.append((k, host, url))
    return [url for _, _, url in sorted(keyed)]


def write_split_csv(split, out_dir):
    """DIR/faceexp-comparison-data-<split>-public.csv: the source CSV, or only the kept
    rows (their original lines) for a subset."""
    dst = os.path.join(out_dir, split.csv_name)
    same = os.path.exists(dst) and os.path.samefile(split.source, dst)
    if not split.subset:
        if not same:
            atomic_copy(split.source, dst)
        return dst
    if same:
        raise InputError(f"{dst}: writing a --max-triplets subset would overwrite its own source CSV; "
                         "read the CSV from another place")
    wanted = set(split.table.line[split.rows].tolist())
    # Read as read_fec_csv reads (universal newlines), so line numbers agree.
    with open(split.source, encoding="utf-8-sig", errors="replace") as f:
        lines = [line if line.endswith("\n") else line + "\n" for n, line in enumerate(f, 1) if n in wanted]
    atomic_write(dst, "".join(lines))
    return dst
