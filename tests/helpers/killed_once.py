"""tools/train_net.py as torchrun runs it, except that in the first attempt (torchrun's
TORCHELASTIC_RESTART_COUNT 0) rank $KILL_RANK kills itself with SIGKILL, as a lost
worker dies, once rank 0's checkpoint of iteration $KILL_AFTER is complete."""
import os
import signal
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import train_net  # noqa: E402
from fec.utils import checkpoint  # noqa: E402

KILL_AFTER = int(os.environ["KILL_AFTER"])
KILL_RANK = os.environ.get("KILL_RANK", "1")
_save = checkpoint.Checkpointer.save


def save_then_die(self, name, iteration):
    _save(self, name, iteration)
    if os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0" and iteration == KILL_AFTER:
        from torch import distributed as dist

        dist.barrier()  # every rank calls save; after it, rank 0's file and tag are complete
        if os.environ.get("RANK") == KILL_RANK:
            tag = os.path.join(self.save_dir, checkpoint.TAG)
            assert open(tag).read().strip() == f"model_{iteration:07d}.pth"
            os.kill(os.getpid(), signal.SIGKILL)


checkpoint.Checkpointer.save = save_then_die

if __name__ == "__main__":
    train_net.main()
