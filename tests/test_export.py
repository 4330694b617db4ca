"""ONNX export: the graph gives PyTorch's numbers at other sizes and batches; the CLI; errors.
(Running exported graphs is tests/test_runtime.py.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import make_photo

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from tinct.export import export_onnx  # noqa: E402
from tinct.runtime import onnx_session  # noqa: E402
from tinct.weights import load_weights  # noqa: E402

# Exported logits may differ from PyTorch's by float32 rounding only (measured: ~1e-5 absolute
# on logits of magnitude ~5, i.e. ~2e-6 relative). Tolerances, stated once:
LOGIT_RTOL = 1e-4   # max |onnx - torch| / max(1, max |torch|)


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


def test_export_matches_pytorch_at_two_sizes_with_dynamic_batch(tiny_model_path, tmp_path):
    import onnx

    tiny = load_weights(tiny_model_path)
    path = export_onnx(tiny, tmp_path / "tiny.onnx")
    proto = onnx.load(str(path))
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 1, "height", "width"]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["tinct.arch"] == "hypercolumns" and meta["tinct.outputs"] == '["logits"]'
    session = onnx_session(path, threads=1)
    assert _rel_err(session, tiny, _L(1, 256, 320, 1)) < LOGIT_RTOL
    assert _rel_err(session, tiny, _L(1, 384, 288, 2)) < LOGIT_RTOL
    assert _rel_err(session, tiny, _L(3, 64, 96, 3)) < LOGIT_RTOL  # dynamic batch


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


def test_bad_export_arguments(tiny_model_path, tmp_path):
    with pytest.raises(ValueError, match="opset"):
        export_onnx(load_weights(tiny_model_path), tmp_path / "m.onnx", opset=99)
