"""The outputs that describe a prepared folder: per-URL outcomes and report.json.

Both are functions of the plan and of each URL's final record only (no times, no
attempt counts, sorted keys), so an interrupted and resumed run writes them byte for
byte as an uninterrupted one, and merged shards as one full run.
"""
import json
from collections import Counter

import numpy as np

from fec.data.fec_csv import TRIPLET_TYPES

from . import outcomes as O
from .plan import SPLITS, url_host

WORST_HOSTS = 20


def outcome_rows(faces, records):
    """One dict per URL of the plan, sorted by URL: url, host, outcome, detail, and
    each face's outcome (a failed URL's outcome for all its faces)."""
    rows = []
    for url in sorted(faces):
        rec = records[url]
        if rec["outcome"] == O.OK:
            face_outcomes = {cid: rec["faces"][cid] for cid, _ in faces[url]}
        else:
            face_outcomes = {cid: rec["outcome"] for cid, _ in faces[url]}
        rows.append({"url": url, "host": url_host(url), "outcome": rec["outcome"], "detail": rec.get("detail", ""),
                     "faces": face_outcomes})
    return rows


def outcomes_jsonl(rows):
    return "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows)


def _ordered(counter):
    return {k: counter[k] for k in sorted(counter, key=O.outcome_order)}


def _triplet_counts(split, ok_crops):
    t = split.table
    has = np.fromiter((c in ok_crops for c in split.crop_ids), dtype=bool, count=len(split.crop_ids))
    rows = split.rows
    complete = has[t.triplets[rows]].all(axis=1)
    majority = t.label[rows] > 0
    types = t.types[rows]

    def per_type(mask):
        counts = np.bincount(types[mask], minlength=3)
        return {"all": int(mask.sum()), **{TRIPLET_TYPES[k]: int(counts[k]) for k in range(3)}}

    # Counted over DIR's own CSV: a subset CSV holds only its (valid) rows.
    skipped = {} if split.subset else dict(sorted(t.skipped.items()))
    return {
        "csv": split.csv_name,
        "rows": len(rows),
        "rows_skipped": skipped,
        "triplets": per_type(np.ones(len(rows), dtype=bool)),
        "with_all_crops": per_type(complete),
        # what fec.data.datasets.FECTripletDataset trains and evaluates on
        "kept": per_type(complete & majority),
    }


def build_report(splits, faces, records, settings):
    rows = outcome_rows(faces, records)
    url_counts = Counter(r["outcome"] for r in rows)
    face_counts = Counter(o for r in rows for o in r["faces"].values())
    ok_crops = {cid for r in rows for cid, o in r["faces"].items() if o == O.OK}
    hosts = {}
    for r in rows:
        hosts.setdefault(r["host"], Counter())[r["outcome"]] += 1
    failing = [(sum(c.values()) - c[O.OK], h, c) for h, c in hosts.items()]
    worst = sorted((f for f in failing if f[0] > 0), key=lambda f: (-f[0], f[1]))[:WORST_HOSTS]
    return {
        "settings": settings,
        "urls": {"total": len(rows), "ok": url_counts[O.OK], "outcomes": _ordered(url_counts)},
        "faces": {"total": sum(len(r["faces"]) for r in rows), "ok": len(ok_crops), "outcomes": _ordered(face_counts)},
        "hosts": {
            "total": len(hosts),
            "worst": [{"host": h or "(none)", "urls": sum(c.values()), "failed": f, "outcomes": _ordered(c)}
                      for f, h, c in worst],
        },
        "splits": {s.name: _triplet_counts(s, ok_crops) for s in sorted(splits, key=lambda s: SPLITS.index(s.name))},
    }, rows


def report_json(report):
    return json.dumps(report, indent=2, sort_keys=False) + "\n"


def summary(report, out_dir):
    """A few lines for the end of a run."""
    u, f = report["urls"], report["faces"]
    pct = 100.0 * u["ok"] / u["total"] if u["total"] else 0.0
    lines = [f"{out_dir}: {u['ok']} of {u['total']} URLs ok ({pct:.1f}%), {f['ok']} of {f['total']} face crops"]
    lines.append("  URLs:  " + ", ".join(f"{k} {v}" for k, v in u["outcomes"].items()))
    if set(f["outcomes"]) - {O.OK} != set(u["outcomes"]) - {O.OK} or O.NO_FACE in f["outcomes"]:
        lines.append("  faces: " + ", ".join(f"{k} {v}" for k, v in f["outcomes"].items()))
    for name, s in report["splits"].items():
        kept = s["kept"]
        per_type = ", ".join(f"{t.split('_')[0].lower()} {kept[t]}" for t in TRIPLET_TYPES)
        lines.append(f"  {name}: {kept['all']} of {s['rows']} triplets kept ({per_type})")
    worst = report["hosts"]["worst"][:3]
    if worst:
        lines.append("  worst hosts: " + ", ".join(f"{w['host']} ({w['failed']} of {w['urls']} failed)" for w in worst))
    return "\n".join(lines)
