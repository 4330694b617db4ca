"""Model contract and the hypercolumn machinery: exactness of the cheap projection, shapes, learning."""

import pytest
import torch
import torch.nn.functional as F

from tinct.errors import UsageError
from tinct.hypercolumn import HypercolumnProjection, sample_points, upsample_concat
from tinct.models import build_model, registered_models

from conftest import fit


@pytest.mark.parametrize("join", [64, 5, 0], ids=["all-joined", "mixed", "all-projected-first"])
def test_projection_equals_conv_over_the_concatenated_hypercolumn(join, monkeypatch):
    """Whichever levels ``dense`` resizes and joins and which it projects first (JOIN_CHANNELS),
    the result is the literal hypercolumn's 1x1 convolution."""
    import tinct.hypercolumn as hypercolumn

    monkeypatch.setitem(hypercolumn.JOIN_CHANNELS, torch.float32, join)
    torch.manual_seed(0)
    feats = [torch.randn(2, c, s, s + 3) for c, s in [(4, 32), (6, 16), (8, 8), (5, 4)]]
    proj = HypercolumnProjection((4, 6, 8, 5), 7, global_context=True)
    size = (16, 19)
    hc = upsample_concat(feats, size)  # (2, 23, 16, 19): the literal hypercolumn
    weight = torch.cat([c.weight for c in proj.levels], dim=1)
    g = proj.global_fc(feats[-1].mean(dim=(2, 3)))[:, :, None, None]
    reference = F.conv2d(hc, weight, proj.levels[0].bias) + g
    assert torch.allclose(proj.dense(feats, size), reference, atol=1e-5)
    # sparse = dense read at the sampled pixel centers
    pts = sample_points(2, *size, count=11, generator=torch.Generator().manual_seed(1))
    sparse = proj.sparse(feats, pts)[..., 0]  # (2, 7, 11)
    ys = ((pts[..., 1] + 1) * size[0] - 1) / 2
    xs = ((pts[..., 0] + 1) * size[1] - 1) / 2
    dense = reference
    picked = torch.stack([dense[b, :, ys[b].round().long(), xs[b].round().long()] for b in range(2)])
    assert torch.allclose(sparse, picked, atol=1e-4)


@pytest.mark.parametrize("head", ["histogram", "regression"])
@pytest.mark.parametrize("hw", [(37, 53), (64, 64), (1, 200)])
def test_predict_ab_shapes_on_odd_sizes(head, hw):
    model = build_model("hypercolumns", pretrained=False, hidden=8, head=head).eval()
    ab = model.predict_ab(torch.rand(2, 1, *hw) * 100)
    assert ab.shape == (2, 2, *hw) and torch.isfinite(ab).all()


@pytest.mark.parametrize("head", ["histogram", "regression"])
def test_a_model_learns_a_constant_color(head):
    torch.manual_seed(0)
    model = build_model("hypercolumns", pretrained=False, hidden=16, head=head)
    L = torch.rand(4, 1, 32, 32) * 100
    ab = torch.zeros(4, 2, 32, 32)
    ab[:, 0], ab[:, 1] = 45.0, -35.0  # a bin center of the 10-unit grid
    batch = {"L": L, "ab": ab}
    first, last, logs = fit(model, batch, steps=80, lr=1e-2 if head == "histogram" else 3e-3)
    assert last < 0.5 * first
    model.eval()
    pred = model.predict_ab(L).mean(dim=(0, 2, 3))
    assert torch.allclose(pred, torch.tensor([45.0, -35.0]), atol=6.0), pred


def test_frozen_backbone_stays_frozen():
    model = build_model("hypercolumns", pretrained=False, hidden=8, freeze_backbone=True)
    model.train()
    assert not model.backbone.training
    assert all(not p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.squeeze.parameters())


def test_registry():
    assert "hypercolumns" in registered_models()
    with pytest.raises(UsageError, match="unknown model architecture 'nope'; known: .*hypercolumns"):
        build_model("nope")
    with pytest.raises(ValueError, match="bad config"):
        build_model("hypercolumns", not_an_option=1)


def _laid_out_channels_last(p: torch.Tensor) -> bool:
    """Strides exactly NHWC's (``is_contiguous`` cannot tell for 1x1 or one-channel kernels)."""
    return p.stride() == torch.empty_like(p, memory_format=torch.channels_last).stride()


@pytest.mark.parametrize("arch, config", [
    ("hypercolumns", dict(pretrained=False, hidden=8)),
    ("larsson", dict(space="lab-joint", pretrained=False, hidden=8, joint_bins=4)),
    ("unet", dict(width=4, depth=3)),
])
def test_models_are_built_channels_last_and_predict_as_if_they_were_not(arch, config):
    torch.manual_seed(0)
    model = build_model(arch, **config).eval()
    kernels = [p for p in model.parameters() if p.dim() == 4]
    assert kernels and all(_laid_out_channels_last(p) for p in kernels)
    L = torch.rand(2, 1, 40, 56) * 100
    with torch.no_grad():
        fast = model.predict_ab(L)
        model.to(memory_format=torch.contiguous_format)
        assert not any(_laid_out_channels_last(p) for p in kernels)
        assert torch.allclose(fast, model.predict_ab(L), atol=1e-3)
