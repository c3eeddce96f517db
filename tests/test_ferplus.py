"""FER+ read from a fer2013new.csv and a fer2013.csv written here: which faces the
majority rule keeps and drops (one row per case of Microsoft's FERPlus reference
rule, and the rule itself re-stated here on random votes), the vote-distribution
target and its loss, and the errors for files that do not belong together."""
import logging
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fec.config import load_config
from fec.data import build_dataset, make_data_loader
from fec.data.datasets.ferplus import FERPlusDataset, majority_labels
from fec.modeling import build_model
from fec.utils.errors import DatasetError

HEADER = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"
FERPLUS = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt"]
# (image name, votes: 8 emotions, unknown, NF) → the class kept, or None when dropped.
CASES = [
    ("fer0000000.png", [0, 10, 0, 0, 0, 0, 0, 0, 0, 0], 1),  # unanimous happiness
    ("", [0, 10, 0, 0, 0, 0, 0, 0, 0, 0], None),  # no image name: not in FER+
    ("fer0000002.png", [4, 0, 0, 4, 2, 0, 0, 0, 0, 0], None),  # tie
    ("fer0000003.png", [5, 0, 0, 5, 0, 0, 0, 0, 0, 0], None),  # exactly half is no majority
    ("fer0000004.png", [4, 1, 1, 1, 1, 1, 1, 0, 0, 0], 0),  # single votes ignored: 4 of 4
    ("fer0000005.png", [1, 1, 1, 1, 1, 1, 1, 1, 1, 1], None),  # only single votes
    ("fer0000006.png", [2, 0, 0, 0, 0, 0, 0, 0, 6, 2], None),  # unknown majority
    ("fer0000007.png", [0, 0, 0, 0, 0, 0, 0, 0, 0, 10], None),  # not-a-face majority
    ("fer0000008.png", [6, 0, 0, 2, 0, 0, 0, 0, 2, 0], 0),  # unknown votes count in the total
    ("fer0000009.png", [5, 0, 0, 3, 0, 0, 0, 0, 2, 0], None),  # ... so 5 of 10 is not a majority
    ("fer0000010.png", [0, 0, 0, 0, 0, 0, 0, 7, 3, 0], 7),  # contempt
    ("fer0000011.png", [0, 0, 2, 0, 0, 0, 7, 0, 0, 1], 6),  # fear; a single NF vote ignored
]
USAGES = ["Training"] * 12 + ["PublicTest"] * 3 + ["PrivateTest"] * 3
EXTRA = [("fer0000012.png", [0, 0, 9, 0, 0, 0, 0, 0, 1, 0], 2), ("fer0000013.png", [3, 0, 0, 7, 0, 0, 0, 0, 0, 0], 3),
         ("fer0000014.png", [0, 0, 0, 0, 0, 0, 0, 0, 10, 0], None)] * 2


def write_files(root, cases=CASES + EXTRA, usages=USAGES, fer_usages=None, fer_rows=None):
    """datasets/fer2013/fer2013.csv (one random face per row) and datasets/ferplus/fer2013new.csv."""
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (len(cases), 48, 48))
    fer = ["emotion,pixels,Usage"] + [f"{i % 7},{' '.join(map(str, f.ravel()))},{u}"
                                      for i, (f, u) in enumerate(zip(faces, fer_usages or usages))]
    (root / "fer2013").mkdir(parents=True, exist_ok=True)
    (root / "fer2013" / "fer2013.csv").write_text("\n".join(fer[:fer_rows]) + "\n")
    lines = [HEADER] + [f"{u},{name}," + ",".join(map(str, v)) for (name, v, _), u in zip(cases, usages)]
    (root / "ferplus").mkdir(parents=True, exist_ok=True)
    (root / "ferplus" / "fer2013new.csv").write_text("\n".join(lines) + "\n")
    return faces.astype(np.uint8)


def _cfg(root, *opts):
    return load_config(None, ["DATASETS.ROOT", str(root), "INPUT.SIZE", "48", "DATALOADER.NUM_WORKERS", "0",
                              "MODEL.META_ARCHITECTURE", "Classifier", "MODEL.BACKBONE.NAME", "deep_emotion",
                              "MODEL.CLASSIFIER.NUM_CLASSES", "8", "MODEL.CLASSIFIER.CLASS_NAMES", str(FERPLUS),
                              *opts])


def reference_rule(votes, name):
    """The FERPlus reference's majority mode, re-stated: the class kept, or None."""
    if not name.strip():
        return None
    v = [0.0 if x < 1.0 + sys.float_info.epsilon else float(x) for x in votes]
    if max(v) > 0.5 * sum(v):
        k = v.index(max(v))
        return k if k < 8 else None
    return None


def test_majority_keeps_and_drops_each_case_as_the_reference(tmp_path, caplog):
    faces = write_files(tmp_path)
    assert [reference_rule(votes, name) for name, votes, _ in CASES] == [k for _, _, k in CASES]
    with caplog.at_level(logging.INFO, logger="fec.data.datasets.ferplus"):
        ds = build_dataset(_cfg(tmp_path), "ferplus_train", is_train=False)
    kept = [i for i, (_, _, k) in enumerate(CASES) if k is not None]
    assert ds.rows.tolist() == kept == [0, 4, 8, 10, 11]
    assert ds.labels.tolist() == [CASES[i][2] for i in kept]
    assert ds.class_names == FERPLUS
    np.testing.assert_array_equal(ds.pixels, faces[kept])
    np.testing.assert_array_equal(ds[2]["image"][0].numpy(), faces[8])
    assert ds.dropped == {"without an image name": 1, "without a majority (ties, single votes)": 4,
                          "with an unknown majority": 1, "with a not-a-face majority": 1}
    assert ("5 of 12 faces kept; dropped 1 without an image name, 4 without a majority (ties, single votes), "
            "1 with an unknown majority, 1 with a not-a-face majority") in caplog.text
    # val and test: the PublicTest / PrivateTest rows, same rule
    for name, first in (("ferplus_val", 12), ("ferplus_test", 15)):
        split = build_dataset(_cfg(tmp_path), name, is_train=False)
        assert split.rows.tolist() == [first, first + 1] and split.labels.tolist() == [2, 3]
        assert split.dropped["with an unknown majority"] == 1


def test_majority_rule_equals_the_reference_on_random_votes():
    rng = np.random.default_rng(1)
    # ten annotators spread over few columns, so ties, single votes and unknown/NF majorities all occur
    votes = np.stack([np.bincount(rng.choice(10, 10, p=rng.dirichlet(np.full(10, 0.3))), minlength=10)
                      for _ in range(3000)])
    names = np.where(rng.random(3000) < 0.05, "", "fer.png")
    got = majority_labels(votes, names)
    expected = [reference_rule(v.tolist(), n) for v, n in zip(votes, names)]
    assert [int(g) if g >= 0 else None for g in got] == expected
    outcomes = set(got.tolist())
    assert {-1, -2, -3, -4} <= outcomes and len(outcomes & set(range(8))) == 8  # every case was met


def test_probability_loss_is_cross_entropy_to_the_normalised_votes(tmp_path):
    write_files(tmp_path)
    cfg = _cfg(tmp_path, "DATASETS.FERPLUS.LABEL_MODE", "probability", "DATASETS.TRAIN", "('ferplus_train',)",
               "SOLVER.IMS_PER_BATCH", "5", "SOLVER.MAX_ITER", "1", "INPUT.FLIP_PROB", "0.0",
               "INPUT.CROP_SCALE", "[1.0, 1.0]", "INPUT.COLOR_JITTER", "0.0")
    [batch] = list(make_data_loader(cfg, is_train=True))
    # the targets, from the written votes: single votes dropped, the 8 emotions normalised
    rows = [0, 4, 8, 10, 11]
    counts = np.array([[0.0 if x <= 1 else float(x) for x in CASES[r][1][:8]] for r in rows])
    targets = torch.tensor(counts / counts.sum(1, keepdims=True), dtype=torch.float32)
    order = batch["index"].tolist()
    assert sorted(order) == list(range(5))
    assert torch.allclose(batch["label_distribution"], targets[order])
    assert batch["label_distribution"][order.index(1)].tolist() == [1.0] + [0.0] * 7  # 4 neutral, single votes out
    torch.manual_seed(0)
    model = build_model(cfg).train()
    torch.manual_seed(1)  # the same dropout masks for both passes
    loss = model(batch)["loss_cls"]
    torch.manual_seed(1)
    log_p = F.log_softmax(model.predict(batch["image"])["logits"], dim=1)
    expected = -(targets[order] * log_p).sum(1).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    majority = F.nll_loss(log_p, batch["label"])
    assert abs(majority.item() - expected.item()) > 1e-3  # the soft target is not the majority one


def test_items_carry_the_distribution_only_in_probability_mode(tmp_path):
    write_files(tmp_path)
    item = build_dataset(_cfg(tmp_path), "ferplus_val", is_train=False)[0]
    assert set(item) == {"image", "label", "index"}
    item = build_dataset(_cfg(tmp_path, "DATASETS.FERPLUS.LABEL_MODE", "probability"), "ferplus_val", False)[0]
    assert set(item) == {"image", "label", "index", "label_distribution"}
    assert item["label_distribution"].tolist() == [0.0, 0.0, 1.0] + [0.0] * 5  # 9 surprise, 1 unknown


def test_files_that_do_not_belong_together(tmp_path):
    write_files(tmp_path, fer_rows=10)  # a fer2013.csv of another length
    with pytest.raises(ValueError, match="18 rows but .*fer2013.csv has 9 faces"):
        build_dataset(_cfg(tmp_path), "ferplus_train", False)
    write_files(tmp_path, fer_usages=["PublicTest"] + USAGES[1:])
    with pytest.raises(ValueError, match="fer2013new.csv, line 2: Usage Training but the face it labels, "
                                         ".*fer2013.csv, line 2, is PublicTest"):
        build_dataset(_cfg(tmp_path), "ferplus_train", False)
    write_files(tmp_path)
    (tmp_path / "ferplus" / "fer2013new.csv").write_text("Usage,neutral\n")
    with pytest.raises(ValueError, match="is not FER\\+'s"):
        build_dataset(_cfg(tmp_path), "ferplus_train", False)
    with pytest.raises(ValueError, match="LABEL_MODE must be majority or probability"):
        _cfg(tmp_path, "DATASETS.FERPLUS.LABEL_MODE", "soft")
    with pytest.raises(FileNotFoundError, match="make link FERPLUS="):
        FERPlusDataset(str(tmp_path / "nope.csv"), str(tmp_path / "fer2013"), "Training")


def test_ferplus_needs_every_fer2013_face_in_order(tmp_path):
    write_files(tmp_path)
    (tmp_path / "fer2013" / "fer2013.csv").rename(tmp_path / "fer2013" / "train.csv")
    with pytest.raises(DatasetError, match="needs fer2013.csv or icml_face_data.csv"):
        build_dataset(_cfg(tmp_path), "ferplus_train", False)
