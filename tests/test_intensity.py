"""The quickstart's two stages and what they are built from: the convnet backbone,
the synthetic_intensity datasets, the IntensityRegressor, the intensity evaluator
(against formulas written out here), and train_net/test_net end to end at a tiny size:
stage 1 writes intensity metrics, stage 2 starts from its backbone, keeps it frozen,
and test_net evaluates what stage 2 wrote rather than its starting MODEL.WEIGHTS.
CPU only, no network."""
import json
import logging
import os
import signal
import sys
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fec.config import load_config
from fec.data import build_dataset
from fec.data.datasets.expression import ExpressionDataset
from fec.data.datasets.synthetic_faces import EXPRESSION_NAMES
from fec.data.datasets.synthetic_expression import SyntheticExpressionDataset
from fec.evaluation import EVALUATORS, build_evaluator
from fec.evaluation.affect import IntensityEvaluator
from fec.modeling import build_model
from fec.modeling.registry import BACKBONES
from helpers.checkpoints import weights

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRETRAIN = os.path.join(ROOT, "config", "quickstart_pretrain.yaml")
QUICKSTART = os.path.join(ROOT, "config", "quickstart.yaml")


def backbone_cfg(*opts, width=4, size=64):
    return load_config(None, ["MODEL.BACKBONE.NAME", "convnet", "MODEL.BACKBONE.WIDTH", str(width),
                              "INPUT.SIZE", str(size), *opts])


def build_backbone(*opts, width=4, size=64, seed=0):
    torch.manual_seed(seed)
    return BACKBONES["convnet"](backbone_cfg(*opts, width=width, size=size))


# -- convnet ---------------------------------------------------------------------------


@pytest.mark.parametrize("size,side", [(64, 8), (160, 20)])
def test_convnet_output_shape(size, side):
    net = build_backbone(size=size, width=4).eval()
    assert net.out_channels == 16
    with torch.no_grad():
        out = net(torch.randn(2, 3, size, size))
    assert out.shape == (2, 16, side, side)
    assert net.feature_size(size) == side


def test_convnet_cut_at_stage2_has_twice_the_width():
    net = build_backbone("MODEL.BACKBONE.CUT_AT", "stage2", width=5).eval()
    assert net.out_channels == 10 and net.stage_names == ["stem", "stage1", "stage2"]
    assert not hasattr(net, "conv5") and not hasattr(net, "conv6")
    with torch.no_grad():
        assert net(torch.randn(1, 3, 64, 64)).shape == (1, 10, 16, 16)
    with pytest.raises(ValueError, match="CUT_AT"):
        build_backbone("MODEL.BACKBONE.CUT_AT", "stage4")


def test_convnet_freeze_all_keeps_weights_and_batchnorm_statistics():
    net = build_backbone("MODEL.BACKBONE.FREEZE_AT", "-1")
    assert net.frozen_stages == ["stem", "stage1", "stage2", "stage3"]
    assert all(not p.requires_grad for p in net.parameters())
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    net(torch.randn(4, 3, 64, 64) * 3 + 1)
    after = net.state_dict()
    bn_buffers = [k for k in before if "running_" in k]
    assert len(bn_buffers) == 12  # 6 BatchNorms, mean and var each
    for k in before:
        assert torch.equal(before[k], after[k]), k
    # Unfrozen, the same forward moves the statistics (the check above is not vacuous).
    free = build_backbone("MODEL.BACKBONE.FREEZE_AT", "0").train()
    assert all(p.requires_grad for p in free.parameters())
    start = free.conv1[1].running_mean.clone()
    free(torch.randn(4, 3, 64, 64) * 3 + 1)
    assert not torch.equal(start, free.conv1[1].running_mean)


def test_convnet_freeze_at_out_of_range_is_an_error():
    with pytest.raises(ValueError, match="FREEZE_AT"):
        build_backbone("MODEL.BACKBONE.FREEZE_AT", "5")


def test_convnet_loads_a_local_state_dict(tmp_path):
    source = build_backbone(seed=1)
    # Statistics too, so that buffers are checked, not only the random init.
    for m in source.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    path = tmp_path / "convnet.pth"
    torch.save(source.state_dict(), path)
    loaded = build_backbone("MODEL.BACKBONE.WEIGHTS", str(path), seed=2)
    fresh = build_backbone(seed=2)
    src = source.state_dict()
    assert list(loaded.state_dict()) == list(src)
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, src[k]), k
    assert not torch.equal(fresh.conv1[0].weight, src["conv1.0.weight"])
    # A cut network takes the uncut file, ignoring the cut-off layers.
    cut = build_backbone("MODEL.BACKBONE.WEIGHTS", str(path), "MODEL.BACKBONE.CUT_AT", "stage1", seed=3)
    assert torch.equal(cut.conv2[0].weight, src["conv2.0.weight"])
    # Another width does not fit, and says so.
    with pytest.raises(RuntimeError, match="cannot load"):
        build_backbone("MODEL.BACKBONE.WEIGHTS", str(path), width=8)
    with pytest.raises(ValueError, match="neither a pretrained name"):
        build_backbone("MODEL.BACKBONE.WEIGHTS", str(tmp_path / "missing.pth"))


def test_convnet_input_size_limits():
    """The convnet itself takes any input of at least 1 px (every reduction is a padded
    3x3/2 conv); too small an INPUT.SIZE is refused, with its range, by the config."""
    net = build_backbone(size=16).eval()
    assert net.min_input_size == 1
    with torch.no_grad():
        assert net(torch.randn(1, 3, 16, 16)).shape == (1, 16, 2, 2)
    with pytest.raises(ValueError, match=r"at least 1 px"):
        net.check_input_size(0)
    with pytest.raises(ValueError, match=r"INPUT.SIZE must be within 16\.\.\d+, got 8"):
        build_backbone(size=8)


def test_convnet_bad_width_is_an_error():
    with pytest.raises(ValueError, match="WIDTH"):
        build_backbone(width=0)


# -- synthetic_intensity dataset -------------------------------------------------------


def test_synthetic_intensity_items():
    ds = SyntheticExpressionDataset("test", "affectnet", "intensity", 12, images_per_identity=4, render_size=32,
                                is_train=False)
    assert ds.task == "intensity" and ds.intensity_names == list(EXPRESSION_NAMES)
    assert ds.intensities.shape == (12, 6) and ds.intensities.dtype == torch.float32
    assert np.array_equal(ds.intensities.numpy(), ds.expression_vectors)
    for i in (0, 5, 11):
        item = ds[i]
        assert set(item) == {"image", "intensities", "index"}
        assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.uint8
        assert item["intensities"].dtype == torch.float32 and item["intensities"].shape == (6,)
        assert np.array_equal(item["intensities"].numpy(), ds.expression_vectors[i])
    # A fresh tensor, not a view of the whole table.
    item = ds[3]
    item["intensities"].zero_()
    assert np.array_equal(ds.intensities[3].numpy(), ds.expression_vectors[3])


def test_synthetic_intensity_catalog_entries():
    cfg = load_config(None, ["INPUT.SIZE", "32", "DATASETS.SYNTHETIC_AFFECT.TRAIN_IMAGES", "10",
                             "DATASETS.SYNTHETIC_AFFECT.TEST_IMAGES", "7"])
    test = build_dataset(cfg, "synthetic_intensity_test", is_train=False)
    train = build_dataset(cfg, "synthetic_intensity_train", is_train=True)
    assert (len(train), len(test)) == (10, 7)
    assert test.task == train.task == "intensity"
    assert test.intensity_names == list(EXPRESSION_NAMES) == list(cfg.MODEL.INTENSITY.NAMES)
    item = test[2]
    assert "label" not in item and "valence_arousal" not in item
    assert item["image"].shape == (3, 32, 32)
    assert torch.equal(item["intensities"], torch.from_numpy(test.expression_vectors[2]))
    assert isinstance(build_evaluator(test), IntensityEvaluator)
    # The same faces as the AffectNet-style split of the same seed: only the task differs.
    va = build_dataset(cfg, "synthetic_affectnet_va_test", is_train=False)
    assert np.array_equal(va.expression_vectors, test.expression_vectors)
    assert "intensities" not in va[2]


def test_expression_dataset_checks_intensities():
    with pytest.raises(ValueError, match=r"\(4, 5\)"):
        ExpressionDataset("x", "intensity", [], intensities=np.zeros((4, 5)), intensity_names=EXPRESSION_NAMES)
    with pytest.raises(ValueError, match=r"\(6,\)"):
        ExpressionDataset("x", "intensity", [], intensities=np.zeros(6), intensity_names=EXPRESSION_NAMES)
    with pytest.raises(ValueError, match="needs intensity values"):
        ExpressionDataset("x", "intensity", [], intensity_names=EXPRESSION_NAMES)
    no = ExpressionDataset("x", "classification", ["a", "b"], labels=[0, 1])
    with pytest.raises(ValueError, match="no intensity values"):
        no.intensities


# -- IntensityRegressor ----------------------------------------------------------------


def regressor(*opts, seed=0):
    torch.manual_seed(seed)
    return build_model(load_config(None, ["MODEL.META_ARCHITECTURE", "IntensityRegressor",
                                          "MODEL.BACKBONE.NAME", "convnet", "MODEL.BACKBONE.WIDTH", "4",
                                          "INPUT.SIZE", "32", *opts]))


def images(n, size=32, seed=0):
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_intensity_regressor_eval_output():
    model = regressor().eval()
    assert set(model.heads) == {"intensity"}
    assert model.heads["intensity"].fc.weight.shape == (6, 16)
    with torch.no_grad():
        out = model({"image": images(5)})
    assert set(out) == {"intensities"}
    assert out["intensities"].shape == (5, 6) and out["intensities"].dtype == torch.float32
    assert torch.isfinite(out["intensities"]).all()
    three = regressor("MODEL.INTENSITY.NAMES", "['a', 'b', 'c']").eval()
    with torch.no_grad():
        assert three({"image": images(2)})["intensities"].shape == (2, 3)


def test_intensity_regressor_train_loss_is_mse():
    model = regressor()
    model.train()
    batch = {"image": images(6), "intensities": torch.rand(6, 6) * 2 - 1, "index": torch.arange(6)}
    losses = model(batch)
    assert set(losses) == {"loss_intensity"}
    # Same batch, same train-mode BatchNorm (batch statistics) → the same predictions.
    pred = model.predict(batch["image"])["intensities"]
    expected = F.mse_loss(pred, batch["intensities"])
    assert losses["loss_intensity"].item() == pytest.approx(expected.item(), rel=1e-6)
    manual = ((pred.detach().numpy().astype(np.float64) - batch["intensities"].numpy()) ** 2).mean()
    assert losses["loss_intensity"].item() == pytest.approx(manual, rel=1e-5)
    losses["loss_intensity"].backward()
    assert model.heads["intensity"].fc.weight.grad is not None
    assert model.heads["intensity"].fc.weight.grad.abs().sum() > 0


def test_intensity_regressor_rejects_a_batch_of_the_wrong_width():
    model = regressor().train()
    with pytest.raises(ValueError, match="intensities per face") as err:
        model({"image": images(4), "intensities": torch.zeros(4, 5)})
    assert "(5,)" in str(err.value) and "predicts 6" in str(err.value)
    with pytest.raises(KeyError, match="intensities"):
        model({"image": images(4), "label": torch.zeros(4, dtype=torch.long)})


def test_intensity_regressor_needs_names():
    with pytest.raises(ValueError, match="MODEL.INTENSITY.NAMES"):
        regressor("MODEL.INTENSITY.NAMES", "[]")


# -- IntensityEvaluator ----------------------------------------------------------------


def expected_metrics(p, t):
    p, t = np.asarray(p, np.float64), np.asarray(t, np.float64)
    n = len(p)
    mp, mt = p.sum() / n, t.sum() / n
    cov = ((p - mp) * (t - mt)).sum() / n
    vp, vt = ((p - mp) ** 2).sum() / n, ((t - mt) ** 2).sum() / n
    return {"rmse": np.sqrt(((p - t) ** 2).sum() / n),
            "pcc": cov / np.sqrt(vp * vt),
            "ccc": 2 * cov / (vp + vt + (mp - mt) ** 2)}


def fake_dataset(target, names):
    return types.SimpleNamespace(name="hand_made", task="intensity", intensities=torch.as_tensor(target),
                                 intensity_names=list(names))


def test_intensity_evaluator_against_formulas():
    target = np.array([[0.0, 1.0, -0.5], [0.5, 0.0, 0.5], [1.0, -1.0, 0.0], [-0.5, 0.5, 1.0]], np.float32)
    pred = np.array([[0.1, 0.8, -0.5], [0.4, 0.2, 0.3], [0.7, -0.6, 0.1], [-0.2, 0.1, 0.6]], np.float32)
    names = ["au1", "au2", "au3"]
    evaluator = EVALUATORS["intensity"](fake_dataset(target, names))
    assert isinstance(evaluator, IntensityEvaluator)
    results = evaluator({"intensities": torch.from_numpy(pred)})
    assert results["count"] == 4
    assert list(results["per_name"]) == names
    exp = {}
    for i, name in enumerate(names):
        exp[name] = expected_metrics(pred[:, i], target[:, i])
        for metric in ("rmse", "ccc", "pcc"):
            assert results["per_name"][name][metric] == pytest.approx(exp[name][metric], rel=1e-6), (name, metric)
    # Hand-computed anchor: column au1's RMSE is sqrt((.01 + .01 + .09 + .09) / 4) = sqrt(0.05).
    assert results["per_name"]["au1"]["rmse"] == pytest.approx(np.sqrt(0.05), rel=1e-6)
    for metric in ("rmse", "ccc", "pcc"):
        assert results["mean"][metric] == pytest.approx(np.mean([exp[n][metric] for n in names]), rel=1e-6)
    assert set(results["mean"]) == {"rmse", "ccc", "pcc"}
    text = IntensityEvaluator.summary(results)
    assert "4 samples" in text and "au2" in text and f"{results['mean']['rmse']:.4f}" in text
    json.dumps(results)  # results.json takes it as it is


def test_intensity_evaluator_perfect_prediction():
    target = np.random.default_rng(0).uniform(-1, 1, (20, 6)).astype(np.float32)
    results = IntensityEvaluator(fake_dataset(target, EXPRESSION_NAMES))({"intensities": torch.from_numpy(target)})
    assert results["mean"]["rmse"] == 0.0
    assert results["mean"]["ccc"] == pytest.approx(1.0) and results["mean"]["pcc"] == pytest.approx(1.0)


def test_intensity_evaluator_column_mismatch():
    target = np.zeros((4, 3), np.float32)
    evaluator = IntensityEvaluator(fake_dataset(target, ["a", "b", "c"]))
    with pytest.raises(ValueError, match="predicts 2 intensities") as err:
        evaluator({"intensities": torch.zeros(4, 2)})
    assert "has 3" in str(err.value) and "hand_made" in str(err.value)
    with pytest.raises(KeyError, match="IntensityRegressor"):
        evaluator({"logits": torch.zeros(4, 7)})


# -- train_net / test_net end to end ---------------------------------------------------

SMALL = ["MODEL.DEVICE", "cpu", "MODEL.BACKBONE.WIDTH", "4", "INPUT.SIZE", "32",
         "SOLVER.MAX_ITER", "4", "SOLVER.IMS_PER_BATCH", "8", "SOLVER.WARMUP_ITERS", "1",
         "SOLVER.CHECKPOINT_PERIOD", "0", "DATALOADER.NUM_WORKERS", "0", "TEST.IMS_PER_BATCH", "16", "LOG_PERIOD", "2"]
PRE_TINY = [*SMALL, "DATASETS.SYNTHETIC_AFFECT.TRAIN_IMAGES", "64", "DATASETS.SYNTHETIC_AFFECT.TEST_IMAGES", "16"]
FEC_TINY = [*SMALL, "MODEL.HEAD.HIDDEN_DIM", "16",
            "DATASETS.SYNTHETIC.TRAIN_IDENTITIES", "10", "DATASETS.SYNTHETIC.TEST_IDENTITIES", "5",
            "DATASETS.SYNTHETIC.FACES_PER_IDENTITY", "4", "DATASETS.SYNTHETIC.TRAIN_TRIPLETS", "200",
            "DATASETS.SYNTHETIC.TEST_TRIPLETS", "61", "DATASETS.SYNTHETIC.MIN_GAP", "0.0"]


def _tool(name):
    path = os.path.join(ROOT, "tools")
    if path not in sys.path:
        sys.path.insert(0, path)
    return __import__(name)


def _call(tool, argv):
    """``tool.main(argv)`` in this process, leaving sys.argv, the SIGTERM handler and
    the fec loggers (which the tools set up) as they were."""
    argv_before, sigterm = sys.argv, signal.getsignal(signal.SIGTERM)
    loggers = {name: logging.getLogger(name) for name in ("fec", "fec.train", "fec.test")}
    saved = {name: (lg.handlers[:], lg.propagate, lg.level) for name, lg in loggers.items()}
    sys.argv = [f"{tool}.py"]
    try:
        return _tool(tool).main(argv)
    finally:
        sys.argv = argv_before
        signal.signal(signal.SIGTERM, sigterm)
        for name, lg in loggers.items():
            for h in lg.handlers:
                if h not in saved[name][0]:
                    h.close()
            lg.handlers[:], lg.propagate, lg.level = saved[name]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    out = tmp_path_factory.mktemp("pre")
    _call("train_net", ["--config-file", PRETRAIN, *PRE_TINY, "OUTPUT_DIR", str(out)])
    return out


@pytest.fixture(scope="module")
def stage2(pretrained, tmp_path_factory):
    out = tmp_path_factory.mktemp("fec")
    opts = [*FEC_TINY, "MODEL.WEIGHTS", str(pretrained / "model_final.pth"), "OUTPUT_DIR", str(out)]
    _call("train_net", ["--config-file", QUICKSTART, *opts])
    return out, opts


def test_pretrain_writes_intensity_metrics(pretrained):
    w = weights(pretrained / "model_final.pth")
    assert w["heads.intensity.fc.weight"].shape == (6, 16)
    assert w["backbone.conv6.0.weight"].shape == (16, 16, 3, 3)
    results = json.loads((pretrained / "inference" / "synthetic_intensity_test" / "results.json").read_text())
    assert results["count"] == 16
    assert list(results["per_name"]) == list(EXPRESSION_NAMES)
    for metric in ("rmse", "ccc", "pcc"):
        values = [r[metric] for r in results["per_name"].values()]
        assert results["mean"][metric] == pytest.approx(float(np.mean(values)), rel=1e-9)
    # The metrics are those of the checkpoint's own predictions on the test faces.
    cfg = load_config(PRETRAIN, PRE_TINY)
    model = build_model(cfg)
    model.load_state_dict(w)
    model.eval()
    dataset = build_dataset(cfg, "synthetic_intensity_test", is_train=False)
    with torch.no_grad():
        pred = model({"image": torch.stack([dataset[i]["image"] for i in range(len(dataset))])})["intensities"]
    target = dataset.intensities.numpy()
    for i, name in enumerate(EXPRESSION_NAMES):
        exp = expected_metrics(pred[:, i].numpy(), target[:, i])
        for metric in ("rmse", "ccc", "pcc"):
            assert results["per_name"][name][metric] == pytest.approx(exp[metric], rel=1e-4, abs=1e-6), (name, metric)
    records = [json.loads(line) for line in (pretrained / "metrics.json").read_text().splitlines()]
    train = [r for r in records if "train/loss_intensity" in r]
    assert [r["iteration"] for r in train] == [2, 4]
    assert all(r["train/loss"] == r["train/loss_intensity"] > 0 for r in train)
    final = [r for r in records if "synthetic_intensity_test/mean/rmse" in r]
    assert final and final[-1]["synthetic_intensity_test/mean/rmse"] == pytest.approx(results["mean"]["rmse"])


def test_stage2_keeps_the_pretrained_backbone_frozen(pretrained, stage2):
    out, _ = stage2
    pre = weights(pretrained / "model_final.pth")
    fec = weights(out / "model_final.pth")
    backbone = [k for k in pre if k.startswith("backbone.")]
    assert backbone and backbone == [k for k in fec if k.startswith("backbone.")]
    assert any("running_mean" in k for k in backbone)
    for k in backbone:
        assert torch.equal(pre[k], fec[k]), k
    assert not any(k.startswith("heads.") for k in fec)
    assert any(k.startswith("head.") for k in fec)
    results = json.loads((out / "inference" / "synthetic_fec_test" / "results.json").read_text())
    assert 0.0 <= results["accuracy"] <= 1.0
    assert results["count"] == sum(v["count"] for v in results["per_type"].values()) > 0
    log = (out / "log.txt").read_text()
    assert "heads.intensity.fc.weight" in log  # the skipped stage-1 head is named


def test_stage2_head_trains(stage2):
    """The head moved away from its initial weights (a fresh model of the same seed)."""
    out, opts = stage2
    fec = weights(out / "model_final.pth")
    cfg = load_config(QUICKSTART, [*opts[:-4], "MODEL.WEIGHTS", ""])
    torch.manual_seed(cfg.SEED)
    init = build_model(cfg).state_dict()
    head = [k for k in fec if k.startswith("head.") and fec[k].is_floating_point() and "running" not in k]
    assert head and any(not torch.equal(fec[k], init[k]) for k in head)


def test_test_net_prefers_the_output_dir_checkpoint_over_model_weights(pretrained, stage2, tmp_path):
    out, opts = stage2
    before = json.loads((out / "inference" / "synthetic_fec_test" / "results.json").read_text())
    # MODEL.WEIGHTS (in opts) is the stage-1 intensity checkpoint, which a triplet model
    # cannot load; test_net must evaluate OUTPUT_DIR's model_final instead.
    weights = opts[opts.index("MODEL.WEIGHTS") + 1]
    assert weights == str(pretrained / "model_final.pth")
    with pytest.raises(RuntimeError, match="does not fit this model"):
        _call("test_net", ["--config-file", QUICKSTART, "--ckpt", weights, *opts, "OUTPUT_DIR", str(tmp_path)])
    results = _call("test_net", ["--config-file", QUICKSTART, *opts])
    after = results["synthetic_fec_test"]
    assert after["accuracy"] == before["accuracy"] and after["per_type"] == before["per_type"]
    assert after["count"] == before["count"]


def test_test_net_falls_back_to_model_weights(stage2, tmp_path):
    """With nothing in OUTPUT_DIR, MODEL.WEIGHTS is evaluated."""
    out, opts = stage2
    before = json.loads((out / "inference" / "synthetic_fec_test" / "results.json").read_text())
    results = _call("test_net", ["--config-file", QUICKSTART, *opts[:-4],
                                 "MODEL.WEIGHTS", str(out / "model_final.pth"), "OUTPUT_DIR", str(tmp_path)])
    assert results["synthetic_fec_test"]["accuracy"] == before["accuracy"]


def test_missing_model_weights_is_named(tmp_path):
    missing = str(tmp_path / "nowhere" / "model_final.pth")
    with pytest.raises(FileNotFoundError) as err:
        _call("train_net", ["--config-file", QUICKSTART, *FEC_TINY, "MODEL.WEIGHTS", missing,
                            "OUTPUT_DIR", str(tmp_path / "out")])
    assert missing in str(err.value) and "MODEL.WEIGHTS" in str(err.value)
    assert not (tmp_path / "out" / "model_final.pth").exists()
