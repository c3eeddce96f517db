import itertools

from torch.utils.data import BatchSampler

from fec.data.samplers import InferenceSampler, IterationBasedBatchSampler, TrainingSampler


def _take(sampler, n):
    return list(itertools.islice(iter(sampler), n))


def test_training_stream_covers_each_epoch_once_and_ranks_partition_it():
    size, world = 10, 3
    full = [i for i, _ in _take(TrainingSampler(size, seed=5), 30)]
    for e in range(3):
        assert sorted(full[e * size:(e + 1) * size]) == list(range(size))
    assert full[:10] != full[10:20]  # a new permutation each epoch
    per_rank = [_take(TrainingSampler(size, seed=5, rank=r, world_size=world), 10) for r in range(world)]
    merged = [per_rank[q % world][q // world] for q in range(30)]
    assert [i for i, _ in merged] == full
    seeds = [s for _, s in merged]
    assert len(set(seeds)) == 30  # every position gets its own augmentation seed


def test_training_ranks_share_each_epoch_evenly_and_disjointly():
    size, world = 12, 3
    firsts = [{i for i, _ in _take(TrainingSampler(size, seed=2, rank=r, world_size=world), size // world)}
              for r in range(world)]
    assert [len(f) for f in firsts] == [size // world] * world  # each rank its own 4 samples of the epoch
    assert set().union(*firsts) == set(range(size))  # together: the whole epoch, nothing twice


def test_training_stream_starts_anywhere():
    s = TrainingSampler(7, seed=1, rank=1, world_size=2)
    whole = _take(s, 25)
    later = _take(TrainingSampler(7, seed=1, rank=1, world_size=2, start=11), 14)
    assert later == whole[11:]


def test_iteration_based_batches_count_from_start_iter():
    batches = IterationBasedBatchSampler(BatchSampler(TrainingSampler(5, seed=0), 4, drop_last=True), 10, 0)
    got = list(batches)
    assert len(got) == 10 == len(batches)
    resumed = IterationBasedBatchSampler(
        BatchSampler(TrainingSampler(5, seed=0, start=6 * 4), 4, drop_last=True), 10, 6)
    assert list(resumed) == got[6:]


def test_inference_shards_are_contiguous_disjoint_and_unpadded():
    for size in (0, 1, 7, 100, 101):
        for world in (1, 2, 3, 8):
            shards = [list(InferenceSampler(size, r, world)) for r in range(world)]
            assert sum(shards, []) == list(range(size))
            assert sum(len(s) for s in shards) == size
            sizes = [len(s) for s in shards]
            assert max(sizes) - min(sizes) <= 1, (size, world, sizes)  # balanced: no rank holds everything
            assert [len(InferenceSampler(size, r, world)) for r in range(world)] == sizes
