"""Speed benchmarks of fec. Each subcommand prints a table, with a baseline measured
in the same run so that figures from different machines can be compared.

    python tools/benchmark.py train --config-file F [--compare KEY=V1,V2 ...] [--repeat N] [KEY VALUE ...]
    python tools/benchmark.py read-fec-csv [--rows 450000] [--repeat 1] [--keep FILE]
        (read_fec_csv, and load_fec_table's first start and cached start)
    python tools/benchmark.py prepare-fec [--images 480] [--workers 16] [--latency 0.1]
    python tools/benchmark.py loader [--root DIR] [--size 224] [--batches 10] [--repeat 3] [KEY VALUE ...]
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
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from fec.data.fec_csv import format_fec_row, read_fec_csv  # noqa: E402
from fec.data.fec_index import index_path, load_fec_table  # noqa: E402
from fec.utils.errors import InputError, run_cli  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "tests"))  # the tests' fixtures: FEC-like CSVs, loopback server

from helpers.fec_like import write_fec_like_csv  # noqa: E402


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


def _load_indexed(path):
    table = load_fec_table(path, strict=False)
    return f"{len(table)} triplets, {table.num_faces} faces; index {os.path.getsize(index_path(path)) / 2**20:.0f} MB"


def bench_read_fec_csv(args):
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or os.path.join(tmp, "fec-like.csv")
        t0 = time.perf_counter()
        n_faces = write_fec_like_csv(path, args.rows, args.seed)
        size_mb = os.path.getsize(path) / 2**20
        print(f"wrote {args.rows} rows over {n_faces} faces ({size_mb:.0f} MB) "
              f"in {time.perf_counter() - t0:.1f} s: {path}\n")
        rows = []
        if os.path.exists(index_path(path)):
            os.remove(index_path(path))
        for name, fn in (("csv.reader, tokenise only (baseline)", _tokenise_only),
                         ("read_fec_csv", _read_table),
                         # the first start parses the CSV and writes <csv>.index.npz; later starts load it
                         ("load_fec_table, no index yet (parse + write)", _load_indexed),
                         ("load_fec_table, index current (load)", _load_indexed)):
            seconds, peak_mb, note = measure(fn, path, repeat=args.repeat)
            rows.append([name, args.rows, f"{seconds:.2f}", f"{args.rows / seconds:,.0f}", f"{peak_mb:.0f}", note])
        print_table(["method", "rows", "seconds", "rows/s", "peak RSS +MB", "note"], rows)


# --------------------------------------------------------------------------- #
# prepare-fec
# --------------------------------------------------------------------------- #
def _write_photos(folder, n, width, height, seed):
    """``n`` JPEG photos (smooth colour fields with grain, ~photo-sized files) and an
    FEC CSV naming each once, with a random face box; returns the CSV rows' URLs' names."""
    import cv2

    from fec.data.jpeg import encode_jpeg

    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    for i in range(n):
        blobs = rng.uniform(0, 255, (6, 8, 3))
        img = cv2.resize(blobs, (width, height), interpolation=cv2.INTER_CUBIC)
        img = np.clip(img + rng.normal(0, 6, (height, width, 1)), 0, 255).astype(np.uint8)
        with open(os.path.join(folder, f"{i:06d}.jpg"), "wb") as f:
            f.write(encode_jpeg(img))
    return [f"{i:06d}.jpg" for i in range(n)]


def _serve(folder, latency, queue, stop):
    from helpers.loopback import LoopbackImageServer

    with LoopbackImageServer(folder, latency=latency) as server:
        queue.put(server.port)
        stop.wait()


def _prepare_rate(folder, names, latency, workers, size):
    """(seconds, images/s) of prepare over ``names`` served with ``latency`` by a server
    in its own process (its threads do not share this process's interpreter)."""
    from fec.prepare import FetchOptions, PrepareOptions, prepare

    ctx = mp.get_context("spawn")
    queue, stop = ctx.Queue(), ctx.Event()
    server = ctx.Process(target=_serve, args=(folder, latency, queue, stop), daemon=True)
    server.start()
    try:
        port = queue.get(timeout=60)
        rng = np.random.default_rng(0)
        with tempfile.TemporaryDirectory() as tmp:
            lines = []
            for k in range(0, len(names) - 2, 3):
                urls = [f"http://127.0.0.1:{port}/photos/{n}" for n in names[k:k + 3]]
                boxes = [(x, x + 0.3, y, y + 0.4) for x, y in rng.uniform(0.05, 0.55, (3, 2)).round(4).tolist()]
                lines.append(format_fec_row(urls, boxes, 0, [(f"a{j}", 1) for j in range(6)]))
            csv_path = os.path.join(tmp, "faceexp-comparison-data-train-public.csv")
            with open(csv_path, "w") as f:
                f.write("\n".join(lines) + "\n")
            opts = PrepareOptions(csv=[csv_path], out=os.path.join(tmp, "out"), size=size, workers=workers,
                                  progress=False, fetch=FetchOptions(per_host=workers))
            result = prepare(opts)
            assert result.complete and result.failed == 0, result
            return result.download_seconds, result.this_run / result.download_seconds
    finally:
        stop.set()
        server.join(10)


def bench_prepare_fec(args):
    with tempfile.TemporaryDirectory() as tmp:
        names = _write_photos(os.path.join(tmp, "photos"), args.images, args.width, args.height, args.seed)
        mb = sum(os.path.getsize(os.path.join(tmp, "photos", n)) for n in names) / 2**20
        print(f"{len(names)} photos of {args.width}x{args.height} ({mb / len(names) * 1024:.0f} KB each), "
              f"crops of {args.size} px, served from 127.0.0.1 by a separate process\n")
        runs = [(1, args.latency, names[: max(3, args.images // args.workers)]),  # baseline: one at a time
                (args.workers, 0.0, names),  # no latency: what the CPU allows
                (args.workers, args.latency, names)]
        rows = []
        for workers, latency, subset in runs:
            seconds, rate = _prepare_rate(os.path.join(tmp, "photos"), subset, latency, workers, args.size)
            bound = workers / latency if latency else float("inf")
            share = f"{100 * rate / bound:.0f}%" if latency else "-"
            rows.append([f"{workers} workers, {latency * 1000:.0f} ms latency", len(subset) // 3 * 3,
                         f"{seconds:.2f}", f"{rate:.1f}", "-" if not latency else f"{bound:.0f}", share])
        print_table(["run", "images", "seconds", "images/s", "bound (workers/latency)", "of bound"], rows)


# --------------------------------------------------------------------------- #
# loader
# --------------------------------------------------------------------------- #
def synthetic_fec_root(root, size, identities, triplets):
    """``root`` holding an FEC folder written by tools/make_synthetic_fec.py at ``size``
    px, the train split packed (its store is what the packed paths read)."""
    import subprocess

    if not os.path.exists(os.path.join(root, "fec", "images")):
        subprocess.run([sys.executable, os.path.join(ROOT, "tools", "make_synthetic_fec.py"), "--out",
                        os.path.join(root, "fec"), "--size", str(size), "--train-identities", str(identities),
                        "--test-identities", "4", "--train-triplets", str(triplets), "--test-triplets", "41"],
                       check=True, capture_output=True)
    return root


def bench_loader(args):
    import logging
    import statistics

    from fec.config import load_config
    from fec.data.loader_cost import LOADER_PATHS, loader_cpu_cost
    from fec.data.pack import pack_dataset
    from fec.utils.logger import logger_level

    with logger_level("fec", logging.WARNING), tempfile.TemporaryDirectory() as tmp:
        root = args.root or synthetic_fec_root(tmp, args.size, args.identities, args.triplets)
        opts = ["DATASETS.ROOT", root, "DATASETS.TRAIN", "('fec_train',)", "INPUT.SIZE", str(args.size),
                "SOLVER.IMS_PER_BATCH", str(args.batch), *args.opts]
        cfg = load_config(args.config_file or None, opts)
        for name in cfg.DATASETS.TRAIN:
            pack_dataset(cfg, name, workers=os.cpu_count() or 1, progress=False)
        costs = {label: [] for label in LOADER_PATHS}
        for r in range(args.repeat):  # alternating order: load that comes and goes touches every path alike
            for label in (list(LOADER_PATHS) if r % 2 == 0 else list(LOADER_PATHS)[::-1]):
                costs[label].append(loader_cpu_cost(load_config(args.config_file or None, [*opts, *LOADER_PATHS[label]]),
                                                    args.batches, args.warmup))
        base = costs[list(LOADER_PATHS)[0]]
        rows = []
        for label, runs in costs.items():
            cpu = statistics.median(c.cpu_ms_per_face for c in runs)
            ratio = statistics.median(b.cpu_ms_per_face / c.cpu_ms_per_face for b, c in zip(base, runs))
            wall = statistics.median(1000 * c.wall_seconds / c.faces for c in runs)
            rows.append([label, f"{cpu:.3f}", f"{1000 / cpu:,.0f}", f"x{ratio:.1f}", f"{wall:.3f}"])
        print(f"training loader of {args.config_file or 'defaults'} on FEC-format faces at {args.size} px "
              f"({root}): median of {args.repeat} repeat(s) of {args.batches} batches of {args.batch} triplets, "
              f"one thread, process CPU time; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs\n")
        print_table(["data path", "loader CPU ms/face", "faces/s per worker", "CPU vs first", "wall ms/face"], rows)


# --------------------------------------------------------------------------- #
# train
# --------------------------------------------------------------------------- #
def bench_train(args):
    from fec.engine import benchmark

    stray = [o for o in args.opts if o.startswith("--")]
    if stray:
        raise InputError(f"{stray[0]} comes after the KEY VALUE overrides; put flags first")
    parts = args.parts.split(",")
    if not set(parts) <= set(benchmark.ALL_PARTS):
        raise InputError(f"--parts {args.parts}: give a comma-separated subset of {','.join(benchmark.ALL_PARTS)}")
    runs = benchmark.measure(args.config_file, args.opts, args.compare, args.warmup, args.iters, args.repeat,
                             parts, log=lambda line: print(line, file=sys.stderr, flush=True))
    header, rows, lines = benchmark.report(runs)
    print(f"\ntraining step, {args.config_file or 'defaults'} {' '.join(args.opts)}: median of {args.repeat} "
          f"repeat(s) of {args.iters} steps after {args.warmup} warm-up steps; load {os.getloadavg()[0]:.1f}\n")
    print_table(header, rows)
    print()
    for line in lines:
        print(line)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="benchmark", required=True)
    p = sub.add_parser("train", help="training step: model-only, loader-only and end-to-end images/s")
    p.add_argument("--config-file", default="", metavar="FILE")
    p.add_argument("--compare", action="append", default=[], metavar="KEY=V1,V2",
                   help="measure each value side by side (repeatable: every combination)")
    p.add_argument("--warmup", type=int, default=2, help="steps left out of each measurement")
    p.add_argument("--iters", type=int, default=5, help="steps measured per repeat")
    p.add_argument("--repeat", type=int, default=1, help="repeats, alternating the variants; medians shown")
    p.add_argument("--parts", default="model,loader,e2e,cpu",
                   help="which measurements (comma-separated; cpu: the loader's CPU time per face)")
    p.add_argument("opts", nargs=argparse.REMAINDER, metavar="KEY VALUE", help="config overrides, after the flags")
    p.set_defaults(run=bench_train)
    p = sub.add_parser("read-fec-csv", help="parse an FEC-shaped CSV with read_fec_csv")
    p.add_argument("--rows", type=int, default=450000, help="rows of the generated CSV")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeat", type=int, default=1, help="tries per method; the fastest is shown")
    p.add_argument("--keep", default="", help="write the generated CSV here instead of a temp dir")
    p.set_defaults(run=bench_read_fec_csv)
    p = sub.add_parser("prepare-fec", help="tools/prepare_fec.py throughput over loopback with injected latency")
    p.add_argument("--images", type=int, default=480)
    p.add_argument("--workers", type=int, default=16)
    p.add_argument("--latency", type=float, default=0.1, help="seconds the server waits before each photo")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--size", type=int, default=224, help="crop side")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=bench_prepare_fec)
    p = sub.add_parser("loader", help="loader CPU time per face: JPEG vs packed store, loader vs device augmentation")
    p.add_argument("--config-file", default="config/fec/resnet18_conv3x3.yaml", metavar="FILE")
    p.add_argument("--root", default="", help="DATASETS.ROOT with fec/ (default: a synthetic FEC folder in a temp dir)")
    p.add_argument("--size", type=int, default=224, help="face side, pixels (INPUT.SIZE)")
    p.add_argument("--identities", type=int, default=40, help="synthetic train identities (8 faces each)")
    p.add_argument("--triplets", type=int, default=1500, help="synthetic train triplets")
    p.add_argument("--batch", type=int, default=32, help="SOLVER.IMS_PER_BATCH (triplets)")
    p.add_argument("--batches", type=int, default=10, help="batches timed per repeat")
    p.add_argument("--warmup", type=int, default=2, help="batches left out of each repeat")
    p.add_argument("--repeat", type=int, default=3, help="repeats, alternating the paths; medians shown")
    p.add_argument("opts", nargs=argparse.REMAINDER, metavar="KEY VALUE", help="config overrides, after the flags")
    p.set_defaults(run=bench_loader)
    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    run_cli(main)
