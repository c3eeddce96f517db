"""Console logging on every rank (rank-tagged when distributed), a log file on rank 0."""
import contextlib
import functools
import logging
import os
import sys


def setup_logger(name, output_dir=None, rank=0):
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for h in list(logger.handlers):
        logger.removeHandler(h)
    prefix = f"[rank {rank}] " if rank else ""
    fmt = logging.Formatter(f"%(asctime)s {prefix}%(name)s %(levelname)s: %(message)s", "%H:%M:%S")
    console = logging.StreamHandler(sys.stdout)
    # Other ranks only report problems: one copy of the training log is enough.
    console.setLevel(logging.INFO if rank == 0 else logging.WARNING)
    console.setFormatter(fmt)
    logger.addHandler(console)
    if output_dir and rank == 0:
        os.makedirs(output_dir, exist_ok=True)
        fh = logging.FileHandler(os.path.join(output_dir, "log.txt"))
        fh.setFormatter(fmt)
        logger.addHandler(fh)
    return logger


@contextlib.contextmanager
def logger_level(name, level):
    """The logger ``name`` at ``level`` inside the block, its own level back after (a
    benchmark silencing the training's progress lines leaves its caller's logging alone)."""
    logger = logging.getLogger(name)
    before = logger.level
    logger.setLevel(level)
    try:
        yield logger
    finally:
        logger.setLevel(before)


def _fec_loggers():
    names = [n for n in logging.root.manager.loggerDict if n == "fec" or n.startswith("fec.")]
    return {n: logging.getLogger(n) for n in ["fec", *names]}


def restores_logging(main):
    """For a CLI's ``main``: called as a function (from a test, a notebook, another
    script), it leaves the ``fec`` loggers as it found them, so the caller's logging
    (pytest's caplog, say) still sees their records afterwards. Handlers it added are
    closed (their log files too); levels, handlers and propagation are restored; loggers
    it created go back to the defaults. A user error's traceback still reaches the log
    file first (fec.utils.errors.run_cli would find its handler gone)."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        saved = {n: (lg.handlers[:], lg.level, lg.propagate) for n, lg in _fec_loggers().items()}
        try:
            return main(*args, **kwargs)
        except Exception as exc:
            from fec.utils.errors import UserError, _log_traceback

            if isinstance(exc, UserError):
                _log_traceback(exc)
            raise
        finally:
            for name, lg in _fec_loggers().items():
                handlers, level, propagate = saved.get(name, ([], logging.NOTSET, True))
                for h in lg.handlers:
                    if h not in handlers:
                        lg.removeHandler(h)
                        h.close()
                lg.handlers[:] = handlers
                lg.setLevel(level)
                lg.propagate = propagate

    return wrapper
