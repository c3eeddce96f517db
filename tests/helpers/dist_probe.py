"""tools/train_net.py as a launcher runs it, plus a record of what this rank ended with:
its own parameters and buffers (not rank 0's checkpoint) and its command line, written
to $PROBE_DIR/rank<RANK>.pt, so tests can compare ranks.

With PROBE_HOLD_AT=N every rank, once the checkpoint of iteration N is saved, writes
$PROBE_DIR/held<RANK> and waits there until a signal ends it: a test that waits for
those files signals a run that is certainly mid-training, past a checkpoint."""
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import torch  # noqa: E402
import train_net  # noqa: E402

from fec.utils.checkpoint import Checkpointer  # noqa: E402


def hold_after(iteration):
    save = Checkpointer.save

    def save_then_hold(self, name, iteration_saved):
        save(self, name, iteration_saved)
        if name == f"model_{iteration:07d}":
            open(os.path.join(os.environ["PROBE_DIR"], f"held{os.environ.get('RANK', '0')}"), "w").close()
            while True:  # in Python, so SIGTERM's handler and Ctrl-C's KeyboardInterrupt run here
                time.sleep(0.05)

    Checkpointer.save = save_then_hold

if __name__ == "__main__":
    if os.environ.get("PROBE_HOLD_AT"):
        hold_after(int(os.environ["PROBE_HOLD_AT"]))
    model = train_net.main()
    rank = os.environ.get("RANK", "0")
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    torch.save({"state": state, "argv": sys.argv, "world_size": os.environ.get("WORLD_SIZE"),
                "cuda_devices": torch.cuda.device_count()},
               os.path.join(os.environ["PROBE_DIR"], f"rank{rank}.pt"))
