"""Evaluate a checkpoint: python tools/test_net.py --config-file F [--ckpt P] [KEY VALUE ...]

Without --ckpt: MODEL.WEIGHTS, else OUTPUT_DIR's last checkpoint."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from fec.engine.inference import run_test  # noqa: E402
from fec.engine.launch import default_argument_parser, default_setup, resolve_device  # noqa: E402
from fec.modeling import build_model  # noqa: E402
from fec.utils.checkpoint import Checkpointer  # noqa: E402


def main():
    parser = default_argument_parser("Evaluate an fec model")
    parser.add_argument("--ckpt", default="", metavar="FILE", help="checkpoint to evaluate")
    args = parser.parse_args()
    cfg, logger = default_setup(args, "fec.test")
    device = resolve_device(cfg, args.local_rank)
    model = build_model(cfg).to(device)
    checkpointer = Checkpointer(model, save_dir=cfg.OUTPUT_DIR)
    ckpt = args.ckpt or cfg.MODEL.WEIGHTS or checkpointer.last_checkpoint()
    if not ckpt:
        parser.error(f"no checkpoint: give --ckpt, MODEL.WEIGHTS, or train into OUTPUT_DIR ({cfg.OUTPUT_DIR}) first")
    checkpointer.load(ckpt, resume=False)
    run_test(cfg, model)


if __name__ == "__main__":
    main()
