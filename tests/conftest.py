"""Fixtures several test files share, and the check that every test and every module
leaves the process as it found it (so the suite passes in any order)."""
import os

import numpy as np
import pytest
import torch

from fec.config import load_config
from fec.data.datasets.synthetic import SyntheticTripletDataset
from fec.modeling import build_model
from fec.utils.checkpoint import Checkpointer
from helpers.process_state import changes, process_state


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` skip on a machine without a GPU."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if item.get_closest_marker("cuda"):
            item.add_marker(skip)


@pytest.fixture(autouse=True, scope="module")
def module_leaves_the_process_as_it_found_it():
    before = process_state()
    yield
    changed = changes(before, process_state())
    assert not changed, "this module's fixtures changed the process for later tests: " + "; ".join(changed)


@pytest.fixture(autouse=True)
def test_leaves_the_process_as_it_found_it():
    before = process_state()
    yield
    changed = changes(before, process_state())
    assert not changed, "this test changed the process for later tests: " + "; ".join(changed)


QUICKSTART = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "config", "quickstart.yaml")


@pytest.fixture(scope="session")
def quickstart_model():
    """The quickstart model (64 px convnet embedding), untrained, in eval mode. Its
    BatchNorm statistics are those of 64 synthetic faces, as a trained model's are its
    data's, so that different faces get clearly different embeddings (with the initial
    statistics a random convnet maps every face to nearly one point)."""
    torch.manual_seed(0)
    model = build_model(load_config(QUICKSTART, ["MODEL.BACKBONE.FREEZE_AT", "0"]))
    faces = SyntheticTripletDataset("test", 8, 8, 10, render_size=64)
    images = torch.from_numpy(np.stack([faces.load_face(i) for i in range(faces.num_faces)])).permute(0, 3, 1, 2)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # a plain average over the batches seen
    model.train()
    with torch.no_grad():
        model.embed(images)
    return model.eval()


@pytest.fixture(scope="session")
def quickstart_ckpt(quickstart_model, tmp_path_factory):
    """``quickstart_model`` saved as training saves it."""
    out = tmp_path_factory.mktemp("ckpt")
    Checkpointer(quickstart_model, save_dir=str(out)).save("model_final", 0)
    return str(out / "model_final.pth")
