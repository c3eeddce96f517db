"""Light modules stay light: what a fresh interpreter loads when it imports them."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEAVY = ("torch", "yacs", "torchvision", "facenet_pytorch", "fec.data.datasets", "fec.data.build")


def loaded_after(code):
    """Top-level names of the modules a fresh interpreter holds after ``code``."""
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint('\\n'.join(sys.modules))"],
                         cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize("module", ["fec.data.fec_csv", "fec.data.crop", "fec.data.detect", "fec.prepare",
                                    "fec.prepare.image"])
def test_light_modules_import_no_torch_and_no_dataset(module):
    loaded = loaded_after(f"import {module}")
    assert module in loaded
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_fec_data_loads_the_loader_on_first_use():
    loaded = loaded_after("import fec.data")
    assert "torch" not in loaded
    loaded = loaded_after("from fec.data import make_data_loader, build_dataset; assert callable(make_data_loader)")
    assert {"torch", "fec.data.build", "fec.data.datasets"} <= loaded


def test_unknown_attribute_of_fec_data_is_an_attribute_error():
    import fec.data

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        fec.data.nope  # noqa: B018


def test_a_convnet_model_does_not_load_facenet_pytorch():
    loaded = loaded_after("from fec.config import load_config\nfrom fec.modeling import build_model\n"
                          "build_model(load_config('config/quickstart_pretrain.yaml', []))")
    assert "torch" in loaded and "facenet_pytorch" not in loaded


def test_prepare_fec_help_loads_no_torch():
    out = subprocess.run([sys.executable, "-X", "importtime", os.path.join("tools", "prepare_fec.py"), "--help"],
                         cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True, check=True)
    assert "--face-check" in out.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if "|" in line}
    assert "fec.prepare.run" in imported or "fec.prepare" in imported
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))
