"""The CLIs called as functions (train_net, test_net, retrieve) leave the process as
they found it: the ``fec`` loggers (handlers, levels, propagation, so a later test's
caplog still sees their records), the SIGTERM handler; and test_net with no
checkpoint at all stops with a message that says how to get one."""
import logging
import os
import signal
import subprocess
import sys

import pytest

from fec.utils.errors import UserError
from helpers.tools import load_tool

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICKSTART = os.path.join(ROOT, "config", "quickstart.yaml")
TINY = ["MODEL.DEVICE", "cpu", "INPUT.SIZE", "32", "DATALOADER.NUM_WORKERS", "0",
        "DATASETS.SYNTHETIC.TRAIN_IDENTITIES", "4", "DATASETS.SYNTHETIC.TEST_IDENTITIES", "3",
        "DATASETS.SYNTHETIC.FACES_PER_IDENTITY", "3", "DATASETS.SYNTHETIC.TRAIN_TRIPLETS", "40",
        "DATASETS.SYNTHETIC.TEST_TRIPLETS", "20", "DATASETS.SYNTHETIC.MIN_GAP", "0.0", "MODEL.WEIGHTS", "",
        "SOLVER.IMS_PER_BATCH", "4", "SOLVER.MAX_ITER", "2", "SOLVER.WARMUP_ITERS", "1", "TEST.IMS_PER_BATCH", "8"]


def _state():
    loggers = {n: logging.getLogger(n) for n in ["fec", *logging.root.manager.loggerDict] if n.split(".")[0] == "fec"}
    return ({n: (lg.handlers[:], lg.level, lg.propagate) for n, lg in loggers.items()},
            signal.getsignal(signal.SIGTERM))


def _calls(tmp_path, ckpt):
    out = str(tmp_path / "out")
    yield "train_net", ["--config-file", QUICKSTART, *TINY, "OUTPUT_DIR", out]
    yield "test_net", ["--config-file", QUICKSTART, "--ckpt", ckpt, *TINY, "OUTPUT_DIR", out]
    yield "retrieve", ["query", str(tmp_path / "no_index.npz"), str(tmp_path / "no_face.png")]


@pytest.mark.slow
def test_cli_called_as_a_function_restores_logging_and_sigterm(tmp_path, quickstart_ckpt, caplog):
    logging.getLogger("fec")  # exists before, as it does once any fec module logged
    for name, argv in _calls(tmp_path, quickstart_ckpt):
        before = _state()
        if name == "retrieve":  # a missing index: the user error run_cli reports, after main
            with pytest.raises(UserError, match="index not found"):
                load_tool(name).main(argv)
        else:
            load_tool(name).main(argv)
        loggers, sigterm = _state()
        assert sigterm == before[1], name
        for logger_name, saved in before[0].items():
            assert loggers[logger_name] == saved, (name, logger_name)
        # loggers the call created are back to the defaults: no handler, propagating
        for logger_name, (handlers, level, propagate) in loggers.items():
            if logger_name not in before[0]:
                assert (handlers, level, propagate) == ([], logging.NOTSET, True), (name, logger_name)
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

    before = _state()[0]
    with pytest.raises(RuntimeError):
        configures(None)
    after = _state()[0]
    assert after["fec"] == before["fec"]
    assert after["fec.isolation_probe"] == ([], logging.NOTSET, True)
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
