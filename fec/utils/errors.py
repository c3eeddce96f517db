"""Errors a user can act on, and the one way every CLI reports them.

A ``UserError`` is a mistake in what the user gave (a config key or value, a file, a
checkpoint, a dataset link, the launch environment), never a bug: ``run_cli`` prints it
as one line, ``error: ...``, naming the thing and the fix, and exits with code 2; the
traceback goes to OUTPUT_DIR/log.txt when the run has one. Any other exception is a
bug and keeps its traceback.

Each subclass also derives from the built-in exception that code catching errors of
that kind already expects (a missing file is still a FileNotFoundError).
"""
import difflib
import logging
import os
import sys
import traceback

EXIT_USER_ERROR = 2


class UserError(Exception):
    """Something the user can fix; the message names the thing and the fix."""

    # whether each process reports it (when the processes cannot agree on who does)
    every_process = False

    def __str__(self):
        # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ConfigError(UserError, ValueError):
    """A config key, value or file the config cannot take."""


class ConfigKeyError(ConfigError, KeyError):
    """A config key that does not exist."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the run needs is not there or cannot be read."""


class InputError(UserError, ValueError):
    """An input the tool cannot use: a file that is not what it should be (not an image,
    not an index), or a command-line value out of range."""


class DependencyError(UserError, ImportError):
    """An optional package the command needs is not installed; the message says how."""


class DatasetError(MissingFileError):
    """A dataset that is not linked or not prepared."""


class DatasetFormatError(UserError, ValueError):
    """A dataset file whose contents are not in its format: the message names the file,
    the line (1-based, as an editor shows it), what was expected there and the fix."""


class CheckpointError(UserError, RuntimeError):
    """A file that is not a checkpoint, is truncated, or is of another model."""


class DiskFullError(UserError, OSError):
    """A write that failed for lack of space (ENOSPC, EDQUOT)."""


class WeightsError(UserError, RuntimeError):
    """Pretrained weights that cannot be had (e.g. they need a network that is not there)."""


class LaunchError(UserError, RuntimeError):
    """A launch environment (ranks, ports, devices) the run cannot start in."""

    every_process = True


def check_at_least(args, minimum, *names):
    """An InputError naming the first of the options ``names`` of ``args`` (argparse)
    whose value is below ``minimum``."""
    for name in names:
        value = getattr(args, name)
        if value < minimum:
            raise InputError(f"--{name.replace('_', '-')} {value}: give {minimum} or more")


def nearest(word, candidates, n=3):
    """The ``n`` candidates closest to ``word`` (difflib), best first."""
    return difflib.get_close_matches(word, list(candidates), n=n, cutoff=0.6)


def _rank():
    for var in ("RANK", "SLURM_PROCID"):
        if var in os.environ:
            try:
                return int(os.environ[var])
            except ValueError:
                return 0
    return 0


def _first_to_report():
    """Whether this process reports the error: the first rank to fail claims it through
    the process group's store; without a process group, rank 0 does (every rank then
    fails the same way, before any rank-specific work)."""
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            from torch.distributed.distributed_c10d import _get_default_store

            return _get_default_store().add("fec/user_error_reported", 1) == 1
    except Exception:  # a store that is gone: fall back on the rank
        pass
    return _rank() == 0


def _log_traceback(exc):
    """The traceback into every log file the fec loggers write (OUTPUT_DIR/log.txt)."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    seen = set()
    for name in ("fec", *[n for n in logging.root.manager.loggerDict if n.startswith("fec.")]):
        for handler in getattr(logging.getLogger(name), "handlers", []):
            if isinstance(handler, logging.FileHandler) and handler.baseFilename not in seen:
                seen.add(handler.baseFilename)
                record = logging.LogRecord("fec", logging.ERROR, __file__, 0, "error: %s\n%s",
                                           (exc, text.rstrip()), None)
                handler.handle(record)
                handler.flush()


def report(exc, stream=None):
    """Print ``exc`` as one ``error: ...`` line (once per job) and log its traceback."""
    _log_traceback(exc)
    if exc.every_process or _first_to_report():
        message = " ".join(line.strip() for line in str(exc).splitlines())
        print(f"error: {message}", file=stream or sys.stderr, flush=True)


def run_cli(main, *args, **kwargs):
    """Run a CLI's ``main``: a UserError ends it with one line and exit code 2."""
    try:
        return main(*args, **kwargs)
    except UserError as e:
        report(e)
        sys.stdout.flush()
        try:
            import torch.distributed as dist

            distributed = dist.is_available() and dist.is_initialized()
        except Exception:
            distributed = False
        if distributed:
            # the other ranks may wait in a collective: do not wait for them, or for
            # the process group's teardown; the launcher ends them
            sys.stderr.flush()
            os._exit(EXIT_USER_ERROR)
        sys.exit(EXIT_USER_ERROR)
