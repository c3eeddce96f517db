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
    """Hides torchrun's report of a worker's user-error exit, and of the others being
    stopped after it."""

    def __init__(self):
        super().__init__()
        self.user_error = False

    def filter(self, record):
        message = record.getMessage()
        if f"(exitcode: {EXIT_USER_ERROR})" in message:
            self.user_error = True
            return False
        return not (self.user_error and "closing signal" in message)


def main(argv=None):
    # torchrun sets the same default, with a banner about it
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.getLogger("torch.distributed.elastic.multiprocessing.api").addFilter(_HideUserErrorExits())
    try:
        run(args)
    except ChildFailedError as e:
        _, first = e.get_first_failure()
        if first.exitcode == EXIT_USER_ERROR:
            return EXIT_USER_ERROR
        print(e.format_msg(), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
