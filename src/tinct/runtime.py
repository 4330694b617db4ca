"""Where the network runs: PyTorch or onnxruntime, behind one small interface.

A ``Runtime`` runs a ColorModel's network, ``forward(L, **forward_options) -> prediction``, on
L (B,1,H,W) in [0,100] already padded to ``model.pad_multiple``. Everything else (padding,
decoding, confidence, palettes, the description of the model) stays with ``runtime.model``,
the PyTorch ``ColorModel``, so a runtime is only "how the forward pass is computed":

* ``TorchRuntime(model, precision)``: the PyTorch module (an inference copy with its batch norms
  folded, ``tinct.folding``); takes every forward option the model declares (a style image, a
  hint map). ``precision="auto"`` runs the network in bfloat16
  (autocast) on CPUs that compute it natively (AMX or AVX512-BF16: about twice as fast, ab within
  about 1 Lab unit of float32) and in float32 elsewhere; outputs are always float32.
* ``OnnxRuntime(onnx_path, model)``: the graph ``tinct.export.export_onnx`` wrote, in
  onnxruntime on the CPU (usually faster there); L only, no forward options.

``load_runtime(model, "torch" | "onnx" | "auto")`` prepares one. For onnx it exports the network
once and caches the graph under ``$XDG_CACHE_HOME/tinct/onnx`` (default ``~/.cache/tinct/onnx``),
keyed by a hash of the weights, config, opset, versions and the model's source files; "auto"
picks onnx when onnxruntime is installed and the model takes no forward options, else torch.

A new runtime is one class here with ``name``, ``model``, ``forward_options`` and ``forward``,
and one branch in ``load_runtime``. ``tinct.pipeline.Colorizer`` is the only caller that
matters: every entry point goes through it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import importlib.util
import inspect
import json
import logging
import os
import shutil
import tempfile
import threading
import weakref
from pathlib import Path
from typing import Any

import torch

from .cache import cache_dir
from .defaults import DEFAULT_OPSET
from .errors import MissingFileError, SetupError, UsageError
from .models.base import ColorModel, Prediction

__all__ = ["Runtime", "TorchRuntime", "OnnxRuntime", "load_runtime", "onnx_session", "onnx_cache_dir",
           "require_module", "native_bfloat16", "BACKENDS", "PRECISIONS", "INPUT_NAME"]

log = logging.getLogger("tinct.runtime")

BACKENDS = ("auto", "torch", "onnx")
PRECISIONS = ("auto", "float32", "bfloat16")  # of the PyTorch network (TorchRuntime)
INPUT_NAME = "L"  # the one input of an exported graph


class Runtime:
    """Runs ``model``'s network. Subclasses set ``name`` and ``forward_options`` and implement ``forward``."""

    name = "?"
    forward_options: tuple[str, ...] = ()

    def __init__(self, model: ColorModel):
        if not isinstance(model, ColorModel):
            raise TypeError(f"a runtime needs a PyTorch ColorModel, got {type(model).__name__}")
        self.model = model.eval()

    def forward(self, L: torch.Tensor, **options: Any) -> Prediction:  # pragma: no cover - abstract
        """L (B,1,H,W) in [0,100], H and W multiples of ``model.pad_multiple`` -> ``model(L)``'s dict."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model.arch})"


class TorchRuntime(Runtime):
    """The PyTorch model (its inference copy, ``network``), in float32 or (on the CPU) bfloat16 autocast.

    Args:
        model: the ColorModel.
        precision: "float32", "bfloat16", or "auto": bfloat16 where ``native_bfloat16()``, else
            float32. bfloat16 applies on the CPU only; on another device the network runs in float32.
    """

    name = "torch"

    def __init__(self, model: ColorModel, precision: str = "auto"):
        super().__init__(model)
        if precision not in PRECISIONS:
            raise UsageError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
        self.forward_options = tuple(model.forward_options)
        self.precision = ("bfloat16" if native_bfloat16() else "float32") if precision == "auto" else precision

    def network(self, device: torch.device) -> torch.nn.Module:
        """What ``forward`` runs on ``device``: ``tinct.folding.inference_network`` of the model
        (norms folded, bfloat16 weights for bfloat16 on the CPU), made on first use and again
        whenever the model's weights change (their in-place version counters) or it moves; the
        model itself while it is in training mode. The copy is shared by every runtime of the
        same model object (the web page makes a Colorizer per request), and made once when
        several threads ask at the same time."""
        if self.model.training:
            return self.model
        dtype = torch.bfloat16 if self._bfloat16_on(device) else torch.float32
        tensors = [*self.model.parameters(), *self.model.buffers()]
        state = (tuple(t.device for t in tensors[:1]), sum(map(_version, tensors)), len(tensors))
        with _COPIES_LOCK:
            copies = _INFERENCE_COPIES.setdefault(self.model, {})
            made = copies.get((device, dtype))
            if made is None or made[0] != state:
                from .folding import inference_network

                made = copies[(device, dtype)] = (state, inference_network(self.model, dtype))
        return made[1]

    def forward(self, L: torch.Tensor, **options: Any) -> Prediction:
        network = self.network(L.device)  # made outside autocast
        with self._autocast(L.device):
            out = network(L, **options)
        return {k: v.float() if v.is_floating_point() else v for k, v in out.items()}

    def features(self, L: torch.Tensor) -> list[torch.Tensor]:
        """L (B,1,H,W), padded -> the backbone's levels as ``forward`` computes them (models that
        ``reuses_features``), for ``from_features``."""
        network = self.network(L.device)
        with self._autocast(L.device):
            return network.features(L)

    def from_features(self, features: list[torch.Tensor], size: tuple[int, int], **options: Any) -> Prediction:
        """``forward`` from the backbone levels ``features`` of a padded L of ``size`` (H, W)."""
        device = features[0].device
        network = self.network(device)
        with self._autocast(device):
            out = network.from_features(features, size, **options)
        return {k: v.float() if v.is_floating_point() else v for k, v in out.items()}

    def _bfloat16_on(self, device: torch.device) -> bool:
        return self.precision == "bfloat16" and device.type == "cpu"

    def _autocast(self, device: torch.device) -> Any:
        return torch.autocast("cpu", dtype=torch.bfloat16) if self._bfloat16_on(device) else contextlib.nullcontext()

    def __repr__(self) -> str:
        return f"TorchRuntime({self.model.arch}, {self.precision})"


# model -> {(device, dtype): (the model's state when copied, its inference copy)}; an entry goes
# with its model.
_INFERENCE_COPIES: weakref.WeakKeyDictionary[ColorModel, dict[tuple, tuple[tuple, torch.nn.Module]]] = \
    weakref.WeakKeyDictionary()
_COPIES_LOCK = threading.Lock()


def _version(tensor: torch.Tensor) -> int:
    """A tensor's in-place modification counter; 0 for an inference tensor (made under
    ``torch.inference_mode``), which has none and cannot be modified outside it."""
    try:
        return tensor._version
    except RuntimeError:
        return 0


@functools.cache
def native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively (Intel AMX or AVX512-BF16, as Linux reports
    them in /proc/cpuinfo): there bfloat16 convolutions take about half the time of float32 ones;
    elsewhere they are emulated and slower, so ``precision="auto"`` stays in float32."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace").split()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


class OnnxRuntime(Runtime):
    """An exported graph (``tinct.export.export_onnx`` of ``model``, same weights) in onnxruntime.

    Args:
        onnx_path: the graph file.
        model: the PyTorch model it was exported from (checked by architecture).
        threads: onnxruntime intra-op threads (default: ``torch.get_num_threads()``).
    """

    name = "onnx"

    def __init__(self, onnx_path: str | Path, model: ColorModel, threads: int | None = None):
        super().__init__(model)
        self.onnx_path = Path(onnx_path)
        if not self.onnx_path.is_file():
            raise MissingFileError(f"ONNX file not found: {self.onnx_path}")
        self.session = onnx_session(self.onnx_path, threads)
        inputs = [i.name for i in self.session.get_inputs()]
        if inputs != [INPUT_NAME]:
            raise UsageError(f"{self.onnx_path}: expected one input named {INPUT_NAME!r}, found {inputs}")
        self.output_names = [o.name for o in self.session.get_outputs()]
        arch = self.session.get_modelmeta().custom_metadata_map.get("tinct.arch")
        if arch is not None and arch != model.arch:
            raise UsageError(f"{self.onnx_path} was exported from a {arch!r} model, not {model.arch!r}")

    def forward(self, L: torch.Tensor, **options: Any) -> Prediction:
        if options:
            raise UsageError(f"the onnx runtime takes L only, not {', '.join(options)}; use the torch backend")
        if L.dim() != 4 or L.shape[1] != 1:
            raise UsageError(f"L must be shaped (B,1,H,W), got {tuple(L.shape)}")
        m = self.model.pad_multiple
        H, W = L.shape[-2:]
        if H % m or W % m:
            raise UsageError(f"the ONNX graph takes heights and widths that are multiples of {m}, got {H}x{W}; "
                             "pad L first (ColorModel.pad_input)")
        x = L.detach().to("cpu", torch.float32).contiguous().numpy()
        outs = self.session.run(self.output_names, {INPUT_NAME: x})
        return {k: torch.from_numpy(o).to(L.device) for k, o in zip(self.output_names, outs)}

    def __repr__(self) -> str:
        return f"OnnxRuntime({self.model.arch}, {str(self.onnx_path)!r})"


def require_module(module: str, package: str) -> Any:
    """Import ``module`` or raise a one-line RuntimeError saying which package to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise SetupError(f"the ONNX backend needs {package}: pip install {package}") from exc


def onnx_session(path: str | Path, threads: int | None = None) -> Any:
    """An onnxruntime CPU session tuned for a few cores: one op at a time, all cores per op."""
    ort = require_module("onnxruntime", "onnxruntime")
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
        raise UsageError(f"{path}: not a loadable ONNX model ({' '.join(str(exc).split())[:200]})") from exc



# ----------------------------------------------------------------------------- exported graphs
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


def load_runtime(model: ColorModel | Runtime | str | Path, backend: str = "torch", threads: int | None = None,
                 opset: int = DEFAULT_OPSET, cache_dir: str | Path | None = None, precision: str = "auto") -> Runtime:
    """The runtime for ``--backend torch|onnx|auto`` (see the module docstring).

    ``model``: a ColorModel, a shipped name or weights path (``tinct.weights``), or a Runtime
    (returned as it is when it already is of that backend, else its model is used). For onnx the
    network is exported once (a few seconds, said on the ``tinct.notice`` log) and cached as
    ``<cache_dir>/<arch>-<key>.onnx`` (default ``onnx_cache_dir()``); a cached file that fails to
    load is re-exported; when the cache cannot be written the export goes to a temporary folder
    that is removed once loaded. ``threads``: onnxruntime intra-op threads. ``precision``: of
    the PyTorch network (``TorchRuntime``); onnxruntime runs in float32.
    """
    if backend not in BACKENDS:
        raise UsageError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    if isinstance(model, Runtime):
        if model.name == backend and (backend != "torch" or precision in ("auto", model.precision)):
            return model
        model = model.model
    weights_file = None
    asked = model if isinstance(model, (str, Path)) else None
    if not isinstance(model, ColorModel):
        from .weights import load_weights, resolve

        weights_file = resolve(model)
        torch_model = load_weights(weights_file)
    else:
        torch_model = model
    torch_model.eval()
    if backend == "auto":
        if torch_model.forward_options or any(importlib.util.find_spec(m) is None for m in ("onnx", "onnxruntime")):
            return TorchRuntime(torch_model, precision)
        try:
            return _onnx_runtime(torch_model, weights_file, threads, opset, cache_dir, asked)
        except (ValueError, RuntimeError, OSError) as exc:
            log.warning("ONNX export failed (%s); using PyTorch", exc)
            return TorchRuntime(torch_model, precision)
    if backend == "torch":
        return TorchRuntime(torch_model, precision)
    return _onnx_runtime(torch_model, weights_file, threads, opset, cache_dir, asked)


def _onnx_runtime(torch_model: ColorModel, weights_file: Path | None, threads: int | None, opset: int,
                  cache_dir: str | Path | None, asked: str | Path | None = None) -> OnnxRuntime:
    """The cached graph of ``torch_model`` in onnxruntime, exported first when missing or broken.
    ``asked``: the name or path the user gave, for the one-line notice."""
    from .export import check_opset, export_onnx
    from .pipeline import model_name

    check_opset(opset)
    require_module("onnxruntime", "onnxruntime")
    require_module("onnx", "onnx")
    weights_hash = _hash_file(weights_file) if weights_file is not None else _hash_state(torch_model)
    name = f"{torch_model.arch}-{_cache_key(torch_model, weights_hash, opset)}.onnx"
    folder = Path(cache_dir) if cache_dir is not None else onnx_cache_dir()
    target = folder / name
    if target.is_file():
        try:
            return OnnxRuntime(target, torch_model, threads)
        except (ValueError, RuntimeError) as exc:
            log.warning("re-exporting the cached ONNX model %s: %s", target, exc)
    # The first run's export takes as long as a few photos: say why, on the CLI's notice channel.
    shown = model_name(asked if asked is not None else torch_model)
    logging.getLogger("tinct.notice").info("preparing the fast CPU runtime for %s, once", shown)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        export_onnx(torch_model, target, opset=opset)
        return OnnxRuntime(target, torch_model, threads)
    except OSError as exc:  # read-only or full cache folder, permissions...
        log.warning("cannot write the ONNX cache %s (%s); exporting to a temporary folder", folder, exc)
    tmp_dir = tempfile.mkdtemp(prefix="tinct-onnx-")
    try:
        return OnnxRuntime(export_onnx(torch_model, Path(tmp_dir) / name, opset=opset), torch_model, threads)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)  # the session holds the graph in memory
