"""FEC dataset preparation: download the photos the official CSVs name, cut the face
crops, and write a folder the FEC dataset reads directly (tools/prepare_fec.py)."""
from .fetch import FetchOptions
from .merge import merge_shards
from .run import PrepareOptions, PrepareResult, prepare

__all__ = ["FetchOptions", "PrepareOptions", "PrepareResult", "prepare", "merge_shards"]
