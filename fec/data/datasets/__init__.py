from .base import DATASETS, TripletDataset  # noqa: F401
from . import synthetic  # noqa: F401
from . import fec_triplets  # noqa: F401
