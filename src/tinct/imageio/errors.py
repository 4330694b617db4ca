"""ImageError and the one-line messages it carries.

Every user-caused failure (missing, empty, not an image, truncated, too large, unsupported
extension) raises :class:`ImageError`, whose ``str()`` is one line naming the file.
"""

from __future__ import annotations

from ..errors import TinctError


class ImageError(TinctError):
    """A user-caused problem with an image file; str(e) is one clear line naming the file and
    the problem (missing, empty, not an image, truncated/corrupt, too many pixels, ...)."""


def label_for(name: str) -> str:
    """How a source is named in messages: ``'path'`` quoted, ``<bytes>``-style names as they are."""
    return name if name.startswith("<") and name.endswith(">") else f"'{name}'"


def one_line(exc: BaseException) -> str:
    """``exc`` as one line of at most 200 characters (its type name if it has no message)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]
