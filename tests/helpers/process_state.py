"""What a test could change for the tests after it, and the differences between two
snapshots: the conftest check that every test leaves the process as it found it, and
the CLI isolation tests, use both."""
import logging
import os
import signal

import torch

from fec.utils.logger import _fec_loggers

# pytest's and torch.compile's own bookkeeping
OWN_ENVIRONMENT = ("PYTEST_CURRENT_TEST", "_TORCHINDUCTOR", "TORCHINDUCTOR")


def process_state():
    """What a test could change for the tests after it: the fec loggers, the root
    logger's level, the SIGTERM handler, torch's threads, deterministic mode and default
    dtype, the working directory and the environment."""
    return {
        "fec loggers (level, propagate, handlers)": {n: (lg.level, lg.propagate, lg.handlers[:])
                                                     for n, lg in _fec_loggers().items()},
        "root logger level": logging.root.level,
        "SIGTERM handler": signal.getsignal(signal.SIGTERM),
        "torch threads": torch.get_num_threads(),
        "torch deterministic algorithms": torch.are_deterministic_algorithms_enabled(),
        "torch default dtype": torch.get_default_dtype(),
        "working directory": os.getcwd(),
        "environment": {k: v for k, v in os.environ.items() if not k.startswith(OWN_ENVIRONMENT)},
    }


def changes(before, after):
    """The differences, by name; fec loggers the test created count only when they are
    not at the defaults (no handler, level NOTSET, propagating)."""
    changed = []
    for key, value in before.items():
        now = after[key]
        if key.startswith("fec loggers"):
            default = (logging.NOTSET, True, [])
            changed += [f"logger {n}: {value.get(n, default)} -> {state}" for n, state in now.items()
                        if state != value.get(n, default)]
        elif key == "environment":
            changed += [f"${k}: {value.get(k)!r} -> {now.get(k)!r}" for k in sorted(set(value) | set(now))
                        if value.get(k) != now.get(k)]
        elif now != value:
            changed.append(f"{key}: {value!r} -> {now!r}")
    return changed
