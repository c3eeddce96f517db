"""Backbones, heads and the triplet embedding model: shapes, training steps, freezing,
input sizes and local pretrained weights. CPU only, no network."""
import pytest
import torch
import torchvision
from facenet_pytorch import InceptionResnetV1

from fec.config import load_config
from fec.modeling import build_model
from fec.modeling.backbone import InceptionNN2
from fec.modeling.losses import triplet_loss
from fec.modeling.registry import BACKBONES, HEADS, META_ARCHITECTURES

BACKBONE_NAMES = ["resnet18", "inception_nn2", "inception_resnet_v1"]
HEAD_NAMES = ["dense", "conv3x3"]

# Output channels of every cut, from the papers' tables (FaceNet Table 2 for NN2).
CHANNELS = {
    "resnet18": {"stem": 64, "layer1": 64, "layer2": 128, "layer3": 256, "layer4": 512},
    "inception_nn2": {
        "stem": 64, "inception_2": 192, "inception_3a": 256, "inception_3b": 320,
        "inception_3c": 640, "inception_4a": 640, "inception_4b": 640, "inception_4c": 640,
        "inception_4d": 640, "inception_4e": 1024, "inception_5a": 1024, "inception_5b": 1024,
    },
    "inception_resnet_v1": {
        "conv2d_1a": 32, "conv2d_2a": 32, "conv2d_2b": 64, "maxpool_3a": 64, "conv2d_3b": 80,
        "conv2d_4a": 192, "conv2d_4b": 256, "repeat_1": 256, "mixed_6a": 896, "repeat_2": 896,
        "mixed_7a": 1792, "repeat_3": 1792, "block8": 1792,
    },
}
# Default cut → (output channels, feature-map side at 64 px, at 299 px), by hand.
DEFAULT_CUT = {
    "resnet18": (512, 2, 10),  # 299→150→75→75→38→19→10
    "inception_nn2": (1024, 2, 10),  # 299→150→75→75→38→19→10
    "inception_resnet_v1": (896, 2, 17),  # 299→149→147→147→73→73→71→35→35→17
}


def make_cfg(backbone="resnet18", head="conv3x3", size=160, *opts):
    return load_config(
        None,
        ["MODEL.BACKBONE.NAME", backbone, "MODEL.HEAD.NAME", head, "INPUT.SIZE", str(size), *opts],
    )


def triplet_batch(num, size, seed=0):
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (num, 3, 3, size, size), dtype=torch.uint8, generator=gen)
    return {"images": images, "type": torch.arange(num) % 3}


def bn_stats(roots):
    """Copies of the BatchNorm running stats under the modules ``roots``."""
    return {
        f"{i}.{name}": buf.clone()
        for i, root in enumerate(roots)
        for name, buf in root.named_buffers()
        if "running" in name
    }


def test_import_registers_everything():
    assert set(BACKBONE_NAMES) <= set(BACKBONES)
    assert set(HEAD_NAMES) <= set(HEADS)
    assert "TripletEmbeddingNet" in META_ARCHITECTURES


# 64 px in the fast run (same shapes, gradients and batch independence); the real sizes slow.
@pytest.mark.parametrize("size", [64, pytest.param(160, marks=pytest.mark.slow), pytest.param(224, marks=pytest.mark.slow)])
@pytest.mark.parametrize("head", HEAD_NAMES)
@pytest.mark.parametrize("backbone", BACKBONE_NAMES)
def test_training_step_and_embedding(backbone, head, size):
    torch.manual_seed(0)
    model = build_model(make_cfg(backbone, head, size)).train()
    passes = []
    model.backbone.register_forward_hook(lambda m, inp, out: passes.append(inp[0].shape[0]))
    before = {n: p.detach().clone() for n, p in model.head.named_parameters()}

    batch = triplet_batch(2, size)
    loss = model(batch)["loss_triplet"]
    assert passes == [6]  # all 3B faces in one backbone pass
    assert loss.dim() == 0 and torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    for name, param in model.head.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    first_conv = next(p for p in model.backbone.parameters() if p.dim() == 4)
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    assert not torch.equal(before["fc2.weight"], model.head.fc2.weight)

    model.eval()
    faces = batch["images"][0, :2]
    with torch.no_grad():
        emb = model({"image": faces})["embedding"]
        alone = model({"image": faces[1:]})["embedding"]
    assert emb.shape == (2, 16) and emb.dtype == torch.float32
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(2))
    # Eval mode uses running BatchNorm stats: a face's embedding ignores its batch.
    torch.testing.assert_close(alone[0], emb[1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("backbone", BACKBONE_NAMES)
def test_default_cut_runs_at_64_and_299(backbone):
    channels, side64, side299 = DEFAULT_CUT[backbone]
    for size, side in ((64, side64), (299, side299)):
        model = build_model(make_cfg(backbone, "dense", size)).eval()
        assert model.backbone.out_channels == channels
        image = torch.randint(0, 256, (1, 3, size, size), dtype=torch.uint8)
        with torch.no_grad():
            x = (image.float() - model.pixel_mean) / model.pixel_std
            assert model.backbone(x).shape == (1, channels, side, side)
            emb = model({"image": image})["embedding"]
        assert emb.shape == (1, 16)
        assert emb.norm().item() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("backbone", BACKBONE_NAMES)
def test_every_cut_has_its_stated_channels(backbone):
    for cut, channels in CHANNELS[backbone].items():
        net = BACKBONES[backbone](make_cfg(backbone, "dense", 96, "MODEL.BACKBONE.CUT_AT", cut))
        assert net.out_channels == channels, cut
        assert net.stage_names[-1] in (cut, "stem")
        with torch.no_grad():
            assert net.eval()(torch.randn(1, 3, 96, 96)).shape[1] == channels, cut


def test_deep_cut_too_small_input_names_size_and_cut():
    opts = ("MODEL.BACKBONE.CUT_AT", "mixed_7a")
    with pytest.raises(ValueError, match=r"INPUT\.SIZE=64.*mixed_7a.*at least 75"):
        build_model(make_cfg("inception_resnet_v1", "dense", 64, *opts))
    net = build_model(make_cfg("inception_resnet_v1", "dense", 75, *opts)).backbone.eval()
    with torch.no_grad():
        assert net(torch.zeros(1, 3, 75, 75)).shape == (1, 1792, 1, 1)
        with pytest.raises(ValueError, match="74x74 input is too small"):
            net(torch.zeros(1, 3, 74, 74))
    with pytest.raises(ValueError, match="MODEL.BACKBONE.CUT_AT='layer5'"):
        build_model(make_cfg("resnet18", "dense", 64, "MODEL.BACKBONE.CUT_AT", "layer5"))


@pytest.mark.parametrize("backbone", BACKBONE_NAMES)
def test_freeze_whole_backbone(backbone):
    model = build_model(make_cfg(backbone, "conv3x3", 64, "MODEL.BACKBONE.FREEZE_AT", "-1"))
    model.eval().train()  # train() must keep the frozen backbone in eval mode
    assert model.head.training
    assert not any(m.training for c in model.backbone.children() for m in c.modules())
    backbone_stats = bn_stats([model.backbone])
    head_stats = bn_stats([model.head])
    assert backbone_stats and head_stats
    model(triplet_batch(2, 64))["loss_triplet"].backward()
    assert all(not p.requires_grad and p.grad is None for p in model.backbone.parameters())
    after = bn_stats([model.backbone])
    assert all(torch.equal(v, after[k]) for k, v in backbone_stats.items())
    # The same forward does move the head's stats, so the check above can fail.
    after = bn_stats([model.head])
    assert any(not torch.equal(v, after[k]) for k, v in head_stats.items())
    assert model.head.fc1.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("backbone", BACKBONE_NAMES)
def test_freeze_first_two_stages(backbone):
    model = build_model(make_cfg(backbone, "conv3x3", 64, "MODEL.BACKBONE.FREEZE_AT", "2")).train()
    net = model.backbone
    frozen, trained = net.stage_names[:2], net.stage_names[2:]
    assert net.frozen_stages == frozen and frozen[0] == "stem" and trained
    frozen_modules = [m for s in frozen for m in net.stage_modules(s)]
    next_modules = net.stage_modules(trained[0])
    frozen_stats, next_stats = bn_stats(frozen_modules), bn_stats(next_modules)
    model(triplet_batch(2, 64))["loss_triplet"].backward()
    for module in frozen_modules:
        assert not module.training
        assert all(not p.requires_grad and p.grad is None for p in module.parameters())
    after, next_after = bn_stats(frozen_modules), bn_stats(next_modules)
    assert all(torch.equal(v, after[k]) for k, v in frozen_stats.items())
    assert any(not torch.equal(v, next_after[k]) for k, v in next_stats.items())
    for stage in trained:
        params = [p for m in net.stage_modules(stage) for p in m.parameters()]
        assert params and all(p.requires_grad for p in params), stage
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in params), stage
    with pytest.raises(ValueError, match="MODEL.BACKBONE.FREEZE_AT=99"):
        build_model(make_cfg(backbone, "conv3x3", 64, "MODEL.BACKBONE.FREEZE_AT", "99"))


def test_forward_matches_loss_of_embeddings_and_normalises_pixels():
    torch.manual_seed(0)
    model = build_model(make_cfg("resnet18", "conv3x3", 64))
    torch.testing.assert_close(model.pixel_mean.flatten(), torch.tensor([123.675, 116.28, 103.53]))
    torch.testing.assert_close(model.pixel_std.flatten(), torch.tensor([58.395, 57.12, 57.375]))
    batch = triplet_batch(2, 64)
    model.train()
    loss = model(batch)["loss_triplet"]
    emb = model.embed(batch["images"].reshape(6, 3, 64, 64)).view(2, 3, 16)
    expected = triplet_loss(emb[:, 0], emb[:, 1], emb[:, 2], batch["type"], [0.1, 0.2, 0.2])
    torch.testing.assert_close(loss, expected)
    # Eval: the same as normalising by hand with the ImageNet statistics.
    model.eval()
    image = batch["images"][1]
    mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
    with torch.no_grad():
        by_hand = model.head(model.backbone((image.float() - mean) / std))
        torch.testing.assert_close(model({"image": image})["embedding"], by_hand)
    custom = build_model(make_cfg("inception_nn2", "dense", 64, "MODEL.PIXEL_MEAN", "[1.0, 2.0, 3.0]"))
    assert custom.pixel_mean.flatten().tolist() == [1.0, 2.0, 3.0]
    assert custom.pixel_std.flatten().tolist() == [128.0, 128.0, 128.0]  # the backbone's


def _tweak(state, key, value):
    state[key] = torch.full_like(state[key], value)


def test_local_resnet18_weights(tmp_path):
    state = torchvision.models.resnet18(weights=None).state_dict()
    _tweak(state, "conv1.weight", 0.25)
    _tweak(state, "layer3.1.bn2.running_mean", 3.0)
    _tweak(state, "layer4.0.conv2.weight", -0.5)
    _tweak(state, "fc.weight", 7.0)  # cut off: ignored
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    for cut in ("layer4", "layer3"):
        cfg = make_cfg("resnet18", "dense", 64, "MODEL.BACKBONE.WEIGHTS", str(path),
                       "MODEL.BACKBONE.CUT_AT", cut)
        loaded = build_model(cfg).backbone.state_dict()
        assert loaded and all(torch.equal(v, state[k]) for k, v in loaded.items())
        assert loaded["conv1.weight"].eq(0.25).all()
        assert loaded["layer3.1.bn2.running_mean"].eq(3.0).all()
        assert ("layer4.0.conv2.weight" in loaded) == (cut == "layer4")

    del state["layer1.0.conv1.weight"]
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"lacks keys.*layer1\.0\.conv1\.weight") as err:
        build_model(make_cfg("resnet18", "dense", 64, "MODEL.BACKBONE.WEIGHTS", str(path)))
    assert str(path) in str(err.value)


def test_local_inception_resnet_v1_weights(tmp_path):
    state = InceptionResnetV1().state_dict()
    _tweak(state, "conv2d_1a.conv.weight", 0.125)
    _tweak(state, "repeat_2.9.conv2d.weight", -0.25)
    _tweak(state, "repeat_1.0.branch0.bn.running_var", 2.0)
    state["logits.weight"] = torch.zeros(10, 512)  # a classifier's layer: cut off
    path = tmp_path / "irv1.pth"
    torch.save(state, path)
    cfg = make_cfg("inception_resnet_v1", "dense", 64, "MODEL.BACKBONE.WEIGHTS", str(path))
    loaded = build_model(cfg).backbone.state_dict()
    assert "mixed_7a.branch0.0.conv.weight" not in loaded
    assert all(torch.equal(v, state[k]) for k, v in loaded.items())
    assert loaded["repeat_2.9.conv2d.weight"].eq(-0.25).all()
    assert loaded["repeat_1.0.branch0.bn.running_var"].eq(2.0).all()


def test_local_inception_nn2_weights(tmp_path):
    state = InceptionNN2("inception_5b").state_dict()  # the uncut network
    _tweak(state, "conv1.0.weight", 0.5)
    _tweak(state, "inception_4e.branch5x5.1.0.weight", 0.75)
    _tweak(state, "inception_5b.branch1x1.0.weight", 9.0)
    path = tmp_path / "nn2.pth"
    torch.save(state, path)
    cfg = make_cfg("inception_nn2", "dense", 64, "MODEL.BACKBONE.WEIGHTS", str(path))
    loaded = build_model(cfg).backbone.state_dict()
    assert not any(k.startswith("inception_5") for k in loaded)
    assert all(torch.equal(v, state[k]) for k, v in loaded.items())
    assert loaded["inception_4e.branch5x5.1.0.weight"].eq(0.75).all()


@pytest.mark.parametrize(
    "backbone,weights",
    [("resnet18", "no_such_weights"), ("inception_nn2", "imagenet"), ("resnet18", "vggface2")],
)
def test_unknown_weights_name_is_an_error(backbone, weights):
    # Neither a known name for this backbone nor a file: fails before any download.
    with pytest.raises(ValueError, match=f"MODEL.BACKBONE.WEIGHTS='{weights}'"):
        build_model(make_cfg(backbone, "dense", 64, "MODEL.BACKBONE.WEIGHTS", weights))


def test_bad_image_shapes_raise():
    model = build_model(make_cfg("inception_nn2", "conv3x3", 64)).eval()
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        model({"image": torch.zeros(1, 1, 64, 64, dtype=torch.uint8)})
    with pytest.raises(ValueError, match=r"\(B, 3, 3, H, W\)"):
        model.train()({"images": torch.zeros(2, 3, 64, 64, dtype=torch.uint8), "type": [0, 1]})
