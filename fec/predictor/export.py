"""Export the eval-mode model to ONNX or TorchScript, with a dynamic batch dimension,
and check the export against PyTorch.

The exported graph takes ``image``: (N, 3, S, S) uint8 RGB (the model normalises inside)
and returns the model's eval outputs under their names, in the order of
fec.modeling.meta_arch.base.OUTPUTS (the outputs every meta-architecture declares):
``embedding`` (N, D) unit vectors, ``logits`` (N, C) (softmax gives the
probabilities), ``valence_arousal`` (N, 2), ``intensities`` (N, K).
"""
import logging
import os
import statistics
import time
import warnings

import numpy as np
import torch
from torch import nn

from fec.data.datasets.synthetic_faces import random_identities, render_face, sample_expressions
from fec.modeling.meta_arch.base import check_output_keys
from fec.utils.errors import DependencyError

logger = logging.getLogger(__name__)

FORMATS = ("onnx", "torchscript")


class ExportModule(nn.Module):
    """The model as a function of one uint8 image tensor, returning a tuple."""

    def __init__(self, model, input_size):
        super().__init__()
        self.model = model.eval()
        with torch.inference_mode():
            keys = model({"image": torch.zeros(1, 3, input_size, input_size, dtype=torch.uint8)}).keys()
        self.output_names = list(check_output_keys(keys))
        self.eval()

    def forward(self, image):
        out = self.model({"image": image})
        return tuple(out[k] for k in self.output_names)


def sample_faces(num, size, seed=0):
    """(num, 3, size, size) uint8 synthetic faces (fec.data.datasets.synthetic_faces): real
    image statistics for the parity check, with nothing to download."""
    rng = np.random.default_rng(seed)
    identities = random_identities(rng, num)
    expressions, _ = sample_expressions(rng, num)
    faces = [render_face(e, idt, size, rng) for e, idt in zip(expressions, identities)]
    return torch.from_numpy(np.stack(faces)).permute(0, 3, 1, 2).contiguous()


def _replace_from(tmp, path):
    try:
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def export_torchscript(module, example, path):
    """torch.jit.trace: the eval path has no data-dependent control flow, so the trace
    holds for any batch size (checked by check_parity)."""
    with warnings.catch_warnings():
        # Shape checks in the model become constants of the trace; they hold for the
        # fixed input size. torch.jit is deprecated in recent torch but still serves.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.trace(module, (example,), check_trace=False)
    tmp = f"{path}.tmp.{os.getpid()}"
    traced.save(tmp)
    _replace_from(tmp, path)


def export_onnx(module, example, path, opset=18):
    """torch.onnx's torch.export-based exporter (needs onnxscript), with the batch
    dimension dynamic; falls back to the TorchScript-based exporter if it fails."""
    names = dict(input_names=["image"], output_names=module.output_names)
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        torch.onnx.export(module, (example,), tmp, dynamo=True, external_data=False, opset_version=opset,
                          dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},), **names)
    except Exception as e:  # noqa: BLE001  (any exporter failure: try the other one)
        logger.warning("torch.export-based ONNX export failed (%s); using the TorchScript-based exporter",
                       str(e).splitlines()[0] if str(e) else type(e).__name__)
        axes = {n: {0: "batch"} for n in names["input_names"] + names["output_names"]}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                torch.onnx.export(module, (example,), tmp, dynamo=False, opset_version=min(opset, 17),
                                  dynamic_axes=axes, **names)
            except ImportError as missing:
                raise DependencyError(f"exporting to ONNX needs {missing.name or 'onnx'}: "
                                      "pip install -e '.[onnx]'") from None
    _replace_from(tmp, path)


def load_exported(path, fmt, threads=None):
    """A function (N, 3, S, S) uint8 NumPy array → list of NumPy outputs, running the
    exported file: TorchScript with torch, ONNX with onnxruntime on the CPU."""
    threads = threads or torch.get_num_threads()
    if fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notice
            scripted = torch.jit.load(path, map_location="cpu").eval()

        def run(x):
            with torch.inference_mode():
                return [t.numpy() for t in scripted(torch.from_numpy(x))]
        return run
    if fmt == "onnx":
        try:
            import onnxruntime as ort
        except ImportError:
            raise DependencyError("checking an ONNX export needs onnxruntime: pip install -e '.[onnx]'") from None
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda x: session.run(None, {name: x})
    raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")


def check_parity(module, run, faces, batch_sizes):
    """{batch size: max |exported - PyTorch| over every output} on ``faces`` split into
    batches of each size."""
    result = {}
    for b in batch_sizes:
        x = faces[:b]
        with torch.inference_mode():
            ref = [t.float().numpy() for t in module(x)]
        out = run(x.numpy())
        result[b] = max(float(np.abs(np.asarray(o, np.float32) - r).max()) for o, r in zip(out, ref))
    return result


def latency(fn, repeats=20, warmup=3):
    """Median seconds of ``fn()`` over ``repeats`` calls after ``warmup``."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
