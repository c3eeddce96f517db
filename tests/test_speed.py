"""The speed switches on CPU: channels_last gives the same outputs for every backbone,
and exports and the predictor keep working with it; MODEL.COMPILE trains and
checkpoints plain keys; CUDA settings give way to DETERMINISTIC; foreach optimizers;
loader options; the training benchmark's table."""
import logging
import os
import types

import numpy as np
import pytest
import torch
from yacs.config import CfgNode

from fec.config import load_config
from fec.data import make_data_loader
from fec.engine import benchmark, speed
from fec.modeling import build_model
from fec.modeling.registry import BACKBONES
from fec.predictor import ExpressionPredictor
from fec.predictor.export import ExportModule, export_torchscript, load_exported, sample_faces
from fec.solver import make_optimizer
from fec.utils.env import seed_all
from helpers.tools import load_tool

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICKSTART = os.path.join(ROOT, "config", "quickstart.yaml")
HEAVY = ("resnet18", "inception_nn2", "inception_resnet_v1", "mobilenet_v2")  # over a few seconds on 2 cores
SIZES = {"deep_emotion": 48, "inception_resnet_v1": 80}  # the smallest sizes their cuts take, about
TINY_FEC = ["MODEL.WEIGHTS", "", "MODEL.BACKBONE.FREEZE_AT", "0", "MODEL.BACKBONE.WIDTH", "8",
            "MODEL.HEAD.HIDDEN_DIM", "32", "INPUT.SIZE", "32",
            "DATASETS.SYNTHETIC.TRAIN_IDENTITIES", "10", "DATASETS.SYNTHETIC.TEST_IDENTITIES", "5",
            "DATASETS.SYNTHETIC.FACES_PER_IDENTITY", "4", "DATASETS.SYNTHETIC.TRAIN_TRIPLETS", "200",
            "DATASETS.SYNTHETIC.TEST_TRIPLETS", "61", "DATASETS.SYNTHETIC.MIN_GAP", "0.0",
            "SOLVER.IMS_PER_BATCH", "4", "DATALOADER.NUM_WORKERS", "0", "DATASETS.TEST", "()"]


def _pair(backbone, meta_arch="Classifier", head="conv3x3"):
    """The same model (one seed) built contiguous and channels_last."""
    models = []
    for channels_last in (False, True):
        cfg = load_config(None, ["MODEL.META_ARCHITECTURE", meta_arch, "MODEL.BACKBONE.NAME", backbone,
                                 "MODEL.HEAD.NAME", head, "INPUT.SIZE", str(SIZES.get(backbone, 64)),
                                 "MODEL.CHANNELS_LAST", str(channels_last)])
        torch.manual_seed(0)
        models.append(build_model(cfg))
    return models, cfg.INPUT.SIZE


@pytest.mark.parametrize("backbone", [pytest.param(b, marks=pytest.mark.slow) if b in HEAVY else b
                                      for b in sorted(BACKBONES)])
def test_channels_last_outputs_equal_contiguous_for_every_backbone(backbone):
    (plain, nhwc), size = _pair(backbone)
    convs = [m for m in nhwc.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    assert plain.state_dict().keys() == nhwc.state_dict().keys()
    layouts = []
    convs[-1].register_forward_hook(lambda m, i, o: layouts.append(i[0].is_contiguous(memory_format=torch.channels_last)))
    gen = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (4, 3, size, size), dtype=torch.uint8, generator=gen)
    labels = torch.tensor([0, 1, 2, 3])
    # train mode (batch statistics): loss and gradients; then eval mode: logits
    for m in (*plain.modules(), *nhwc.modules()):
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0  # its masks follow the memory order: same statistics, other elements
    losses = [m.train()({"image": images, "label": labels})["loss_cls"] for m in (plain, nhwc)]
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-4, atol=1e-5)
    for loss in losses:
        loss.backward()
    grads = [[p.grad for p in m.parameters() if p.grad is not None] for m in (plain, nhwc)]
    assert len(grads[0]) == len(grads[1]) > 0
    # float rounding, amplified through the layers: relative to the whole gradient's norm
    a, b = (torch.cat([g.flatten() for g in gs]) for gs in grads)
    assert (a - b).norm() <= 1e-2 * a.norm()
    with torch.no_grad():
        logits = [m.eval()({"image": images})["logits"] for m in (plain, nhwc)]
    torch.testing.assert_close(logits[0], logits[1], rtol=1e-4, atol=1e-4)
    assert layouts[-1] is True  # the last conv saw NHWC: the layout reached through the network


@pytest.mark.slow
def test_channels_last_embedding_export_and_predictor(tmp_path):
    (plain, nhwc), _ = _pair("resnet18", "TripletEmbeddingNet")
    plain.eval(), nhwc.eval()
    faces = sample_faces(3, 64, seed=3)
    with torch.no_grad():
        ref = plain({"image": faces})["embedding"]
        out = nhwc({"image": faces})["embedding"]
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    path = str(tmp_path / "nhwc.pt")
    export_torchscript(ExportModule(nhwc, 64), faces[:2], path)
    (exported,) = load_exported(path, "torchscript")(faces.numpy())
    assert np.abs(exported - ref.numpy()).max() < 1e-4
    crops = [f.permute(1, 2, 0).numpy() for f in faces]
    got = [np.stack([face.embedding for per_image in ExpressionPredictor(m, 64, detector="none").predict_rgb(crops)
                     for face in per_image]) for m in (plain, nhwc)]
    assert got[1].shape == (3, 16) and np.abs(got[1] - got[0]).max() < 1e-4


@pytest.mark.slow
def test_compiled_model_trains_3_iterations_and_checkpoints_plain_keys(tmp_path):
    cfg = load_config(QUICKSTART, [*TINY_FEC, "MODEL.COMPILE", "True", "SOLVER.MAX_ITER", "3",
                                   "SOLVER.WARMUP_ITERS", "0", "OUTPUT_DIR", str(tmp_path)])
    seed_all(0)
    model = load_tool("train_net").train(cfg, types.SimpleNamespace(resume=False), logging.getLogger("fec.test_speed"))
    ckpt = torch.load(tmp_path / "model_final.pth", weights_only=True)
    assert ckpt["iteration"] == 3
    assert ckpt["model"].keys() == build_model(cfg).state_dict().keys()  # no "_orig_mod." prefixes
    torch.manual_seed(0)
    untrained = build_model(load_config(QUICKSTART, TINY_FEC)).state_dict()
    assert any(not torch.equal(ckpt["model"][k], untrained[k]) for k in untrained if "weight" in k)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in ckpt["model"].items())


def test_checkpointer_unwraps_a_compiled_model(tmp_path):
    from fec.utils.checkpoint import Checkpointer, unwrap

    net = torch.nn.Sequential(torch.nn.Linear(3, 4))
    compiled = torch.compile(net)  # compiles lazily: never called here
    assert unwrap(compiled) is net
    Checkpointer(compiled, save_dir=str(tmp_path)).save("c", 1)
    assert list(torch.load(tmp_path / "c.pth", weights_only=True)["model"]) == ["0.weight", "0.bias"]
    other = torch.nn.Sequential(torch.nn.Linear(3, 4))
    Checkpointer(torch.compile(other)).load(str(tmp_path / "c.pth"))
    assert torch.equal(other[0].weight, net[0].weight)


def test_cuda_settings_are_forced_off_by_deterministic(monkeypatch):
    cfg = load_config(None, ["CUDA.CUDNN_BENCHMARK", "True", "CUDA.TF32", "True"])
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    calls = []
    monkeypatch.setattr(speed, "_set_tf32", calls.append)
    speed.apply_cuda_settings(cfg, "cpu")  # not CUDA: nothing changes
    assert calls == [] and torch.backends.cudnn.benchmark is False
    speed.apply_cuda_settings(cfg, "cuda")
    assert calls == [True] and torch.backends.cudnn.benchmark is True
    assert speed.deterministic(cfg) is ("DETERMINISTIC" in cfg and bool(cfg.DETERMINISTIC))
    exact = cfg.clone()
    exact.defrost()
    exact.DETERMINISTIC = True  # the top-level key; a plain node here whether or not the defaults have it
    speed.apply_cuda_settings(exact, "cuda")
    assert calls == [True, False] and torch.backends.cudnn.benchmark is False
    assert speed.deterministic(CfgNode({"CUDA": cfg.CUDA})) is False  # a config without the key


def test_adam_is_foreach_on_cpu_and_amp_dtype_is_checked():
    model = torch.nn.Linear(3, 2)
    for name in ("adam", "adamw"):
        opt = make_optimizer(load_config(None, ["SOLVER.OPTIMIZER", name]), model)
        assert opt.defaults["foreach"] is True and not opt.defaults.get("fused")
    with pytest.raises(ValueError, match="SOLVER.AMP.DTYPE"):
        load_config(None, ["SOLVER.AMP.DTYPE", "float8"])
    assert speed.amp_dtype(load_config(None, ["SOLVER.AMP.DTYPE", "float16"])) is None  # not enabled
    assert not speed.make_grad_scaler(load_config(None, ["SOLVER.AMP.ENABLED", "True"]), "cpu").is_enabled()


def test_loader_options_reach_the_dataloader():
    cfg = load_config(QUICKSTART, [*TINY_FEC, "DATALOADER.NUM_WORKERS", "1", "DATALOADER.PERSISTENT_WORKERS", "True",
                                   "DATALOADER.PREFETCH_FACTOR", "3", "SOLVER.MAX_ITER", "1"])
    loader = make_data_loader(cfg, is_train=True)
    assert loader.persistent_workers is True and loader.prefetch_factor == 3
    cfg0 = load_config(QUICKSTART, [*TINY_FEC, "DATALOADER.PERSISTENT_WORKERS", "True", "SOLVER.MAX_ITER", "1"])
    assert make_data_loader(cfg0, is_train=True).persistent_workers is False  # no workers to keep


def test_benchmark_variants_and_compare_parsing():
    assert benchmark.variants([]) == [("config", [])]
    got = benchmark.variants(benchmark.parse_compare(["MODEL.CHANNELS_LAST=False,True", "SOLVER.AMP.ENABLED=False,True"]))
    assert [label for label, _ in got] == [
        "MODEL.CHANNELS_LAST=False SOLVER.AMP.ENABLED=False", "MODEL.CHANNELS_LAST=False SOLVER.AMP.ENABLED=True",
        "MODEL.CHANNELS_LAST=True SOLVER.AMP.ENABLED=False", "MODEL.CHANNELS_LAST=True SOLVER.AMP.ENABLED=True"]
    assert got[1][1] == ["MODEL.CHANNELS_LAST", "False", "SOLVER.AMP.ENABLED", "True"]
    with pytest.raises(ValueError, match="KEY=V1,V2"):
        benchmark.parse_compare(["MODEL.CHANNELS_LAST"])


@pytest.mark.slow
def test_training_benchmark_measures_each_variant_in_alternating_repeats():
    order = []
    level = logging.getLogger("fec").level
    runs = benchmark.measure(QUICKSTART, TINY_FEC, ["MODEL.CHANNELS_LAST=False,True"], warmup=1, iters=2, repeat=2,
                             log=order.append)
    # the training's progress lines were silenced for the run only: a later caller's logging is its own
    assert logging.getLogger("fec").level == level
    assert [line.split(":")[0] for line in order] == [
        "repeat 1/2 MODEL.CHANNELS_LAST=False", "repeat 1/2 MODEL.CHANNELS_LAST=True",
        "repeat 2/2 MODEL.CHANNELS_LAST=True", "repeat 2/2 MODEL.CHANNELS_LAST=False"]
    assert [v.cfg.MODEL.CHANNELS_LAST for v in runs] == [False, True]
    assert all(v.cfg.MODEL.BACKBONE.WEIGHTS == "" and v.images == 12 for v in runs)  # 4 triplets
    for v in runs:
        assert all(len(t) == 2 and min(t) > 0 for t in v.times.values())
        assert len(v.loader_cpu) == 2 and all(c.faces > 0 and c.cpu_seconds > 0 for c in v.loader_cpu)
    header, rows, lines = benchmark.report(runs)
    assert len(rows) == 2 and all(len(r) == len(header) for r in rows)
    model_rate = float(rows[0][2])
    assert model_rate == pytest.approx(12 / np.median(runs[0].times["model"]), rel=0.01)
    assert float(rows[0][5]) == pytest.approx(np.median(runs[0].times["model"]) / np.median(runs[0].times["e2e"]),
                                              abs=0.01)
    assert "channels_last True" in lines[1] and "channels_last False" in lines[0]
    paired = np.median([a / b for a, b in zip(runs[0].times["model"], runs[1].times["model"])])
    assert lines[2].startswith("MODEL.CHANNELS_LAST=True vs MODEL.CHANNELS_LAST=False: speed model x")
    assert f"model x{paired:.2f}" in lines[2]
    cpu = np.median([c.cpu_ms_per_face for c in runs[0].loader_cpu])
    assert rows[0][-2] == f"{cpu:.3f}" and "loader CPU per face /" in lines[2]
