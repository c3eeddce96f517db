"""Everything that feeds the trainer: datasets, transforms, samplers, loaders, and the
light modules the FEC download tool shares with them (``crop``, ``fec_csv``,
``detect``), which need neither torch nor the dataset registry.

``build_dataset`` and ``make_data_loader`` are loaded on first use, so importing a light
module (``import fec.data.fec_csv``) does not load torch and every dataset.
"""
import importlib

__all__ = ["build_dataset", "check_test_datasets", "make_data_loader"]


def __getattr__(name):
    if name in __all__:
        return getattr(importlib.import_module(".build", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
