"""tinct: automatic colorization of black-and-white photos, offline and fast on a CPU.

Python API::

    import tinct
    img = tinct.colorize("old.jpg")                 # -> PIL.Image, shipped default model
    model = tinct.load_model("default")             # a shipped name, alias or .safetensors path
    colorizer = tinct.Colorizer(model, render_size=384)   # reuse for many images
    tinct.list_models()                             # shipped weights and architectures
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__version__ = "0.1.0"

from .pipeline import Colorizer  # noqa: E402

__all__ = ["colorize", "load_model", "list_models", "Colorizer", "__version__"]


def load_model(name_or_path: str | Path = "default", device: str = "cpu"):
    """A shipped model name (``tinct models``), an alias such as ``default``, or a .safetensors path."""
    from .weights import load_weights, resolve

    return load_weights(resolve(name_or_path), device=device)


def list_models() -> dict[str, Any]:
    """{"weights": {name: metadata}, "architectures": [...]} for everything tinct can load."""
    from .models.base import registered_models
    from .weights import read_metadata, shipped_weights

    return {"weights": {n: read_metadata(p) for n, p in shipped_weights().items()},
            "architectures": registered_models()}


def colorize(image: Any, model: Any = "default", render_size: int | None = None, method: str | None = None,
             **options: Any):
    """Colorize one image -> PIL.Image (RGB, or RGBA when the input had alpha).

    ``image``: a path, bytes, PIL image or numpy array (H,W[,C], uint8/uint16/float in [0,1]).
    ``model``: a ColorModel, a ``Colorizer``, a shipped name or a weights path. Loading a model
    takes a moment: for many images build one ``Colorizer`` and call it repeatedly.
    """
    from .pipeline import DEFAULT_RENDER_SIZE

    if isinstance(model, Colorizer):
        c = model
    else:
        c = Colorizer(model, render_size=render_size or DEFAULT_RENDER_SIZE, method=method)
    return c.colorize(image, **options).to_pil()

