"""What the resume tests compare: the weights a checkpoint holds, bit for bit."""
import torch


def weights(path):
    """The model state_dict of the checkpoint at ``path``, on the CPU."""
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def assert_same_weights(a, b):
    """Two state_dicts with the same keys and bit-identical tensors (names the first that differs)."""
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def assert_weights_moved(a, b):
    """Some tensor differs: training changed the weights, so a comparison of ``a`` with a
    resumed run is not one of two untouched models."""
    assert not all(torch.equal(a[k], b[k]) for k in a)
