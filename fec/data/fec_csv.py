"""The official FEC CSV: parsing, and the stable file name of a face crop.

One row (no header, 28 columns): three times ``url, left, right, top, bottom`` (box
normalised to [0, 1]), the triplet type, then six ``annotator_id, annotation`` pairs.
An annotation names the odd one out: 1 means images 2 and 3 are the similar pair.
"""
import csv
import gc
import hashlib
import itertools
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from fec.utils.errors import DatasetFormatError


def crop_id(url, box):
    """Stable file stem of the face crop of ``box`` in the image at ``url``.

    A hash of the URL and the box (normalised left, right, top, bottom, six decimals),
    never the URL itself: no collisions between hosts, no path tricks.
    """
    key = url.strip() + "|" + ",".join(f"{float(v):.6f}" for v in box)
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:20]


# Triplet type names, in the order of their codes 0, 1, 2 (every triplet dataset's
# ``types``).
TRIPLET_TYPES = ("ONE_CLASS_TRIPLET", "TWO_CLASS_TRIPLET", "THREE_CLASS_TRIPLET")
# The official files' names, per split ("train", "test").
CSV_NAME = "faceexp-comparison-data-{}-public.csv"
NUM_COLUMNS = 28
URL_COLUMNS = (0, 5, 10)
BOX_COLUMNS = tuple(c + k for c in URL_COLUMNS for k in range(1, 5))
TYPE_COLUMN = 15
ANNOTATOR_COLUMNS = tuple(range(16, 28, 2))
VOTE_COLUMNS = tuple(range(17, 28, 2))

_TYPE_CODES = {name: i for i, name in enumerate(TRIPLET_TYPES)}
_VOTE_CODES = {"1": 1, "2": 2, "3": 3}
# Rows per chunk: bounds the memory held as Python strings (~2 KB a row); smaller
# chunks cost no speed but a lower peak (450K rows: ~200 MB at 4096, ~240 at 16384).
_CHUNK_ROWS = 4096
# Row permutation that puts the similar pair first, indexed by majority label.
_SIMILAR_FIRST = np.array([[0, 1, 2], [1, 2, 0], [0, 2, 1], [0, 1, 2]])


@dataclass
class FECTable:
    """A parsed FEC CSV, column by column.

    Faces are the unique (url, box) pairs, in order of first appearance; boxes equal to
    six decimals (the precision of :func:`crop_id`) are the same face.
    """

    path: str
    faces_url: list  # N str
    faces_box: np.ndarray  # (N, 4) float32: left, right, top, bottom
    triplets: np.ndarray  # (M, 3) int64 face indices of images 1, 2, 3
    types: np.ndarray  # (M,) int8: 0/1/2 = one-/two-/three-class
    votes: np.ndarray  # (M, 6) int8 annotations, 1..3 (the odd one out)
    annotators: np.ndarray  # (M, 6) int32 indices into annotator_names
    annotator_names: list
    label: np.ndarray  # (M,) int8 majority annotation, 0 when no unique majority
    agreement: np.ndarray  # (M,) int8 annotators voting for the most voted image
    line: np.ndarray  # (M,) int32 1-based CSV line of each row
    skipped: dict = field(default_factory=dict)  # reason → rows skipped

    def __len__(self):
        return len(self.triplets)

    @property
    def num_faces(self):
        return len(self.faces_url)

    def face_crop_ids(self):
        """File stem of each face's crop (``<crop_id>.jpg``), face order."""
        return [crop_id(u, b) for u, b in zip(self.faces_url, self.faces_box.tolist())]

    def similar_pair_order(self):
        """(M, 3) int64 rows (a, b, c): (a, b) the majority similar pair, c the odd one.

        Rows without a unique majority (label 0) are -1: select ``label > 0`` first.
        """
        order = _SIMILAR_FIRST[self.label.astype(np.int64)]
        abc = np.take_along_axis(self.triplets, order, axis=1)
        abc[self.label == 0] = -1
        return abc


class _BadChunk(Exception):
    """Some row of a chunk is malformed; re-check it row by row."""


def _floats(strings):
    # numpy's own string parser, shared by the fast and the row-by-row path so that
    # both accept exactly the same numbers.
    try:
        return np.array(strings, dtype=np.float64)
    except ValueError:
        raise _BadChunk from None


def _box_problem(boxes):
    """(K, 4) boxes → (any outside [0, 1] or NaN, any with left >= right or top >= bottom)."""
    outside = not ((boxes >= 0.0) & (boxes <= 1.0)).all()
    return outside, bool(((boxes[:, 0] >= boxes[:, 1]) | (boxes[:, 2] >= boxes[:, 3])).any())


def _row_problem(row):
    """(reason, detail) of a malformed row, or None. Must agree with _convert_chunk."""
    if len(row) != NUM_COLUMNS:
        return "wrong column count", f"{len(row)} columns, expected {NUM_COLUMNS}"
    for c in URL_COLUMNS:
        if not row[c].strip():
            return "empty url", f"column {c + 1}"
    for c in BOX_COLUMNS:
        try:
            _floats([row[c]])
        except _BadChunk:
            return "bad float", f"{row[c]!r} in column {c + 1}"
    outside, empty = _box_problem(_floats([row[c] for c in BOX_COLUMNS]).reshape(3, 4))
    if outside:
        return "box outside [0, 1]", ",".join(row[c] for c in BOX_COLUMNS)
    if empty:
        return "empty box", "left >= right or top >= bottom: " + ",".join(row[c] for c in BOX_COLUMNS)
    if row[TYPE_COLUMN].strip() not in _TYPE_CODES:
        return "unknown triplet type", repr(row[TYPE_COLUMN])
    for c in VOTE_COLUMNS:
        if row[c].strip() not in _VOTE_CODES:
            return "bad annotation", f"{row[c]!r} in column {c + 1}, expected 1, 2 or 3"
    return None


def _codes(column, table):
    codes = [table.get(s, -1) for s in column]
    if -1 in codes:  # stray spaces are rare: strip only when needed
        codes = [table.get(s.strip(), -1) for s in column]
    return codes


def _vote_codes(columns):
    """(K, len(columns)) int8 annotations, -1 where not 1, 2 or 3."""
    strings = list(itertools.chain.from_iterable(columns))
    joined = "".join(strings)
    if len(joined) != len(strings):  # some field is not one character: "3 ", ""
        return np.array(_codes(strings, _VOTE_CODES), dtype=np.int8).reshape(len(columns), -1).T
    # One character each: read them as bytes rather than look up millions of strings.
    votes = np.frombuffer(joined.encode("ascii", "replace"), dtype=np.uint8).astype(np.int16) - ord("0")
    votes[(votes < 1) | (votes > 3)] = -1
    return votes.astype(np.int8).reshape(len(columns), -1).T


class _Interner:
    """Hashable → id, where the id is the running index of the key's first occurrence:
    one C-level dict pass per chunk, ids grow in first-seen order, ``dense`` makes
    them 0..N-1 at the end."""

    def __init__(self):
        self.ids, self.seen = {}, 0

    def add(self, keys):
        """(int64 ids of ``keys``, the keys new to the table in first-seen order)."""
        n = len(keys)
        codes = np.fromiter(map(self.ids.setdefault, keys, itertools.count(self.seen)), np.int64, n)
        new = np.flatnonzero(codes == np.arange(self.seen, self.seen + n))
        self.seen += n
        return codes, [keys[i] for i in new.tolist()]

    def remove(self, keys):
        """Undo the ``add`` of a chunk that failed its checks."""
        for k in keys:
            del self.ids[k]

    def dense(self, codes):
        """0..N-1 in first-seen order, from ids that ``add`` returned."""
        index = np.zeros(self.seen, dtype=np.int64)
        index[np.fromiter(self.ids.values(), np.int64, len(self.ids))] = np.arange(len(self.ids))
        return index[codes]


def _convert_chunk(rows, faces, annotators):
    """Arrays of a chunk of rows; raises _BadChunk if any row is malformed.

    ``faces`` interns each face's five fields joined into one string (cheaper to hash
    and compare than a tuple; no field of a one-line row holds a newline), so a box
    is parsed and checked once however many rows use it.
    """
    if set(map(len, rows)) != {NUM_COLUMNS}:
        raise _BadChunk
    cols = list(zip(*rows))
    types = np.array(_codes(cols[TYPE_COLUMN], _TYPE_CODES), dtype=np.int8)
    votes = _vote_codes([cols[c] for c in VOTE_COLUMNS])
    if (types < 0).any() or (votes < 0).any():
        raise _BadChunk
    # Row-major, so that faces are numbered in order of first appearance.
    fields = itertools.chain.from_iterable(zip(*(zip(*cols[c:c + 5]) for c in URL_COLUMNS)))
    keys = list(map("\n".join, fields))
    face_ids, new_faces = faces.add(keys)
    new_boxes = np.zeros((0, 4))
    if new_faces:
        parts = [k.split("\n") for k in new_faces]
        try:
            if not all(p[0].strip() for p in parts):
                raise _BadChunk
            new_boxes = _floats([p[1:] for p in parts])
            if any(_box_problem(new_boxes)):
                raise _BadChunk
        except _BadChunk:
            faces.remove(new_faces)
            raise
    names = list(itertools.chain.from_iterable(cols[c] for c in ANNOTATOR_COLUMNS))
    names = annotators.add(names)[0].reshape(6, -1).T
    return face_ids.reshape(-1, 3), new_boxes, types, votes, names


def majority_vote(votes):
    """(label, agreement) of (M, K) annotations 1/2/3: ``label`` (M,) int8 the vote with
    a unique majority, 0 where two votes tie for the most; ``agreement`` (M,) int8 how
    many annotators gave the most-given vote. The rule for the FEC CSV and the simulated
    annotators alike."""
    counts = np.stack([(votes == k).sum(axis=1) for k in (1, 2, 3)], axis=1)
    agreement = counts.max(axis=1)
    unique = (counts == agreement[:, None]).sum(axis=1) == 1
    label = np.where(unique, counts.argmax(axis=1) + 1, 0)
    return label.astype(np.int8), agreement.astype(np.int8)


def _merge_faces(urls, boxes):
    """Merges faces written differently ("0.5" / "0.50 ", " url") but equal once
    stripped and rounded to six decimals, as crop_id sees them. Returns (new index of
    each face, index of the first face of each merged one)."""
    if not urls:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    url_ids = {}
    url_ids = np.array([url_ids.setdefault(u, len(url_ids)) for u in urls], dtype=np.int64)
    # Boxes are in [0, 1], so six decimals fit in 20 bits: two int64 sort keys.
    q = np.rint(boxes * 1e6).astype(np.int64)
    k1 = (url_ids << 20) | q[:, 3]
    k2 = (q[:, 0] << 40) | (q[:, 1] << 20) | q[:, 2]
    order = np.lexsort((k2, k1))  # stable: the first of each group is its earliest
    s1, s2 = k1[order], k2[order]
    starts = np.ones(len(order), dtype=bool)
    starts[1:] = (s1[1:] != s1[:-1]) | (s2[1:] != s2[:-1])
    group = np.empty(len(order), dtype=np.int64)
    group[order] = np.cumsum(starts) - 1
    first = order[starts]
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first)] = np.arange(len(first))
    return rank[group], np.sort(first)


def _chunks(path):
    """(rows, 1-based line numbers) chunks of the non-blank rows of the file."""
    # Universal newlines turn CRLF into LF; trailing spaces are stripped where parsed.
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        start = 1
        while True:
            lines = list(itertools.islice(f, _CHUNK_ROWS))
            if not lines:
                return
            rows = list(csv.reader(lines))
            numbers = np.arange(start, start + len(lines), dtype=np.int32)
            start += len(lines)
            if len(rows) != len(lines):
                # A quote left open swallowed later lines: a row is one line in FEC.
                rows = [next(csv.reader([line]), []) for line in lines]
            if set(map(len, rows)) != {NUM_COLUMNS}:
                keep = [i for i, r in enumerate(rows) if len(r) > 1 or (r and r[0].strip())]
                rows, numbers = [rows[i] for i in keep], numbers[keep]
            if rows:
                yield rows, numbers


def read_fec_csv(path, strict=True):
    """Parse an official FEC CSV into an :class:`FECTable`.

    A malformed row raises DatasetFormatError (a ValueError) naming the file, the line and the reason when
    ``strict``; otherwise it is skipped and counted in ``table.skipped`` by reason.
    """
    path = str(path)
    # Millions of short-lived row lists: the cycle collector would scan them for nothing.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _read(path, strict)
    finally:
        if gc_was_enabled:
            gc.enable()


def _read(path, strict):
    faces, annotators = _Interner(), _Interner()
    skipped = Counter()
    parts, line_parts = [], []
    for rows, lines in _chunks(path):
        try:
            parts.append(_convert_chunk(rows, faces, annotators))
        except _BadChunk:
            keep = []
            for i, row in enumerate(rows):
                problem = _row_problem(row)
                if problem is None:
                    keep.append(i)
                elif strict:
                    raise DatasetFormatError(
                        f"{path}, line {lines[i]}: {problem[0]}: {problem[1]}; an FEC row is {NUM_COLUMNS} "
                        "comma-separated fields (3 × url,left,right,top,bottom, the triplet type, 6 × "
                        "annotator,1|2|3): fix or delete that line, or download the CSV again") from None
                else:
                    skipped[problem[0]] += 1
            if not keep:
                continue
            rows, lines = [rows[i] for i in keep], lines[keep]
            try:
                parts.append(_convert_chunk(rows, faces, annotators))
            except _BadChunk:
                raise RuntimeError(f"{path}: rows that pass the row checks fail the chunk checks") from None
        line_parts.append(lines)
    if parts:
        face_ids, boxes, types, votes, names = (np.concatenate(p) for p in zip(*parts))
    else:
        face_ids, boxes = np.zeros((0, 3), np.int64), np.zeros((0, 4))
        types, votes, names = np.zeros(0, np.int8), np.zeros((0, 6), np.int8), np.zeros((0, 6), np.int64)
    urls = [key.split("\n", 1)[0].strip() for key in faces.ids]
    merged, first = _merge_faces(urls, boxes)
    label, agreement = majority_vote(votes)
    return FECTable(
        path=path,
        faces_url=[urls[i] for i in first.tolist()],
        faces_box=boxes[first].astype(np.float32),
        triplets=merged[faces.dense(face_ids)],
        types=types,
        votes=votes,
        annotators=annotators.dense(names).astype(np.int32),
        annotator_names=list(annotators.ids),
        label=label,
        agreement=agreement,
        line=np.concatenate(line_parts) if line_parts else np.zeros(0, np.int32),
        skipped=dict(skipped),
    )


def format_fec_row(urls, boxes, triplet_type, annotations):
    """One line of the official CSV (no newline), URLs in double quotes.

    ``urls``: 3 str; ``boxes``: 3 × (left, right, top, bottom) in [0, 1];
    ``triplet_type``: 0/1/2 (or its name); ``annotations``: 6 × (annotator_id, 1..3).
    """
    if len(urls) != 3 or len(boxes) != 3 or len(annotations) != 6:
        raise ValueError("an FEC row has 3 urls, 3 boxes and 6 annotations")
    name = triplet_type if isinstance(triplet_type, str) else TRIPLET_TYPES[int(triplet_type)]
    if name not in _TYPE_CODES:
        raise ValueError(f"unknown triplet type {triplet_type!r}")
    fields = []
    for url, box in zip(urls, boxes):
        if not url.strip() or "\n" in url or "\r" in url:
            raise ValueError(f"url {url!r} is empty or spans lines")
        left, right, top, bottom = (float(v) for v in box)
        if not (0.0 <= left < right <= 1.0 and 0.0 <= top < bottom <= 1.0):
            raise ValueError(f"box {box!r} is not left < right, top < bottom in [0, 1]")
        fields.append('"' + url.replace('"', '""') + '"')
        # Six decimals: what crop_id keeps, so the written row names the same crop.
        fields.extend(f"{float(v):.6f}".rstrip("0").rstrip(".") for v in box)
    fields.append(name)
    for annotator, vote in annotations:
        if not annotator or any(ch in str(annotator) for ch in ',"\r\n'):
            raise ValueError(f"annotator id {annotator!r} is empty or needs quoting")
        if int(vote) not in (1, 2, 3):
            raise ValueError(f"annotation {vote!r} is not 1, 2 or 3")
        fields.extend((str(annotator), str(int(vote))))
    return ",".join(fields)
