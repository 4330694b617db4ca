"""The remaining seed systems: HyperColumns regression (000), CNN/U-Net baselines (003), VGG pool3 YUV (004).

Shapes on odd sizes, the YUV loss and decoding, VGG16 files, learning, save/load, a smoke
training through the trainer, and every shipped recipe for these systems.
"""

import math
from pathlib import Path

import pytest
import torch
from PIL import Image

from tinct import bins
from tinct.color import gray_rgb_from_l, lab_to_rgb, rgb_to_lab, rgb_to_yuv
from tinct.losses import uv_cross_entropy
from tinct.models import build_model
from tinct.models.baseline_cnn import ring_palette
from tinct.train import TrainConfig, load_config, lr_factor, train
from tinct.weights import load_weights, save_weights

from conftest import fit, make_photo
from test_backbones import _fake_vgg16_state

ROOT = Path(__file__).resolve().parent.parent
BASELINES = ("cnn-pool", "cnn-transpose", "unet")
SEED_003 = (*BASELINES, "unet-classes")
NEW_CONFIGS = ("hypercolumns-vgg16", "hypercolumns-lite0-regression", "cnn-pool", "cnn-transpose", "unet",
               "unet-classes", "vgg-yuv", "vgg-yuv-lite0")


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory) -> Path:
    """A torchvision-format VGG16 state dict with random weights, saved as .pth."""
    path = tmp_path_factory.mktemp("vgg") / "vgg16.pth"
    torch.save(_fake_vgg16_state(), path)
    return path


SMALL = {
    "cnn-pool": dict(width=4, depth=3),
    "cnn-transpose": dict(width=4, depth=3),
    "unet": dict(width=4, depth=3),
    "unet-classes": dict(width=4, depth=3, head="classes"),
    "vgg-yuv-lite0": dict(backbone="efficientnet_lite0", pretrained=False, hidden=8, hidden2=4),
    "vgg-yuv-lite0-s2": dict(backbone="efficientnet_lite0", pretrained=False, hidden=8, hidden2=4, out_stride=2),
    "vgg-yuv-vgg16": dict(backbone="vgg16", pretrained=False, hidden=8, hidden2=4),
    "hypercolumns-1x1": dict(pretrained=False, hidden=8, head="regression", head_kernel=1, out_stride=1,
                             global_context=False),
}


def _build(key: str):
    arch = {"unet-classes": "unet", "hypercolumns-1x1": "hypercolumns"}.get(key, key)
    arch = "vgg-yuv" if key.startswith("vgg-yuv") else arch
    torch.manual_seed(0)
    return build_model(arch, **SMALL[key])


# ----------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("key", list(SMALL))
def test_predict_ab_shapes_on_odd_sizes(key):
    model = _build(key).eval()
    for hw in [(37, 53), (1, 64), (64, 1)]:
        out = model.predict(torch.rand(2, 1, *hw) * 100, with_confidence=model.head_kind == "classes")
        assert out["ab"].shape == (2, 2, *hw) and torch.isfinite(out["ab"]).all(), (key, hw)
        if "confidence" in out:
            c = out["confidence"]
            assert c.shape == (2, 1, *hw) and (c >= 0).all() and (c <= 1).all()


@pytest.mark.parametrize("arch", BASELINES)
@pytest.mark.parametrize("head", ["regression", "classes"])
def test_baselines_predict_at_the_input_resolution_for_any_size(arch, head):
    model = build_model(arch, width=4, depth=3, head=head).eval()
    pred = model(torch.rand(1, 1, 37, 53) * 100)  # not a multiple of 2**depth: padded inside
    k = 2 if head == "regression" else ring_palette().shape[0]
    (out,) = pred.values()
    assert out.shape == (1, k, 37, 53)
    assert model.pad_multiple == 8
    if head == "regression":
        assert out.abs().max() <= 110
        assert torch.equal(out, torch.zeros_like(out))  # a fresh net predicts gray (zero-initialised output)


def test_baseline_variants_differ_only_where_the_seed_says():
    kinds = {arch: {type(m).__name__ for m in build_model(arch, width=4, depth=2).modules()} for arch in BASELINES}
    assert "MaxPool2d" in kinds["cnn-pool"] and "Upsample" in kinds["cnn-pool"]
    assert "ConvTranspose2d" not in kinds["cnn-pool"]
    assert "ConvTranspose2d" in kinds["cnn-transpose"] and "MaxPool2d" not in kinds["cnn-transpose"]
    assert "ConvTranspose2d" in kinds["unet"] and "MaxPool2d" in kinds["unet"]
    unet = build_model("unet", width=4, depth=2)
    assert [b[0].in_channels for b in unet.up] == [16, 8]  # decoder blocks take [upsampled, skip]
    with pytest.raises(ValueError, match="head"):
        build_model("unet", head="bins")


def test_palette_is_deterministic_in_gamut_and_dense_near_gray():
    p = ring_palette()
    assert p.shape == (34, 2) and torch.equal(p, ring_palette())
    assert p.norm(dim=1).min() == 0  # gray is a class
    # every colour exists in sRGB at some lightness
    Ls = torch.arange(5.0, 100.0, 5.0)
    for a, b in p.tolist():
        lab = torch.stack([Ls, torch.full_like(Ls, a), torch.full_like(Ls, b)]).view(3, -1, 1)
        rgb = lab_to_rgb(lab, clip=False)
        assert ((rgb > -2e-3) & (rgb < 1 + 2e-3)).all(dim=0).any(), (a, b)
    # near-gray ab (chroma <= 10) is never more than 6 units from a palette colour, chroma <= 30 12
    a, b = torch.meshgrid(torch.linspace(-30, 30, 61), torch.linspace(-30, 30, 61), indexing="ij")
    ab = torch.stack([a.flatten(), b.flatten()], dim=1)
    dist, chroma = torch.cdist(ab, p).min(dim=1).values, ab.norm(dim=1)
    assert dist[chroma <= 10].max() < 6.0 and dist[chroma <= 30].max() < 12.0


# ----------------------------------------------------------------------------- seed 004
def test_uv_cross_entropy_value_minimum_and_gradient():
    p = torch.tensor([0.25, 0.5]).view(1, 2, 1, 1)
    t = torch.tensor([0.5, 0.75]).view(1, 2, 1, 1)
    expected = -(0.5 * math.log(0.25) + 0.5 * math.log(0.75)) - (0.75 * math.log(0.5) + 0.25 * math.log(0.5))
    assert uv_cross_entropy(p, t).item() == pytest.approx(expected, rel=1e-5)  # 1.5301
    # per pixel: summed over U and V, averaged over pixels
    assert uv_cross_entropy(p.expand(2, 2, 3, 4), t.expand(2, 2, 3, 4)).item() == pytest.approx(expected, rel=1e-5)
    target = torch.full((1, 2, 1, 1), 0.3)
    grid = torch.linspace(0.01, 0.99, 99)
    losses = torch.stack([uv_cross_entropy(torch.full((1, 2, 1, 1), float(q)), target) for q in grid])
    assert grid[losses.argmin()].item() == pytest.approx(0.3, abs=1e-6)
    for start, sign in [(0.1, -1), (0.6, 1)]:
        q = torch.full((1, 2, 1, 1), start, requires_grad=True)
        uv_cross_entropy(q, target).backward()
        assert (torch.sign(q.grad) == sign).all()  # descending moves UV_p towards UV


COLORS = [(0.8, 0.3, 0.2), (0.2, 0.5, 0.1), (0.3, 0.4, 0.8), (0.9, 0.8, 0.3), (0.1, 0.6, 0.7), (0.95, 0.1, 0.6)]


def test_yuv_decode_gives_the_lab_ab_of_a_known_color():
    model = _build("vgg-yuv-lite0").eval()
    rgb = torch.tensor(COLORS).T.reshape(1, 3, len(COLORS), 1)
    yuv, lab = rgb_to_yuv(rgb), rgb_to_lab(rgb)
    # The input whose gray has exactly the color's Y (luma): decoding rebuilds the color.
    luma = yuv[:, :1]
    L_luma = rgb_to_lab(luma.expand(-1, 3, -1, -1))[:, :1]
    assert torch.allclose(gray_rgb_from_l(L_luma), luma, atol=1e-4)
    ab = model.decode({"uv": yuv[:, 1:], "y": gray_rgb_from_l(L_luma)})
    assert ab.shape == (1, 2, len(COLORS), 1)
    assert (ab - lab[:, 1:]).abs().max() < 0.1
    # With the color's own lightness (what tinct's gray input is), ordinary colors stay within 1 unit.
    mild = torch.tensor([(0.8, 0.3, 0.2), (0.6, 0.55, 0.5), (0.9, 0.8, 0.3), (0.3, 0.4, 0.8)]).T.reshape(1, 3, 4, 1)
    ab = model.decode({"uv": rgb_to_yuv(mild)[:, 1:], "y": gray_rgb_from_l(rgb_to_lab(mild)[:, :1])})
    assert (ab - rgb_to_lab(mild)[:, 1:]).abs().max() < 1.0
    # UV at a lower resolution than Y is upsampled; gray UV decodes to ab = 0.
    ab = model.decode({"uv": torch.full((1, 2, 3, 4), 128 / 255), "y": torch.rand(1, 1, 6, 8)})
    assert ab.shape == (1, 2, 6, 8) and ab.abs().max() < 0.5


def test_yuv_model_loss_targets_and_forward():
    model = _build("vgg-yuv-lite0").train()
    rgb = torch.tensor(COLORS).T.reshape(1, 3, 2, 3)
    lab = rgb_to_lab(rgb)
    batch = {"L": lab[:, :1], "ab": lab[:, 1:]}
    uv = model.target_uv(batch, (2, 3))
    assert torch.allclose(uv, rgb_to_yuv(rgb)[:, 1:], atol=1e-3)
    loss, logs = model.loss({"uv": uv, "y": gray_rgb_from_l(lab[:, :1])}, batch)
    assert logs["ce_excess"] == pytest.approx(0.0, abs=1e-5) and logs["uv_mae"] < 0.5
    assert set(logs) == {"ce", "ce_excess", "uv_mae"}
    pred = model(torch.rand(2, 1, 24, 40) * 100)
    assert pred["uv"].shape == (2, 2, 24, 40) and pred["y"].shape == (2, 1, 24, 40)
    assert torch.allclose(pred["uv"], torch.full_like(pred["uv"], 0.5))  # starts gray
    assert model.color_space == "yuv" and not model.backbone.training
    assert all(not p.requires_grad for p in model.backbone.parameters())
    # Lite0 stands in with its first three levels only (strides 2, 4, 8), later blocks dropped.
    assert model.backbone.strides == (2, 4, 8) and [f.shape[1] for f in model.backbone(torch.rand(1, 1, 32, 32))] == [16, 24, 40]
    assert model(torch.rand(1, 1, 32, 32) * 100)["uv"].shape == (1, 2, 32, 32)
    assert _build("vgg-yuv-lite0-s2")(torch.rand(1, 1, 32, 32) * 100)["uv"].shape == (1, 2, 16, 16)


def test_yuv_projection_equals_a_1x1_conv_over_the_literal_hypercolumn():
    from tinct.hypercolumn import upsample_concat

    model = _build("vgg-yuv-lite0").eval()
    maps = [torch.rand(1, 1, 16, 24)] + [torch.randn(1, c, 16 // s, 24 // s) for c, s in [(16, 2), (24, 4), (40, 8)]]
    t = upsample_concat(maps, (16, 24))  # (1, 81, 16, 24)
    weight = torch.cat([c.weight for c in model.project.levels], dim=1)
    ref = torch.nn.functional.conv2d(t, weight, model.project.levels[0].bias)
    assert torch.allclose(model._project(maps, (16, 24)), ref, atol=1e-5)


def test_vgg_files_for_vgg_yuv_and_hypercolumns(vgg_file, tmp_path):
    state = _fake_vgg16_state()
    model = build_model("vgg-yuv", backbone_weights=str(vgg_file), hidden=8, hidden2=4).eval()
    feats = model.backbone.features
    assert len(feats) == 16  # conv1_1 .. conv3_3 (+ ReLUs and two pools), nothing after
    assert torch.equal(feats[2].weight, state["features.2.weight"])
    assert torch.equal(feats[14].weight, state["features.14.weight"])
    # The seed's 451 channels: 3 input copies + conv1_2 (64) + conv2_2 (128) + conv3_3 (256);
    # tinct feeds the identical copies once.
    widths = [c.in_channels for c in model.project.levels]
    assert widths == [1, 64, 128, 256] and sum(widths) + 2 == 451
    assert model.predict_ab(torch.rand(1, 1, 20, 28) * 100).shape == (1, 2, 20, 28)
    hc = build_model("hypercolumns", backbone="vgg16", backbone_weights=str(vgg_file), head="regression",
                     head_kernel=1, hidden=8, out_stride=1, global_context=False).eval()
    assert torch.equal(hc.backbone.features[28].weight, state["features.28.weight"])
    assert hc(torch.rand(1, 1, 20, 28) * 100)["ab"].shape == (1, 2, 20, 28)
    for arch, kw in [("vgg-yuv", {}), ("hypercolumns", {"backbone": "vgg16"})]:
        with pytest.raises(ValueError, match="weights file"):
            build_model(arch, **kw)
        with pytest.raises(FileNotFoundError, match="not found"):
            build_model(arch, backbone_weights=str(tmp_path / "nope.pth"), **kw)
    with pytest.raises(ValueError, match="backbone"):
        build_model("vgg-yuv", backbone="resnet50", pretrained=False)


# ----------------------------------------------------------------------------- seed 000 head
def test_hypercolumns_head_kernel_is_backward_compatible():
    default = build_model("hypercolumns", pretrained=False, hidden=8)
    assert default.config["head_kernel"] == 3 and default.squeeze[2].kernel_size == (3, 3)
    one = build_model("hypercolumns", pretrained=False, hidden=8, head_kernel=1)
    assert one.squeeze[2].kernel_size == (1, 1) and one.squeeze[2].padding == (0, 0)
    assert list(default.state_dict()) == list(one.state_dict())  # same names: old files still load
    old_config = {k: v for k, v in default.config.items() if k != "head_kernel"}  # a file saved before the option
    rebuilt = build_model("hypercolumns", **old_config)
    rebuilt.load_state_dict(default.state_dict())
    assert rebuilt.squeeze[2].kernel_size == (3, 3)
    with pytest.raises(ValueError, match="head_kernel"):
        build_model("hypercolumns", pretrained=False, head_kernel=5)


# ----------------------------------------------------------------------------- learning
@pytest.mark.parametrize("head", ["regression", "classes"])
def test_unet_learns_a_constant_color(head):
    torch.manual_seed(0)
    model = build_model("unet", width=4, depth=2, head=head)
    target = torch.tensor([30.0, -20.0]) if head == "regression" else ring_palette()[20]
    L = torch.rand(4, 1, 32, 32) * 100
    batch = {"L": L, "ab": target.view(1, 2, 1, 1).expand(4, 2, 32, 32).clone()}
    first, last, logs = fit(model, batch, steps=60, lr=1e-2)
    assert last < 0.3 * first
    model.eval()
    pred = model.predict_ab(L, "mode" if head == "classes" else None).mean(dim=(0, 2, 3))
    assert torch.allclose(pred, target, atol=5.0), pred
    if head == "classes":
        assert logs["accuracy"] > 0.9
        assert set(model.decode_methods) == set(bins.JOINT_METHODS) and model.default_decode == "annealed"


@pytest.mark.parametrize("key", ["unet-classes", "cnn-transpose", "vgg-yuv-lite0", "hypercolumns-1x1"])
def test_save_and_load_weights(key, tmp_path):
    model = _build(key)
    with torch.no_grad():  # move every parameter off its initial value (zero-initialised heads)
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model.train()
    model(torch.rand(2, 1, 32, 32) * 100)  # update BatchNorm statistics
    model.eval()
    path = save_weights(model, tmp_path / f"{key}.safetensors", {"name": key})
    loaded = load_weights(path)
    assert type(loaded) is type(model) and loaded.config == model.config
    L = torch.rand(1, 1, 24, 40) * 100
    assert torch.allclose(loaded.predict_ab(L), model.predict_ab(L), atol=0.5)
    if key == "unet-classes":
        assert torch.equal(loaded.centers, ring_palette())


def test_smoke_training_writes_figures(tmp_path):
    data = tmp_path / "images"
    for c in ("a", "b"):
        (data / c).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(make_photo(36, 40, seed=10 * ord(c) + i)).save(data / c / f"{i}.png")
    cfg = TrainConfig.from_dict({
        "name": "smoke", "model": {"arch": "cnn-pool", "width": 4, "depth": 2},
        "data": {"roots": [str(data)], "fractions": [0.8, 0.2, 0.0]}, "size": 32, "resize": 32,
        "batch_size": 4, "max_steps": 10, "optimizer": {"name": "adamw", "lr": 2e-3},
        "schedule": {"name": "cosine", "warmup": 2}, "workers": 0, "threads": 1, "log_every": 2,
        "val_every": 5, "val_images": 4, "figure_images": 3, "checkpoint_every": 100, "seed": 0,
    })
    final = train(cfg, tmp_path / "run", progress=False)
    figures = sorted(p.name for p in (tmp_path / "run" / "figures").glob("*.png"))
    assert "step_00000005.png" in figures and "step_00000010.png" in figures
    assert any(f.startswith("epoch_") for f in figures)  # 12 images / 4 per step: epochs end too
    with Image.open(tmp_path / "run" / "figures" / "step_00000005.png") as im:
        assert im.size[1] == 3 * 32  # rows: gray / truth / prediction
    model = load_weights(final)
    assert model.arch == "cnn-pool" and model.predict_ab(torch.rand(1, 1, 20, 30) * 100).shape == (1, 2, 20, 30)


# ----------------------------------------------------------------------------- recipes
@pytest.mark.parametrize("name", NEW_CONFIGS)
def test_recipes_parse_and_build(name, vgg_file):
    cfg = load_config(ROOT / "configs" / f"{name}.yaml")
    assert cfg.name == name
    spec = dict(cfg.model)
    arch = spec.pop("arch")
    if spec.get("backbone") == "vgg16":
        assert spec["backbone_weights"] is None  # the user sets the file
        with pytest.raises(ValueError, match="weights file"):
            build_model(arch, **spec)
        spec["backbone_weights"] = str(vgg_file)
    model = build_model(arch, **spec)
    assert model.arch == arch
    if name.startswith("hypercolumns"):
        assert cfg.data["roots"] == ["../shared/data/flowers102"]
        assert cfg.data["labels_csv"] == {"../shared/data/flowers102": "../shared/data/flowers102/labels.csv"}
        assert (cfg.size, cfg.resize, cfg.batch_size, cfg.max_steps) == (192, 224, 24, 600)  # 20 epochs of 728
        assert model.head_kind == "regression" and model.squeeze[2].kernel_size == (1, 1)
    else:
        lite0 = load_config(ROOT / "configs" / "tinct-lite0-hc.yaml")
        assert cfg.data == lite0.data
        budget = (cfg.size, cfg.resize, cfg.batch_size, cfg.max_steps)
        if name in SEED_003:  # the from-scratch nets share their own, smaller budget (see the configs)
            assert budget == (96, 224, 16, 1200)
        elif arch == "iizuka":  # the three iizuka* runs share theirs: 224^2 crops, one low-level pass
            assert budget == (224, 256, 16, 500)
        else:
            assert budget == (lite0.size, lite0.resize, lite0.batch_size, lite0.max_steps)
    if arch == "vgg-yuv":
        assert cfg.optimizer == {"name": "sgd", "lr": 0.08, "momentum": 0.9, "weight_decay": 8e-7}
        assert cfg.schedule == {"name": "step", "every": 1, "unit": "epochs", "gamma": 0.5}
        factors = [lr_factor(s, cfg.schedule, cfg.max_steps, 320) for s in (0, 319, 320, 640, 1199)]
        assert factors == [1.0, 1.0, 0.5, 0.25, 0.125]
    if arch in BASELINES:
        assert cfg.val_every <= 50  # an early ("epoch 0") figure, as in the seed
