"""Reading and writing image files for the tinct pipeline.

Everything that enters tinct goes through :func:`read_image`, which returns a
:class:`LoadedImage`: ``pixels`` ``(H, W, 3)`` sRGB-encoded, upright (EXIF orientation
applied), uint8 for 8-bit sources and float32 in [0, 1] for deeper ones (``rgb``: as float32),
and ``alpha`` ``(H, W)`` float32 in [0, 1] or ``None``.
:func:`write_image` is the inverse and writes atomically through :mod:`tinct.atomic`.

Modules, lowest layer first:

* ``errors``: :class:`ImageError` and its one-line messages.
* ``limits``: the pixel cap (:data:`DEFAULT_MAX_PIXELS`) and Pillow's global bomb limit.
* ``metadata``: EXIF, ICC and orientation helpers.
* ``deep``: 16-bit samples Pillow truncates or cannot write (full-precision decoding, 16-bit
  PNG/TIFF encoders).
* ``read``: :func:`read_image` and :class:`LoadedImage`, pixel modes, the supported
  extensions (:data:`SUPPORTED_EXTENSIONS`, :func:`is_image_path`).
* ``write``: :func:`write_image` and :func:`remove_stale_temporaries`.
* ``ahead``: :class:`ReadAhead`, a batch's first photos decoded on another thread while the
  caller loads its model.

Callers use ``from . import imageio as tio``; this module re-exports the public names below.
"""

from __future__ import annotations

from .ahead import ReadAhead
from .errors import ImageError
from .limits import DEFAULT_MAX_PIXELS
from .read import SUPPORTED_EXTENSIONS, LoadedImage, is_image_path, read_image
from .write import remove_stale_temporaries, write_image

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "SUPPORTED_EXTENSIONS",
    "ImageError",
    "LoadedImage",
    "ReadAhead",
    "is_image_path",
    "read_image",
    "remove_stale_temporaries",
    "write_image",
]
