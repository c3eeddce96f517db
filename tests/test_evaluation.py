import math

import pytest
import torch

from fec.evaluation import evaluate_triplets
from fec.engine.inference import merge_by_index


def test_hand_computed_triplets_with_ties_and_types():
    # points on a line: 0 at 0.0, 1 at 1.0, 2 at 3.0, 3 at 2.0
    emb = torch.tensor([[0.0], [1.0], [3.0], [2.0]])
    triplets = torch.tensor([
        [0, 1, 2],  # d01=1 < d02=9, d12=4: correct
        [0, 2, 1],  # d02=9 not < d01=1: wrong
        [1, 2, 3],  # d12=4, d13=1: wrong (d(a,c) smaller)
        [0, 3, 1],  # d03=4, d01=1: wrong
        [1, 3, 0],  # d13=1 < d10=1? tie -> wrong
        [2, 3, 0],  # d23=1 < d20=9, d30=4: correct
    ])
    types = torch.tensor([0, 0, 1, 1, 2, 2])
    r = evaluate_triplets(emb, triplets, types)
    assert r["count"] == 6
    assert r["accuracy"] == pytest.approx(2 / 6)
    assert r["per_type"]["ONE_CLASS_TRIPLET"] == {"accuracy": 0.5, "count": 2}
    assert r["per_type"]["TWO_CLASS_TRIPLET"] == {"accuracy": 0.0, "count": 2}
    assert r["per_type"]["THREE_CLASS_TRIPLET"] == {"accuracy": 0.5, "count": 2}


def test_second_condition_matters_and_empty_type_is_nan():
    # d(a,b) < d(a,c) but not < d(b,c): wrong
    emb = torch.tensor([[0.0, 0.0], [2.0, 0.0], [2.0, 1.0]])
    r = evaluate_triplets(emb, torch.tensor([[0, 1, 2]]), torch.tensor([1]))
    assert r["accuracy"] == 0.0
    assert math.isnan(r["per_type"]["ONE_CLASS_TRIPLET"]["accuracy"])
    assert r["per_type"]["ONE_CLASS_TRIPLET"]["count"] == 0


def test_merge_by_index_orders_and_rejects_gaps_or_repeats():
    shards = [(torch.tensor([2, 0]), {"e": torch.tensor([[2.0], [0.0]])}),
              (torch.tensor([1]), {"e": torch.tensor([[1.0]])})]
    assert merge_by_index(shards, 3)["e"].flatten().tolist() == [0.0, 1.0, 2.0]
    with pytest.raises(RuntimeError, match="1 missing"):
        merge_by_index(shards, 4)
    dup = shards + [(torch.tensor([1]), {"e": torch.tensor([[1.0]])})]
    with pytest.raises(RuntimeError, match="1 repeated"):
        merge_by_index(dup, 3)
