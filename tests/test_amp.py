"""Mixed precision (SOLVER.AMP) on CPU: every meta-architecture trains under bfloat16
autocast with its loss in float32; float16 with the loss scaler resumes exactly; the
scaler's state goes through the checkpoint."""
import os
import shutil
import types

import pytest
import torch

from fec.config import load_config
from fec.data import make_data_loader
from fec.engine.speed import make_grad_scaler
from fec.engine.trainer import do_train
from fec.modeling import build_model
from fec.solver import make_lr_scheduler, make_optimizer
from fec.utils.checkpoint import Checkpointer
from fec.utils.env import seed_all
from helpers.tools import load_tool

AFFECTNET_CLASSES = ["neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL_AFFECT = ["DATASETS.SYNTHETIC_AFFECT.TRAIN_IMAGES", "64", "DATASETS.SYNTHETIC_AFFECT.TEST_IMAGES", "16",
                "DATASETS.SYNTHETIC_AFFECT.IMAGES_PER_IDENTITY", "4"]
SMALL_FEC = ["DATASETS.SYNTHETIC.TRAIN_IDENTITIES", "10", "DATASETS.SYNTHETIC.TEST_IDENTITIES", "5",
             "DATASETS.SYNTHETIC.FACES_PER_IDENTITY", "4", "DATASETS.SYNTHETIC.TRAIN_TRIPLETS", "200",
             "DATASETS.SYNTHETIC.TEST_TRIPLETS", "61", "DATASETS.SYNTHETIC.MIN_GAP", "0.0"]
# meta-architecture → (quickstart config, overrides that make it small and start it from scratch)
QUICKSTARTS = {
    "TripletEmbeddingNet": ("quickstart.yaml", [*SMALL_FEC, "MODEL.BACKBONE.FREEZE_AT", "0",
                                                "MODEL.BACKBONE.WIDTH", "8", "MODEL.HEAD.HIDDEN_DIM", "32"]),
    "Classifier": ("quickstart_fer.yaml", SMALL_AFFECT),
    "ValenceArousalRegressor": ("quickstart_affect_va.yaml", SMALL_AFFECT),
    "ClassifierRegressor": ("quickstart_affect_va.yaml", [*SMALL_AFFECT, "MODEL.META_ARCHITECTURE",
                                                          "ClassifierRegressor",
                                                          "DATASETS.TRAIN", '("synthetic_affect_train",)',
                                                          "MODEL.CLASSIFIER.NUM_CLASSES", "8",
                                                          "MODEL.CLASSIFIER.CLASS_NAMES",
                                                          str(AFFECTNET_CLASSES)]),
    "IntensityRegressor": ("quickstart_pretrain.yaml", [*SMALL_AFFECT, "MODEL.BACKBONE.WIDTH", "8"]),
}
TRAINING = ["MODEL.WEIGHTS", "", "SOLVER.IMS_PER_BATCH", "8", "SOLVER.OPTIMIZER", "adam", "SOLVER.BASE_LR", "0.003",
            "SOLVER.WEIGHT_DECAY", "0.0", "SOLVER.WARMUP_ITERS", "0", "SOLVER.SCHEDULER", "multistep",
            "SOLVER.STEPS", "(1000,)", "DATALOADER.NUM_WORKERS", "0", "DATASETS.TEST", "()", "LOG_PERIOD", "100"]


def quickstart_config(meta_arch, *opts):
    name, small = QUICKSTARTS[meta_arch]
    return load_config(os.path.join(ROOT, "config", name), [*small, *TRAINING, *opts])


def _loss(model, batch, dtype):
    with torch.no_grad(), torch.autocast("cpu", dtype=dtype):
        losses = model(batch)
    for name, value in losses.items():
        assert value.dtype == torch.float32, f"{name} is {value.dtype} under autocast"
    return float(sum(losses.values()))


@pytest.mark.slow
@pytest.mark.parametrize("meta_arch", sorted(QUICKSTARTS))
def test_bfloat16_autocast_trains_every_meta_architecture(meta_arch):
    steps = 25
    cfg = quickstart_config(meta_arch, "SOLVER.AMP.ENABLED", "True", "SOLVER.MAX_ITER", str(steps))
    seed_all(0)
    model = build_model(cfg).train()
    batch = next(iter(make_data_loader(cfg, is_train=True)))
    # the first convolution's output dtype, as the trainer runs it
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    seen = set()
    conv.register_forward_hook(lambda m, i, o: seen.add(o.dtype))
    before = _loss(model, batch, torch.bfloat16)
    optimizer = make_optimizer(cfg, model)
    # one batch again and again: a model that learns fits it
    do_train(cfg, model, [batch] * steps, optimizer, make_lr_scheduler(cfg, optimizer), Checkpointer(model),
             torch.device("cpu"))
    after = _loss(model, batch, torch.bfloat16)
    assert seen == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in model.parameters())  # autocast keeps float32 weights
    assert after < 0.5 * before, (before, after)


def test_a_non_finite_loss_stops_bfloat16_training_but_a_float16_step_is_skipped():
    cfg = quickstart_config("IntensityRegressor", "SOLVER.AMP.ENABLED", "True", "SOLVER.MAX_ITER", "2")
    seed_all(0)
    model = build_model(cfg)
    batch = next(iter(make_data_loader(cfg, is_train=True)))
    bad = dict(batch, intensities=torch.full_like(batch["intensities"], float("inf")))
    optimizer = make_optimizer(cfg, model)
    with pytest.raises(FloatingPointError, match="loss is"):
        do_train(cfg, model, [bad], optimizer, make_lr_scheduler(cfg, optimizer), Checkpointer(model),
                 torch.device("cpu"))

    cfg = quickstart_config("IntensityRegressor", "SOLVER.AMP.ENABLED", "True", "SOLVER.AMP.DTYPE", "float16",
                            "SOLVER.MAX_ITER", "2")
    # a fresh model: the loop reads losses at its log period, so the first run stepped on its inf
    seed_all(0)
    model = build_model(cfg)
    optimizer = make_optimizer(cfg, model)
    scaler = make_grad_scaler(cfg, "cpu")
    weights = {k: v.clone() for k, v in model.state_dict().items() if v.is_floating_point()}
    do_train(cfg, model, [bad, bad], optimizer, make_lr_scheduler(cfg, optimizer), Checkpointer(model),
             torch.device("cpu"), scaler=scaler)
    assert scaler.get_scale() == 2.0 ** 16 / 4  # halved at each skipped step
    params = dict(model.named_parameters())
    assert all(torch.equal(params[k], v) for k, v in weights.items() if k in params)  # no step taken


def test_grad_scaler_state_round_trips_through_a_checkpoint(tmp_path):
    cfg = quickstart_config("IntensityRegressor", "SOLVER.AMP.ENABLED", "True", "SOLVER.AMP.DTYPE", "float16")
    model = build_model(cfg)
    optimizer = make_optimizer(cfg, model)
    scaler = make_grad_scaler(cfg, "cpu")
    assert scaler.is_enabled()
    scaler.load_state_dict({"scale": 1024.0, "growth_factor": 2.0, "backoff_factor": 0.5,
                            "growth_interval": 2000, "_growth_tracker": 37})
    Checkpointer(model, optimizer, make_lr_scheduler(cfg, optimizer), str(tmp_path), scaler=scaler).save("m", 5)
    assert torch.load(tmp_path / "m.pth", weights_only=True)["scaler"]["scale"] == 1024.0

    fresh = make_grad_scaler(cfg, "cpu")
    model2 = build_model(cfg)
    optimizer2 = make_optimizer(cfg, model2)
    it = Checkpointer(model2, optimizer2, make_lr_scheduler(cfg, optimizer2), str(tmp_path),
                      scaler=fresh).load(str(tmp_path / "m.pth"), resume=True)
    assert it == 5
    assert fresh.state_dict() == scaler.state_dict()
    assert fresh.state_dict()["_growth_tracker"] == 37

    # bfloat16 and float32 need no scaler: none is saved
    plain = make_grad_scaler(quickstart_config("IntensityRegressor"), "cpu")
    assert not plain.is_enabled()
    Checkpointer(model, optimizer, save_dir=str(tmp_path), scaler=plain).save("p", 1)
    assert "scaler" not in torch.load(tmp_path / "p.pth", weights_only=True)


def _train(tool, out, resume, *opts):
    cfg = quickstart_config("TripletEmbeddingNet", "SOLVER.AMP.ENABLED", "True", "SOLVER.AMP.DTYPE", "float16",
                            "INPUT.SIZE", "32", "SOLVER.IMS_PER_BATCH", "4", "SOLVER.MAX_ITER", "20",
                            "SOLVER.CHECKPOINT_PERIOD", "10", "OUTPUT_DIR", str(out), *opts)
    seed_all(cfg.SEED)
    import logging
    return tool.train(cfg, types.SimpleNamespace(resume=resume), logging.getLogger("fec.test_amp"))


@pytest.mark.slow
class _FastGrowingScaler(torch.amp.GradScaler):
    """Starts at a loss scale of 1 and doubles it every 3 finite steps (the default starts
    at 2**16, where float16 overflows and the scale settles wherever it starts), so that
    the scale at iteration 20 tells whether iterations 11-20 started from the saved one."""

    def __init__(self, *args, **kwargs):
        kwargs.update(init_scale=1.0, growth_interval=3)
        super().__init__(*args, **kwargs)


def test_float16_resume_10_plus_10_is_bit_identical_to_20(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.amp, "GradScaler", _FastGrowingScaler)
    tool = load_tool("train_net")
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    _train(tool, full, False)
    ckpt = torch.load(full / "model_0000010.pth", weights_only=True)
    # the loss scale and its growth count go with the weights; here they have moved from a
    # fresh scaler's, so a resume that dropped them would end with another scaler state
    fresh = _FastGrowingScaler("cpu").state_dict()
    assert (ckpt["scaler"]["scale"], ckpt["scaler"]["_growth_tracker"]) != (fresh["scale"], 0)
    resumed.mkdir()
    shutil.copy(full / "model_0000010.pth", resumed / "model_0000010.pth")
    (resumed / "last_checkpoint").write_text("model_0000010.pth")
    _train(tool, resumed, True)
    a = torch.load(full / "model_final.pth", weights_only=True)
    b = torch.load(resumed / "model_final.pth", weights_only=True)
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert a["scaler"] == b["scaler"]
