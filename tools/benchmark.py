"""Speed benchmarks of fec. Each subcommand prints a table, with a baseline measured
in the same run so that figures from different machines can be compared.

    python tools/benchmark.py read-fec-csv [--rows 450000] [--repeat 1] [--keep FILE]
"""
import argparse
import csv
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time

import numpy as np

# Run from a checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fec.data.fec_csv import format_fec_row, read_fec_csv  # noqa: E402


# --------------------------------------------------------------------------- #
# Measuring
# --------------------------------------------------------------------------- #
def _proc_status_mb(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    raise OSError(key)


def _start_peak():
    """Resident MB now, with the peak reset where Linux allows it. ru_maxrss is no
    use here: a spawned child starts with its parent's peak."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM (Linux >= 4.0)
        return _proc_status_mb("VmRSS")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _peak():
    try:
        return _proc_status_mb("VmHWM")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _child(fn, args, queue):
    rss0 = _start_peak()
    t0 = time.perf_counter()
    note = fn(*args)
    seconds = time.perf_counter() - t0
    queue.put((seconds, max(_peak() - rss0, 0.0), note))


def measure(fn, *args, repeat=1):
    """(best seconds, its peak RSS growth in MB, fn's note), each try in a fresh
    process so that one measurement's peak does not hide the next one's."""
    ctx = mp.get_context("spawn")
    results = []
    for _ in range(repeat):
        queue = ctx.Queue()
        proc = ctx.Process(target=_child, args=(fn, args, queue))
        proc.start()
        result = queue.get()
        proc.join()
        results.append(result)
    return min(results, key=lambda r: r[0])


def print_table(header, rows):
    cells = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for k, r in enumerate(cells):
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
        if k == 0:
            print("  ".join("-" * w for w in widths))


# --------------------------------------------------------------------------- #
# read-fec-csv
# --------------------------------------------------------------------------- #
def write_fec_like_csv(path, rows, seed=0):
    """An FEC-shaped CSV: ~156K faces per 450K rows (each face in ~9 triplets, some
    images with several faces), flickr-like quoted URLs, boxes with 3-4 decimals,
    hash-like annotator ids, votes agreeing ~75% of the time."""
    rng = np.random.default_rng(seed)
    n_faces = max(3, round(rows * 156 / 450))
    n_images = max(1, int(n_faces * 0.85))
    urls = [
        f"http://farm{f}.staticflickr.com/{s}/{p}_{h:010x}_b.jpg"
        for f, s, p, h in zip(rng.integers(1, 10, n_images), rng.integers(1000, 9999, n_images),
                              rng.integers(10**9, 10**11, n_images), rng.integers(0, 16**10, n_images))
    ]
    image_of_face = np.concatenate([np.arange(n_images), rng.integers(0, n_images, n_faces - n_images)])
    w = rng.uniform(0.12, 0.6, n_faces)
    h = np.clip(w * rng.uniform(0.8, 1.6, n_faces), 0.1, 0.95)
    left, top = rng.uniform(0, 1 - w), rng.uniform(0, 1 - h)
    boxes = np.stack([left, left + w, top, top + h], axis=1)
    decimals = np.where(rng.random(n_faces) < 0.5, 3, 4)[:, None]
    boxes = np.round(boxes * 10.0**decimals) / 10.0**decimals
    # Every face used at least once, then the rest at random; no face twice in a row.
    occ = np.concatenate([rng.permutation(n_faces), rng.integers(0, n_faces, max(0, rows * 3 - n_faces))])
    triplets = rng.permutation(occ)[: rows * 3].reshape(rows, 3)
    while True:
        dup = (triplets[:, 0] == triplets[:, 1]) | (triplets[:, 0] == triplets[:, 2]) | (triplets[:, 1] == triplets[:, 2])
        if not dup.any():
            break
        triplets[dup] = rng.integers(0, n_faces, (int(dup.sum()), 3))
    types = rng.choice(3, size=rows, p=[0.36, 0.33, 0.31])
    annotator_pool = [f"{a:016x}{b:016x}" for a, b in rng.integers(0, 2**63, (2000, 2)).tolist()]
    annotators = rng.integers(0, len(annotator_pool), (rows, 6))
    odd = rng.integers(1, 4, rows)[:, None]
    votes = np.where(rng.random((rows, 6)) < 0.75, odd, rng.integers(1, 4, (rows, 6)))
    box_list = boxes.tolist()
    with open(path, "w", newline="") as f:
        for t, ty, an, vo in zip(triplets.tolist(), types.tolist(), annotators.tolist(), votes.tolist()):
            f.write(format_fec_row([urls[image_of_face[i]] for i in t], [box_list[i] for i in t], ty,
                                   [(annotator_pool[a], v) for a, v in zip(an, vo)]) + "\n")
    return n_faces


def _tokenise_only(path):
    with open(path, newline="") as f:
        n = sum(1 for _ in csv.reader(f))
    return f"{n} rows tokenised, nothing kept"


def _read_table(path):
    table = read_fec_csv(path)
    arrays = [table.faces_box, table.triplets, table.types, table.votes, table.annotators,
              table.label, table.agreement, table.line]
    mb = sum(a.nbytes for a in arrays) / 2**20
    return f"{len(table)} triplets, {table.num_faces} faces; arrays {mb:.0f} MB"


def bench_read_fec_csv(args):
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or os.path.join(tmp, "fec-like.csv")
        t0 = time.perf_counter()
        n_faces = write_fec_like_csv(path, args.rows, args.seed)
        size_mb = os.path.getsize(path) / 2**20
        print(f"wrote {args.rows} rows over {n_faces} faces ({size_mb:.0f} MB) "
              f"in {time.perf_counter() - t0:.1f} s: {path}\n")
        rows = []
        for name, fn in (("csv.reader, tokenise only (baseline)", _tokenise_only),
                         ("read_fec_csv", _read_table)):
            seconds, peak_mb, note = measure(fn, path, repeat=args.repeat)
            rows.append([name, args.rows, f"{seconds:.2f}", f"{args.rows / seconds:,.0f}", f"{peak_mb:.0f}", note])
        print_table(["method", "rows", "seconds", "rows/s", "peak RSS +MB", "note"], rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="benchmark", required=True)
    p = sub.add_parser("read-fec-csv", help="parse an FEC-shaped CSV with read_fec_csv")
    p.add_argument("--rows", type=int, default=450000, help="rows of the generated CSV")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeat", type=int, default=1, help="tries per method; the fastest is shown")
    p.add_argument("--keep", default="", help="write the generated CSV here instead of a temp dir")
    p.set_defaults(run=bench_read_fec_csv)
    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
