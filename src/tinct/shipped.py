"""The shipped models without torch: where their files are, their aliases, and what their headers say.

``tinct models``, ``tinct --help`` and the web page's model list read only this module: a weights
file's JSON header is read straight from the safetensors format (8 bytes of little-endian header
length, then the header), so listing the zoo imports neither torch nor the models. Loading a
model is ``tinct.weights``'s job.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import MissingFileError, UsageError

__all__ = ["WEIGHTS_DIR", "shipped_weights", "aliases", "read_metadata", "traits", "started_from",
           "training_length", "capabilities", "architecture_names", "resolve", "choose_decoder"]

WEIGHTS_DIR = Path(__file__).parent / "weights"
MODELS_DIR = Path(__file__).parent / "models"
MAX_HEADER = 100 << 20  # a safetensors header larger than this is not one of ours


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The ``tinct`` JSON object in a weights file's safetensors header (arch, config, name, ...)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"weights file not found: {path}")
    try:
        with open(path, "rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            if not 0 < size <= MAX_HEADER:
                raise ValueError(f"header length {size}")
            header = json.loads(f.read(size))
        meta = header.get("__metadata__") or {}
    except (OSError, ValueError, struct.error, AttributeError) as exc:
        raise UsageError(f"{path} is not a safetensors weights file ({exc})") from None
    if "tinct" not in meta:
        raise UsageError(f"{path} is a safetensors file without tinct metadata (arch, config)")
    return json.loads(meta["tinct"])


def traits(meta: dict[str, Any]) -> str:
    """A weights file's metadata -> "arch (backbone, head, ...)": what the model is, in a few words."""
    cfg = meta.get("config", {})
    parts = [str(cfg[k]) for k in ("backbone", "low_level", "head", "space") if cfg.get(k)]
    if cfg.get("tune_levels"):
        parts.append(f"last {cfg['tune_levels']} levels tuned")
    if cfg.get("global_features") is False:
        parts.append("no global features")
    return f"{meta.get('arch', '?')} ({', '.join(parts) or '-'})"


def capabilities(meta: dict[str, Any]) -> dict[str, Any]:
    """What a weights file's model offers at inference: ``decoders`` (the choices of ``--decode``;
    empty when it predicts colors directly), ``default_decode``, ``samples``, ``style`` and
    ``hints``. Read from the header (``tinct.weights.save_weights`` writes them); a file written
    before that has its model built (which imports torch) to find out."""
    if "capabilities" in meta:
        return dict(meta["capabilities"])
    from .weights import model_capabilities

    return model_capabilities(meta)


def started_from(meta: dict[str, Any]) -> str | None:
    """A weights file's metadata -> the model its run started from (``tinct train --init``), or None."""
    init = meta.get("init")
    return (init.get("name") or init.get("weights") or "?") if init else None


def training_length(meta: dict[str, Any]) -> str:
    """A weights file's metadata -> "1200 steps", or "3100 steps (2600 after iizuka-lite0)" for a run
    that started from other weights (``tinct train --init``)."""
    steps = meta.get("steps", "?")
    source = started_from(meta)
    if source is None or "total_steps" not in meta:
        return f"{steps} steps"
    return f"{meta['total_steps']} steps ({steps} after {source})"


def aliases() -> dict[str, str]:
    f = WEIGHTS_DIR / "aliases.json"
    return json.loads(f.read_text()) if f.is_file() else {}


def shipped_weights() -> dict[str, Path]:
    """name -> path of every weights file shipped with tinct (aliases included)."""
    files = {p.stem: p for p in sorted(WEIGHTS_DIR.glob("*.safetensors"))}
    for alias, target in aliases().items():
        if target in files:
            files[alias] = files[target]
    return files


def architecture_names() -> list[str]:
    """Every registered architecture, read from the ``@register("name")`` lines of ``models/*.py``
    (the registry itself, ``tinct.models.base.registered_models``, imports torch)."""
    names = set()
    for f in MODELS_DIR.glob("*.py"):
        names.update(re.findall(r'^@register\("([^"]+)"\)', f.read_text(), flags=re.M))
    return sorted(names)


def resolve(name_or_path: str | Path) -> Path:
    """A shipped model name, an alias or a file path -> the weights file path (clear errors)."""
    p = Path(name_or_path).expanduser()
    if p.suffix == ".safetensors" or p.is_file():
        if not p.is_file():
            raise MissingFileError(f"weights file not found: {p}")
        return p
    shipped = shipped_weights()
    if str(name_or_path) in shipped:
        return shipped[str(name_or_path)]
    if str(name_or_path) in architecture_names():
        raise UsageError(
            f"architecture {name_or_path!r} has no shipped weights; train it with "
            f"`tinct train configs/<recipe>.yaml` and pass the resulting .safetensors file"
        )
    raise UsageError(f"unknown model {name_or_path!r}; shipped models: {', '.join(sorted(shipped)) or 'none'}")


def choose_decoder(methods: Sequence[str], default: str, method: str | None, name: str) -> str:
    """The decode method to use among a model's ``methods`` (None: ``default``); an unknown one is
    a one-line error naming the model as ``name``. ``("identity",)``: the network predicts colors."""
    method = method or default
    if method not in methods:
        if tuple(methods) == ("identity",):  # the network predicts colors: nothing to decode
            raise UsageError(f"model {name!r} predicts colors directly, so it has no decoder to choose; got {method!r}")
        raise UsageError(f"model {name!r} decodes with {', '.join(methods)}; got {method!r}")
    return method
