"""``python -m fec.engine.launch [torchrun options] SCRIPT [ARGS]``: torchrun, with
user errors reported the fec way.

A worker that stops on a user error has printed its one ``error: ...`` line and exited
with code 2; torchrun would then add its own failure summary and a traceback of the
launcher. Here the launcher exits 2 as quietly as the worker did; any other failure is
reported as torchrun reports it. inference.sh launches its processes through it.
"""
import logging
import os
import sys

from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.run import parse_args, run

from fec.utils.errors import EXIT_USER_ERROR


class _HideUserErrorExits(logging.Filter):
    """Holds back torchrun's reports of stopping the other workers (logged before it
    says why) and hides its report of a worker's user-error exit; ``release`` prints
    the held reports when the failure was something else."""

    def __init__(self):
        super().__init__()
        self.held = []

    def filter(self, record):
        message = record.getMessage()
        if f"(exitcode: {EXIT_USER_ERROR})" in message:
            self.held.clear()
            return False
        if "closing signal" in message or "Unable to shutdown" in message:
            self.held.append(record)
            return False
        return True

    def release(self):
        for record in self.held:
            print(f"{record.levelname[0]} {record.getMessage()}", file=sys.stderr)
        self.held.clear()


def main(argv=None):
    # torchrun sets the same default, with a banner about it
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    args = parse_args(sys.argv[1:] if argv is None else argv)
    quiet = _HideUserErrorExits()
    logging.getLogger("torch.distributed.elastic.multiprocessing.api").addFilter(quiet)
    try:
        run(args)
    except ChildFailedError as e:
        _, first = e.get_first_failure()
        if first.exitcode == EXIT_USER_ERROR:
            return EXIT_USER_ERROR
        quiet.release()
        print(e.format_msg(), file=sys.stderr)
        return 1
    quiet.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
