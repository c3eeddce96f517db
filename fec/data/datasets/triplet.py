"""What every triplet dataset provides, and the dataset registry.

A triplet dataset holds N unique face images and M triplets over them:

- ``triplets``: (M, 3) int64 array of face indices (a, b, c); (a, b) is the pair the
  annotators found most similar (majority vote), c the odd one out.
- ``types``: (M,) int64 array, 0/1/2 for one-, two-, three-class triplets.
- ``load_face(i)``: face ``i`` as an H×W×3 uint8 RGB array.

In training mode an item is one triplet; in evaluation mode an item is one unique face,
so each face is embedded once however many triplets use it, and the evaluator scores
the triplets from the gathered embeddings. With INPUT.AUGMENT_ON device a training
item's ``images`` are the three unaugmented S×S×3 faces (a tuple) and ``augment`` their
(3, 8) drawn parameters (fec.data.device_augment).
"""
import numpy as np
import torch
from torch.utils.data import Dataset

from fec.data.fec_csv import TRIPLET_TYPES
from fec.data.samplers import sample_generator, split_key
from fec.data.transforms import apply_transform
from fec.utils.registry import Registry

# name → factory(cfg, is_train, **catalog_args) returning a dataset.
DATASETS = Registry("dataset")


class TripletDataset(Dataset):
    task = "triplet"

    def __init__(self, name, triplets, types, num_faces, is_train):
        self.name = name
        self.triplets = np.asarray(triplets, dtype=np.int64).reshape(-1, 3)
        self.types = np.asarray(types, dtype=np.int64).reshape(-1)
        if len(self.triplets) != len(self.types):
            raise ValueError(f"{name}: {len(self.triplets)} triplets but {len(self.types)} types")
        self.num_faces = int(num_faces)
        self.is_train = is_train
        # Set by make_data_loader: callable(H×W×3 uint8 array, torch.Generator or None)
        # returning a 3×S×S uint8 tensor (or, for INPUT.AUGMENT_ON device, it and its parameters).
        self.transform = None
        # Optional (N, K) ground-truth expression vectors (synthetic data only): the
        # accuracy they score is the ceiling that annotator noise leaves.
        self.expression_vectors = None
        # Set by make_data_loader with DATASETS.PACKED: a fec.data.face_store.FaceStore
        # whose row i is face i, read instead of load_face.
        self.store = None

    def load_face(self, i):
        raise NotImplementedError

    def type_counts(self):
        counts = np.bincount(self.types, minlength=3)
        return {TRIPLET_TYPES[t]: int(counts[t]) for t in range(3)}

    def __len__(self):
        return len(self.triplets) if self.is_train else self.num_faces

    def __getitem__(self, key):
        index, seed = split_key(key)
        gen = sample_generator(seed)
        if self.is_train:
            faces, params = zip(*(self._face(int(f), gen) for f in self.triplets[index]))
            item = {"type": int(self.types[index]), "index": int(index)}
            if params[0] is None:
                item["images"] = torch.stack(faces)
            else:  # INPUT.AUGMENT_ON device: applied to the batch
                # three faces collated into three batches: one copy per face, not two
                item["images"], item["augment"] = faces, torch.stack(params)
            return item
        image, params = self._face(int(index), gen)
        item = {"image": image, "index": int(index)}
        if params is not None:
            item["augment"] = params
        return item

    def _face(self, i, gen):
        img = self.load_face(i) if self.store is None else self.store.face(i)
        return apply_transform(self.transform, img, gen)
