"""Where the network runs (tinct.runtime): onnxruntime gives PyTorch's images; the graph cache; errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_photo

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from tinct import Colorizer  # noqa: E402
from tinct.runtime import OnnxRuntime, TorchRuntime, load_runtime, onnx_cache_dir  # noqa: E402
from tinct.weights import load_weights  # noqa: E402

AB_ATOL = 0.05      # Lab units, after decoding (ab spans about -110..110)
RGB_ATOL = 2e-3     # final sRGB image in [0, 1], for 99.9% of pixels: the gamut fitting's bisection can
                    # round a rare saturated pixel the other way (measured: 2 pixels in 135k, <= 6/255)


def _L(batch: int, h: int, w: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    photo = torch.from_numpy(make_photo(h, w, seed)).float().mean(-1) / 255 * 100
    return (photo[None, None].repeat(batch, 1, 1, 1) + torch.randn(batch, 1, h, w, generator=g)).clamp(0, 100)


@pytest.fixture(scope="module")
def xdg_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("xdg")


@pytest.fixture(scope="module")
def tiny_onnx(tiny_model_path, xdg_home) -> OnnxRuntime:
    """The tiny model through ``load_runtime`` (exported once into an XDG-style cache)."""
    runtime = load_runtime(str(tiny_model_path), "onnx", cache_dir=xdg_home / "tinct" / "onnx")
    assert isinstance(runtime, OnnxRuntime)
    return runtime


@pytest.fixture(scope="module")
def tiny(tiny_onnx):
    return tiny_onnx.model


def test_onnx_runtime_predicts_odd_sizes_through_padding(tiny, tiny_onnx):
    L = _L(1, 45, 77, 3)  # predict_ab pads to 64x96
    a = tiny.predict_ab(L)
    b = tiny.predict_ab(L, network=tiny_onnx.forward)
    assert b.shape == (1, 2, 45, 77)
    assert (a - b).abs().max() < AB_ATOL
    pred = tiny_onnx.forward(torch.zeros(1, 1, 64, 64))
    assert set(pred) == {"logits"} and pred["logits"].shape == (1, 484, 16, 16)
    assert tiny.confidence(pred).shape == (1, 1, 16, 16)


def test_colorizer_with_onnx_gives_the_same_image(tiny, tiny_onnx):
    photo = make_photo(70, 101, 5)
    a = Colorizer(tiny, render_size=96).colorize_array(photo.astype(np.float32) / 255)
    b = Colorizer(tiny_onnx, render_size=96, backend="onnx").colorize_array(photo.astype(np.float32) / 255)
    assert a.shape == b.shape == (70, 101, 3)
    diff = np.abs(a - b)
    assert np.quantile(diff, 0.999) < RGB_ATOL and diff.mean() < 1e-4
    conf = Colorizer(tiny, render_size=96, backend="onnx").colorize(photo, confidence=True).confidence
    assert conf is not None and conf.shape == (70, 101)


def test_load_runtime_caches_by_weights_and_respects_xdg(tiny_model_path, tiny_onnx, xdg_home, monkeypatch):
    import tinct.export as tex

    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert onnx_cache_dir() == Path.home() / ".cache" / "tinct" / "onnx"
    monkeypatch.setenv("XDG_CACHE_HOME", str(xdg_home))
    assert onnx_cache_dir() == xdg_home / "tinct" / "onnx"
    files = list(onnx_cache_dir().glob("*.onnx"))
    assert files == [tiny_onnx.onnx_path] and files[0].name.startswith("hypercolumns-")
    stamp = files[0].stat().st_mtime_ns
    assert isinstance(load_runtime(str(tiny_model_path), "torch"), TorchRuntime)
    def no_export(*args, **kwargs):
        raise AssertionError("a cache hit must not export again")

    with monkeypatch.context() as m:
        m.setattr(tex, "export_onnx", no_export)
        again = load_runtime(tiny_model_path, "onnx")  # same weights file: a cache hit, no export
    assert again.onnx_path == files[0] and files[0].stat().st_mtime_ns == stamp
    assert load_runtime(again, "onnx") is again and load_runtime(again, "torch").model is again.model

    # A broken cache entry is exported again (the export is faked: the real one is tested above).
    good = files[0].read_bytes()
    calls = []

    def fake_export(model, path, opset=17, verify=True):
        calls.append(path)
        Path(path).write_bytes(good)
        return Path(path)

    files[0].write_bytes(b"corrupt")
    monkeypatch.setattr(tex, "export_onnx", fake_export)
    fixed = load_runtime(tiny_model_path, "onnx")
    assert calls == [files[0]] and fixed.onnx_path == files[0] and files[0].read_bytes() == good
    # An unwritable cache falls back to a temporary folder, removed once loaded.
    monkeypatch.setenv("XDG_CACHE_HOME", "/proc/tinct-cannot-write-here")
    other = load_runtime(load_weights(tiny_model_path), "onnx")
    assert isinstance(other, OnnxRuntime) and not other.onnx_path.exists()


def test_bad_inputs(tiny, tiny_onnx, tmp_path):
    with pytest.raises(ValueError, match="multiples of 32"):
        tiny_onnx.forward(torch.zeros(1, 1, 50, 64))
    with pytest.raises(ValueError, match=r"\(B,1,H,W\)"):
        tiny_onnx.forward(torch.zeros(1, 3, 64, 64))
    with pytest.raises(ValueError, match="takes L only"):
        tiny_onnx.forward(torch.zeros(1, 1, 64, 64), hints=None)
    with pytest.raises(ValueError, match="backend must be one of auto, torch, onnx"):
        load_runtime(tiny, "tensorrt")
    with pytest.raises(FileNotFoundError):
        OnnxRuntime(tmp_path / "missing.onnx", tiny)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a loadable ONNX model"):
        OnnxRuntime(junk, tiny)
    with pytest.raises(TypeError, match="needs a PyTorch ColorModel"):
        OnnxRuntime(tiny_onnx.onnx_path, tiny_onnx)


def test_auto_keeps_models_with_forward_options_on_torch():
    from tinct.models.base import build_model

    hints = build_model("larsson-hints", space="lab-joint", backbone="efficientnet_lite0", pretrained=False,
                        hidden=16, key_width=4)
    assert isinstance(load_runtime(hints, "auto"), TorchRuntime)
