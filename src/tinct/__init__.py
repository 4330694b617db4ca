"""tinct: automatic colorization of black-and-white photos, offline and fast on a CPU.

Python API::

    import tinct
    img = tinct.colorize("old.jpg")                 # -> PIL.Image, shipped default model
    img = tinct.colorize("old.jpg", decode="annealed", temperature=0.8)
    model = tinct.load_model("default")             # a shipped name, alias or .safetensors path
    colorizer = tinct.Colorizer(model, render_size=384)   # reuse for many images
    tinct.list_models()                             # shipped weights and architectures

``tinct.colorize`` loads a model the first time it is named and keeps it for later calls.
"""

import functools as _functools
import os as _os
from pathlib import Path as _Path
from typing import Any as _Any

__version__ = "0.1.0"

__all__ = ["colorize", "load_model", "list_models", "Colorizer", "__version__"]

_CACHED_MODELS = 4  # models tinct.colorize keeps loaded, the least recently used dropped first


def load_model(name_or_path: str | _Path = "default", device: str = "cpu"):
    """A shipped model name (``tinct models``), an alias such as ``default``, or a .safetensors path."""
    from .weights import load_weights, resolve

    return load_weights(resolve(name_or_path), device=device)


def list_models() -> dict[str, _Any]:
    """{"weights": {name: metadata}, "architectures": [...]} for everything tinct can load."""
    from .shipped import architecture_names, read_metadata, shipped_weights

    return {"weights": {n: read_metadata(p) for n, p in shipped_weights().items()},
            "architectures": architecture_names()}


def colorize(image: _Any, model: _Any = "default", render_size: int | None = None, decode: str | None = None,
             backend: str = "torch", *, method: str | None = None, **options: _Any):
    """Colorize one image -> PIL.Image (RGB, or RGBA when the input had alpha).

    ``image``: a path, bytes, PIL image or numpy array (H,W[,C], uint8/uint16/float in [0,1]).
    ``model``: a ColorModel, a ``Colorizer``, a shipped name or a weights path. A named model is
    loaded on the first call and kept for the next ones (per name and ``backend``; a weights
    file that changed on disk is loaded again).
    ``decode``: the decoder of histogram models (``--decode`` on the command line); ``method=``
    is its deprecated old name. ``backend``: "torch" (default), "onnx" or "auto", as
    ``tinct colorize --backend``. Other ``options`` (``temperature``, ``style``, ``seed``...)
    go to ``Colorizer.colorize``.
    """
    from .pipeline import DEFAULT_RENDER_SIZE, Colorizer, decode_argument

    decode = decode_argument(decode, method)
    if isinstance(model, Colorizer):
        c = model
    else:
        name = str(model) if isinstance(model, (str, _Path)) else None
        c = Colorizer(_loaded(name, backend, _weights_stamp(name)) if name else model, backend=backend,
                      render_size=render_size or DEFAULT_RENDER_SIZE, decode=decode, name=name)
    return c.colorize(image, **options).to_pil()


def _weights_stamp(name_or_path: str | _Path) -> tuple[str, int, int]:
    """The weights file a name resolves to, with its change time and size: a changed file is a new key."""
    from .weights import resolve

    path = resolve(name_or_path)
    info = _os.stat(path)
    return str(path), info.st_mtime_ns, info.st_size


@_functools.lru_cache(maxsize=_CACHED_MODELS)
def _loaded(name: str, backend: str, stamp: tuple[str, int, int]):
    """The runtime of model ``name`` for ``backend``, loaded once per (name, backend, weights file state)."""
    from .runtime import load_runtime

    return load_runtime(name, backend)


def __getattr__(name: str) -> _Any:
    """``tinct.Colorizer`` is imported on first use, so that ``import tinct`` (and ``tinct --help``)
    does not import torch."""
    if name == "Colorizer":
        from .pipeline import Colorizer

        return Colorizer
    raise AttributeError(f"module 'tinct' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | {"Colorizer"})
