"""Several processes on the CPU (gloo), launched as users launch them: torchrun,
python -m torch.distributed.launch, two launchers as two nodes, and inference.sh."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

from fec.config import load_config
from fec.data import build_dataset
from fec.data.fec_csv import TRIPLET_TYPES
from fec.evaluation.triplet import triplet_correct
from fec.modeling import build_model
from fec.utils.checkpoint import Checkpointer
from helpers.checkpoints import assert_same_weights, weights

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "config", "quickstart.yaml")
PROBE = os.path.join(ROOT, "tests", "helpers", "dist_probe.py")
# 5 identities x 5 faces = 25 test images: neither 2 nor 3 divides it
TINY = [
    "INPUT.SIZE", "64",
    "DATASETS.SYNTHETIC.TRAIN_IDENTITIES", "8", "DATASETS.SYNTHETIC.TEST_IDENTITIES", "5",
    "DATASETS.SYNTHETIC.FACES_PER_IDENTITY", "5",
    "DATASETS.SYNTHETIC.TRAIN_TRIPLETS", "200", "DATASETS.SYNTHETIC.TEST_TRIPLETS", "61",
    "SOLVER.IMS_PER_BATCH", "4", "SOLVER.WARMUP_ITERS", "2", "SOLVER.BASE_LR", "0.01",
    "DATALOADER.NUM_WORKERS", "0", "LOG_PERIOD", "1", "TEST.IMS_PER_BATCH", "6",
    # The quickstart from scratch, backbone trained, every sampled triplet kept.
    "MODEL.WEIGHTS", "", "MODEL.BACKBONE.FREEZE_AT", "0", "DATASETS.SYNTHETIC.MIN_GAP", "0.0",
]
TRAIN = ["SOLVER.MAX_ITER", "24", "SOLVER.CHECKPOINT_PERIOD", "3"]

pytestmark = [pytest.mark.slow, pytest.mark.multiprocess]


def free_port():
    """A port free now; another process may take it before node 0's launcher binds it,
    so launch_two_nodes retries on a new one."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PORT_TAKEN = ("Address already in use", "EADDRINUSE", "errno: 98")


def launch_two_nodes(args, cwds, tmp_path, attempts=3):
    """Two torchrun launchers, one process each, joined through a static rendezvous on
    127.0.0.1 as two machines join: ``args`` follow the launcher's options, ``cwds[n]``
    is node n's directory. The port comes from free_port(), which another process can
    take before node 0 binds it: node 0 then fails with "address already in use", node 1
    is stopped, and both start again on a new port (at most ``attempts`` times).
    Returns the two launchers' outputs; both exited with 0."""
    for _ in range(attempts):
        port = free_port()
        procs, logs = [], []
        for node in (0, 1):
            log = open(tmp_path / f"node{node}.port{port}.log", "w+")
            cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1",
                   f"--node_rank={node}", "--master_addr=127.0.0.1", f"--master_port={port}", *args]
            procs.append(subprocess.Popen(cmd, cwd=cwds[node], stdout=log, stderr=subprocess.STDOUT,
                                          env=env(tmp_path), start_new_session=True))
            logs.append(log)
        try:
            deadline = time.monotonic() + 600
            while procs[0].poll() is None or procs[1].poll() is None:
                if procs[0].poll() not in (None, 0):
                    break  # node 0 failed: node 1 cannot finish alone
                assert time.monotonic() < deadline, "two-node launch still running after 600 s"
                time.sleep(0.2)
        finally:
            for p in procs:
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
        outputs = []
        for log in logs:
            log.seek(0)
            outputs.append(log.read())
            log.close()
        if procs[0].returncode != 0 and any(m in outputs[0] for m in PORT_TAKEN):
            continue
        assert [p.returncode for p in procs] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
        return outputs
    raise AssertionError(f"the rendezvous port was taken {attempts} times in a row")


def launcher(kind, nproc=2):
    if kind == "torchrun":
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    # the deprecated launcher passes --local-rank=N to the script
    return [sys.executable, "-m", "torch.distributed.launch", "--standalone", f"--nproc_per_node={nproc}"]


def env(probe_dir=None):
    # GPUs hidden: these runs are the CPU (gloo) ones on a machine with 0, 1 or 8 GPUs
    e = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore::FutureWarning", "CUDA_VISIBLE_DEVICES": ""}
    if probe_dir:
        e["PROBE_DIR"] = str(probe_dir)
    return e


def run(cmd, probe_dir=None, timeout=600):
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env(probe_dir))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc.stdout + proc.stderr


def train_cmd(kind, out, *extra, flags=()):
    return [*launcher(kind), PROBE, *flags, "--config-file", CONFIG, *TINY, *TRAIN, "OUTPUT_DIR", str(out), *extra]


def rank_states(probe_dir):
    return [torch.load(probe_dir / f"rank{r}.pt", weights_only=True) for r in (0, 1)]


@pytest.fixture(scope="module")
def torchrun_run(tmp_path_factory):
    """An uninterrupted 2-process run: the reference for the resume tests."""
    out, probe = tmp_path_factory.mktemp("torchrun"), tmp_path_factory.mktemp("probe")
    log = run(train_cmd("torchrun", out), probe)
    return out, probe, log


@pytest.mark.parametrize("kind", ["torchrun", "launch"])
def test_two_process_training_keeps_ranks_identical(kind, torchrun_run, tmp_path):
    if kind == "torchrun":
        out, probe, _ = torchrun_run
    else:
        out, probe = tmp_path / "out", tmp_path / "probe"
        probe.mkdir()
        run(train_cmd(kind, out), probe)
    r0, r1 = rank_states(probe)
    assert r0["world_size"] == r1["world_size"] == "2"
    assert r0["cuda_devices"] == r1["cuda_devices"] == 0
    if kind == "launch":
        assert any(a.startswith("--local-rank") or a.startswith("--local_rank") for a in r1["argv"]), r1["argv"]
    assert_same_weights(r0["state"], r1["state"])
    # rank 0's checkpoint is what both ranks hold, and training moved it
    final = weights(out / "model_final.pth")
    assert_same_weights(final, r1["state"])
    # each rank's own RNG states, gathered into rank 0's file
    assert len(torch.load(out / "model_final.pth", weights_only=True)["rng"]["ranks"]) == 2
    first = weights(out / "model_0000003.pth")
    assert not all(torch.equal(final[k], first[k]) for k in final)
    text = (out / "log.txt").read_text()
    assert "Using 2 process(es), backend gloo" in text
    assert "iter: 24/24" in text
    results = json.loads((out / "inference" / "synthetic_fec_test" / "results.json").read_text())
    assert results["inference"]["samples_per_process"] == [12, 13]


def test_resume_of_a_two_process_run_is_exact(torchrun_run, tmp_path):
    out, _, _ = torchrun_run
    shutil.copy(out / "model_0000012.pth", tmp_path / "model_0000012.pth")
    (tmp_path / "last_checkpoint").write_text("model_0000012.pth")
    log = run(train_cmd("torchrun", tmp_path, "DATASETS.TEST", "()", flags=["--resume"]), tmp_path)
    assert "Start training at iteration 12 of 24" in log
    assert_same_weights(weights(out / "model_final.pth"), weights(tmp_path / "model_final.pth"))


def worker_pids(launcher_pid):
    """Direct children of the launcher, by their RANK."""
    pids = {}
    for task in os.listdir(f"/proc/{launcher_pid}/task"):
        with open(f"/proc/{launcher_pid}/task/{task}/children") as f:
            for pid in map(int, f.read().split()):
                try:
                    with open(f"/proc/{pid}/environ", "rb") as e:
                        variables = dict(v.split(b"=", 1) for v in e.read().split(b"\0") if b"=" in v)
                except FileNotFoundError:
                    continue
                if b"RANK" in variables:
                    pids[int(variables[b"RANK"])] = pid
    return pids


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def gone(pids, seconds):
    """Whether every process in ``pids`` has ended (or is a zombie) within ``seconds``:
    a generous deadline, polled, so a loaded machine only makes the wait longer."""
    deadline = time.monotonic() + seconds
    while any(alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def start_training(out, *extra, cmd=None, hold_at=None):
    cmd = cmd or train_cmd("torchrun", out, *extra)
    log = open(out.parent / f"{out.name}.log", "w")
    e = env(out.parent)
    if hold_at is not None:
        e["PROBE_HOLD_AT"] = str(hold_at)
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=e, start_new_session=True)
    return proc


def wait_for(predicate, proc, seconds, what):
    deadline = time.monotonic() + seconds
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"launcher exited with {proc.returncode} before {what}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError(f"no {what} after {seconds} s")
        time.sleep(0.1)


@pytest.mark.parametrize("how", ["sigterm-launcher", "ctrl-c"])
def test_stopping_the_launcher_stops_every_rank_and_resume_is_exact(how, torchrun_run, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    # both ranks wait after the checkpoint of iteration 6 until the signal comes: it
    # always arrives mid-run, however fast or slow the machine
    proc = start_training(out, hold_at=6)
    held = [tmp_path / f"held{r}" for r in (0, 1)]
    wait_for(lambda: all(f.exists() for f in held), proc, 300, "both ranks past the checkpoint of iteration 6")
    workers = worker_pids(proc.pid)
    assert sorted(workers) == [0, 1]
    if how == "ctrl-c":  # a terminal sends SIGINT to the whole foreground group
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=60)
    assert rc != 0
    assert gone(workers.values(), 120), "a worker outlived its launcher"
    assert not (out / "model_final.pth").exists()
    tag = (out / "last_checkpoint").read_text().strip()
    stopped_at = torch.load(out / tag, weights_only=True)["iteration"]
    assert stopped_at == 6
    assert not [f for f in os.listdir(out) if ".tmp." in f]

    log = run(train_cmd("torchrun", out, "DATASETS.TEST", "()", flags=["--resume"]), tmp_path)
    assert f"Start training at iteration {stopped_at} of 24" in log
    assert_same_weights(weights(torchrun_run[0] / "model_final.pth"), weights(out / "model_final.pth"))


def test_a_dead_rank_ends_the_job_within_the_timeout(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    timeout = 20
    proc = start_training(out, "SOLVER.MAX_ITER", "100000", "DIST.TIMEOUT", str(timeout))
    wait_for(lambda: (out / "log.txt").exists() and "iter: 3/" in (out / "log.txt").read_text(), proc, 300,
             "training progress")
    workers = worker_pids(proc.pid)
    os.kill(workers[1], signal.SIGKILL)
    try:
        rc = proc.wait(timeout=timeout + 60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert rc != 0
    assert gone([workers[0]], 120), "rank 0 outlived the job"


def test_two_nodes_on_one_machine(tmp_path):
    """Two launchers joined through a loopback rendezvous, one process each."""
    out = tmp_path / "out"
    launch_two_nodes([PROBE, "--config-file", CONFIG, *TINY, "SOLVER.MAX_ITER", "6", "SOLVER.CHECKPOINT_PERIOD", "0",
                      "OUTPUT_DIR", str(out)], [ROOT, ROOT], tmp_path)
    r0, r1 = rank_states(tmp_path)
    assert r0["world_size"] == r1["world_size"] == "2"
    assert_same_weights(r0["state"], r1["state"])
    assert "Using 2 process(es), backend gloo" in (out / "log.txt").read_text()
    results = json.loads((out / "inference" / "synthetic_fec_test" / "results.json").read_text())
    assert results["inference"]["processes"] == 2


def two_nodes(tmp_path, *extra, flags=()):
    """Two launchers joined through a loopback rendezvous, one process each, as two
    machines that share no filesystem: node n runs in ``tmp_path/node<n>`` with the
    relative OUTPUT_DIR ``out``, so a path one node names does not exist on the other."""
    return launch_two_nodes([PROBE, *flags, "--config-file", CONFIG, *TINY, *extra, "OUTPUT_DIR", "out"],
                            [tmp_path / "node0", tmp_path / "node1"], tmp_path)


def test_two_nodes_without_a_shared_filesystem_resume_from_rank_0s_checkpoint(torchrun_run, tmp_path):
    out0, out1 = tmp_path / "node0" / "out", tmp_path / "node1" / "out"
    out0.mkdir(parents=True)
    out1.mkdir(parents=True)  # node 1 has an OUTPUT_DIR, but no checkpoint in it
    shutil.copy(torchrun_run[0] / "model_0000012.pth", out0 / "model_0000012.pth")
    (out0 / "last_checkpoint").write_text("model_0000012.pth")
    logs = two_nodes(tmp_path, *TRAIN, "DATASETS.TEST", "()", flags=["--resume"])
    assert "Start training at iteration 12 of 24" in (out0 / "log.txt").read_text()
    assert "out/model_0000012.pth is not on this machine: loaded rank 0's copy" in logs[1]
    r0, r1 = rank_states(tmp_path)
    reference = weights(torchrun_run[0] / "model_final.pth")
    assert_same_weights(reference, r0["state"])
    assert_same_weights(reference, r1["state"])
    assert os.listdir(out1) == []


def per_triplet_reference(ckpt):
    """Correctness of every test triplet as a single process gets it by embedding the
    triplet's three faces together, triplet after triplet."""
    cfg = load_config(CONFIG, TINY)
    model = build_model(cfg)
    Checkpointer(model).load(str(ckpt), resume=False)
    model.eval()
    dataset = build_dataset(cfg, "synthetic_fec_test", is_train=False)
    correct = []
    with torch.no_grad():
        for triplet in dataset.triplets:
            images = torch.stack([dataset[int(i)]["image"] for i in triplet])
            e = model({"image": images})["embedding"]
            correct.append(bool(triplet_correct(e, [[0, 1, 2]])[0]))
    return dataset, torch.tensor(correct), torch.as_tensor(dataset.types)


def test_sharded_evaluation_is_identical_for_1_2_3_processes(torchrun_run, tmp_path):
    ckpt = torchrun_run[0] / "model_final.pth"
    results = {}
    for nproc in (1, 2, 3):
        out = tmp_path / f"eval{nproc}"
        run(["bash", os.path.join(ROOT, "inference.sh"), str(nproc), CONFIG, str(ckpt), *TINY,
             "OUTPUT_DIR", str(out)])
        results[nproc] = json.loads((out / "inference" / "synthetic_fec_test" / "results.json").read_text())
    dataset, correct, types = per_triplet_reference(ckpt)
    assert dataset.num_faces == 25 and len(dataset.triplets) > 40
    for nproc, r in results.items():
        split = r.pop("inference")
        assert split["processes"] == nproc and split["samples"] == 25
        # contiguous shards, each image embedded by exactly one process
        assert split["samples_per_process"] == {1: [25], 2: [12, 13], 3: [8, 8, 9]}[nproc]
        assert r["count"] == len(dataset.triplets)
    assert results[1] == results[2] == results[3]
    assert results[1]["accuracy"] == pytest.approx(correct.double().mean().item(), abs=1e-12)
    for t, name in enumerate(TRIPLET_TYPES):
        entry = results[1]["per_type"][name]
        assert entry["count"] == int((types == t).sum())
        if entry["count"]:
            assert entry["accuracy"] == pytest.approx(correct[types == t].double().mean().item(), abs=1e-12)
