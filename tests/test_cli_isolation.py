"""The CLIs called as functions (train_net, test_net, retrieve) leave the process as
they found it: the ``fec`` loggers (handlers, levels, propagation, so a later test's
caplog still sees their records), the SIGTERM handler; and test_net with no
checkpoint at all stops with a message that says how to get one."""
import logging
import os
import subprocess
import sys

import pytest

from fec.utils.errors import UserError
from helpers.process_state import changes, process_state
from helpers.tools import load_tool

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICKSTART = os.path.join(ROOT, "config", "quickstart.yaml")
TINY = ["MODEL.DEVICE", "cpu", "INPUT.SIZE", "32", "DATALOADER.NUM_WORKERS", "0",
        "DATASETS.SYNTHETIC.TRAIN_IDENTITIES", "4", "DATASETS.SYNTHETIC.TEST_IDENTITIES", "3",
        "DATASETS.SYNTHETIC.FACES_PER_IDENTITY", "3", "DATASETS.SYNTHETIC.TRAIN_TRIPLETS", "40",
        "DATASETS.SYNTHETIC.TEST_TRIPLETS", "20", "DATASETS.SYNTHETIC.MIN_GAP", "0.0", "MODEL.WEIGHTS", "",
        "SOLVER.IMS_PER_BATCH", "4", "SOLVER.MAX_ITER", "2", "SOLVER.WARMUP_ITERS", "1", "TEST.IMS_PER_BATCH", "8"]


def _calls(tmp_path, ckpt):
    out = str(tmp_path / "out")
    yield "train_net", ["--config-file", QUICKSTART, *TINY, "OUTPUT_DIR", out]
    yield "test_net", ["--config-file", QUICKSTART, "--ckpt", ckpt, *TINY, "OUTPUT_DIR", out]
    yield "retrieve", ["query", str(tmp_path / "no_index.npz"), str(tmp_path / "no_face.png")]


@pytest.mark.slow
def test_cli_called_as_a_function_restores_logging_and_sigterm(tmp_path, quickstart_ckpt, caplog):
    logging.getLogger("fec")  # exists before, as it does once any fec module logged
    for name, argv in _calls(tmp_path, quickstart_ckpt):
        before = process_state()
        if name == "retrieve":  # a missing index: the user error run_cli reports, after main
            with pytest.raises(UserError, match="index not found"):
                load_tool(name).main(argv)
        else:
            load_tool(name).main(argv)
        # the fec loggers as they were (those the call created back to the defaults: no
        # handler, propagating), the SIGTERM handler, and the rest of process_state
        assert not changes(before, process_state()), name
        caplog.clear()
        with caplog.at_level(logging.INFO):
            logging.getLogger("fec.data.datasets.synthetic").info("a record after %s", name)
        assert f"a record after {name}" in caplog.text, name
    # the log file the training wrote was closed, so it holds everything
    log = (tmp_path / "out" / "log.txt").read_text()
    assert "Start training at iteration 0 of 2" in log


def test_restores_logging_puts_back_what_the_function_changed(caplog):
    from fec.utils.logger import restores_logging, setup_logger

    @restores_logging
    def configures(path):
        setup_logger("fec", path)
        setup_logger("fec.isolation_probe")
        logging.getLogger("fec").info("inside")
        raise RuntimeError("after logging was set up")

    before = process_state()
    with pytest.raises(RuntimeError):
        configures(None)
    after = process_state()
    loggers = after["fec loggers (level, propagate, handlers)"]
    assert loggers["fec"] == before["fec loggers (level, propagate, handlers)"]["fec"]
    assert loggers["fec.isolation_probe"] == (logging.NOTSET, True, [])
    assert not changes(before, after)
    with caplog.at_level(logging.INFO):
        logging.getLogger("fec.isolation_probe").info("propagates again")
    assert "propagates again" in caplog.text


def test_test_net_without_any_checkpoint_says_how_to_get_one(tmp_path):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "test_net.py"), "--config-file", QUICKSTART,
                           "MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", "", "OUTPUT_DIR", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    err = proc.stderr.strip().splitlines()[-1]
    assert "checkpoint" in err and "--ckpt" in err, err
    assert not (tmp_path / "inference").exists()
