"""The FEC triplets: an official CSV plus a folder of prepared face crops.

Preparation (tools/prepare_fec.py) downloads what it can and writes each face as
``<image_dir>/<crop_id>.jpg``, already square. Many URLs are dead, so triplets whose
crops are missing are dropped here, as are triplets without a unique majority vote.
"""
import logging
import os

import numpy as np

from fec.data.crop import read_rgb
from fec.data.fec_index import load_fec_table
from fec.utils.errors import DatasetError

from .triplet import DATASETS, TripletDataset

logger = logging.getLogger(__name__)

_LINK_HINT = "run `make link FEC=/path/to/prepared/fec` to point datasets/fec at a prepared FEC folder"


class FECTripletDataset(TripletDataset):
    def __init__(self, csv, image_dir, is_train, name=None):
        for path in (csv, image_dir):
            if not os.path.exists(path):
                raise DatasetError(f"{path} does not exist; {_LINK_HINT}")
        if not os.path.isdir(image_dir):
            raise NotADirectoryError(f"{image_dir} is not a folder of face crops; {_LINK_HINT}")
        name = name or os.path.splitext(os.path.basename(csv))[0]
        table = load_fec_table(csv, strict=False)
        if table.skipped:
            reasons = ", ".join(f"{reason}: {n}" for reason, n in sorted(table.skipped.items()))
            logger.warning("%s: skipped %d malformed rows (%s)", csv, sum(table.skipped.values()), reasons)

        majority = table.label > 0
        logger.info("%s: %d triplets over %d faces; dropped %d without a unique majority vote",
                    name, len(table), table.num_faces, int((~majority).sum()))

        # One listing of the folder, not one stat per face.
        with os.scandir(image_dir) as entries:
            present = {e.name[:-4] for e in entries if e.name.endswith(".jpg")}
        crop_ids = table.face_crop_ids()
        has_crop = np.fromiter((c in present for c in crop_ids), dtype=bool, count=len(crop_ids))
        complete = has_crop[table.triplets].all(axis=1)
        keep = majority & complete
        logger.info("%s: dropped %d triplets with a missing crop (%d of %d faces have one)",
                    name, int((majority & ~complete).sum()), int(has_crop.sum()), table.num_faces)

        triplets = table.similar_pair_order()[keep]
        # Re-index over the faces that kept triplets use, in their original order.
        used = np.unique(triplets)
        new_index = np.full(table.num_faces, -1, dtype=np.int64)
        new_index[used] = np.arange(len(used))
        super().__init__(name, new_index[triplets], table.types[keep], len(used), is_train)
        self.csv, self.image_dir = csv, image_dir
        self.crop_ids = [crop_ids[i] for i in used.tolist()]
        self.csv_lines = table.line[keep]  # for tracing a triplet back to its row
        counts = ", ".join(f"{k}: {n}" for k, n in self.type_counts().items())
        logger.info("%s: kept %d triplets over %d faces (%s)", name, len(self.triplets), self.num_faces, counts)

    def pack_identity(self):
        """What a packed store of these faces is made from (fec.data.face_store)."""
        return {"sources": [self.csv], "keys": self.crop_ids, "settings": {}, "channels": 3}

    def face_path(self, i):
        return os.path.join(self.image_dir, self.crop_ids[i] + ".jpg")

    def load_face(self, i):
        return read_rgb(self.face_path(i), f"face crop {self.face_path(i)}")


@DATASETS.register("FECTripletDataset")
def build_fec_triplets(cfg, is_train, csv, image_dir):
    return FECTripletDataset(csv, image_dir, is_train)
