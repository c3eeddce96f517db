"""fec: a training framework for facial-expression models."""

__version__ = "0.1.0"
