"""ONNX export of any tinct ``ColorModel`` (running the graph is ``tinct.runtime``'s job).

* ``export_onnx(model, path)`` writes the network's forward, ``L (B,1,H,W) -> prediction``
  (one output per key of the dict ``model(L)`` returns, e.g. ``logits`` (B,K,H/4,W/4)), with
  dynamic batch, height and width, then checks the file with onnxruntime against PyTorch at a
  size and batch other than the traced ones. The graph is exact for heights and widths that
  are multiples of ``model.pad_multiple`` (32), which is what ``ColorModel.pad_input``
  always gives it; other sizes are refused by ``tinct.runtime.OnnxRuntime``.
* ``tinct export --model NAME_OR_PATH --out model.onnx`` (``tinct.cli``) calls it.

Exporting uses PyTorch's TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``),
which needs only the ``onnx`` package; running needs ``onnxruntime``.
"""

from __future__ import annotations

import json
import logging
import secrets
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .atomic import atomic_path
from .defaults import DEFAULT_OPSET, MIN_OPSET
from .errors import SetupError, UsageError
from .models.base import ColorModel
from .runtime import INPUT_NAME, onnx_session, require_module

__all__ = ["DEFAULT_OPSET", "export_onnx", "check_opset"]

log = logging.getLogger("tinct.export")

VERIFY_RTOL = 1e-3  # export check: max |onnx - torch| <= VERIFY_RTOL * max(1, max |torch|), per output


def _max_opset() -> int:
    try:
        from torch.onnx import _constants

        return int(getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", 20))
    except ImportError:  # pragma: no cover - depends on the torch version
        return 20


def check_opset(opset: int) -> int:
    hi = _max_opset()
    if not isinstance(opset, int) or isinstance(opset, bool) or not MIN_OPSET <= opset <= hi:
        raise UsageError(f"opset must be an integer from {MIN_OPSET} to {hi}, got {opset!r}")
    return opset


class _Forward(nn.Module):
    """``model(L)`` with the prediction dict flattened to a tuple in a fixed key order."""

    def __init__(self, model: ColorModel, keys: Sequence[str]):
        super().__init__()
        self.model = model
        self.keys = tuple(keys)

    def forward(self, L: torch.Tensor) -> tuple[torch.Tensor, ...]:
        pred = self.model(L)
        return tuple(pred[k] for k in self.keys)


def _example(batch: int, h: int, w: int, seed: int) -> torch.Tensor:
    """A smooth, textured L (batch,1,h,w) in [0,100]: realistic activations for tracing and checks."""
    g = torch.Generator().manual_seed(seed)
    y = torch.linspace(0, 1, h).view(1, 1, h, 1)
    x = torch.linspace(0, 1, w).view(1, 1, 1, w)
    phase = torch.rand(batch, 1, 1, 1, generator=g) * 6.0
    base = 50 + 30 * torch.sin(7 * x + 5 * y + phase) * torch.cos(3 * x - 4 * y)
    return (base + 8 * torch.randn(batch, 1, h, w, generator=g)).clamp(0, 100)


def _compare(session: Any, model: ColorModel, keys: Sequence[str], L: torch.Tensor) -> dict[str, float]:
    """Max |onnx - torch| per output on ``L``, relative to max(1, max |torch|)."""
    with torch.no_grad():
        ref = model(L)
    outs = session.run(list(keys), {INPUT_NAME: L.cpu().numpy()})
    errors = {}
    for k, o in zip(keys, outs):
        r = ref[k].float().cpu().numpy()
        if o.shape != r.shape:
            raise SetupError(f"exported output {k!r} has shape {o.shape} for input {tuple(L.shape)}, "
                               f"PyTorch gives {r.shape}")
        errors[k] = float(np.abs(o - r).max() / max(1.0, float(np.abs(r).max())))
    return errors


def _export_temp_name(dest: Path) -> str:
    """``.NAME.onnx.XXXXXXXX.tmp``, the name the README says an interrupted export can leave."""
    return f".{dest.name[:200]}.{secrets.token_hex(4)}.tmp"


def export_onnx(model: ColorModel, path: str | Path, opset: int = DEFAULT_OPSET, verify: bool = True) -> Path:
    """Write ``model``'s forward, L (B,1,H,W) in [0,100] -> prediction tensors, to ONNX at ``path``.

    Inputs: ``L`` float32 (B,1,H,W) with dynamic B, H, W (H, W multiples of
    ``model.pad_multiple``). Outputs: the keys of ``model(L)`` in order, e.g. ``logits``
    (B,K,H/4,W/4), with dynamic sizes. The file's metadata records the architecture, config,
    output names and pad multiple. With ``verify`` the written graph is run by onnxruntime at a
    batch size and a size other than the traced ones and compared with PyTorch (relative
    tolerance ``VERIFY_RTOL``); a mismatch raises RuntimeError. The write is atomic.
    """
    onnx = require_module("onnx", "onnx")
    check_opset(opset)
    path = Path(path)
    if not isinstance(model, ColorModel):
        raise TypeError(f"export_onnx needs a ColorModel, got {type(model).__name__}")
    m = int(model.pad_multiple) or 1
    was_training = model.training
    model.eval()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    trace_L = _example(1, 2 * m, 3 * m, seed=0).to(device)
    try:
        with atomic_path(path, _export_temp_name) as tmp_path:  # renamed over path once verified
            tmp = str(tmp_path)
            with torch.no_grad():
                pred = model(trace_L)
            if not isinstance(pred, dict) or not pred:
                raise TypeError(f"{model.arch}.forward must return a dict of tensors")
            keys = list(pred)
            dynamic: dict[str, dict[int, str]] = {INPUT_NAME: {0: "batch", 2: "height", 3: "width"}}
            for k, v in pred.items():
                dynamic[k] = {0: "batch", 2: f"{k}_height", 3: f"{k}_width"} if v.dim() == 4 else {0: "batch"}
            try:
                with warnings.catch_warnings(), torch.no_grad():
                    warnings.simplefilter("ignore")
                    # An eval-mode wrapper: the exporter restores its training flag, recursively.
                    torch.onnx.export(_Forward(model, keys).eval(), (trace_L,), tmp, input_names=[INPUT_NAME],
                                      output_names=keys, dynamic_axes=dynamic, opset_version=opset,
                                      do_constant_folding=True, dynamo=False)
            except Exception as exc:  # noqa: BLE001 - the exporter raises many types
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise SetupError(f"could not export model {model.arch!r} to ONNX: {first}") from exc
            proto = onnx.load(tmp)
            meta = {"tinct.arch": model.arch, "tinct.outputs": json.dumps(keys), "tinct.pad_multiple": str(m),
                    "tinct.config": json.dumps(model.config, default=str), "tinct.input": "L (B,1,H,W) in [0,100]"}
            del proto.metadata_props[:]
            for k, v in meta.items():
                proto.metadata_props.add(key=k, value=v)
            proto.producer_name = "tinct"
            onnx.checker.check_model(proto)
            onnx.save(proto, tmp)
            if verify:
                check_L = _example(2, 3 * m, 2 * m, seed=1).to(device)
                errors = _compare(onnx_session(tmp), model, keys, check_L)
                bad = {k: e for k, e in errors.items() if not e <= VERIFY_RTOL}
                if bad:
                    raise SetupError(f"the exported ONNX graph differs from PyTorch at {tuple(check_L.shape)}: "
                                       + ", ".join(f"{k} relative error {e:.2g}" for k, e in bad.items()))
                log.info("exported %s to %s; max relative error %s", model.arch, path, errors)
    finally:
        model.train(was_training)
    return path

