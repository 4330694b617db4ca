"""Inference copies (tinct.folding) and the PyTorch runtime's precision: same predictions, faster."""

from __future__ import annotations

import pytest
import torch

from tinct.errors import UsageError
from tinct.folding import inference_network
from tinct.models import build_model
from tinct.runtime import TorchRuntime, native_bfloat16


def _with_statistics(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random batch-norm statistics and affine weights, so that folding them is not a no-op."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.2)
    return model.eval()


@pytest.fixture(scope="module")
def larsson():
    torch.manual_seed(0)
    return _with_statistics(build_model("larsson", space="lab-joint", backbone="efficientnet_lite0", pretrained=False,
                                        hidden=32, global_context=True))


@pytest.mark.parametrize("fused", [True, False], ids=["relu6-fused", "relu6-apart"])
def test_folded_network_predicts_what_the_model_predicts(larsson, fused, monkeypatch):
    """Every batch norm of the backbone and the head is folded away (and, where PyTorch offers
    it, ReLU6 fused into the convolutions; without it they stay apart); the logits stay the same."""
    import tinct.backbones.efficientnet_lite as lite
    from tinct.folding import fused_conv_relu6_available

    if fused and not fused_conv_relu6_available():
        pytest.skip("this PyTorch build has no fused convolution + ReLU6")
    monkeypatch.setattr(lite, "fused_conv_relu6_available", lambda: fused)
    L = torch.rand(2, 1, 64, 96) * 100
    net = inference_network(larsson)
    assert any(getattr(m, "fused_relu6", False) for m in net.modules()) == fused
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in larsson.modules())  # the model is untouched
    with torch.inference_mode():
        assert torch.allclose(net(L)["logits"], larsson(L)["logits"], atol=1e-4, rtol=1e-4)


def test_hint_model_keeps_the_norm_after_the_hint_attention(tiny_hint_model_path):
    """The hint head's norm follows projection + attention (which reads the projection): it stays."""
    from tinct.weights import load_weights

    model = _with_statistics(load_weights(tiny_hint_model_path), seed=1)
    net = inference_network(model)
    assert isinstance(net.head[0], torch.nn.BatchNorm2d)
    hints = torch.zeros(1, 3, 64, 64)
    hints[:, :, 20:26, 30:36] = torch.tensor([40.0, -30.0, 1.0])[:, None, None]
    L = torch.rand(1, 1, 64, 64) * 100
    with torch.inference_mode():
        assert torch.allclose(net(L, hints=hints)["logits"], model(L, hints=hints)["logits"], atol=1e-4, rtol=1e-4)


def test_runtime_follows_weight_changes_and_training_mode(larsson):
    """The folded copy is remade when the model's weights change in place; a model in training
    mode runs as it is."""
    model = _with_statistics(build_model("larsson", space="lab-joint", backbone="efficientnet_lite0",
                                         pretrained=False, hidden=16), seed=2)
    runtime = TorchRuntime(model, "float32")
    L = torch.rand(1, 1, 64, 64) * 100
    with torch.inference_mode():
        before = runtime.forward(L)["logits"]
        first = runtime.network(L.device)
        assert runtime.network(L.device) is first  # made once
        assert TorchRuntime(model, "float32").network(L.device) is first  # and shared (a Colorizer per request)
    with torch.no_grad():
        model.head[-1].bias.add_(1.0)
    with torch.inference_mode():
        after = runtime.forward(L)["logits"]
        assert torch.allclose(after, before + 1.0, atol=1e-4)
    model.train()
    assert runtime.network(L.device) is model
    model.eval()


def test_precision_choices(larsson, monkeypatch):
    with pytest.raises(UsageError, match="precision must be one of"):
        TorchRuntime(larsson, "float16")
    native_bfloat16.cache_clear()
    monkeypatch.setattr("pathlib.Path.read_text", lambda self, **kw: "flags : fpu avx2 avx512f")
    assert TorchRuntime(larsson).precision == "float32"  # no native bfloat16: auto stays in float32
    native_bfloat16.cache_clear()
    monkeypatch.setattr("pathlib.Path.read_text", lambda self, **kw: "flags : fpu avx2 amx_bf16 amx_tile")
    assert TorchRuntime(larsson).precision == "bfloat16"
    monkeypatch.undo()
    native_bfloat16.cache_clear()


def test_bfloat16_predicts_within_a_lab_unit_of_float32(larsson):
    """bfloat16 autocast (the default on CPUs with AMX) gives float32 outputs close to float32's:
    measured on the shipped default over 400 unseen photos, the same PSNR and AuC."""
    L = torch.rand(1, 1, 64, 96) * 100
    with torch.inference_mode():
        full = TorchRuntime(larsson, "float32").forward(L)
        half = TorchRuntime(larsson, "bfloat16").forward(L)
        assert half["logits"].dtype == torch.float32
        ab_full = larsson.decode(full, "expectation")
        ab_half = larsson.decode(half, "expectation")
    assert (ab_full - ab_half).abs().max() < 2.0


def test_prepared_features_give_the_same_colors(tiny_hint_model_path):
    """A Prepared photo's features come from the runtime's own network, so rerunning the head on
    them gives exactly what a full forward gives, in either precision."""
    import numpy as np

    from tinct import Colorizer

    photo = np.random.default_rng(0).random((40, 56, 3)).astype(np.float32)
    for precision in ("float32", "bfloat16"):
        c = Colorizer(tiny_hint_model_path, render_size=64, precision=precision)
        prepared = c.prepare(photo)
        assert prepared.features is not None
        assert np.array_equal(c.colorize(photo).rgb, c.colorize(prepared).rgb)


def test_a_model_loaded_under_inference_mode_runs(tiny_model_path):
    """Inference tensors have no version counter: the runtime still makes and keeps its copy."""
    import numpy as np

    from tinct import Colorizer
    from tinct.weights import load_weights

    with torch.inference_mode():
        model = load_weights(tiny_model_path)
        c = Colorizer(model, render_size=64)
        out = c.colorize_array(np.random.default_rng(0).random((30, 40, 3)).astype(np.float32))
    assert out.shape == (30, 40, 3)


def test_the_fused_operator_check_does_not_depend_on_autocast():
    """Asked first under bfloat16 autocast (as a runtime's first forward used to), the check gives
    the same answer as outside it, and a bfloat16 runtime's copy is fused when the check says so."""
    from tinct.folding import fused_conv_relu6_available

    fused_conv_relu6_available.cache_clear()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = fused_conv_relu6_available()
    fused_conv_relu6_available.cache_clear()
    assert fused_conv_relu6_available() == inside
    model = build_model("larsson", space="lab-joint", backbone="efficientnet_lite0", pretrained=False, hidden=16).eval()
    runtime = TorchRuntime(model, "bfloat16")
    with torch.inference_mode():
        runtime.forward(torch.rand(1, 1, 64, 64) * 100)
    assert any(getattr(m, "fused_relu6", False) for m in runtime.network(torch.device("cpu")).modules()) == inside
