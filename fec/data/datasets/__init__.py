from .triplet import DATASETS, TripletDataset  # noqa: F401
from . import synthetic  # noqa: F401
from . import fec_triplets  # noqa: F401
from . import synthetic_expression  # noqa: F401
from . import fer2013  # noqa: F401
from . import affectnet  # noqa: F401
from . import ferplus  # noqa: F401
from . import rafdb  # noqa: F401
