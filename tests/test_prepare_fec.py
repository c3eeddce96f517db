"""tools/prepare_fec.py against a local HTTP server with the faults of real image hosts:
outcomes, time bounds, resume after SIGKILL / SIGINT, shards and merge, subsets, face
checks, and training on the prepared folder."""
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter

import cv2
import numpy as np
import pytest

from fec.config import load_config
from fec.data import build_dataset
from fec.data.fec_csv import crop_id, format_fec_row, read_fec_csv
from fec.prepare import FetchOptions, PrepareOptions, merge_shards, prepare
from fec.prepare.journal import Journal
from fec.prepare.plan import host_interleaved, shard_of
from helpers.cli import exit_code
from helpers.loopback import LoopbackImageServer
from helpers.tools import load_tool

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(ROOT, "tools", "prepare_fec.py")
SPLITS = ("train", "test")
CSV = "faceexp-comparison-data-{}-public.csv"
SIZE = 48
# Limits far above what a loopback download of a small photo needs, even on a loaded
# machine, and far below what each timeout fault takes: a stall lasts STALL seconds,
# a drip never ends within MAX_TIME, the hang port never answers.
FETCH = dict(connect_timeout=10.0, read_timeout=3.0, max_time=5.0, max_bytes=200_000, retries=1, backoff=0.05,
             per_host=8)
STALL = 60.0
MAX_PIXELS = 4_000_000


prepare_cli = load_tool("prepare_fec")


def run_prepare(csvs, out, workers=8, **kw):
    fetch = FetchOptions(**{**FETCH, **kw.pop("fetch", {})})
    return prepare(PrepareOptions(csv=[str(c) for c in csvs], out=str(out), size=SIZE, workers=workers,
                                  max_pixels=MAX_PIXELS, progress=False, fetch=fetch, **kw))


def images(out):
    d = os.path.join(out, "images")
    return {name: open(os.path.join(d, name), "rb").read() for name in sorted(os.listdir(d))}


def outcomes(out):
    with open(os.path.join(out, "outcomes.jsonl")) as f:
        return {r["url"]: r for r in map(json.loads, f)}


def read(path):
    with open(path, "rb") as f:
        return f.read()


# --------------------------------------------------------------------------- #
# Data: synthetic FEC photos served over 127.0.0.1, with faults mixed in
# --------------------------------------------------------------------------- #
@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("syn")


@pytest.fixture(scope="module")
def server(photo_dir):
    with LoopbackImageServer(photo_dir / "photos", stall=STALL, drip=0.2) as srv:
        yield srv


@pytest.fixture(scope="module")
def slow_server(photo_dir):
    """100 ms per photo, so a run lasts long enough to be killed in the middle."""
    with LoopbackImageServer(photo_dir / "photos", latency=0.1, flaky_failures=1) as srv:
        yield srv


@pytest.fixture(scope="module")
def synthetic(photo_dir, server):
    """make_synthetic_fec.py output with URLs on ``server``: CSVs, photos, and the crops
    it cut itself (what the preparation must reproduce byte for byte)."""
    load_tool("make_synthetic_fec").main([
        "--out", str(photo_dir), "--size", str(SIZE), "--train-identities", "6", "--test-identities", "4",
        "--faces-per-identity", "4", "--train-triplets", "60", "--test-triplets", "30", "--seed", "3",
        "--base-url", f"http://127.0.0.1:{server.port}/"])
    return photo_dir


# fault → expected outcome; the hang and refused URLs are added by name
FAULT_OUTCOMES = {
    "404": "http_error", "flaky": "ok", "stall": "timeout", "drip": "timeout", "truncated": "decode_error",
    "html": "not_image", "html-as-jpeg": "not_image", "huge": "too_large", "huge-stream": "too_large",
    "loop": "too_many_redirects", "redirect": "ok", "bomb": "too_many_pixels",
}


def write_csvs(synthetic, srv, out_dir, faults=(), hang=False, refused=False):
    """The synthetic CSVs with their URLs moved to ``srv`` and the first train photos
    replaced by fault URLs; returns (csv paths, {url: expected outcome})."""
    out_dir.mkdir(parents=True, exist_ok=True)
    texts = {s: read(synthetic / CSV.format(s)).decode() for s in SPLITS}
    base = re.search(r'"(http://127\.0\.0\.1:\d+/)photos/', texts["train"]).group(1)
    names = sorted(set(re.findall(r"/photos/(train_\d+\.jpg)", texts["train"])))
    moved = {}
    for i, fault in enumerate(faults):
        moved[names[i]] = (srv.url(names[i], fault), FAULT_OUTCOMES[fault])
    extra = len(faults)
    if hang:
        moved[names[extra]] = (srv.hang_url(names[extra]), "timeout")
        extra += 1
    if refused:
        moved[names[extra]] = (srv.refused_url(names[extra]), "connection_error")
    expected, paths = {}, []
    for s in SPLITS:
        text = texts[s].replace(base, f"http://127.0.0.1:{srv.port}/")
        for name, (url, _) in moved.items():
            text = text.replace(srv.url(name), url)
        for url in set(re.findall(r'"(http[^"]+)"', text)):
            expected[url] = "ok"
        path = out_dir / CSV.format(s)
        path.write_text(text)
        paths.append(path)
    expected.update(dict(moved.values()))
    return paths, expected


@pytest.fixture(scope="module")
def fault_run(synthetic, server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("faults")
    csvs, expected = write_csvs(synthetic, server, tmp / "csv", faults=list(FAULT_OUTCOMES), hang=True, refused=True)
    # the server is shared by the module's tests, which fetch the same paths in any order:
    # count only this run's requests
    before = Counter(server.requests)
    result = run_prepare(csvs, tmp / "out")
    return result, None, expected, tmp / "out", csvs, dict(Counter(server.requests) - before)


# --------------------------------------------------------------------------- #
# Faults
# --------------------------------------------------------------------------- #
def test_every_fault_ends_in_its_outcome(fault_run, server, synthetic):
    result, _, expected, out, _, requests = fault_run
    assert result.complete and result.done == result.total == len(expected)
    got = {url: r["outcome"] for url, r in outcomes(out).items()}
    assert got == expected
    # transient failures were retried once, permanent ones never
    for fault, n in (("404", 1), ("html", 1), ("loop", 1), ("bomb", 1), ("flaky", 2), ("stall", 2), ("drip", 2)):
        path = next(p for p in requests if p.startswith(f"/fault/{fault}/"))
        assert requests[path] == n, (fault, requests)
    # each plain photo was fetched exactly once
    plain = [u for u in expected if "/photos/" in u and str(server.port) in u]
    assert len(plain) > 20 and all(requests[u.split(str(server.port), 1)[1]] == 1 for u in plain)


def test_crops_are_the_projects_crops_and_nothing_half_written_is_left(fault_run, synthetic):
    _, _, expected, out, csvs, _ = fault_run
    crops = images(out)
    tables = [read_fec_csv(c) for c in csvs]
    ok_faces = {crop_id(u, b) for t in tables for u, b in zip(t.faces_url, t.faces_box.tolist())
                if expected[u] == "ok"}
    assert set(crops) == {c + ".jpg" for c in ok_faces}
    # make_synthetic_fec.py cut its crops from the same photos with fec.data.crop.crop_face
    reference = images(synthetic)
    same_url = [name for name in crops if name in reference]
    assert len(same_url) >= 20
    assert all(crops[name] == reference[name] for name in same_url)
    assert not os.path.exists(out / ".staging")
    assert all(name.endswith(".jpg") for name in os.listdir(out / "images"))
    for name in ("report.json", "outcomes.jsonl", "journal.jsonl", "prepare.json", CSV.format("train")):
        assert (out / name).exists(), name


def test_report_counts_outcomes_hosts_and_kept_triplets(fault_run):
    _, _, expected, out, csvs, _ = fault_run
    report = json.loads((out / "report.json").read_text())
    n_ok = sum(v == "ok" for v in expected.values())
    assert report["urls"]["total"] == len(expected) and report["urls"]["ok"] == n_ok
    assert sum(report["urls"]["outcomes"].values()) == len(expected)
    assert report["urls"]["outcomes"]["timeout"] == 3 and report["urls"]["outcomes"]["too_large"] == 2
    (worst,) = report["hosts"]["worst"]
    assert worst["host"] == "127.0.0.1" and worst["failed"] == len(expected) - n_ok
    for split, path in zip(SPLITS, csvs):
        t = read_fec_csv(path)
        ok = np.array([expected[u] == "ok" for u in t.faces_url])
        complete = ok[t.triplets].all(axis=1)
        s = report["splits"][split]
        assert s["triplets"]["all"] == len(t)
        assert s["with_all_crops"]["all"] == int(complete.sum())
        assert s["kept"]["all"] == int((complete & (t.label > 0)).sum())
        assert sum(s["kept"][k] for k in ("ONE_CLASS_TRIPLET", "TWO_CLASS_TRIPLET", "THREE_CLASS_TRIPLET")) \
            == s["kept"]["all"]
    assert report["splits"]["test"]["kept"]["all"] == report["splits"]["test"]["triplets"]["all"]  # no faults


def test_rerun_of_a_complete_folder_fetches_nothing(fault_run, server):
    _, _, _, out, csvs, _ = fault_run
    before = (dict(server.requests), read(out / "report.json"), read(out / "outcomes.jsonl"))
    again = run_prepare(csvs, out)
    assert again.complete and again.this_run == 0
    assert (dict(server.requests), read(out / "report.json"), read(out / "outcomes.jsonl")) == before


def test_retry_failed_fetches_only_the_transient_failures(fault_run, server, tmp_path):
    _, _, _, out, csvs, _ = fault_run
    shutil.copytree(out, tmp_path / "out")
    before = dict(server.requests)
    result = run_prepare(csvs, tmp_path / "out", retry_failed=True)
    assert result.complete and result.this_run == 3  # stall, drip, hang: the timeouts
    fetched = {p for p, n in server.requests.items() if n != before.get(p, 0)}
    assert {p.split("/")[2] for p in fetched} == {"stall", "drip"}  # the hang port has no HTTP server
    assert read(tmp_path / "out" / "report.json") == read(out / "report.json")


def test_resume_with_other_settings_is_refused(fault_run, tmp_path):
    _, _, _, out, csvs, _ = fault_run
    with pytest.raises(ValueError, match="size: 48 there, 64 now"):
        prepare(PrepareOptions(csv=[str(c) for c in csvs], out=str(out), size=64, progress=False))
    code = exit_code(prepare_cli.main, ["--csv", str(csvs[0]), "--out", str(out), "--size", "64", "--no-progress"])
    assert code == 2


def test_cli_reports_bad_arguments_clearly(tmp_path, capsys):
    odd = tmp_path / "faces.csv"
    odd.write_text("")
    assert exit_code(prepare_cli.main, ["--csv", str(odd), "--out", str(tmp_path / "o")]) == 2
    assert "cannot tell train from test" in capsys.readouterr().err
    assert exit_code(prepare_cli.main, ["--csv", str(tmp_path / "x-train.csv"), "--out", str(tmp_path / "o")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert exit_code(prepare_cli.main, ["--csv", f"train={odd}", "--out", str(tmp_path / "o"), "--num-shards", "2",
                             "--shard-id", "2"]) == 2
    assert "--shard-id 2" in capsys.readouterr().err


# --------------------------------------------------------------------------- #
# Faces: one download per URL, several boxes, face check
# --------------------------------------------------------------------------- #
ASTRONAUT_BOXES = [(0.345, 0.53, 0.12, 0.335),  # the face
                   (0.33, 0.55, 0.10, 0.36),  # the same face, looser box
                   (0.02, 0.22, 0.70, 0.95)]  # her suit: no face


@pytest.mark.parametrize("check", ["none", "haar", "mtcnn"])
def test_one_download_per_url_and_the_face_check_drops_non_faces(check, synthetic, server, tmp_path):
    from skimage.data import astronaut

    photo = f"astronaut_{check}.jpg"
    ok, buf = cv2.imencode(".jpg", astronaut()[..., ::-1])
    (synthetic / "photos" / photo).write_bytes(buf.tobytes())
    url = server.url(photo)
    row = format_fec_row([url] * 3, ASTRONAUT_BOXES, 0, [(str(a), 3) for a in range(6)])
    (tmp_path / CSV.format("test")).write_text(row + "\n")
    result = prepare(PrepareOptions(csv=[str(tmp_path / CSV.format("test"))], out=str(tmp_path / "out"), size=128,
                                    face_check=check, workers=2, progress=False, fetch=FetchOptions(**FETCH)))
    assert result.complete and server.requests[f"/photos/{photo}"] == 1
    faces = outcomes(tmp_path / "out")[url]["faces"]
    want = ["ok", "ok", "ok" if check == "none" else "no_face"]
    assert [faces[crop_id(url, b)] for b in ASTRONAUT_BOXES] == want
    assert len(images(tmp_path / "out")) == want.count("ok")
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["faces"]["outcomes"] == ({"ok": 3} if check == "none" else {"ok": 2, "no_face": 1})
    assert report["splits"]["test"]["kept"]["all"] == (1 if check == "none" else 0)


# --------------------------------------------------------------------------- #
# Interrupted, then resumed: the same images and report as an uninterrupted run
# --------------------------------------------------------------------------- #
KILL_FAULTS = ["404", "flaky", "truncated", "html", "loop", "bomb"]


@pytest.fixture(scope="module")
def uninterrupted(synthetic, slow_server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kill")
    csvs, expected = write_csvs(synthetic, slow_server, tmp / "csv", faults=KILL_FAULTS, hang=True)
    result = run_prepare(csvs, tmp / "full", workers=2)
    assert result.complete
    return csvs, expected, tmp / "full"


def _journal_lines(out):
    try:
        return read(out / "journal.jsonl").count(b"\n")
    except FileNotFoundError:
        return 0


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_killed_then_resumed_equals_uninterrupted(sig, uninterrupted, slow_server, tmp_path):
    csvs, expected, full = uninterrupted
    out = tmp_path / "out"
    held = len(slow_server._held)
    # A long read timeout: at the signal one worker sits in the read of a host that never answers.
    cmd = [sys.executable, TOOL, *[a for c in csvs for a in ("--csv", str(c))], "--out", str(out),
           "--size", str(SIZE), "--workers", "2", "--max-pixels", str(MAX_PIXELS), "--read-timeout", "600",
           "--max-time", "1200", "--connect-timeout", "0.5", "--retries", "1", "--backoff", "0.05",
           "--max-mb", str(FETCH["max_bytes"] / 2**20), "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (_journal_lines(out) >= 5 and len(slow_server._held) > held):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(sig)
    try:  # a stop held up by the 600 s read would take 600 s; anything near that is a failure
        stdout, stderr = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"prepare_fec still running 120 s after {sig.name}: held up by a read") from None
    done_before = _journal_lines(out)
    assert 5 <= done_before < len(expected)
    if sig != signal.SIGKILL:
        assert proc.returncode == 128 + sig, stderr
        assert "run the same command again to resume" in stderr
    else:
        assert proc.returncode == -signal.SIGKILL
    assert not (out / "report.json").exists()
    assert all(name.endswith(".jpg") for name in os.listdir(out / "images"))

    result = run_prepare(csvs, out, workers=2)
    assert result.complete and result.this_run == len(expected) - done_before
    assert images(out) == images(full)
    assert read(out / "report.json") == read(full / "report.json")
    assert read(out / "outcomes.jsonl") == read(full / "outcomes.jsonl")


def test_per_host_limit_caps_concurrent_downloads(synthetic, slow_server, tmp_path):
    csvs, _ = write_csvs(synthetic, slow_server, tmp_path / "csv")  # one host, 100 ms a photo
    peaks = {}
    for limit in (2, 6):
        slow_server.peak_active = slow_server.active
        result = run_prepare(csvs, tmp_path / f"out{limit}", workers=8, fetch={"per_host": limit})
        assert result.complete
        peaks[limit] = slow_server.peak_active
    assert peaks[2] == 2, peaks  # 8 workers, never more than 2 requests at the host at once
    assert peaks[6] > 2, peaks  # and it is the limit that held them back


def test_journal_drops_a_torn_last_line_and_appends_cleanly(tmp_path):
    path = tmp_path / "journal.jsonl"
    path.write_bytes(b'{"url": "a", "outcome": "ok"}\n{"url": "b", "outcome": "http_error"}\n{"url": "c", "outc')
    j = Journal(path)
    assert set(j.load()) == {"a", "b"}
    j.append([{"url": "c", "outcome": "timeout"}])
    j.close()
    assert [json.loads(line)["url"] for line in path.read_text().splitlines()] == ["a", "b", "c"]
    path.write_bytes(b'{"url": "a", "outcome": "ok"}\nnot json\n{"url": "b", "outcome": "ok"}\n')
    with pytest.raises(ValueError, match="line 2"):
        Journal(path).load()


# --------------------------------------------------------------------------- #
# Shards, merge, subsets
# --------------------------------------------------------------------------- #
def test_shards_are_disjoint_and_merge_into_the_full_run(synthetic, server, tmp_path):
    csvs, expected = write_csvs(synthetic, server, tmp_path / "csv", faults=["404", "truncated", "html", "bomb"])
    assert run_prepare(csvs, tmp_path / "full").complete
    shards = [tmp_path / f"shard{i}" for i in range(3)]
    for i, d in enumerate(shards):
        assert run_prepare(csvs, d, num_shards=3, shard_id=i).complete
    urls = [set(outcomes(d)) for d in shards]
    assert all(urls) and sum(map(len, urls)) == len(set().union(*urls)) == len(expected)
    assert all(shard_of(u, 3) == i for i, us in enumerate(urls) for u in us)
    crops = [images(d) for d in shards]
    assert sum(map(len, crops)) == len(images(tmp_path / "full"))
    assert {k: v for c in crops for k, v in c.items()} == images(tmp_path / "full")
    assert json.loads((shards[1] / "report.json").read_text())["settings"]["shard"] == "1 of 3"

    with pytest.raises(ValueError, match=r"missing \[2\]"):
        merge_shards([str(d) for d in shards[:2]], str(tmp_path / "bad"), progress=False)
    code = exit_code(prepare_cli.main, ["--merge", *map(str, shards), "--out", str(tmp_path / "merged"),
                                        "--no-progress"])
    assert code == 0
    merged, full = tmp_path / "merged", tmp_path / "full"
    assert images(merged) == images(full)
    for name in ("report.json", "outcomes.jsonl", CSV.format("train"), CSV.format("test")):
        assert read(merged / name) == read(full / name), name
    # the merged folder resumes as the full run's own: nothing left to do
    assert run_prepare(csvs, merged).this_run == 0


def test_max_triplets_gives_a_deterministic_subset(synthetic, server, tmp_path):
    csvs, _ = write_csvs(synthetic, server, tmp_path / "csv")
    runs = {}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        r = run_prepare(csvs, tmp_path / name, max_triplets=10, seed=seed)
        assert r.complete
        runs[name] = r
    for split, src in zip(SPLITS, csvs):
        sub = read_fec_csv(tmp_path / "a" / CSV.format(split))
        assert len(sub) == 10 and (sub.label > 0).all()
        source_lines = set(src.read_text().splitlines())
        assert set((tmp_path / "a" / CSV.format(split)).read_text().splitlines()) <= source_lines
        assert read(tmp_path / "a" / CSV.format(split)) == read(tmp_path / "b" / CSV.format(split))
        assert read(tmp_path / "a" / CSV.format(split)) != read(tmp_path / "c" / CSV.format(split))
    assert images(tmp_path / "a") == images(tmp_path / "b")
    subset_urls = {u for s in SPLITS for u in read_fec_csv(tmp_path / "a" / CSV.format(s)).faces_url}
    assert set(outcomes(tmp_path / "a")) == subset_urls
    assert runs["a"].total == len(subset_urls) < len({u for c in csvs for u in read_fec_csv(c).faces_url})


def test_host_interleaving_and_sharding_are_stable():
    urls = [f"http://h{h}.example/{i}.jpg" for h in (1, 2) for i in range(3)] + ["http://h3.example/0.jpg"]
    order = host_interleaved(reversed(urls))
    assert order[:3] == ["http://h1.example/0.jpg", "http://h2.example/0.jpg", "http://h3.example/0.jpg"]
    assert sorted(order) == sorted(urls)
    # a fixed hash, not Python's per-process one
    assert [shard_of(u, 4) for u in urls] == [shard_of(u, 4) for u in list(urls)]
    assert shard_of("http://farm4.staticflickr.com/3679/1.jpg", 1000) == \
        int.from_bytes(hashlib.sha1(b"http://farm4.staticflickr.com/3679/1.jpg").digest()[:8],
                       "big") % 1000


# --------------------------------------------------------------------------- #
# The engine reads the prepared folder
# --------------------------------------------------------------------------- #
@pytest.mark.slow
def test_make_link_and_train_on_the_prepared_folder(fault_run, tmp_path):
    _, _, _, out, _, _ = fault_run
    subprocess.run(["make", "-s", "-f", os.path.join(ROOT, "Makefile"), "link", f"FEC={out}"], cwd=tmp_path,
                   check=True, capture_output=True)
    root = tmp_path / "datasets"
    assert os.path.realpath(root / "fec") == os.path.realpath(out)
    report = json.loads((out / "report.json").read_text())
    cfg = load_config(os.path.join(ROOT, "config/fec/resnet18_conv3x3.yaml"),
                      ["DATASETS.ROOT", str(root), "INPUT.SIZE", str(SIZE)])
    for split in SPLITS:
        ds = build_dataset(cfg, f"fec_{split}", is_train=True)
        assert len(ds) == report["splits"][split]["kept"]["all"] > 0
        assert ds.load_face(0).shape == (SIZE, SIZE, 3)
    log = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "train_net.py"), "--config-file",
         os.path.join(ROOT, "config/fec/resnet18_conv3x3.yaml"), "MODEL.BACKBONE.WEIGHTS", "",
         "DATASETS.ROOT", str(root), "INPUT.SIZE", str(SIZE), "SOLVER.IMS_PER_BATCH", "4", "SOLVER.MAX_ITER", "3",
         "SOLVER.WARMUP_ITERS", "0", "DATALOADER.NUM_WORKERS", "0", "TEST.IMS_PER_BATCH", "16",
         "TEST.EVAL_PERIOD", "0", "LOG_PERIOD", "1", "OUTPUT_DIR", str(tmp_path / "train")],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert log.returncode == 0, log.stdout[-3000:] + log.stderr[-3000:]
    assert "iter: 3/3" in log.stdout + log.stderr
    results = json.loads((tmp_path / "train" / "inference" / "fec_test" / "results.json").read_text())
    assert results["count"] == report["splits"]["test"]["kept"]["all"]
