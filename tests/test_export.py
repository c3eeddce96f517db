"""tools/export.py: ONNX and TorchScript exports with a dynamic batch match PyTorch."""
import os

import numpy as np
import pytest
import torch
from helpers.tools import load_tool
from torch import nn

from fec.predictor.export import ExportModule, check_parity, export_torchscript, load_exported, sample_faces
from helpers.cli import exit_code

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICKSTART = os.path.join(ROOT, "config", "quickstart.yaml")
export_tool = load_tool("export")


@pytest.fixture(scope="module")
def model_and_ckpt(quickstart_model, quickstart_ckpt):
    # Its BatchNorm statistics are not the initial ones, as a trained model's are not:
    # the export must use them.
    return quickstart_model, quickstart_ckpt


def _check_against_pytorch(model, path, fmt):
    run = load_exported(path, fmt)
    faces = sample_faces(5, 64, seed=7)
    for batch in (1, 5):  # the export was traced at batch 2
        with torch.inference_mode():
            ref = model({"image": faces[:batch]})["embedding"].numpy()
        (out,) = run(faces[:batch].numpy())
        assert out.shape == (batch, 16)
        assert np.abs(out - ref).max() < 1e-4
    # A different face gives a different embedding: the export is not a constant.
    (a,) = run(faces[:1].numpy())
    (b,) = run(faces[1:2].numpy())
    assert np.abs(a - b).max() > 1e-3


def _export(fmt, ckpt, out, capsys, *extra):
    rc = exit_code(export_tool.main, ["--config-file", QUICKSTART, "--ckpt", ckpt, "--format", fmt,
                                      "--out", str(out), "--repeats", "2", *extra])
    return rc, capsys.readouterr()


def test_torchscript_export_matches_pytorch(model_and_ckpt, tmp_path, capsys):
    model, ckpt = model_and_ckpt
    out = tmp_path / "quickstart.pt"
    rc, printed = _export("torchscript", ckpt, out, capsys)
    assert rc == 0, printed.err
    assert "parity with PyTorch" in printed.out and "batch 1: max abs diff" in printed.out
    assert "MiB" in printed.out and "latency per image" in printed.out
    _check_against_pytorch(model, str(out), "torchscript")
    assert os.listdir(tmp_path) == ["quickstart.pt"]  # no temporary file left


@pytest.mark.slow
def test_onnx_export_matches_pytorch(model_and_ckpt, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    model, ckpt = model_and_ckpt
    out = tmp_path / "quickstart.onnx"
    rc, printed = _export("onnx", ckpt, out, capsys)
    assert rc == 0, printed.err
    assert "onnx" in printed.out and "latency per image" in printed.out
    _check_against_pytorch(model, str(out), "onnx")
    import onnx

    graph = onnx.load(str(out)).graph
    assert [i.name for i in graph.input] == ["image"] and [o.name for o in graph.output] == ["embedding"]
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param  # symbolic: dynamic batch


def test_failed_parity_writes_nothing(model_and_ckpt, tmp_path, capsys):
    _, ckpt = model_and_ckpt
    out = tmp_path / "m.pt"
    rc, printed = _export("torchscript", ckpt, out, capsys, "--tolerance", "-1")
    assert rc == 2 and "differs from PyTorch" in printed.err and "not written" in printed.err
    assert os.listdir(tmp_path) == []
    rc, printed = _export("torchscript", str(tmp_path / "missing.pth"), out, capsys)
    assert rc == 2 and "missing.pth" in printed.err


class TinyJointNet(nn.Module):
    """Eval contract of a joint classifier/regressor: logits and valence/arousal."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=4)
        self.cls = nn.Linear(4, 7)
        self.va = nn.Linear(4, 2)

    def forward(self, batch):
        x = self.conv(batch["image"].float() / 255).mean((2, 3))
        return {"valence_arousal": torch.tanh(self.va(x)), "logits": self.cls(x)}


def test_classifier_and_regressor_outputs_are_exported_by_name(tmp_path):
    torch.manual_seed(0)
    module = ExportModule(TinyJointNet(), 64)
    assert module.output_names == ["logits", "valence_arousal"]
    faces = sample_faces(6, 64)
    path = str(tmp_path / "joint.pt")
    export_torchscript(module, faces[:2], path)
    run = load_exported(path, "torchscript")
    logits, va = run(faces[:5].numpy())
    assert logits.shape == (5, 7) and va.shape == (5, 2)
    diffs = check_parity(module, run, faces, [1, 3, 6])
    assert set(diffs) == {1, 3, 6} and max(diffs.values()) < 1e-5


class BoxNet(nn.Module):
    def forward(self, batch):
        return {"boxes": batch["image"].float()[:, 0, :1, :4]}


def test_unknown_outputs_are_refused():
    with pytest.raises(ValueError, match="boxes"):
        ExportModule(BoxNet(), 64)
