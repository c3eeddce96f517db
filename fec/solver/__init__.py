from .build import make_lr_scheduler, make_optimizer

__all__ = ["make_optimizer", "make_lr_scheduler"]
