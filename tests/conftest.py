"""Shared fixtures: small generated photos and a tiny randomly initialised model file.

Tests never read ../shared/data; every image is made here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image


def make_photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth, colorful uint8 RGB image (H,W,3): gradients plus a few blobs."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([x / max(w - 1, 1), y / max(h - 1, 1), 0.5 + 0.5 * np.sin(x / 7 + y / 11)], axis=-1)
    for _ in range(3):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(3, max(h, w) / 3 + 4)
        img[(y - cy) ** 2 + (x - cx) ** 2 < r * r] = rng.uniform(0, 1, 3)
    return (img * 255).astype(np.uint8)


def assert_onnx_matches_pytorch(model, path: Path, L: torch.Tensor, atol: float = 0.2) -> None:
    """Export ``model`` to ``path`` (export_onnx itself checks another size) and compare predict_ab on L (B,1,H,W)."""
    pytest.importorskip("onnxruntime")
    from tinct.export import export_onnx
    from tinct.runtime import OnnxRuntime

    onnx = OnnxRuntime(export_onnx(model, path), model, threads=1)
    assert torch.allclose(model.predict_ab(L, network=onnx.forward), model.predict_ab(L), atol=atol)


def fit(model, batch: dict, steps: int, lr: float) -> tuple[float, float, dict]:
    """Adam on one fixed batch through the model contract -> (first loss, last loss, last logs)."""
    opt = torch.optim.Adam(model.trainable_parameters(), lr=lr)
    first = None
    for _ in range(steps):
        loss, logs = model.loss(model(batch["L"]), batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
    return first, loss.item(), logs


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """ONNX exports made by tests (``--backend auto``) go to a temporary cache, not ~/.cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> Path:
    """A hypercolumns model with random weights (no ImageNet file needed), saved as safetensors."""
    from tinct.models import build_model
    from tinct.weights import save_weights

    torch.manual_seed(0)
    model = build_model("hypercolumns", pretrained=False, hidden=16)
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    save_weights(model, path, {"name": "tiny", "steps": 0})
    return path


@pytest.fixture(scope="session")
def tiny_hint_model_path(tmp_path_factory) -> Path:
    """A color-hint model (larsson-hints) with random weights, saved as safetensors. The hint
    branch's last layer, zero in a new model (hints change nothing), is random here and the
    head's last layer scaled up, so that hints visibly change the colors."""
    from tinct.models import build_model
    from tinct.weights import save_weights

    torch.manual_seed(0)
    model = build_model("larsson-hints", space="lab-joint", backbone="efficientnet_lite0", pretrained=False,
                        hidden=32, key_width=8)
    with torch.no_grad():
        torch.nn.init.normal_(model.hint_attention.value[-1].weight, std=1.0)
        model.head[-1].weight.mul_(30)
    path = tmp_path_factory.mktemp("weights") / "tiny-hints.safetensors"
    save_weights(model, path, {"name": "tiny-hints", "steps": 0})
    return path


@pytest.fixture()
def photo_dir(tmp_path) -> Path:
    """A folder of three small gray JPEG/PNG photos, one in a sub-folder."""
    d = tmp_path / "photos"
    (d / "sub").mkdir(parents=True)
    Image.fromarray(make_photo(40, 60, 1)).convert("L").save(d / "a.jpg")
    Image.fromarray(make_photo(33, 47, 2)).save(d / "b.png")
    Image.fromarray(make_photo(50, 30, 3)).convert("L").save(d / "sub" / "c.jpg")
    return d
