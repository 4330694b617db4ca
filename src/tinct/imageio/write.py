"""Encoding and writing image files: :func:`write_image` and its leftovers' cleanup.

:func:`write_image` is the inverse of :func:`~tinct.imageio.read_image`: it takes ``(H, W, 3)``
pixels (float in [0, 1] or uint8/uint16), an optional ``(H, W)`` alpha, the metadata to carry
over, and writes the file atomically through :func:`tinct.atomic.atomic_open` (temporary file
in the destination directory, fsync, ``os.replace``).  Only a killed process leaves that hidden
temporary behind (``.<name>.tmp-<8 hex digits>``, see :data:`TEMPORARY_NAME`);
:func:`remove_stale_temporaries` deletes such leftovers.  The 16-bit encoders live in ``deep``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import stat
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image

from ..atomic import atomic_open
from ..errors import UsageError
from .deep import PNG_COMPRESS_LEVEL, write_png16, write_tiff16
from .errors import ImageError
from .metadata import icc_space, reset_exif_orientation, with_exif_header
from .read import FORMAT_BY_EXTENSION, SUPPORTED_EXTENSIONS

_JPEG_MAX_EXIF = 65533 - 2  # APP1 payload limit (segment length field counts itself)

TEMPORARY_NAME = re.compile(r"\..+\.tmp-[0-9a-f]{8}")
"""The name of :func:`write_image`'s temporary file, ``.<name>.tmp-<8 hex digits>``, made
next to the destination; only a killed process (kill -9, power loss) leaves one behind."""


def write_image(
    path: str | os.PathLike[str],
    rgb: np.ndarray,
    alpha: np.ndarray | None = None,
    *,
    exif: bytes | None = None,
    icc_profile: bytes | None = None,
    bit_depth: int = 8,
    quality: int = 95,
) -> Path:
    """Write an image atomically; the format comes from the extension of ``path``.

    Args:
        path: destination; extension in :data:`SUPPORTED_EXTENSIONS`.  Missing parent
            directories are created.  An existing file is replaced atomically (and keeps its
            permission bits); on any failure it is left untouched and no temporary file
            remains.
        rgb: ``(H, W, 3)`` float in [0, 1] (clipped, NaN -> 0), uint8 or uint16.
        alpha: optional ``(H, W)`` (or ``(H, W, 1)``) in the same conventions, 1 = opaque.
            Stored by PNG, TIFF and WebP; JPEG and BMP outputs silently drop it (the RGB values
            are written as they are, not composited).
        exif: raw EXIF (with or without the ``b"Exif\\0\\0"`` header), stored by JPEG, PNG,
            WebP and 8-bit TIFF; its Orientation is forced to 1 because pixels are always
            written upright.  A block too big for a JPEG APP1 segment (64 KiB) is dropped with
            a warning; 16-bit TIFF output cannot carry EXIF (warning).
        icc_profile: an RGB ICC profile, stored by JPEG, PNG, WebP and TIFF (not BMP).
        bit_depth: 8, or 16 for 16-bit-per-channel PNG/TIFF output (other formats use 8).
        quality: 1..100, used by JPEG and (lossy) WebP.

    Encoders: JPEG and WebP via Pillow (Pillow's default chroma subsampling; WebP keeps RGB
    under transparent pixels); PNG via Pillow at zlib level 4, or tinct's own vectorised
    encoder for 16-bit RGB(A); 8-bit TIFF uncompressed via Pillow (its deflate path cannot embed
    EXIF sub-IFDs); 16-bit TIFF deflate+predictor via ``tifffile``; BMP 24-bit.

    Returns:
        The destination as a :class:`~pathlib.Path`.

    Raises:
        ImageError: the extension is not a supported image format.
        ValueError, TypeError: bad array shapes/dtypes, bit depth, quality or ICC profile.
    """
    dest = Path(path)
    fmt = FORMAT_BY_EXTENSION.get(dest.suffix.lower())
    if fmt is None:
        supported = ", ".join(sorted(SUPPORTED_EXTENSIONS))
        raise ImageError(
            f"'{dest}' has an unsupported image extension {dest.suffix or '(none)'!r}; use one of {supported}"
        )
    if bit_depth not in (8, 16):
        raise UsageError(f"bit_depth must be 8 or 16, got {bit_depth!r}")
    if not 1 <= int(quality) <= 100:
        raise UsageError(f"quality must be in 1..100, got {quality!r}")
    rgb = _check_samples(rgb, "rgb", 3)
    height, width = rgb.shape[:2]
    if alpha is not None:
        alpha = _check_samples(alpha, "alpha", 1)
        if alpha.ndim == 3:
            alpha = alpha[..., 0]
        if alpha.shape != (height, width):
            raise UsageError(f"alpha shape {alpha.shape} does not match rgb shape {rgb.shape}")
    if icc_profile is not None:
        icc_profile = bytes(icc_profile)
        space = icc_space(icc_profile)
        if space is None:
            raise UsageError("icc_profile is not a valid ICC profile (too short)")
        if space != b"RGB ":
            raise UsageError(f"icc_profile is for colour space {space!r}, not RGB")
    exif_block = reset_exif_orientation(with_exif_header(bytes(exif))) if exif else None

    if fmt in ("JPEG", "BMP"):
        alpha = None
    deep = bit_depth == 16 and fmt in ("PNG", "TIFF")
    if deep and fmt == "TIFF":
        try:
            import tifffile  # noqa: F401
        except ImportError:
            warnings.warn("tifffile is not installed; writing 8-bit TIFF", stacklevel=2)
            deep = False

    bits = 16 if deep else 8
    pixels = _to_uint(rgb, bits)
    if alpha is not None:
        pixels = np.concatenate([pixels, _to_uint(alpha, bits)[..., None]], axis=2)

    if deep and fmt == "PNG":
        encode: Callable[[IO[bytes]], None] = functools.partial(
            write_png16, pixels=pixels, exif=exif_block, icc=icc_profile
        )
    elif deep:
        if exif_block is not None:
            warnings.warn(f"'{dest}': EXIF cannot be stored in a 16-bit TIFF; it is dropped", stacklevel=2)
        encode = functools.partial(write_tiff16, pixels=pixels, icc=icc_profile)
    else:
        params: dict[str, Any] = {}
        if fmt in ("JPEG", "WEBP"):
            params["quality"] = int(quality)
        if fmt == "PNG":
            params["compress_level"] = PNG_COMPRESS_LEVEL
        if fmt == "WEBP":
            params["exact"] = True  # keep RGB under transparent pixels
        if fmt == "JPEG" and exif_block is not None and len(exif_block) > _JPEG_MAX_EXIF:
            warnings.warn(
                f"'{dest}': EXIF block of {len(exif_block):,} bytes does not fit in a JPEG; it is dropped",
                stacklevel=2,
            )
            exif_block = None
        if fmt != "BMP":
            if exif_block is not None:
                params["exif"] = exif_block
            if icc_profile is not None:
                params["icc_profile"] = icc_profile
        encode = functools.partial(_write_pil, pixels=pixels, fmt=fmt, params=params)

    _atomic_write(dest, encode)
    return dest


def _check_samples(arr: Any, what: str, channels: int) -> np.ndarray:
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"{what} must be a numpy array, not {type(arr).__name__}")
    if channels == 3:
        ok = arr.ndim == 3 and arr.shape[2] == 3
        expected = "(H, W, 3)"
    else:
        ok = arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 1)
        expected = "(H, W)"
    if not ok or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise UsageError(f"{what} must be shaped {expected} with H, W > 0, got {arr.shape}")
    if not (arr.dtype.kind == "f" or arr.dtype in (np.uint8, np.uint16)):
        raise TypeError(f"{what} must be float in [0, 1], uint8 or uint16, not {arr.dtype}")
    return arr


def _to_uint(arr: np.ndarray, bits: int) -> np.ndarray:
    """float [0, 1] / uint8 / uint16 samples -> C-contiguous uint8 (bits=8) or uint16 (16)."""
    top = 255 if bits == 8 else 65535
    dtype = np.uint8 if bits == 8 else np.uint16
    if arr.dtype.kind == "f":
        scaled = np.multiply(np.clip(arr, 0.0, 1.0), top, dtype=np.float32)
        np.nan_to_num(scaled, copy=False, nan=0.0)
        scaled += 0.5
        return scaled.astype(dtype)
    if arr.dtype.itemsize == dtype().itemsize:
        return np.ascontiguousarray(arr, dtype=dtype)
    if bits == 16:  # uint8 -> uint16: exact (x * 257 maps 255 -> 65535)
        return arr.astype(np.uint16) * np.uint16(257)
    return ((arr.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def _write_pil(fh: IO[bytes], *, pixels: np.ndarray, fmt: str, params: dict[str, Any]) -> None:
    Image.fromarray(pixels).save(fh, format=fmt, **params)


def _atomic_write(dest: Path, encode: Callable[[IO[bytes]], None]) -> None:
    """Run ``encode`` on a temporary file next to ``dest`` (``tinct.atomic``), then rename it over
    ``dest``.  On any failure the temporary file is removed and ``dest`` is untouched."""
    with atomic_open(dest, "wb") as fh:
        encode(fh)


def remove_stale_temporaries(
    folder: str | os.PathLike[str],
    older_than: float,
    names: tuple[re.Pattern[str], ...] = (TEMPORARY_NAME,),
) -> int:
    """Delete the temporary files a killed writer left anywhere under ``folder``; return how many.

    A file is removed when its whole name matches one of ``names`` (default: the temporaries of
    :func:`write_image`, ``.<name>.tmp-<8 hex digits>``), it is a regular file (not a link),
    and it was last modified before ``older_than`` (a :func:`time.time` value, e.g. the start
    of the run), so a temporary that another process is writing right now is left alone.
    A missing ``folder`` holds nothing; files that vanish or cannot be removed are skipped.
    """
    removed = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            if not any(pattern.fullmatch(name) for pattern in names):
                continue
            path = os.path.join(dirpath, name)
            with contextlib.suppress(OSError):
                info = os.lstat(path)
                if stat.S_ISREG(info.st_mode) and info.st_mtime < older_than:
                    os.unlink(path)
                    removed += 1
    return removed
