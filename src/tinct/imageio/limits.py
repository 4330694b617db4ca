"""The pixel cap: refuse decompression bombs from the header, before any pixel is decoded.

Pillow opens files lazily, so the size from the header is checked against ``max_pixels``
(:func:`check_pixels`) before any pixel is decoded.  Pillow's own process-wide bomb check
(``PIL.Image.MAX_IMAGE_PIXELS``) stays a backstop and is never lowered.  When a call's
``max_pixels`` is above it, the global is raised to exactly ``max_pixels`` for the duration of
the header parse (:func:`pil_header_guard`) and of the decode, for images bigger than Pillow's
limit (:func:`pil_allows`), holding a module lock, and then restored; Pillow's redundant
``DecompressionBombWarning`` is silenced during the header parse (``warnings.catch_warnings``,
under the same lock).  Caveat: other, non-tinct threads using Pillow see these values during
that short window.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterator

from PIL import Image

from .errors import ImageError

DEFAULT_MAX_PIXELS: int = 100_000_000
"""Default decompression-bomb cap on width * height (override per call with ``max_pixels``)."""

_PIL_LIMIT_LOCK = threading.RLock()


def too_many_pixels(label: str, pixels: int | None, max_pixels: int) -> ImageError:
    """The :class:`ImageError` for an image over the cap (``pixels`` ``None`` if unknown)."""
    if pixels is None:
        what = "has too many pixels"
    else:
        what = f"has {pixels:,} pixels"
    return ImageError(f"{label} {what}, over the limit of {max_pixels:,}; raise max_pixels if you trust it")


def check_pixels(size: tuple[int, int], label: str, max_pixels: int) -> int:
    """Width * height of ``size``; raises :class:`ImageError` if it is over ``max_pixels``."""
    pixels = int(size[0]) * int(size[1])
    if pixels > max_pixels:
        raise too_many_pixels(label, pixels, max_pixels)
    return pixels


@contextlib.contextmanager
def pil_header_guard(max_pixels: int) -> Iterator[None]:
    """Context for ``Image.open`` (header parsing only, fast): makes Pillow's global bomb check
    at least as permissive as ``max_pixels`` and silences its ``DecompressionBombWarning``;
    the size is then checked by :func:`check_pixels`, which raises :class:`ImageError`.

    Holds ``_PIL_LIMIT_LOCK`` throughout, so tinct threads never see each other's temporary
    values; other threads may, for the duration of one header parse (documented caveat).
    """
    with _PIL_LIMIT_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        limit = Image.MAX_IMAGE_PIXELS
        raised = limit is not None and max_pixels > limit
        if raised:
            Image.MAX_IMAGE_PIXELS = max_pixels
        try:
            yield
        finally:
            if raised and Image.MAX_IMAGE_PIXELS == max_pixels:
                Image.MAX_IMAGE_PIXELS = limit


@contextlib.contextmanager
def pil_allows(pixels: int) -> Iterator[None]:
    """Make Pillow's global bomb check accept images of ``pixels`` pixels inside the block.

    Our own, per-call cap is the authority; Pillow's ``MAX_IMAGE_PIXELS`` stays a backstop.
    If it is already large enough nothing is touched.  Otherwise it is raised to exactly
    ``pixels`` while holding ``_PIL_LIMIT_LOCK`` and restored on exit (unless someone else
    changed it meanwhile).  Every read of the global by this package happens under the lock,
    so tinct threads never see each other's temporary value as the "original".
    """
    _PIL_LIMIT_LOCK.acquire()
    limit = Image.MAX_IMAGE_PIXELS
    if limit is None or pixels <= limit:
        _PIL_LIMIT_LOCK.release()
        yield
        return
    Image.MAX_IMAGE_PIXELS = pixels
    try:
        yield
    finally:
        if Image.MAX_IMAGE_PIXELS == pixels:
            Image.MAX_IMAGE_PIXELS = limit
        _PIL_LIMIT_LOCK.release()
