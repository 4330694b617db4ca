"""ONNX export and the onnxruntime backend: same numbers as PyTorch, same images, CLI, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_photo

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from tinct import Colorizer  # noqa: E402
from tinct.export import (  # noqa: E402
    OnnxColorModel,
    export_onnx,
    load_backend,
    onnx_cache_dir,
)
from tinct.weights import load_weights  # noqa: E402

# Exported logits may differ from PyTorch's by float32 rounding only (measured: ~1e-5 absolute
# on logits of magnitude ~5, i.e. ~2e-6 relative). Tolerances, stated once:
LOGIT_RTOL = 1e-4   # max |onnx - torch| / max(1, max |torch|)
AB_ATOL = 0.05      # Lab units, after decoding (ab spans about -110..110)
RGB_ATOL = 2e-3     # final sRGB image in [0, 1], for 99.9% of pixels: the gamut fitting's bisection can
                    # round a rare saturated pixel the other way (measured: 2 pixels in 135k, <= 6/255)


def _L(batch: int, h: int, w: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    photo = torch.from_numpy(make_photo(h, w, seed)).float().mean(-1) / 255 * 100
    return (photo[None, None].repeat(batch, 1, 1, 1) + torch.randn(batch, 1, h, w, generator=g)).clamp(0, 100)


def _rel_err(session, model, L: torch.Tensor) -> float:
    with torch.no_grad():
        ref = model(L)["logits"].numpy()
    out = session.run(["logits"], {"L": L.numpy()})[0]
    assert out.shape == ref.shape
    return float(np.abs(out - ref).max() / max(1.0, np.abs(ref).max()))


@pytest.fixture(scope="module")
def xdg_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("xdg")


@pytest.fixture(scope="module")
def tiny_onnx(tiny_model_path, xdg_home) -> OnnxColorModel:
    """The tiny model through ``load_backend`` (exported once into an XDG-style cache)."""
    model = load_backend(str(tiny_model_path), "onnx", cache_dir=xdg_home / "tinct" / "onnx")
    assert isinstance(model, OnnxColorModel)
    return model


@pytest.fixture(scope="module")
def tiny(tiny_onnx):
    return tiny_onnx.torch_model


def test_export_matches_pytorch_at_two_sizes_with_dynamic_batch(tiny, tiny_onnx):
    import onnx

    proto = onnx.load(str(tiny_onnx.onnx_path))
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 1, "height", "width"]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["tinct.arch"] == "hypercolumns" and meta["tinct.outputs"] == '["logits"]'
    session = tiny_onnx.session
    assert _rel_err(session, tiny, _L(1, 256, 320, 1)) < LOGIT_RTOL
    assert _rel_err(session, tiny, _L(1, 384, 288, 2)) < LOGIT_RTOL
    assert _rel_err(session, tiny, _L(3, 64, 96, 3)) < LOGIT_RTOL  # dynamic batch


def test_onnx_model_delegates_and_predicts_odd_sizes_through_padding(tiny, tiny_onnx):
    for attr in ("arch", "config", "metadata", "decode_methods", "default_decode", "pad_multiple"):
        assert getattr(tiny_onnx, attr) == getattr(tiny, attr)
    L = _L(1, 45, 77, 3)  # predict_ab pads to 64x96
    a = tiny.predict_ab(L)
    b = tiny_onnx.predict_ab(L)
    assert b.shape == (1, 2, 45, 77)
    assert (a - b).abs().max() < AB_ATOL
    pred = tiny_onnx(torch.zeros(1, 1, 64, 64))
    assert set(pred) == {"logits"} and pred["logits"].shape == (1, 484, 16, 16)
    assert tiny_onnx.confidence(pred).shape == (1, 1, 16, 16)


def test_colorizer_with_onnx_gives_the_same_image(tiny, tiny_onnx):
    photo = make_photo(70, 101, 5)
    a = Colorizer(tiny, render_size=96).colorize_array(photo.astype(np.float32) / 255)
    b = Colorizer(tiny_onnx, render_size=96).colorize_array(photo.astype(np.float32) / 255)
    assert a.shape == b.shape == (70, 101, 3)
    diff = np.abs(a - b)
    assert np.quantile(diff, 0.999) < RGB_ATOL and diff.mean() < 1e-4
    conf = Colorizer(tiny_onnx, render_size=96).colorize(photo, confidence=True).confidence
    assert conf is not None and conf.shape == (70, 101)


def test_load_backend_caches_by_weights_and_respects_xdg(tiny_model_path, tiny_onnx, xdg_home, monkeypatch):
    import tinct.export as tex

    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert onnx_cache_dir() == Path.home() / ".cache" / "tinct" / "onnx"
    monkeypatch.setenv("XDG_CACHE_HOME", str(xdg_home))
    assert onnx_cache_dir() == xdg_home / "tinct" / "onnx"
    files = list(onnx_cache_dir().glob("*.onnx"))
    assert files == [tiny_onnx.onnx_path] and files[0].name.startswith("hypercolumns-")
    stamp = files[0].stat().st_mtime_ns
    assert load_backend(str(tiny_model_path), "torch").arch == "hypercolumns"
    def no_export(*args, **kwargs):
        raise AssertionError("a cache hit must not export again")

    with monkeypatch.context() as m:
        m.setattr(tex, "export_onnx", no_export)
        again = load_backend(tiny_model_path, "onnx")  # same weights file: a cache hit, no export
    assert again.onnx_path == files[0] and files[0].stat().st_mtime_ns == stamp
    assert load_backend(again, "onnx") is again and load_backend(again, "torch") is again.torch_model

    # A broken cache entry is exported again (the export is faked: the real one is tested above).
    good = files[0].read_bytes()
    calls = []

    def fake_export(model, path, opset=17, verify=True):
        calls.append(path)
        Path(path).write_bytes(good)
        return Path(path)

    files[0].write_bytes(b"corrupt")
    monkeypatch.setattr(tex, "export_onnx", fake_export)
    fixed = load_backend(tiny_model_path, "onnx")
    assert calls == [files[0]] and fixed.onnx_path == files[0] and files[0].read_bytes() == good
    # An unwritable cache falls back to a temporary folder, removed once loaded.
    monkeypatch.setenv("XDG_CACHE_HOME", "/proc/tinct-cannot-write-here")
    other = load_backend(load_weights(tiny_model_path), "onnx")
    assert isinstance(other, OnnxColorModel) and not other.onnx_path.exists()


def _cli(argv: list[str]) -> int:
    """``tinct export ...`` through the real parser; errors raise (``main`` would print them)."""
    from tinct.cli import build_parser

    args = build_parser().parse_args(argv)
    return args.func(args)


def test_export_cli_on_a_pretrained_backbone_matches_pytorch_at_two_sizes(tmp_path, capsys):
    """The real EfficientNet-Lite0 ImageNet backbone (random head), saved, exported by the CLI."""
    from tinct.models import build_model
    from tinct.weights import save_weights

    torch.manual_seed(0)
    weights = save_weights(build_model("hypercolumns"), tmp_path / "hc.safetensors")
    model = load_weights(weights)
    out = tmp_path / "sub" / "model.onnx"
    assert _cli(["export", "--model", str(weights), "--out", str(out), "--opset", "17"]) == 0
    assert "logits (1, 484, 16, 24)" in capsys.readouterr().out
    assert not list(out.parent.glob(".*tmp"))  # the atomic write left no temporary file
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert _rel_err(session, model, _L(1, 256, 320, 6)) < LOGIT_RTOL
    assert _rel_err(session, model, _L(1, 384, 288, 7)) < LOGIT_RTOL

    with pytest.raises(ValueError, match="exists; pass --overwrite"):
        _cli(["export", "--model", str(weights), "--out", str(out)])
    with pytest.raises(ValueError, match=r"must end in \.onnx"):
        _cli(["export", "--model", str(weights), "--out", str(tmp_path / "m.txt")])
    with pytest.raises(ValueError, match="opset must be an integer from 11"):
        _cli(["export", "--model", str(weights), "--out", str(tmp_path / "x.onnx"), "--opset", "5"])
    with pytest.raises(ValueError, match="unknown model"):
        _cli(["export", "--model", "no-such-model", "--out", str(tmp_path / "y.onnx")])
    with pytest.raises(FileNotFoundError):
        _cli(["export", "--model", str(tmp_path / "missing.safetensors"), "--out", str(tmp_path / "z.onnx")])


def test_bad_inputs(tiny, tiny_onnx, tmp_path):
    with pytest.raises(ValueError, match="multiples of 32"):
        tiny_onnx(torch.zeros(1, 1, 50, 64))
    with pytest.raises(ValueError, match=r"\(B,1,H,W\)"):
        tiny_onnx(torch.zeros(1, 3, 64, 64))
    with pytest.raises(ValueError, match="backend must be one of auto, torch, onnx"):
        load_backend(tiny, "tensorrt")
    with pytest.raises(ValueError, match="opset"):
        export_onnx(tiny, tmp_path / "m.onnx", opset=99)
    with pytest.raises(FileNotFoundError):
        OnnxColorModel(tmp_path / "missing.onnx", tiny)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a loadable ONNX model"):
        OnnxColorModel(junk, tiny)
    with pytest.raises(RuntimeError, match="inference only"):
        tiny_onnx.loss({}, {})
    with pytest.raises(ValueError, match="already runs from an ONNX file"):
        export_onnx(tiny_onnx, tmp_path / "again.onnx")
