"""The preparation run: plan, resume from the journal, download and crop
(fec.prepare.workers), stop cleanly on Ctrl-C / SIGTERM, report when complete.

Only the main thread writes the journal. On a stop request no new URL starts and the
main thread waits a short grace period for URLs in flight, then returns: a thread stuck
in a socket read (bounded by the read timeout anyway) is abandoned, never joined, and
its URL is simply redone next time.
"""
import os
import queue
import signal
import threading
import time
from dataclasses import dataclass, field

from tqdm import tqdm

from fec.data.crop import BOX_EXPANSION
from fec.data.jpeg import JPEG_QUALITY
from fec.utils.errors import InputError

from . import outcomes as O
from .fetch import FetchOptions
from .image import FACE_CHECKS
from .journal import Journal
from .plan import faces_by_url, host_interleaved, load_splits, shard_of, write_split_csv
from .report import build_report, outcomes_jsonl, report_json
from .store import OutputDir
from .workers import Pipeline

STOP_GRACE = 2.0  # seconds to let URLs in flight finish after a stop request


@dataclass
class PrepareOptions:
    csv: list  # --csv arguments: PATH or SPLIT=PATH
    out: str
    size: int = 224
    face_check: str = "none"
    workers: int = 32  # concurrent downloads
    # Threads that decode and crop: two a core, as each also waits on fsync.
    crop_workers: int = min(16, 2 * (os.cpu_count() or 1))
    max_pixels: int = 40_000_000
    max_triplets: int = 0
    seed: int = 0
    num_shards: int = 1
    shard_id: int = 0
    retry_failed: bool = False
    progress: bool = True
    fetch: FetchOptions = field(default_factory=FetchOptions)


@dataclass
class PrepareResult:
    complete: bool
    out: str
    total: int = 0  # URLs in this shard's plan
    done: int = 0  # of them finished (this run and before)
    this_run: int = 0  # finished by this run
    failed: int = 0  # finished with an outcome other than ok
    seconds: float = 0.0  # the whole run
    download_seconds: float = 0.0  # the download and crop phase
    signal: int = 0  # the signal that stopped the run
    report: dict = None


def plan_settings(opts, splits):
    """What the crops and the plan depend on: a resume must use the same."""
    return {
        "size": opts.size, "face_check": opts.face_check, "box_expansion": BOX_EXPANSION,
        "jpeg_quality": JPEG_QUALITY, "max_triplets": opts.max_triplets, "seed": opts.seed,
        "num_shards": opts.num_shards, "shard_id": opts.shard_id,
        "csv_sha256": {s.name: s.sha256 for s in splits},
    }


def report_settings(settings):
    keep = {k: settings[k] for k in ("size", "face_check", "max_triplets", "seed")}
    if settings["num_shards"] > 1:
        keep["shard"] = f"{settings['shard_id']} of {settings['num_shards']}"
    return keep


def check_settings(out, old, new):
    if old is not None and old != new:
        diff = ", ".join(f"{k}: {old.get(k)!r} there, {new.get(k)!r} now" for k in sorted(set(old) | set(new))
                         if old.get(k) != new.get(k))
        raise InputError(f"{out} was prepared with other settings ({diff}); resume with the same CSVs and "
                         "options, or choose another --out")


def validate(opts):
    if opts.face_check not in FACE_CHECKS:
        raise InputError(f"--face-check {opts.face_check!r}: choose one of {', '.join(FACE_CHECKS)}")
    for name in ("size", "workers", "crop_workers", "max_pixels", "num_shards"):
        if getattr(opts, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be at least 1")
    if not 0 <= opts.shard_id < opts.num_shards:
        raise InputError(f"--shard-id {opts.shard_id} is not in 0..{opts.num_shards - 1}")
    if opts.max_triplets < 0:
        raise InputError("--max-triplets must be 0 (all) or more")
    if not opts.csv:
        raise InputError("give at least one --csv")


def is_done(record, faces, present, retry_failed):
    if record is None:
        return False
    if record["outcome"] != O.OK:
        return not (retry_failed and record.get("transient"))
    done = record.get("faces", {})
    return all(cid in done and (done[cid] != O.OK or cid in present) for cid, _ in faces)


class _StopRequest:
    """SIGINT / SIGTERM set the stop event; a second Ctrl-C stops waiting at once."""

    def __init__(self, stop):
        self.stop, self.signum, self._old = stop, 0, {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        self.stop.set()

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def prepare(opts):
    """Runs (or resumes) a preparation; returns a :class:`PrepareResult`."""
    validate(opts)
    t0 = time.monotonic()
    splits = load_splits(opts.csv, opts.max_triplets, opts.seed)
    store = OutputDir(opts.out).open()
    try:
        settings = plan_settings(opts, splits)
        check_settings(opts.out, store.read_settings(), settings)
        store.write_settings(settings)
        for s in splits:
            write_split_csv(s, opts.out)
        faces = faces_by_url(splits)
        if opts.num_shards > 1:
            faces = {u: f for u, f in faces.items() if shard_of(u, opts.num_shards) == opts.shard_id}
        journal = Journal(store.journal)
        records = journal.load()
        present = store.present_crops()
        todo = [u for u in host_interleaved(faces)
                if not is_done(records.get(u), faces[u], present, opts.retry_failed)]
        result = PrepareResult(False, opts.out, total=len(faces), done=len(faces) - len(todo))
        left = set(todo)
        result.failed = sum(1 for u in faces if u not in left and records[u]["outcome"] != O.OK)
        if todo:
            store.remove_results()
            try:
                _download(opts, store, journal, records, faces, todo, result)
            finally:
                journal.close()
        result.seconds = time.monotonic() - t0
        if result.done == result.total:
            result.complete = True
            result.report, rows = build_report(splits, faces, records, report_settings(settings))
            store.write_text(store.outcomes, outcomes_jsonl(rows))
            store.write_text(store.report, report_json(result.report))
        return result
    finally:
        store.close()


def _download(opts, store, journal, records, faces, todo, result):
    stop = threading.Event()
    results = queue.Queue()
    pipeline = Pipeline(opts, store, stop, results)
    bar = tqdm(total=result.total, initial=result.done, unit="img", desc="prepare", dynamic_ncols=True,
               smoothing=0.05, disable=not opts.progress)
    bar.set_postfix(failed=result.failed)
    pending, stop_deadline, t0 = len(todo), None, time.monotonic()
    with _StopRequest(stop) as request:
        pipeline.start([(url, faces[url]) for url in todo])
        try:
            while pending:
                if stop.is_set():
                    stop_deadline = stop_deadline or time.monotonic() + STOP_GRACE
                    if time.monotonic() > stop_deadline or not pipeline.alive():
                        break
                try:
                    batch = [results.get(timeout=0.1)]
                except queue.Empty:
                    if not pipeline.alive():
                        break  # every thread ended: nothing more will come
                    continue
                while len(batch) < 512:  # what else is ready: one fsync for all of it
                    try:
                        batch.append(results.get_nowait())
                    except queue.Empty:
                        break
                fatal = next((b for b in batch if b[0] == "fatal"), None)
                done = [record for kind, _, record in batch if kind == "done"]
                journal.append(done)
                for record in done:
                    records[record["url"]] = record
                    if record["outcome"] != O.OK:
                        result.failed += 1
                pending -= len(done)
                result.done += len(done)
                result.this_run += len(done)
                bar.set_postfix(failed=result.failed, refresh=False)
                bar.update(len(done))
                if fatal is not None:
                    _, url, error = fatal
                    raise RuntimeError(f"stopped at {url}: {type(error).__name__}: {error}") from error
        except KeyboardInterrupt:  # a second Ctrl-C
            request.signum = request.signum or signal.SIGINT
        finally:
            stop.set()
            bar.close()
    result.signal = request.signum
    result.download_seconds = time.monotonic() - t0
