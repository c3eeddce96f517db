"""Export a trained model to ONNX or TorchScript, check it against PyTorch, time it.

    python tools/export.py --config-file F --ckpt P --format onnx|torchscript --out FILE
        [--batch 2] [--images DIR] [--tolerance 1e-4] [--repeats 20] [KEY VALUE ...]

The exported model takes ``image`` (N, 3, S, S) uint8 RGB, S = INPUT.SIZE, with N free,
and returns the model's eval outputs by name (``embedding``, ``logits``,
``valence_arousal``, ``intensities``: fec.modeling.meta_arch.base.OUTPUTS). The export is traced at batch ``--batch``, then run at other
batch sizes on faces (synthetic ones, plus the face crops of ``--images`` if given) and
compared with the PyTorch model: the largest absolute difference is printed, and above
``--tolerance`` the export fails and FILE is not written. Then it prints the file size
and the per-image latency on the CPU at batch 1, PyTorch beside the export. ONNX needs
the ``onnx`` extra (pip install -e '.[onnx]': onnx, onnxscript, onnxruntime).
"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from fec.data.transforms import EvalTransform  # noqa: E402
from fec.engine.defaults import default_argument_parser  # noqa: E402
from fec.modeling import build_model  # noqa: E402
from fec.predictor import list_images, prediction_config, read_image  # noqa: E402
from fec.predictor.export import (FORMATS, ExportModule, check_parity, export_onnx, export_torchscript,  # noqa: E402
                                  latency, load_exported, sample_faces)
from fec.utils.checkpoint import Checkpointer  # noqa: E402
from fec.utils.errors import UserError, run_cli  # noqa: E402


def parity_faces(args, size, count):
    """``count`` faces for the parity check: the crops under --images first, then
    synthetic faces, as (count, 3, S, S) uint8."""
    faces = []
    if args.images:
        transform = EvalTransform(size)
        faces = [transform(read_image(os.path.join(args.images, p))) for p in list_images(args.images)[:count]]
    if len(faces) < count:
        faces += list(sample_faces(count - len(faces), size))
    return torch.stack(faces)


def parse_args(argv=None):
    p = default_argument_parser(__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", required=True, help="checkpoint (.pth) of the model the config describes")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--out", required=True, help="file to write (.onnx, .pt)")
    p.add_argument("--batch", type=int, default=2, help="batch size of the example the export is traced with")
    p.add_argument("--images", default="", help="folder of face crops to check parity on, besides synthetic faces")
    p.add_argument("--tolerance", type=float, default=1e-4, help="largest allowed absolute difference")
    p.add_argument("--repeats", type=int, default=20, help="timed runs for the latency")
    return p.parse_args(argv)


def main(argv=None):
    return run(parse_args(argv))


def run(args):
    cfg = prediction_config(args.config_file or None, args.opts)
    model = build_model(cfg)
    Checkpointer(model).load(args.ckpt)
    size = cfg.INPUT.SIZE
    module = ExportModule(model.cpu(), size)
    batches = sorted({1, args.batch + 1, 2 * args.batch + 3} - {args.batch})
    faces = parity_faces(args, size, max(batches + [args.batch]))
    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    tmp = os.path.join(out_dir, f".{os.path.basename(args.out)}.unchecked.{os.getpid()}")
    try:
        export = export_onnx if args.format == "onnx" else export_torchscript
        export(module, faces[:args.batch], tmp)
        run = load_exported(tmp, args.format)
        diffs = check_parity(module, run, faces, batches)
        worst = max(diffs.values())
        print(f"parity with PyTorch (outputs {', '.join(module.output_names)}; traced at batch {args.batch}): "
              + ", ".join(f"batch {b}: max abs diff {d:.2e}" for b, d in diffs.items()))
        if not worst <= args.tolerance:
            raise UserError(f"the export differs from PyTorch by {worst:.2e} > --tolerance {args.tolerance:g}; "
                            f"{args.out} not written")
        os.replace(tmp, args.out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)

    one = faces[:1]
    with torch.inference_mode():
        t_torch = latency(lambda: module(one), args.repeats)
    run = load_exported(args.out, args.format)
    one_np = one.numpy()
    t_export = latency(lambda: run(one_np), args.repeats)
    mb = os.path.getsize(args.out) / 2 ** 20
    print(f"wrote {args.out}: {mb:.1f} MiB; {cfg.MODEL.META_ARCHITECTURE} ({cfg.MODEL.BACKBONE.NAME}), input {size} px")
    print(f"CPU latency per image at batch 1 ({torch.get_num_threads()} threads, median of {args.repeats}): "
          f"PyTorch {1000 * t_torch:.2f} ms, {args.format} {1000 * t_export:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
