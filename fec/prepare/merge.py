"""Merging the folders of ``--num-shards K`` runs into one, as one full run writes it.

The shards must be complete, come from the same CSVs and options, and be exactly
shards 0..K-1. Crops are hard-linked where the file system allows (else copied), each
through the staging folder; the journal is the union of the shards' journals, so the
merged folder resumes and reports like a folder prepared in one go.
"""
import os
import shutil

from tqdm import tqdm

from fec.utils.errors import InputError

from .journal import Journal, write_records
from .plan import CSV_NAME, SPLITS, faces_by_url, file_sha256, load_splits
from .report import build_report, outcomes_jsonl, report_json
from .run import PrepareResult, check_settings, report_settings
from .store import OutputDir


def _shard_settings(dirs):
    found = []
    for d in dirs:
        store = OutputDir(d)
        settings = store.read_settings()
        if settings is None:
            raise InputError(f"{d}: no prepare.json, not a folder written by prepare_fec.py")
        if not os.path.exists(store.report):
            raise InputError(f"{d}: shard {settings['shard_id']} is not complete (no report.json); "
                             "re-run its command to finish it first")
        found.append((store, settings))
    first = found[0][1]
    common = {k: v for k, v in first.items() if k != "shard_id"}
    for store, s in found[1:]:
        other = {k: v for k, v in s.items() if k != "shard_id"}
        if other != common:
            raise InputError(f"{store.root} and {found[0][0].root} were prepared with different CSVs or options")
    k = first["num_shards"]
    ids = sorted(s["shard_id"] for _, s in found)
    if ids != list(range(k)):
        missing = sorted(set(range(k)) - set(ids))
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        raise InputError(f"expected shards 0..{k - 1} once each; missing {missing}, repeated {repeated}")
    return found, common


def _place(store, src, crop_id):
    """Link (or copy) one crop into ``store``'s images through its staging folder."""
    tmp = os.path.join(store.staging, crop_id + ".merge")
    try:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, store.image_path(crop_id))
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def merge_shards(shard_dirs, out, progress=True):
    """Merges complete shard folders into ``out``; returns a :class:`PrepareResult`."""
    if len(set(map(os.path.realpath, shard_dirs))) != len(shard_dirs):
        raise InputError("a shard folder is named twice")
    if os.path.realpath(out) in map(os.path.realpath, shard_dirs):
        raise InputError(f"--out {out} is one of the shards; merge into a new folder")
    found, common = _shard_settings(shard_dirs)
    settings = dict(common, num_shards=1, shard_id=0)
    names = [CSV_NAME.format(s) for s in SPLITS if s in common["csv_sha256"]]
    for name in names:
        digests = {file_sha256(os.path.join(st.root, name)) for st, _ in found}
        if len(digests) != 1:
            raise InputError(f"the shards' {name} differ")
    store = OutputDir(out).open()
    try:
        check_settings(out, store.read_settings(), settings)
        records, sources = {}, {}
        for shard, _ in found:
            for url, rec in Journal(shard.journal).load().items():
                if url in records:
                    raise InputError(f"{url} is in two shards ({sources[url]} and {shard.root})")
                records[url], sources[url] = rec, shard.root
        store.remove_results()
        for name in names:
            shutil.copyfile(os.path.join(found[0][0].root, name), os.path.join(out, name + ".tmp"))
            os.replace(os.path.join(out, name + ".tmp"), os.path.join(out, name))
        crops = [(shard, cid) for shard, _ in found for cid in sorted(shard.present_crops())]
        for shard, cid in tqdm(crops, desc="merge", unit="img", disable=not progress):
            _place(store, shard.image_path(cid), cid)
        write_records(store.journal, [records[u] for u in sorted(records)])
        store.write_settings(settings)
        # The plan, from the merged CSVs (already the subset, if there was one).
        splits = load_splits([f"{n}={os.path.join(out, CSV_NAME.format(n))}" for n in SPLITS
                              if n in common["csv_sha256"]])
        faces = faces_by_url(splits)
        missing = sorted(set(faces) - set(records))
        if missing:
            raise InputError(f"{len(missing)} URLs of the CSVs are in no shard's journal, e.g. {missing[0]}")
        report, rows = build_report(splits, faces, records, report_settings(settings))
        store.write_text(store.outcomes, outcomes_jsonl(rows))
        store.write_text(store.report, report_json(report))
        failed = sum(1 for r in rows if r["outcome"] != "ok")
        return PrepareResult(True, out, total=len(faces), done=len(faces), failed=failed, report=report)
    finally:
        store.close()

