"""Evaluate a checkpoint: python tools/test_net.py --config-file F [--ckpt P] [KEY VALUE ...]

Without --ckpt: OUTPUT_DIR's last checkpoint (what training wrote), else MODEL.WEIGHTS. Several processes
(bash inference.sh NPROC ..., or torchrun) each embed a contiguous shard of the test
images once; rank 0 scores the gathered outputs."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from fec.data.build import check_datasets  # noqa: E402
from fec.engine.inference import run_test  # noqa: E402
from fec.engine.defaults import default_argument_parser, default_setup  # noqa: E402
from fec.engine.speed import apply_cuda_settings, compile_model  # noqa: E402
from fec.modeling import build_model  # noqa: E402
from fec.utils import comm  # noqa: E402
from fec.utils.checkpoint import Checkpointer, read_checkpoint  # noqa: E402
from fec.utils.device import resolve_device  # noqa: E402
from fec.utils.errors import MissingFileError, run_cli  # noqa: E402
from fec.utils.logger import restores_logging  # noqa: E402


@restores_logging
def main(argv=None):
    parser = default_argument_parser("Evaluate an fec model")
    parser.add_argument("--ckpt", default="", metavar="FILE", help="checkpoint to evaluate")
    args = parser.parse_args(argv)
    cfg, logger = default_setup(args, "fec.test")
    device = resolve_device(cfg)
    apply_cuda_settings(cfg, device)
    # A config's MODEL.WEIGHTS are often the starting weights of its training (another
    # architecture's), so what training wrote into OUTPUT_DIR comes first.
    # rank 0's choice for every rank (other machines may not share OUTPUT_DIR)
    ckpt = comm.broadcast_object(args.ckpt or Checkpointer(None, save_dir=cfg.OUTPUT_DIR).last_checkpoint()
                                 or cfg.MODEL.WEIGHTS)
    if not ckpt:
        raise MissingFileError(f"no checkpoint to evaluate: give --ckpt, train into OUTPUT_DIR ({cfg.OUTPUT_DIR}) "
                               f"first, or set MODEL.WEIGHTS")
    # cheap checks first: the checkpoint file and the datasets, before the model is built
    # (a machine without the file gets rank 0's copy when loading)
    if comm.is_main_process() or os.path.isfile(ckpt):
        read_checkpoint(ckpt, "--ckpt" if args.ckpt else "checkpoint")
    check_datasets(cfg)
    model = build_model(cfg).to(device)
    checkpointer = Checkpointer(model, save_dir=cfg.OUTPUT_DIR)
    checkpointer.load(ckpt, resume=False, from_main=True)
    results = run_test(cfg, compile_model(cfg, model), is_distributed=comm.get_world_size() > 1)
    comm.shutdown()
    return results


if __name__ == "__main__":
    run_cli(main)
