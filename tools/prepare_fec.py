"""Prepare the FEC dataset: download the photos the official CSVs name, cut the face
crops, and write a folder the engine reads as DATASETS.ROOT/fec (``make link FEC=DIR``).

    python tools/prepare_fec.py --csv TRAIN.csv [--csv TEST.csv] --out DIR [options]
    python tools/prepare_fec.py --merge SHARD_DIR [SHARD_DIR ...] --out DIR

Each URL is fetched once however many faces and triplets use it. Re-running the same
command resumes: only URLs not in DIR/journal.jsonl are fetched. Ctrl-C (or SIGTERM)
stops within a few seconds and keeps all finished work. With --num-shards K --shard-id i
each machine prepares a disjoint part; --merge joins the K folders into one.
"""
import argparse
import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from fec.prepare import FetchOptions, PrepareOptions, merge_shards, prepare  # noqa: E402
from fec.prepare.image import FACE_CHECKS  # noqa: E402
from fec.prepare.report import summary  # noqa: E402
from fec.utils.errors import run_cli  # noqa: E402


def parse_args(argv=None):
    f, o = FetchOptions(), PrepareOptions(csv=[], out="")
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--csv", action="append", default=[], metavar="[SPLIT=]PATH",
                   help="an official FEC CSV; the split (train/test) comes from its name unless given; repeat")
    p.add_argument("--out", required=True, help="the prepared folder (created; resumed if it exists)")
    p.add_argument("--merge", nargs="+", metavar="SHARD_DIR", help="merge complete shard folders into --out")
    p.add_argument("--size", type=int, default=o.size, help="side of the square crops, pixels")
    p.add_argument("--face-check", choices=FACE_CHECKS, default=o.face_check,
                   help="drop crops where this detector finds no face")
    p.add_argument("--workers", type=int, default=o.workers, help="concurrent downloads")
    p.add_argument("--per-host", type=int, default=f.per_host, help="concurrent downloads from one host")
    p.add_argument("--crop-workers", type=int, default=o.crop_workers, help="threads that decode and crop")
    p.add_argument("--connect-timeout", type=float, default=f.connect_timeout, help="seconds")
    p.add_argument("--read-timeout", type=float, default=f.read_timeout, help="seconds to wait for any one read")
    p.add_argument("--max-time", type=float, default=f.max_time, help="seconds for one download attempt in all")
    p.add_argument("--retries", type=int, default=f.retries,
                   help="further attempts after a timeout, reset, 408, 429 or 5xx")
    p.add_argument("--backoff", type=float, default=f.backoff, help="seconds before the first retry, doubled each time")
    p.add_argument("--max-redirects", type=int, default=f.max_redirects)
    p.add_argument("--max-mb", type=float, default=f.max_bytes / 2**20, help="largest download, MiB")
    p.add_argument("--max-pixels", type=int, default=o.max_pixels,
                   help="largest image (width x height from its header): refuses decompression bombs")
    p.add_argument("--max-triplets", type=int, default=0,
                   help="keep this many random triplets (with a majority vote) per CSV; 0 keeps all")
    p.add_argument("--seed", type=int, default=0, help="seed of the --max-triplets draw")
    p.add_argument("--num-shards", type=int, default=1, help="split the URLs into this many disjoint shards")
    p.add_argument("--shard-id", type=int, default=0, help="the shard this run prepares, 0..K-1")
    p.add_argument("--retry-failed", action="store_true",
                   help="fetch again the URLs that failed transiently (timeout, reset, 5xx) in earlier runs")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if args.merge and args.csv:
        p.error("--merge takes shard folders, not --csv")
    if not args.merge and not args.csv:
        p.error("give --csv (prepare) or --merge (join shards)")
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        if args.merge:
            result = merge_shards(args.merge, args.out, progress=not args.no_progress)
        else:
            fetch = FetchOptions(connect_timeout=args.connect_timeout, read_timeout=args.read_timeout,
                                 max_time=args.max_time, max_bytes=int(args.max_mb * 2**20),
                                 max_redirects=args.max_redirects, retries=args.retries, backoff=args.backoff,
                                 per_host=args.per_host)
            result = prepare(PrepareOptions(
                csv=args.csv, out=args.out, size=args.size, face_check=args.face_check, workers=args.workers,
                crop_workers=args.crop_workers, max_pixels=args.max_pixels, max_triplets=args.max_triplets,
                seed=args.seed, num_shards=args.num_shards, shard_id=args.shard_id, retry_failed=args.retry_failed,
                progress=not args.no_progress, fetch=fetch))
    except KeyboardInterrupt:  # before the downloads started: nothing to keep
        print("prepare_fec.py: interrupted", file=sys.stderr)
        return 130
    if not result.complete:
        name = signal.Signals(result.signal).name if result.signal else "an error"
        print(f"prepare_fec.py: stopped by {name} with {result.done} of {result.total} URLs done "
              f"({result.this_run} in this run); the journal {os.path.join(args.out, 'journal.jsonl')} keeps them: "
              "run the same command again to resume", file=sys.stderr)
        return 128 + result.signal if result.signal else 1
    print(summary(result.report, args.out))
    if result.this_run:
        rate = result.this_run / result.download_seconds if result.download_seconds > 0 else 0.0
        print(f"  this run: {result.this_run} URLs in {result.download_seconds:.1f} s ({rate:.1f}/s)")
    elif not args.merge:
        print("  this run: nothing left to fetch")
    print(f"  per URL: {os.path.join(args.out, 'outcomes.jsonl')}; counts: {os.path.join(args.out, 'report.json')}")
    if result.report.get("settings", {}).get("shard") is None:
        print(f"  train on it: make link FEC={args.out}")
    else:
        print("  when every shard is done: tools/prepare_fec.py --merge SHARD_DIRS... --out DIR")
    return 0


if __name__ == "__main__":
    code = run_cli(main)
    if code >= 128:
        # Stopped by a signal, the journal closed: exit now, without waiting on threads
        # stuck in socket reads or on the interpreter's teardown (seconds with torch loaded).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
