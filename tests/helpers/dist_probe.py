"""tools/train_net.py as a launcher runs it, plus a record of what this rank ended with:
its own parameters and buffers (not rank 0's checkpoint) and its command line, written
to $PROBE_DIR/rank<RANK>.pt, so tests can compare ranks."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import torch  # noqa: E402
import train_net  # noqa: E402

if __name__ == "__main__":
    model = train_net.main()
    rank = os.environ.get("RANK", "0")
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    torch.save({"state": state, "argv": sys.argv, "world_size": os.environ.get("WORLD_SIZE"),
                "cuda_devices": torch.cuda.device_count()},
               os.path.join(os.environ["PROBE_DIR"], f"rank{rank}.pt"))
