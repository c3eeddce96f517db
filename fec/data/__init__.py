from .build import build_dataset, make_data_loader

__all__ = ["build_dataset", "make_data_loader"]
