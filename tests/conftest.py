"""Fixtures several test files share."""
import os

import pytest
import torch

from fec.config import load_config
from fec.modeling import build_model
from fec.utils.checkpoint import Checkpointer

QUICKSTART = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "config", "quickstart.yaml")


@pytest.fixture(scope="session")
def quickstart_ckpt(tmp_path_factory):
    """The quickstart model (64 px ResNet18 embedding), untrained, saved as training saves it."""
    out = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    Checkpointer(build_model(load_config(QUICKSTART)), save_dir=str(out)).save("model_final", 0)
    return str(out / "model_final.pth")
