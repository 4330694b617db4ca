"""ONNX export and an onnxruntime backend for any tinct ``ColorModel``.

* ``export_onnx(model, path)`` writes the network's forward, ``L (B,1,H,W) -> prediction``
  (one output per key of the dict ``model(L)`` returns, e.g. ``logits`` (B,K,H/4,W/4)), with
  dynamic batch, height and width, then checks the file with onnxruntime against PyTorch at a
  size and batch other than the traced ones. The graph is exact for heights and widths that
  are multiples of ``model.pad_multiple`` (32), which is what ``ColorModel.predict_ab``
  always feeds it (it pads); other sizes are refused by ``OnnxColorModel``.
* ``OnnxColorModel(onnx_path, torch_model)`` is a ``ColorModel`` whose ``forward`` runs
  onnxruntime (CPU) and whose decoding, confidence and description come from the PyTorch model
  (decoding stays in PyTorch, where the bin centers and priors live), so the pipeline, the
  evaluator and the web page accept it unchanged.
* ``load_backend(model, "torch" | "onnx")`` returns the model to use for ``--backend``; for
  onnx it exports once and caches the file under ``$XDG_CACHE_HOME/tinct/onnx`` (default
  ``~/.cache/tinct/onnx``), keyed by a hash of the weights (and of the exporter and model code).
* ``add_parser(subparsers)`` adds ``tinct export --model NAME_OR_PATH --out model.onnx``.

Exporting uses PyTorch's TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``),
which needs only the ``onnx`` package; running needs ``onnxruntime``.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import secrets
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .atomic import atomic_path
from .cache import cache_dir
from .defaults import DEFAULT_OPSET, MIN_OPSET
from .models.base import ColorModel, Prediction

__all__ = [
    "DEFAULT_OPSET",
    "BACKENDS",
    "OnnxColorModel",
    "export_onnx",
    "load_backend",
    "onnx_cache_dir",
    "check_opset",
]

log = logging.getLogger("tinct.export")

BACKENDS = ("auto", "torch", "onnx")
INPUT_NAME = "L"
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
        raise ValueError(f"opset must be an integer from {MIN_OPSET} to {hi}, got {opset!r}")
    return opset


def _require(module: str, package: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise RuntimeError(f"the ONNX backend needs {package}: pip install {package}") from exc


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


def _session(path: str | Path, threads: int | None = None) -> Any:
    """An onnxruntime CPU session tuned for a few cores: one op at a time, all cores per op."""
    ort = _require("onnxruntime", "onnxruntime")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = max(1, threads or torch.get_num_threads())
    opts.inter_op_num_threads = 1
    # Idle worker threads sleep instead of spinning: the pipeline does other work (decode,
    # colour conversion, video encoding) between network calls on the same few cores.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # Denormal floats are flushed to zero: they change nothing visible and can be 10x slower.
    opts.add_session_config_entry("session.set_denormal_as_zero", "1")
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise ValueError(f"{path}: not a loadable ONNX model ({' '.join(str(exc).split())[:200]})") from exc


def _compare(session: Any, model: ColorModel, keys: Sequence[str], L: torch.Tensor) -> dict[str, float]:
    """Max |onnx - torch| per output on ``L``, relative to max(1, max |torch|)."""
    with torch.no_grad():
        ref = model(L)
    outs = session.run(list(keys), {INPUT_NAME: L.cpu().numpy()})
    errors = {}
    for k, o in zip(keys, outs):
        r = ref[k].float().cpu().numpy()
        if o.shape != r.shape:
            raise RuntimeError(f"exported output {k!r} has shape {o.shape} for input {tuple(L.shape)}, "
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
    onnx = _require("onnx", "onnx")
    check_opset(opset)
    path = Path(path)
    if not isinstance(model, ColorModel):
        raise TypeError(f"export_onnx needs a ColorModel, got {type(model).__name__}")
    if isinstance(model, OnnxColorModel):
        raise ValueError("this model already runs from an ONNX file; export its torch_model instead")
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
                raise RuntimeError(f"could not export model {model.arch!r} to ONNX: {first}") from exc
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
                errors = _compare(_session(tmp), model, keys, check_L)
                bad = {k: e for k, e in errors.items() if not e <= VERIFY_RTOL}
                if bad:
                    raise RuntimeError(f"the exported ONNX graph differs from PyTorch at {tuple(check_L.shape)}: "
                                       + ", ".join(f"{k} relative error {e:.2g}" for k, e in bad.items()))
                log.info("exported %s to %s; max relative error %s", model.arch, path, errors)
    finally:
        model.train(was_training)
    return path


# ----------------------------------------------------------------------------- runtime
class OnnxColorModel(ColorModel):
    """A ColorModel whose network runs in onnxruntime; everything else is ``torch_model``'s.

    Args:
        onnx_path: a file written by ``export_onnx`` from ``torch_model`` (same weights).
        torch_model: the PyTorch model: decoding (``decode``, ``confidence``), the decode
            methods, ``pad_multiple``, ``arch``, ``config`` and ``metadata`` come from it.
        threads: onnxruntime intra-op threads (default: ``torch.get_num_threads()``).

    ``forward(L)`` takes L (B,1,H,W) in [0,100] with H and W multiples of ``pad_multiple``
    (``predict_ab`` pads to that) and returns the same dict of tensors as ``torch_model(L)``.
    Models with extra forward inputs (``forward_options``, e.g. a style image) cannot use them
    through ONNX: ``forward_options`` is empty. Inference only (no ``loss``).
    """

    forward_options: tuple[str, ...] = ()

    def __init__(self, onnx_path: str | Path, torch_model: ColorModel, threads: int | None = None):
        nn.Module.__init__(self)  # not ColorModel.__init__: ``config`` is the torch model's
        if not isinstance(torch_model, ColorModel) or isinstance(torch_model, OnnxColorModel):
            raise TypeError("torch_model must be a PyTorch ColorModel")
        self.onnx_path = Path(onnx_path)
        if not self.onnx_path.is_file():
            raise FileNotFoundError(f"ONNX file not found: {self.onnx_path}")
        self.torch_model = torch_model.eval()
        self.session = _session(self.onnx_path, threads)
        inputs = [i.name for i in self.session.get_inputs()]
        if inputs != [INPUT_NAME]:
            raise ValueError(f"{self.onnx_path}: expected one input named {INPUT_NAME!r}, found {inputs}")
        self.output_names = [o.name for o in self.session.get_outputs()]
        props = self.session.get_modelmeta().custom_metadata_map
        arch = props.get("tinct.arch")
        if arch is not None and arch != torch_model.arch:
            raise ValueError(f"{self.onnx_path} was exported from a {arch!r} model, not {torch_model.arch!r}")

    # -- delegated description ------------------------------------------------------------
    @property
    def arch(self) -> str:  # type: ignore[override]
        return self.torch_model.arch

    @property
    def config(self) -> dict[str, Any]:  # type: ignore[override]
        return self.torch_model.config

    @property
    def metadata(self) -> dict[str, Any]:
        return self.torch_model.metadata

    @property
    def decode_methods(self) -> tuple[str, ...]:  # type: ignore[override]
        return self.torch_model.decode_methods

    @property
    def default_decode(self) -> str:  # type: ignore[override]
        return self.torch_model.default_decode

    @property
    def pad_multiple(self) -> int:  # type: ignore[override]
        return self.torch_model.pad_multiple

    @property
    def color_space(self) -> str:  # type: ignore[override]
        return self.torch_model.color_space

    @property
    def head_kind(self) -> str:  # type: ignore[override]
        return self.torch_model.head_kind

    @property
    def needs_labels(self) -> bool:  # type: ignore[override]
        return self.torch_model.needs_labels

    # -- network ---------------------------------------------------------------------------
    def forward(self, L: torch.Tensor) -> Prediction:
        """L (B,1,H,W) in [0,100], H and W multiples of ``pad_multiple`` -> the torch model's dict."""
        if L.dim() != 4 or L.shape[1] != 1:
            raise ValueError(f"L must be shaped (B,1,H,W), got {tuple(L.shape)}")
        m = self.pad_multiple
        H, W = L.shape[-2:]
        if H % m or W % m:
            raise ValueError(f"the ONNX model takes heights and widths that are multiples of {m}, got {H}x{W}; "
                             "use predict_ab, which pads")
        x = L.detach().to("cpu", torch.float32).contiguous().numpy()
        outs = self.session.run(self.output_names, {INPUT_NAME: x})
        return {k: torch.from_numpy(o).to(L.device) for k, o in zip(self.output_names, outs)}

    def decode(self, pred: Prediction, method: str | None = None, **options: Any) -> torch.Tensor:
        """Delegated to the torch model: pred -> ab (B,2,h,w)."""
        return self.torch_model.decode(pred, method, **options)

    def confidence(self, pred: Prediction) -> torch.Tensor | None:
        """Delegated to the torch model: pred -> (B,1,h,w) in [0,1] or None."""
        return self.torch_model.confidence(pred)

    def loss(self, pred: Prediction, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        raise RuntimeError("an ONNX model is for inference only; train the PyTorch model")

    def extra_repr(self) -> str:
        return f"onnx_path={str(self.onnx_path)!r}"


# ----------------------------------------------------------------------------- cache
def onnx_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/tinct/onnx`` (an absolute XDG_CACHE_HOME only), else ``~/.cache/tinct/onnx``."""
    return cache_dir("onnx")


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _hash_state(model: ColorModel) -> str:
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        t = v.detach().cpu().contiguous()
        h.update(k.encode())
        h.update(str((t.dtype, tuple(t.shape))).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _cache_key(model: ColorModel, weights_hash: str, opset: int) -> str:
    """Weights + architecture/config + the code that defines the graph + exporter versions."""
    from . import __version__

    h = hashlib.sha256()
    h.update(weights_hash.encode())
    h.update(json.dumps([model.arch, model.config, opset, __version__, torch.__version__, model.pad_multiple],
                        sort_keys=True, default=str).encode())
    sources = set()
    for mod in model.modules():
        try:
            sources.add(inspect.getsourcefile(type(mod)) or "")
        except TypeError:  # built-in classes
            continue
    for src in sorted(s for s in sources if s and os.path.isfile(s)):
        h.update(Path(src).read_bytes())
    return h.hexdigest()[:24]


def _auto_backend(model: ColorModel | str | Path, opset: int, cache_dir: str | Path | None,
                  threads: int | None) -> ColorModel:
    """onnxruntime when it is installed and the model exports (it is faster on CPUs), else PyTorch.

    Models with extra forward inputs (a style image) stay on PyTorch, which can feed them.
    """
    import importlib.util

    torch_model = load_backend(model, "torch")
    if torch_model.forward_options or any(importlib.util.find_spec(m) is None for m in ("onnx", "onnxruntime")):
        return torch_model
    try:
        return load_backend(torch_model, "onnx", opset, cache_dir, threads)
    except (ValueError, RuntimeError, OSError) as exc:
        log.warning("ONNX export failed (%s); using PyTorch", exc)
        return torch_model


def load_backend(model: ColorModel | str | Path, backend: str, opset: int = DEFAULT_OPSET,
                 cache_dir: str | Path | None = None, threads: int | None = None) -> ColorModel:
    """The ColorModel to run for ``--backend torch|onnx``.

    ``model`` is a ColorModel or a shipped name / weights path (loaded with ``load_weights``).
    ``"torch"`` returns the PyTorch model. ``"onnx"`` returns an ``OnnxColorModel``, exporting
    the network once (a few seconds) and caching it as ``<cache_dir>/<arch>-<key>.onnx``
    (default ``onnx_cache_dir()``) where the key hashes the weights file (or, for a model in
    memory, its tensors) together with the config, opset and versions; a cached file that
    fails to load is re-exported. When the cache cannot be written, the export goes to a
    temporary folder that is removed once loaded.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    if backend == "auto":
        return _auto_backend(model, opset, cache_dir, threads)
    check_opset(opset)
    if isinstance(model, OnnxColorModel):
        return model if backend == "onnx" else model.torch_model
    weights_hash = None
    if not isinstance(model, ColorModel):
        from .weights import load_weights, resolve

        path = resolve(model)
        torch_model = load_weights(path)
        weights_hash = _hash_file(path) if backend == "onnx" else None
    else:
        torch_model = model
    torch_model.eval()
    if backend == "torch":
        return torch_model
    _require("onnxruntime", "onnxruntime")
    _require("onnx", "onnx")
    key = _cache_key(torch_model, weights_hash or _hash_state(torch_model), opset)
    name = f"{torch_model.arch}-{key}.onnx"
    folder = Path(cache_dir) if cache_dir is not None else onnx_cache_dir()
    target = folder / name
    if target.is_file():
        try:
            return OnnxColorModel(target, torch_model, threads)
        except (ValueError, RuntimeError) as exc:
            log.warning("re-exporting the cached ONNX model %s: %s", target, exc)
    from .pipeline import model_name

    # The first run's export takes as long as a few photos: say why, on the CLI's notice channel.
    logging.getLogger("tinct.notice").info("preparing the fast CPU runtime for %s, once", model_name(model))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        export_onnx(torch_model, target, opset=opset)
        return OnnxColorModel(target, torch_model, threads)
    except OSError as exc:  # read-only or full cache folder, permissions...
        log.warning("cannot write the ONNX cache %s (%s); exporting to a temporary folder", folder, exc)
    tmp_dir = tempfile.mkdtemp(prefix="tinct-onnx-")
    try:
        return OnnxColorModel(export_onnx(torch_model, Path(tmp_dir) / name, opset=opset), torch_model, threads)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)  # the session holds the graph in memory


# ----------------------------------------------------------------------------- CLI
