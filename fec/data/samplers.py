"""Samplers: an endless training stream that every rank slices and that can start at
any iteration, and contiguous, unpadded inference shards."""
import torch
from torch.utils.data import BatchSampler, Sampler

_SEED_MIX = 0x9E3779B97F4A7C15


def split_key(key):
    """A dataset key → (index, seed or None). The training sampler passes
    ``(index, sample_seed)``, so a sample's augmentation is a function of its position
    in the data stream (exact resume whatever the worker count); evaluation passes a
    plain index."""
    index, seed = key if isinstance(key, tuple) else (key, None)
    return int(index), None if seed is None else int(seed)


def sample_generator(seed):
    """The torch.Generator a sample's augmentation draws from, or None without a seed."""
    return None if seed is None else torch.Generator().manual_seed(seed)


class TrainingSampler(Sampler):
    """Endless stream of ``(index, sample_seed)``: epoch e is a permutation of
    ``range(size)`` drawn from ``seed`` and e, identical on every rank; global position
    q goes to rank ``q % world_size``. ``start`` is this rank's first local position.
    ``sample_seed`` depends on (seed, q) only, so augmentation is reproducible."""

    def __init__(self, size, seed=0, rank=0, world_size=1, start=0):
        if size <= 0:
            raise ValueError("the training dataset is empty")
        self.size, self.seed, self.rank, self.world_size, self.start = size, seed, rank, world_size, start

    def _perm(self, epoch):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.size, generator=g)

    def __iter__(self):
        k = self.start
        epoch, perm = -1, None
        while True:
            q = k * self.world_size + self.rank
            if q // self.size != epoch:
                epoch = q // self.size
                perm = self._perm(epoch)
            yield int(perm[q % self.size]), (self.seed * _SEED_MIX + q) % (2**63)
            k += 1


class IterationBasedBatchSampler(BatchSampler):
    """Batches from ``batch_sampler`` until ``num_iterations`` in all, counting from
    ``start_iter``: training runs exactly SOLVER.MAX_ITER iterations across resumes."""

    def __init__(self, batch_sampler, num_iterations, start_iter=0):
        self.batch_sampler = batch_sampler
        self.num_iterations = num_iterations
        self.start_iter = start_iter

    def __iter__(self):
        it = self.start_iter
        while it < self.num_iterations:
            for batch in self.batch_sampler:
                if it >= self.num_iterations:
                    return
                yield batch
                it += 1

    def __len__(self):
        return max(self.num_iterations - self.start_iter, 0)


class InferenceSampler(Sampler):
    """Rank r gets ``range(size)[r*size//world : (r+1)*size//world]``: disjoint, covering
    everything once, no padding (a padded sampler counts samples twice)."""

    def __init__(self, size, rank=0, world_size=1):
        self.begin = rank * size // world_size
        self.end = (rank + 1) * size // world_size

    def __iter__(self):
        return iter(range(self.begin, self.end))

    def __len__(self):
        return self.end - self.begin
