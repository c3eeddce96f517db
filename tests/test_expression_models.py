"""Classifier, ValenceArousalRegressor and ClassifierRegressor; the deep_emotion and
mobilenet_v2 backbones; loss options; starting one model from another's checkpoint.
CPU only, no network."""
import logging
import math

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from skimage import data as skdata

from fec.config import load_config
from fec.modeling import build_model
from fec.modeling.losses import ccc_loss, concordance_correlation
from fec.modeling.registry import BACKBONES, META_ARCHITECTURES
from fec.utils.checkpoint import Checkpointer

ARCHS = ["Classifier", "ValenceArousalRegressor", "ClassifierRegressor"]
OUTPUTS = {"Classifier": {"logits"}, "ValenceArousalRegressor": {"valence_arousal"},
           "ClassifierRegressor": {"logits", "valence_arousal"}}
LOSSES = {"Classifier": {"loss_cls"}, "ValenceArousalRegressor": {"loss_va"},
          "ClassifierRegressor": {"loss_cls", "loss_va"}}


def make_cfg(arch="Classifier", backbone="deep_emotion", size=48, *opts):
    return load_config(None, ["MODEL.META_ARCHITECTURE", arch, "MODEL.BACKBONE.NAME", backbone,
                              "INPUT.SIZE", str(size), *opts])


def build(arch="Classifier", backbone="deep_emotion", size=48, *opts, seed=0):
    torch.manual_seed(seed)
    return build_model(make_cfg(arch, backbone, size, *opts))


def faces(num, size, seed=0):
    """Grey crops of a real face replicated to 3 channels, as FER2013 arrives: the
    astronaut's face, shifted a little per sample."""
    grey = cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2GRAY)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(num):
        y, x = rng.integers(20, 40, size=2)
        crop = cv2.resize(grey[y:y + 200, 150 + x:350 + x], (size, size), interpolation=cv2.INTER_AREA)
        out.append(np.repeat(crop[None], 3, axis=0))
    return torch.from_numpy(np.stack(out))


def batch(num, size, num_classes=7, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return {"image": faces(num, size, seed), "label": torch.arange(num) % num_classes,
            "valence_arousal": torch.rand(num, 2, generator=gen) * 2 - 1, "index": torch.arange(num)}


def test_registered():
    assert {"deep_emotion", "mobilenet_v2"} <= set(BACKBONES)
    assert set(ARCHS) <= set(META_ARCHITECTURES)


def test_former_name_affect_regressor_builds_the_same_model():
    """Configs written before the rename keep working, and their checkpoints load."""
    old, new = build("AffectRegressor", seed=3), build("ValenceArousalRegressor", seed=3)
    assert type(old) is type(new)
    assert old.state_dict().keys() == new.state_dict().keys()
    for k, v in old.state_dict().items():
        assert torch.equal(v, new.state_dict()[k]), k
    assert set(old.eval()({"image": faces(2, 48)})) == {"valence_arousal"}


@pytest.mark.parametrize("arch", ARCHS)
def test_outputs_losses_and_a_training_step(arch):
    model = build(arch).train()
    b = batch(4, 48)
    losses = model(b)
    assert set(losses) == LOSSES[arch]
    assert all(v.dim() == 0 and torch.isfinite(v) and v.item() > 0 for v in losses.values())
    sum(losses.values()).backward()
    conv = model.backbone.conv1.weight
    assert conv.grad is not None and conv.grad.abs().sum() > 0
    for name, p in model.heads.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    model.eval()
    with torch.no_grad():
        out = model({"image": b["image"]})  # no targets needed to predict
    assert set(out) == OUTPUTS[arch]
    if "logits" in out:
        assert out["logits"].shape == (4, 7) and out["logits"].dtype == torch.float32
    if "valence_arousal" in out:
        assert out["valence_arousal"].shape == (4, 2) and out["valence_arousal"].dtype == torch.float32


@pytest.mark.parametrize("backbone", ["resnet18", "inception_nn2", "inception_resnet_v1", "mobilenet_v2"])
def test_every_backbone_classifies(backbone):
    model = build("ClassifierRegressor", backbone, 64).train()
    losses = model(batch(2, 64))
    assert set(losses) == {"loss_cls", "loss_va"} and all(torch.isfinite(v) for v in losses.values())
    model.eval()
    with torch.no_grad():
        out = model({"image": batch(2, 64)["image"]})
    assert out["logits"].shape == (2, 7) and out["valence_arousal"].shape == (2, 2)


# -- Deep-Emotion ------------------------------------------------------------------


def paper_forward(net, x):
    """The paper's network written out with its fixed reshapes (view(-1, 640) and
    view(-1, 810), which only 48x48 inputs fit), on the backbone's weights, up to fc1."""
    stn = net.stn
    xs = stn.localization(x).view(-1, 640)
    theta = stn.fc_loc(xs).view(-1, 2, 3)
    out = F.grid_sample(x, F.affine_grid(theta, list(x.size()), align_corners=False), align_corners=False)
    out = F.relu(net.conv1(out))
    out = F.relu(F.max_pool2d(net.conv2(out), 2, 2))
    out = F.relu(net.conv3(out))
    out = F.relu(F.max_pool2d(net.norm(net.conv4(out)), 2, 2))
    return F.relu(net.fc1(out.view(-1, 810)))


def test_deep_emotion_is_the_papers_network_at_48():
    model = build("Classifier").eval()
    net = model.backbone
    # Perturb the transformer away from the identity so the whole path is exercised.
    with torch.no_grad():
        net.stn.fc_loc[2].weight.normal_(0, 0.01)
    x = (faces(3, 48).float() - 127.5) / 127.5
    with torch.no_grad():
        torch.testing.assert_close(net(x).flatten(1), paper_forward(net, x))
        assert net.stn.localization(x).shape == (3, 10, 8, 8)  # the 640 the paper's FC takes
    # Parameters counted by hand: localisation conv 3·8·49+8 and 8·10·25+10, FC 640·32+32
    # and 32·6+6; convs 3·10·9+10 and 3·(10·10·9+10); BatchNorm 2·10; fc1 810·50+50;
    # head 50·7+7.
    expected = 1184 + 2010 + 20512 + 198 + 280 + 2730 + 20 + 40550 + 357
    assert sum(p.numel() for p in model.parameters()) == expected


def test_spatial_transformer_starts_at_the_identity():
    net = build("Classifier").backbone
    x = (faces(2, 48).float() - 127.5) / 127.5
    with torch.no_grad():
        theta = net.stn.theta(x)
        grid = net.stn.grid(x)
        sampled = net.stn(x)
    identity = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).expand(2, 2, 3)
    assert torch.equal(theta, identity)
    # The sampling grid is the input's own pixel-centre grid: (2j + 1) / W − 1.
    centres = (2 * torch.arange(48, dtype=torch.float32) + 1) / 48 - 1
    torch.testing.assert_close(grid[0, 5, :, 0], centres)
    torch.testing.assert_close(grid[0, :, 7, 1], centres)
    torch.testing.assert_close(sampled, x, atol=1e-5, rtol=0)


def test_deep_emotion_dropout_is_off_in_eval_and_on_in_training():
    model = build("Classifier")
    assert isinstance(model.backbone.dropout, torch.nn.Dropout) and model.backbone.dropout.p == 0.5
    images = faces(4, 48)
    model.eval()
    with torch.no_grad():
        a, b = model({"image": images})["logits"], model({"image": images})["logits"]
        alone = model({"image": images[2:3]})["logits"]
    assert torch.equal(a, b)
    torch.testing.assert_close(alone[0], a[2], rtol=1e-4, atol=1e-5)
    model.train()
    net = model.backbone
    x = (images.float() - 127.5) / 127.5
    with torch.no_grad():
        h1, h2 = net(x), net(x)
    assert not torch.equal(h1, h2)


def test_deep_emotion_other_sizes_and_too_small():
    net = build("Classifier").backbone.eval()
    assert net.min_input_size == 18  # the localisation branch: 18 →12 →6 →2 →1
    for size in (18, 64, 96):
        with torch.no_grad():
            assert net(torch.randn(1, 3, size, size)).shape == (1, 50, 1, 1)
    with pytest.raises(ValueError, match="17x17 input is too small for deep_emotion"):
        net(torch.randn(1, 3, 17, 17))
    with pytest.raises(ValueError, match="INPUT.SIZE=16 is too small for deep_emotion"):
        build("Classifier", "deep_emotion", 16)
    features = BACKBONES["deep_emotion"](make_cfg("Classifier", "deep_emotion", 48, "MODEL.BACKBONE.CUT_AT",
                                                  "features")).eval()
    assert features.out_channels == 10
    with torch.no_grad():
        assert features(torch.randn(1, 3, 48, 48)).shape == (1, 10, 9, 9)


# -- MobileNetV2 -------------------------------------------------------------------


def test_mobilenet_v2_cuts_channels_and_freezing():
    expected = {"stem": 16, "stride4": 24, "stride8": 32, "stride16": 96, "stride32": 320, "last_conv": 1280}
    for cut, channels in expected.items():
        net = BACKBONES["mobilenet_v2"](make_cfg("Classifier", "mobilenet_v2", 64, "MODEL.BACKBONE.CUT_AT", cut))
        assert net.out_channels == channels, cut
    net = BACKBONES["mobilenet_v2"](make_cfg("Classifier", "mobilenet_v2", 64, "MODEL.BACKBONE.CUT_AT",
                                             "stride8")).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 64, 64)).shape == (1, 32, 8, 8)
    frozen = BACKBONES["mobilenet_v2"](make_cfg("Classifier", "mobilenet_v2", 64, "MODEL.BACKBONE.FREEZE_AT", "2"))
    for i, block in enumerate(frozen.features):
        assert all(p.requires_grad == (i >= 4) for p in block.parameters()), i
    frozen.train()
    assert not frozen.features[3].training and frozen.features[4].training


def test_mobilenet_v2_loads_a_local_torchvision_state_dict(tmp_path):
    torch.manual_seed(3)
    reference = torchvision.models.mobilenet_v2(weights=None).eval()
    path = tmp_path / "mobilenet_v2.pth"
    torch.save(reference.state_dict(), path)
    x = torch.randn(2, 3, 64, 64)
    for cut, stop in (("last_conv", 19), ("stride8", 7)):
        net = BACKBONES["mobilenet_v2"](make_cfg("Classifier", "mobilenet_v2", 64, "MODEL.BACKBONE.WEIGHTS",
                                                 str(path), "MODEL.BACKBONE.CUT_AT", cut)).eval()
        with torch.no_grad():
            torch.testing.assert_close(net(x), reference.features[:stop](x))
    with pytest.raises(ValueError, match="neither a pretrained name"):
        BACKBONES["mobilenet_v2"](make_cfg("Classifier", "mobilenet_v2", 64, "MODEL.BACKBONE.WEIGHTS",
                                           str(tmp_path / "missing.pth")))


# -- losses ------------------------------------------------------------------------


def loss_without_randomness(model, b):
    """The training losses with dropout off and BatchNorm on its running stats, so
    they can be compared with outputs taken in eval mode."""
    model.eval()
    model.training = True  # only the top module: it then returns losses
    with torch.no_grad():
        return model(b)


def test_class_weights_and_label_smoothing_match_the_formulas():
    b = batch(6, 48)
    weights = [1.0, 2.0, 0.5, 1.0, 3.0, 1.0, 0.25]
    plain = build("Classifier").eval()
    with torch.no_grad():
        logits = plain({"image": b["image"]})["logits"].double()
    logp = torch.log_softmax(logits, 1)
    y = b["label"]
    nll = -logp[torch.arange(6), y]
    w = torch.tensor(weights, dtype=torch.float64)[y]

    def loss_of(*opts):
        model = build("Classifier", "deep_emotion", 48, *opts)
        model.load_state_dict(plain.state_dict())
        return loss_without_randomness(model, b)["loss_cls"].item()

    assert loss_of() == pytest.approx(nll.mean().item(), rel=1e-5)
    assert loss_of("MODEL.CLASSIFIER.CLASS_WEIGHTS", str(weights)) == pytest.approx(
        ((w * nll).sum() / w.sum()).item(), rel=1e-5)
    eps = 0.1
    smoothed = ((1 - eps) * nll + eps * (-logp.mean(1))).mean()
    assert loss_of("MODEL.CLASSIFIER.LABEL_SMOOTHING", "0.1") == pytest.approx(smoothed.item(), rel=1e-5)
    assert loss_of("MODEL.CLASSIFIER.LOSS_WEIGHT", "0.5") == pytest.approx(0.5 * nll.mean().item(), rel=1e-5)


def test_mse_and_ccc_losses_match_the_formulas():
    gen = torch.Generator().manual_seed(1)
    pred, target = torch.rand(16, 2, generator=gen) * 2 - 1, torch.rand(16, 2, generator=gen) * 2 - 1
    p, t = pred.double().numpy(), target.double().numpy()
    cccs = []
    for d in range(2):
        mp, mt = p[:, d].mean(), t[:, d].mean()
        cov = np.mean((p[:, d] - mp) * (t[:, d] - mt))
        cccs.append(2 * cov / (np.var(p[:, d]) + np.var(t[:, d]) + (mp - mt) ** 2))
    torch.testing.assert_close(concordance_correlation(pred, target).double(), torch.tensor(cccs), rtol=1e-4, atol=1e-6)
    assert ccc_loss(pred, target).item() == pytest.approx(1 - np.mean(cccs), rel=1e-5)
    assert ccc_loss(target, target).item() == pytest.approx(0.0, abs=1e-6)

    b = batch(4, 48)
    for loss, expected in (("mse", lambda o: F.mse_loss(o, b["valence_arousal"])),
                           ("ccc", lambda o: ccc_loss(o, b["valence_arousal"]))):
        model = build("ValenceArousalRegressor", "deep_emotion", 48, "MODEL.REGRESSOR.LOSS", loss).eval()
        with torch.no_grad():
            out = model({"image": b["image"]})["valence_arousal"]
        assert loss_without_randomness(model, b)["loss_va"].item() == pytest.approx(expected(out).item(), rel=1e-5)


def test_bad_targets_and_options_are_named():
    model = build("Classifier").train()
    b = batch(2, 48)
    b["label"] = torch.tensor([0, 7])
    with pytest.raises(ValueError, match=r"labels must be in 0\.\.6 \(MODEL.CLASSIFIER.NUM_CLASSES = 7\)"):
        model(b)
    del b["label"]
    with pytest.raises(KeyError, match="has no 'label'"):
        model(b)
    with pytest.raises(ValueError, match="CLASS_NAMES needs one name per class"):
        make_cfg("Classifier", "deep_emotion", 48, "MODEL.CLASSIFIER.NUM_CLASSES", "8")
    with pytest.raises(ValueError, match="CLASS_WEIGHTS needs 7"):
        make_cfg("Classifier", "deep_emotion", 48, "MODEL.CLASSIFIER.CLASS_WEIGHTS", "[1.0, 2.0]")
    with pytest.raises(ValueError, match="REGRESSOR.LOSS must be mse or ccc"):
        make_cfg("ValenceArousalRegressor", "deep_emotion", 48, "MODEL.REGRESSOR.LOSS", "l1")


# -- starting from another model's checkpoint ----------------------------------------


def _trained_classifier(tmp_path):
    model = build("Classifier", seed=1).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for i in range(2):
        loss = model(batch(4, 48, seed=i))["loss_cls"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    Checkpointer(model, save_dir=str(tmp_path)).save("model_final", 2)
    return model, str(tmp_path / "model_final.pth")


def test_regressor_starts_from_a_classifier_with_the_head_skipped_and_named(tmp_path, caplog):
    classifier, path = _trained_classifier(tmp_path)
    regressor = build("ValenceArousalRegressor", seed=2)
    head_before = {k: v.clone() for k, v in regressor.heads.state_dict().items()}
    with pytest.raises(RuntimeError, match=r"unexpected keys: heads\.classifier\.fc\.weight.*missing keys"
                                           r"|missing keys: heads\.regressor\.fc\.weight"):
        Checkpointer(regressor).load(path)
    with caplog.at_level(logging.INFO, logger="fec.utils.checkpoint"):
        Checkpointer(regressor).load(path, skip_prefixes=["heads."])
    for k, v in classifier.backbone.state_dict().items():
        assert torch.equal(regressor.backbone.state_dict()[k], v), k
    for k, v in regressor.heads.state_dict().items():
        assert torch.equal(v, head_before[k]), k
    log = caplog.text
    assert "heads.classifier.fc.weight" in log and "heads.classifier.fc.bias" in log
    assert "heads.regressor.fc.weight" in log and "initialisation" in log


def test_joint_model_from_a_classifier_keeps_the_classifier_head(tmp_path, caplog):
    classifier, path = _trained_classifier(tmp_path)
    joint = build("ClassifierRegressor", seed=2)
    with caplog.at_level(logging.WARNING, logger="fec.utils.checkpoint"):
        Checkpointer(joint).load(path, skip_prefixes=["heads.regressor.", "nothing."])
    assert "'nothing.' matches no key" in caplog.text
    for k, v in classifier.state_dict().items():
        assert torch.equal(joint.state_dict()[k], v), k
    with pytest.raises(ValueError, match="resuming loads the whole checkpoint"):
        Checkpointer(joint).load(path, resume=True, skip_prefixes=["heads."])


def test_shape_mismatch_outside_the_skipped_prefix_still_fails(tmp_path):
    _, path = _trained_classifier(tmp_path)
    eight = build("Classifier", "deep_emotion", 48, "MODEL.CLASSIFIER.NUM_CLASSES", "8",
                  "MODEL.CLASSIFIER.CLASS_NAMES", str([f"c{i}" for i in range(8)]))
    with pytest.raises(RuntimeError, match=r"shape mismatches.*heads\.classifier\.fc\.weight \(7, 50\) vs \(8, 50\)"):
        Checkpointer(eight).load(path)
    Checkpointer(eight).load(path, skip_prefixes=["heads."])  # a new 8-class head on the same backbone
    assert math.isfinite(eight.eval()({"image": faces(1, 48)})["logits"].sum().item())
