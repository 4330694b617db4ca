"""Reading and writing image files for the tinct pipeline.

Everything that enters tinct goes through :func:`read_image`, which returns a
:class:`LoadedImage` with the pixels in one canonical layout:

* ``rgb``: ``(H, W, 3)`` float32 in [0, 1], sRGB-encoded (gamma, not linear), C-contiguous,
  with the EXIF orientation already applied (the array is upright).
* ``alpha``: ``(H, W)`` float32 in [0, 1], or ``None`` when the source has no transparency.

:func:`write_image` is the inverse: it takes ``(H, W, 3)`` pixels (float in [0, 1] or
uint8/uint16), an optional ``(H, W)`` alpha, the metadata to carry over, and writes the file
atomically (temporary file in the destination directory, fsync, ``os.replace``).  Only a
killed process leaves that hidden temporary behind (``.<name>.tmp-<8 hex digits>``, see
:data:`TEMPORARY_NAME`); :func:`remove_stale_temporaries` deletes such leftovers.

Design notes
------------
* Files are identified by content, never by extension.  Only JPEG, PNG, TIFF, WebP and BMP are
  accepted; every user-caused failure (missing, empty, not an image, truncated, too large)
  raises :class:`ImageError` with a one-line message naming the file.
* Pixel cap: Pillow opens files lazily, so the size from the header is checked against
  ``max_pixels`` before any pixel is decoded.  Pillow's own process-wide bomb check
  (``PIL.Image.MAX_IMAGE_PIXELS``) stays a backstop and is never lowered.  When a call's
  ``max_pixels`` is above it, the global is raised to exactly ``max_pixels`` for the duration
  of the header parse (and of the decode, for images bigger than Pillow's limit), holding a
  module lock, and then restored; Pillow's redundant ``DecompressionBombWarning`` is silenced
  during the header parse (``warnings.catch_warnings``, under the same lock).  Caveat: other,
  non-tinct threads using Pillow see these values during that short window.  Pillow's
  ``DecompressionBombError`` (and the warning, if it gets raised as an error) become
  :class:`ImageError`.
* 16-bit sources keep their precision.  Pillow decodes 16-bit grey PNG/TIFF natively
  (mode ``I;16``) but truncates 16-bit-per-channel RGB(A) to 8 bits, so:

  - PNG: the image is decoded a second time by Pillow with the unpacker of the opposite byte
    order (``RGB;16L`` instead of ``RGB;16B``), which yields the low bytes; high and low bytes
    are combined with numpy.  16-bit grey+alpha PNGs are re-decoded with the byte-copying
    ``RGBA`` unpacker (same 4 bytes per pixel).  Both passes are Pillow's C decoder, so
    interlacing and all PNG filters are handled.
  - TIFF: read with ``tifffile`` (handles planar layouts and deflate/LZMA/none), falling back
    to the byte-order trick above for codecs ``tifffile`` cannot decode without
    ``imagecodecs`` (e.g. LZW).

  If both fail, the 8-bit data is used and a warning is emitted.
* CMYK is converted to sRGB with LittleCMS (``PIL.ImageCms``) when a CMYK ICC profile is
  embedded, else with Pillow's plain formula.  ``LoadedImage.icc_profile`` only ever holds an
  RGB profile: grey/CMYK profiles do not describe the RGB pixels tinct produces and are
  dropped (untagged output is read as sRGB).
* ``LoadedImage.exif`` is the source's raw EXIF block (``b"Exif\\0\\0"`` + TIFF structure)
  with the Orientation value patched to 1 in place, so every other byte (maker notes, GPS,
  thumbnails) survives untouched.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import re
import stat
import struct
import sys
import threading
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .atomic import atomic_open

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "SUPPORTED_EXTENSIONS",
    "ImageError",
    "LoadedImage",
    "is_image_path",
    "read_image",
    "remove_stale_temporaries",
    "write_image",
]

DEFAULT_MAX_PIXELS: int = 100_000_000
"""Default decompression-bomb cap on width * height (override per call with ``max_pixels``)."""

_FORMAT_BY_EXTENSION: dict[str, str] = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
    ".bmp": "BMP",
}
SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(_FORMAT_BY_EXTENSION)
"""Lower-case file extensions (with the dot) that :func:`write_image` and
:func:`is_image_path` accept."""

# Pillow plugins we let parse untrusted input (the JPEG plugin also yields MPO files).
_PIL_FORMATS = ("JPEG", "PNG", "TIFF", "WEBP", "BMP")
_PRETTY_FORMAT = {"JPEG": "JPEG", "PNG": "PNG", "TIFF": "TIFF", "WEBP": "WebP", "BMP": "BMP"}

_EXIF_HEADER = b"Exif\x00\x00"
_ORIENTATION_TAG = 0x0112
# EXIF-worthy TIFF tags kept when a TIFF's own IFD0 is turned into an EXIF block (the rest of a
# TIFF IFD0 describes the pixel layout of that file and must not be copied).
_TIFF_DESCRIPTIVE_TAGS = (270, 271, 272, 274, 282, 283, 296, 305, 306, 315, 33432)
_EXIF_SUB_IFDS = (0x8769, 0x8825)  # Exif IFD, GPS IFD
_JPEG_MAX_EXIF = 65533 - 2  # APP1 payload limit (segment length field counts itself)
# zlib level for PNG output: ~2.5x faster than Pillow's default 6 on photos, <1% larger files.
_PNG_COMPRESS_LEVEL = 4
_PNG16_BLOCK_BYTES = 1 << 22  # raw bytes filtered per step by the 16-bit PNG writer
_PNG_IDAT_BYTES = 1 << 20

_PIL_LIMIT_LOCK = threading.RLock()

TEMPORARY_NAME = re.compile(r"\..+\.tmp-[0-9a-f]{8}")
"""The name of :func:`write_image`'s temporary file, ``.<name>.tmp-<8 hex digits>``, made
next to the destination; only a killed process (kill -9, power loss) leaves one behind."""


class ImageError(Exception):
    """A user-caused problem with an image file; str(e) is one clear line naming the file and
    the problem (missing, empty, not an image, truncated/corrupt, too many pixels, ...)."""


@dataclass(eq=False, repr=False)
class LoadedImage:
    """An image decoded into tinct's canonical layout (see the module docstring).

    Attributes:
        rgb: ``(H, W, 3)`` float32 in [0, 1], sRGB, EXIF orientation applied, C-contiguous.
        alpha: ``(H, W)`` float32 in [0, 1] (1 = opaque), or ``None`` if the source has none.
        bit_depth: precision of the source samples: 8, or 16 for 16-bit/32-bit/float sources.
        exif: raw EXIF block (``b"Exif\\0\\0"`` + TIFF structure) to write back, with its
            Orientation tag reset to 1 because the pixels are already upright; or ``None``.
        icc_profile: the embedded ICC profile if it is an RGB profile, else ``None``.
        source_format: Pillow's format name (``"JPEG"``, ``"PNG"``, ``"TIFF"``, ``"WEBP"``,
            ``"BMP"``, ``"MPO"``), or ``None`` for arrays/in-memory images.
        source_mode: the source's Pillow mode (``"L"``, ``"RGBA"``, ``"P"``, ``"CMYK"``,
            ``"I;16"``, ...); 16-bit RGB(A) files report Pillow's ``"RGB"``/``"RGBA"`` with
            ``bit_depth == 16``.  ``None`` for numpy input.
        name: the path as given, or ``"<bytes>"``, ``"<image>"``, ``"<array>"``.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    bit_depth: int
    exif: bytes | None
    icc_profile: bytes | None
    source_format: str | None
    source_mode: str | None
    name: str

    def __repr__(self) -> str:
        h, w = self.rgb.shape[:2]
        return (
            f"LoadedImage(name={self.name!r}, size={w}x{h}, alpha={self.alpha is not None}, "
            f"bit_depth={self.bit_depth}, source_format={self.source_format!r}, "
            f"source_mode={self.source_mode!r}, exif={_nbytes(self.exif)}, "
            f"icc_profile={_nbytes(self.icc_profile)})"
        )


def _nbytes(data: bytes | None) -> str:
    return "None" if data is None else f"<{len(data)} bytes>"


def is_image_path(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` has one of :data:`SUPPORTED_EXTENSIONS` (case-insensitive).

    Only the name is looked at; use :func:`read_image` to find out what a file really holds.
    """
    return Path(path).suffix.lower() in SUPPORTED_EXTENSIONS


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def read_image(
    source: str | os.PathLike[str] | bytes | Image.Image | np.ndarray,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> LoadedImage:
    """Decode ``source`` into a :class:`LoadedImage` (rgb ``(H, W, 3)`` float32 in [0, 1]).

    Args:
        source: a path; the encoded bytes of a file; an already decoded LoadedImage
            (returned as is); a PIL image (any mode, possibly not yet
            loaded); or a numpy array shaped ``(H, W)``, ``(H, W, 1)``, ``(H, W, 2)``
            (grey + alpha), ``(H, W, 3)`` or ``(H, W, 4)`` of dtype uint8 (0..255), uint16
            (0..65535), bool, or float (taken as [0, 1]; clipped, NaN -> 0).
        max_pixels: refuse files and PIL images with more than this many pixels (width *
            height), checked from the header before decoding.  Not applied to numpy input,
            which is already in memory.

    Raises:
        ImageError: the file is missing, empty, not a supported image, truncated/corrupt, or
            over ``max_pixels``.
        TypeError, ValueError: ``source`` is of the wrong type, or an array of an unsupported
            shape/dtype (programming errors, not file problems).
    """
    if isinstance(source, LoadedImage):
        return source  # already decoded
    if isinstance(source, np.ndarray):
        return _read_array(source)
    if isinstance(source, Image.Image):
        name = getattr(source, "filename", None)
        name = name if isinstance(name, str) and name else "<image>"
        return _read_pil(source, name, None, max_pixels)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise ImageError("<bytes> is empty (0 bytes), not an image")
        return _read_stream(io.BytesIO(data), "<bytes>", max_pixels)
    if isinstance(source, (str, os.PathLike)):
        name = os.fsdecode(os.fspath(source))
        with _open_file(name) as fh:
            return _read_stream(fh, name, max_pixels)
    raise TypeError(f"read_image() expects a path, bytes, a PIL image or a numpy array, not {type(source).__name__}")


def _label(name: str) -> str:
    return name if name.startswith("<") and name.endswith(">") else f"'{name}'"


def _open_file(name: str) -> IO[bytes]:
    label = _label(name)
    try:
        fh = open(name, "rb")  # noqa: SIM115 - returned to the caller, who closes it
    except FileNotFoundError:
        raise ImageError(f"{label} not found") from None
    except IsADirectoryError:
        raise ImageError(f"{label} is a directory, not an image file") from None
    except PermissionError:
        raise ImageError(f"{label} cannot be read (permission denied)") from None
    except OSError as exc:
        raise ImageError(f"{label} cannot be opened ({exc.strerror or exc})") from None
    try:
        if os.fstat(fh.fileno()).st_size == 0:
            raise ImageError(f"{label} is empty (0 bytes), not an image")
    except BaseException:
        fh.close()
        raise
    return fh


def _sniff(prefix: bytes) -> str | None:
    """Format name from magic bytes, for error messages only (Pillow does the real parsing)."""
    if prefix.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if prefix.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if prefix[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if prefix[:4] == b"RIFF" and prefix[8:12] == b"WEBP":
        return "WEBP"
    if prefix[:2] == b"BM" and prefix[6:10] == bytes(4):  # reserved header fields are zero
        return "BMP"
    return None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


def _too_many_pixels(label: str, pixels: int | None, max_pixels: int) -> ImageError:
    if pixels is None:
        what = "has too many pixels"
    else:
        what = f"has {pixels:,} pixels"
    return ImageError(f"{label} {what}, over the limit of {max_pixels:,}; raise max_pixels if you trust it")


def _check_pixels(size: tuple[int, int], label: str, max_pixels: int) -> int:
    pixels = int(size[0]) * int(size[1])
    if pixels > max_pixels:
        raise _too_many_pixels(label, pixels, max_pixels)
    return pixels


@contextlib.contextmanager
def _pil_header_guard(max_pixels: int) -> Iterator[None]:
    """Context for ``Image.open`` (header parsing only, fast): makes Pillow's global bomb check
    at least as permissive as ``max_pixels`` and silences its ``DecompressionBombWarning``;
    the size is then checked by :func:`_check_pixels`, which raises :class:`ImageError`.

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
def _pil_allows(pixels: int) -> Iterator[None]:
    """Make Pillow's global bomb check accept images of ``pixels`` pixels inside the block.

    Our own, per-call cap is the authority; Pillow's ``MAX_IMAGE_PIXELS`` stays a backstop.
    If it is already large enough nothing is touched.  Otherwise it is raised to exactly
    ``pixels`` while holding ``_PIL_LIMIT_LOCK`` and restored on exit (unless someone else
    changed it meanwhile).  Every read of the global by this module happens under the lock,
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


@contextlib.contextmanager
def _decode_errors(label: str, max_pixels: int, sniffed: str | None) -> Iterator[None]:
    """Translate Pillow's parse/decode exceptions into one-line :class:`ImageError`s."""
    try:
        yield
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        raise _too_many_pixels(label, int(found[1]) if found else None, max_pixels) from exc
    except UnidentifiedImageError as exc:
        if sniffed is not None:
            fmt = _PRETTY_FORMAT[sniffed]
            msg = (
                f"{label} looks like a {fmt} file but could not be decoded "
                f"(truncated, corrupt or an unsupported {fmt} variant)"
            )
        else:
            msg = f"{label} is not an image file (or an unsupported format)"
        raise ImageError(msg) from exc
    except MemoryError as exc:
        raise ImageError(f"{label} is too large to decode in the available memory") from exc
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error) as exc:
        raise ImageError(f"{label} is truncated or corrupt ({_one_line(exc)})") from exc


def _read_stream(fh: IO[bytes], name: str, max_pixels: int) -> LoadedImage:
    label = _label(name)
    sniffed = _sniff(fh.read(16))
    fh.seek(0)
    with _decode_errors(label, max_pixels, sniffed), _pil_header_guard(max_pixels):
        im = Image.open(fh, formats=_PIL_FORMATS)
    return _read_pil(im, name, fh, max_pixels, sniffed)


def _read_pil(
    im: Image.Image,
    name: str,
    fh: IO[bytes] | None,
    max_pixels: int,
    sniffed: str | None = None,
) -> LoadedImage:
    """Decode a (possibly lazy) PIL image; ``fh`` is its file, rewindable, if we own it."""
    label = _label(name)
    pixels = _check_pixels(im.size, label, max_pixels)
    rawmode = _tile_rawmode(im)  # the tile list is gone after load()
    tiff = _deep_tiff_layout(im) if fh is not None else None
    deep: np.ndarray | None = None
    tifffile_error: BaseException | None = None
    if tiff is not None and fh is not None:
        width, height = im.size
        try:
            deep = _tiff_via_tifffile(fh, (height, width, tiff[0]))
        except Exception as exc:  # noqa: BLE001 - e.g. LZW needs imagecodecs; Pillow takes over
            tifffile_error = exc
    if deep is None:
        with _decode_errors(label, max_pixels, sniffed), _pil_allows(pixels):
            im.load()  # forces lazy decoding here, so truncation is reported as ImageError
        if fh is not None:
            deep = _deep_after_load(im, rawmode, fh, label, pixels, tifffile_error)
    orientation = _orientation(im)
    exif = _source_exif(im)
    icc = im.info.get("icc_profile") or None
    fmt, mode = im.format, im.mode

    if deep is not None:
        rgb, alpha = _channels_to_float(_orient_array(deep, orientation))
        if tiff is not None and tiff[1] == 1 and alpha is not None:  # premultiplied alpha
            _unpremultiply(rgb, alpha)
        bit_depth = 16
    else:
        if orientation != 1:
            im = ImageOps.exif_transpose(im)
        rgb, alpha, bit_depth = _pil_to_float(im, icc, label)

    return LoadedImage(
        rgb=rgb,
        alpha=alpha,
        bit_depth=bit_depth,
        exif=exif,
        icc_profile=icc if _icc_space(icc) == b"RGB " else None,
        source_format=fmt,
        source_mode=mode,
        name=name,
    )


def _orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # noqa: BLE001 - unreadable EXIF means "no orientation", never a failure
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _orient_array(a: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) to an ``(H, W, ...)`` array, exactly like
    ``PIL.ImageOps.exif_transpose``; returns a view."""
    if orientation == 2:
        return a[:, ::-1]
    if orientation == 3:
        return a[::-1, ::-1]
    if orientation == 4:
        return a[::-1]
    if orientation == 5:
        return a.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(a, -1)
    if orientation == 7:
        return a[::-1, ::-1].swapaxes(0, 1)
    if orientation == 8:
        return np.rot90(a, 1)
    return a


# ---- metadata ------------------------------------------------------------------------------


def _icc_space(icc: bytes | None) -> bytes | None:
    """The 4-byte colour-space signature of an ICC profile (``b"RGB "``, ``b"GRAY"``, ...)."""
    if not icc or len(icc) < 128:
        return None
    return bytes(icc[16:20])


def _with_exif_header(exif: bytes) -> bytes:
    if exif.startswith((b"II*\x00", b"MM\x00*")):
        return _EXIF_HEADER + exif
    return exif


def _reset_exif_orientation(exif: bytes) -> bytes:
    """Return ``exif`` with IFD0's Orientation set to 1, patched in place (no re-encoding).

    Blocks that cannot be parsed are returned unchanged (Pillow could not have read an
    orientation from them either, so the pixels were not rotated).
    """
    start = len(_EXIF_HEADER) if exif.startswith(_EXIF_HEADER) else 0
    body = exif[start:]
    if len(body) < 8 or body[:2] not in (b"II", b"MM"):
        return exif
    e = "<" if body[:2] == b"II" else ">"
    (ifd,) = struct.unpack_from(e + "I", body, 4)
    if ifd + 2 > len(body):
        return exif
    (count,) = struct.unpack_from(e + "H", body, ifd)
    for i in range(count):
        entry = ifd + 2 + 12 * i
        if entry + 12 > len(body):
            break
        tag, typ, n = struct.unpack_from(e + "HHI", body, entry)
        if tag != _ORIENTATION_TAG or n != 1:
            continue
        fmt = {3: "H", 4: "I"}.get(typ)
        if fmt is None or struct.unpack_from(e + fmt, body, entry + 8)[0] == 1:
            return exif
        patched = bytearray(exif)
        struct.pack_into(e + fmt, patched, start + entry + 8, 1)
        return bytes(patched)
    return exif


def _source_exif(im: Image.Image) -> bytes | None:
    """The EXIF block to carry to the output, orientation reset to 1 (see LoadedImage)."""
    raw = im.info.get("exif")
    if isinstance(raw, (bytes, bytearray)) and raw:
        return _reset_exif_orientation(_with_exif_header(bytes(raw)))
    if im.format != "TIFF":
        return None
    # A TIFF keeps its EXIF-ish tags in its own IFD0, next to layout tags: copy the
    # descriptive ones and the Exif/GPS sub-IFDs into a fresh EXIF block.
    try:
        src = im.getexif()
        out = Image.Exif()
        for tag in _TIFF_DESCRIPTIVE_TAGS:
            if tag in src:
                out[tag] = 1 if tag == _ORIENTATION_TAG else src[tag]
        has_sub = False
        for ifd in _EXIF_SUB_IFDS:
            sub = src.get_ifd(ifd)
            if sub:
                out[ifd] = dict(sub)  # Exif.tobytes() serialises dict values as sub-IFDs
                has_sub = True
        if not len(out) and not has_sub:
            return None
        return out.tobytes()
    except Exception:  # noqa: BLE001 - odd metadata must never make a readable image fail
        return None


# ---- 16-bit sources Pillow would truncate --------------------------------------------------


def _tile_with_rawmode(tile: Any, rawmode: str) -> Any:
    args = tile[3]
    new_args = (rawmode, *args[1:]) if isinstance(args, tuple) else rawmode
    if hasattr(tile, "_replace"):
        return tile._replace(args=new_args)
    return (tile[0], tile[1], tile[2], new_args)


def _tile_rawmode(im: Image.Image) -> str | None:
    if not getattr(im, "tile", None):
        return None
    args = im.tile[0][3]
    rawmode = args[0] if isinstance(args, tuple) and args else args
    return rawmode if isinstance(rawmode, str) else None


def _low_byte_rawmode(rawmode: str) -> str | None:
    """For a Pillow 16-bit RGB(A) rawmode (which keeps the most significant byte), the rawmode
    of the opposite byte order, which therefore keeps the least significant byte."""
    base, sep, order = rawmode.rpartition(";16")
    if not sep or base not in ("RGB", "RGBA"):
        return None
    if order == "N":
        order = "L" if sys.byteorder == "little" else "B"
    swapped = {"B": "L", "L": "B"}.get(order)
    return f"{base};16{swapped}" if swapped else None


def _redecode(fh: IO[bytes], fmt: str, rawmode: str, pixels: int) -> np.ndarray:
    """Decode the first frame of ``fh`` again with Pillow, forcing ``rawmode`` on its tiles."""
    fh.seek(0)
    with _pil_allows(pixels):
        im = Image.open(fh, formats=(fmt,))
        im.tile = [_tile_with_rawmode(t, rawmode) for t in im.tile]
        im.load()
    return np.asarray(im)


def _deep_tiff_layout(im: Image.Image) -> tuple[int, int] | None:
    """``(samples per pixel, ExtraSamples code)`` for a 16-bit grey+alpha or RGB(A) TIFF, whose
    colour samples Pillow would truncate to 8 bits; ``None`` for any other image."""
    if im.format != "TIFF":
        return None
    tags = getattr(im, "tag_v2", {})
    bits = tags.get(258, (1,))
    bits = bits if isinstance(bits, tuple) else (bits,)
    samples = tags.get(277, 1)
    if max(bits) != 16 or samples not in (2, 3, 4) or tags.get(262) not in (1, 2):
        return None
    extra = tags.get(338, (0,))
    extra = extra[0] if isinstance(extra, tuple) and extra else extra
    return samples, int(extra or 0)


def _deep_after_load(
    im: Image.Image,
    rawmode: str | None,
    fh: IO[bytes],
    label: str,
    pixels: int,
    tifffile_error: BaseException | None,
) -> np.ndarray | None:
    """Full-precision ``(H, W, C)`` uint16 samples (file orientation) of a 16-bit colour or
    grey+alpha PNG/TIFF that Pillow, which has just loaded ``im`` (so the data is known to be
    complete), truncated to 8 bits; ``None`` for other images or on failure (with a warning).

    ``rawmode`` is the Pillow rawmode of ``im``'s first tile; ``tifffile_error`` why tifffile
    could not read the TIFF, if it was tried.
    """
    if im.format == "PNG" and rawmode in ("RGB;16B", "RGBA;16B", "LA;16B"):
        try:
            if rawmode == "LA;16B":
                # Grey+alpha 16-bit has 4 bytes per pixel, like 8-bit RGBA: copy them raw.
                raw = _redecode(fh, "PNG", "RGBA", pixels)
                deep = (raw[..., 0::2].astype(np.uint16) << 8) | raw[..., 1::2]
            else:
                lo = _redecode(fh, "PNG", rawmode.replace(";16B", ";16L"), pixels)
                deep = (np.asarray(im).astype(np.uint16) << 8) | lo
        except Exception as exc:  # noqa: BLE001 - losing precision beats failing the read
            _warn_8bit(label, exc)
            return None
        key = im.info.get("transparency")
        if rawmode == "RGB;16B" and isinstance(key, tuple) and len(key) == 3:
            opaque = np.any(deep != np.asarray(key, dtype=np.uint16), axis=2)
            deep = np.concatenate([deep, (opaque * np.uint16(65535))[..., None]], axis=2)
        return deep

    if tifffile_error is not None:
        low = _low_byte_rawmode(rawmode or "")
        if low is None:
            _warn_8bit(label, tifffile_error)
            return None
        try:
            lo = _redecode(fh, "TIFF", low, pixels)
            return (np.asarray(im).astype(np.uint16) << 8) | lo
        except Exception as exc:  # noqa: BLE001
            _warn_8bit(label, exc)
    return None


def _tiff_via_tifffile(fh: IO[bytes], shape: tuple[int, int, int]) -> np.ndarray:
    import tifffile  # optional dependency (ships with scikit-image); imported lazily

    fh.seek(0)
    with tifffile.TiffFile(fh) as tif:
        page = tif.pages[0]
        data = page.asarray()
        axes = page.axes
    if axes == "SYX":
        data = np.moveaxis(data, 0, -1)
    elif axes != "YXS":
        raise ValueError(f"unexpected TIFF axes {axes!r}")
    if data.shape != shape or data.dtype.kind != "u" or data.dtype.itemsize != 2:
        raise ValueError(f"unexpected TIFF data {data.shape} {data.dtype}")
    return data


def _warn_8bit(label: str, exc: BaseException) -> None:
    warnings.warn(
        f"{label}: could not read the 16-bit samples at full precision ({_one_line(exc)}); using 8 bits",
        RuntimeWarning,
        stacklevel=6,
    )


def _unpremultiply(rgb: np.ndarray, alpha: np.ndarray) -> None:
    a = alpha[..., None]
    np.divide(rgb, a, out=rgb, where=a > 0)
    np.clip(rgb, 0.0, 1.0, out=rgb)


# ---- PIL image -> float arrays -------------------------------------------------------------

_DIRECT_MODES = ("L", "LA", "RGB", "RGBA", "1")
_DEEP_GREY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
_SIMPLE_CONVERSIONS = {"La": "LA", "RGBa": "RGBA", "PA": "RGBA", "RGBX": "RGB", "YCbCr": "RGB"}


@functools.cache
def _srgb_profile() -> Any:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _cmyk_to_rgb(im: Image.Image, icc: bytes | None, label: str) -> Image.Image:
    if _icc_space(icc) == b"CMYK":
        try:
            from PIL import ImageCms

            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))  # type: ignore[arg-type]
            converted = ImageCms.profileToProfile(
                im,
                source,
                _srgb_profile(),
                renderingIntent=0,  # perceptual, the ICC default intent
                outputMode="RGB",
            )
            if converted is not None:
                return converted
        except Exception as exc:  # noqa: BLE001 - a broken profile should not lose the image
            warnings.warn(
                f"{label}: embedded CMYK ICC profile is unusable ({_one_line(exc)}); "
                "using a plain CMYK->RGB conversion",
                RuntimeWarning,
                stacklevel=6,
            )
    return im.convert("RGB")


def _palette_has_alpha(im: Image.Image) -> bool:
    if "transparency" in im.info:
        return True
    palette = im.palette
    return palette is not None and palette.mode == "RGBA"


def _pil_to_float(im: Image.Image, icc: bytes | None, label: str) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Loaded, upright PIL image -> (rgb (H,W,3) f32, alpha (H,W) f32 | None, bit_depth)."""
    mode = im.mode
    if mode in _DEEP_GREY_MODES:
        arr = np.asarray(im)
        rgb, _ = _channels_to_float(arr)
        alpha = None
        key = im.info.get("transparency")
        if mode != "F" and isinstance(key, int):
            alpha = (arr != key).astype(np.float32)
        return rgb, alpha, 16

    if mode == "CMYK":
        im = _cmyk_to_rgb(im, icc, label)
    elif mode == "P":
        im = im.convert("RGBA" if _palette_has_alpha(im) else "RGB")
    elif mode in ("1", "L", "RGB") and "transparency" in im.info:
        im = im.convert("RGBA" if mode == "RGB" else "LA")
    elif mode in _SIMPLE_CONVERSIONS:
        im = im.convert(_SIMPLE_CONVERSIONS[mode])
    elif mode not in _DIRECT_MODES:
        try:
            im = im.convert("RGB")
        except ValueError as exc:
            raise ImageError(f"{label} has an unsupported pixel mode {mode!r}") from exc
    rgb, alpha = _channels_to_float(np.asarray(im))
    return rgb, alpha, 8


def _to_unit(arr: np.ndarray) -> np.ndarray:
    """Samples -> new C-contiguous float32 array in [0, 1].

    uint8 / 255, uint16 / 65535, other integers (Pillow mode ``I``) clipped to 0..65535 first,
    bool -> 0/1, floats clipped to [0, 1] with NaN -> 0.
    """
    kind, size = arr.dtype.kind, arr.dtype.itemsize
    if kind == "u" and size == 1:
        return np.divide(arr, 255, dtype=np.float32, order="C")
    if kind == "u" and size == 2:
        return np.divide(arr, 65535, dtype=np.float32, order="C")
    if kind in "iu":
        return np.divide(np.clip(arr, 0, 65535), 65535, dtype=np.float32, order="C")
    if kind == "b":
        return np.array(arr, dtype=np.float32, order="C")
    if kind == "f":
        out = np.array(arr, dtype=np.float32, order="C")
        np.nan_to_num(out, copy=False, nan=0.0, posinf=1.0, neginf=0.0)
        return np.clip(out, 0.0, 1.0, out=out)
    raise ValueError(f"unsupported sample dtype {arr.dtype}")


def _channels_to_float(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """``(H, W)`` or ``(H, W, C)`` samples, C in 1..4 (grey, grey+alpha, RGB, RGBA) ->
    (rgb ``(H, W, 3)`` float32 in [0, 1], alpha ``(H, W)`` float32 in [0, 1] or None)."""
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        grey = _to_unit(arr)
        return np.repeat(grey[:, :, None], 3, axis=2), None
    channels = arr.shape[2]
    if channels == 2:
        grey = _to_unit(arr[..., 0])
        return np.repeat(grey[:, :, None], 3, axis=2), _to_unit(arr[..., 1])
    if channels == 3:
        return _to_unit(arr), None
    if channels == 4:
        return _to_unit(arr[..., :3]), _to_unit(arr[..., 3])
    raise ValueError(f"unsupported channel count {channels}")


def _read_array(arr: np.ndarray) -> LoadedImage:
    ok_dtype = arr.dtype.kind in "bf" or arr.dtype in (np.uint8, np.uint16)
    if not ok_dtype:
        raise ValueError(f"unsupported array dtype {arr.dtype}; expected uint8, uint16, bool or float in [0, 1]")
    ok_shape = arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (1, 2, 3, 4))
    if not ok_shape or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(
            f"unsupported array shape {arr.shape}; expected (H, W), (H, W, 1), (H, W, 2), "
            "(H, W, 3) or (H, W, 4) with H, W > 0"
        )
    rgb, alpha = _channels_to_float(arr)
    return LoadedImage(
        rgb=rgb,
        alpha=alpha,
        bit_depth=8 if arr.dtype.kind == "b" or arr.dtype == np.uint8 else 16,
        exif=None,
        icc_profile=None,
        source_format=None,
        source_mode=None,
        name="<array>",
    )


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


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
    fmt = _FORMAT_BY_EXTENSION.get(dest.suffix.lower())
    if fmt is None:
        supported = ", ".join(sorted(SUPPORTED_EXTENSIONS))
        raise ImageError(
            f"'{dest}' has an unsupported image extension {dest.suffix or '(none)'!r}; use one of {supported}"
        )
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth!r}")
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"quality must be in 1..100, got {quality!r}")
    rgb = _check_samples(rgb, "rgb", 3)
    height, width = rgb.shape[:2]
    if alpha is not None:
        alpha = _check_samples(alpha, "alpha", 1)
        if alpha.ndim == 3:
            alpha = alpha[..., 0]
        if alpha.shape != (height, width):
            raise ValueError(f"alpha shape {alpha.shape} does not match rgb shape {rgb.shape}")
    if icc_profile is not None:
        icc_profile = bytes(icc_profile)
        space = _icc_space(icc_profile)
        if space is None:
            raise ValueError("icc_profile is not a valid ICC profile (too short)")
        if space != b"RGB ":
            raise ValueError(f"icc_profile is for colour space {space!r}, not RGB")
    exif_block = _reset_exif_orientation(_with_exif_header(bytes(exif))) if exif else None

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
            _write_png16, pixels=pixels, exif=exif_block, icc=icc_profile
        )
    elif deep:
        if exif_block is not None:
            warnings.warn(f"'{dest}': EXIF cannot be stored in a 16-bit TIFF; it is dropped", stacklevel=2)
        encode = functools.partial(_write_tiff16, pixels=pixels, icc=icc_profile)
    else:
        params: dict[str, Any] = {}
        if fmt in ("JPEG", "WEBP"):
            params["quality"] = int(quality)
        if fmt == "PNG":
            params["compress_level"] = _PNG_COMPRESS_LEVEL
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
        raise ValueError(f"{what} must be shaped {expected} with H, W > 0, got {arr.shape}")
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


def _png_chunk(fh: IO[bytes], kind: bytes, data: bytes | memoryview) -> None:
    fh.write(struct.pack(">I", len(data)))
    fh.write(kind)
    fh.write(data)
    fh.write(struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)) & 0xFFFFFFFF))


def _paeth_filter(rows: np.ndarray, prev: np.ndarray | None, bpp: int) -> np.ndarray:
    """PNG Paeth filter, vectorised.

    Args:
        rows: ``(n, N)`` uint8, consecutive scanlines of raw bytes.
        prev: ``(N,)`` uint8, the scanline just above ``rows[0]`` (``None`` at the top).
        bpp: bytes per complete pixel (the filter's left-neighbour distance).

    Returns:
        ``(n, N + 1)`` uint8: filter-type byte 4 followed by the filtered bytes, per row.
    """
    x = rows.astype(np.int16)
    b = np.empty_like(x)  # above
    b[0] = 0 if prev is None else prev
    b[1:] = x[:-1]
    a = np.zeros_like(x)  # left
    a[:, bpp:] = x[:, :-bpp]
    c = np.zeros_like(x)  # above-left
    c[:, bpp:] = b[:, :-bpp]
    pa = np.abs(b - c)
    pb = np.abs(a - c)
    pc = np.abs(a + b - 2 * c)
    pred = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
    out = np.empty((rows.shape[0], rows.shape[1] + 1), dtype=np.uint8)
    out[:, 0] = 4
    out[:, 1:] = (x - pred).astype(np.uint8)  # wraps modulo 256 as PNG requires
    return out


def _write_png16(fh: IO[bytes], *, pixels: np.ndarray, exif: bytes | None, icc: bytes | None) -> None:
    """Encode ``(H, W, 3|4)`` uint16 as a 16-bit RGB/RGBA PNG (Pillow cannot write these).

    Rows are filtered and compressed in blocks of about ``_PNG16_BLOCK_BYTES`` so memory stays
    bounded for large images; IDAT chunks hold at most ``_PNG_IDAT_BYTES`` each.
    """
    height, width, channels = pixels.shape
    row_bytes = width * channels * 2
    fh.write(b"\x89PNG\r\n\x1a\n")
    color_type = 2 if channels == 3 else 6
    _png_chunk(fh, b"IHDR", struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0))
    if icc is not None:
        _png_chunk(fh, b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc))
    if exif is not None:
        body = exif[len(_EXIF_HEADER) :] if exif.startswith(_EXIF_HEADER) else exif
        _png_chunk(fh, b"eXIf", body)
    compressor = zlib.compressobj(_PNG_COMPRESS_LEVEL)
    pending = bytearray()
    prev: np.ndarray | None = None
    block = max(1, _PNG16_BLOCK_BYTES // row_bytes)
    for top in range(0, height, block):
        rows = pixels[top : top + block].astype(">u2").view(np.uint8).reshape(-1, row_bytes)
        pending += compressor.compress(_paeth_filter(rows, prev, 2 * channels))
        prev = rows[-1]
        while len(pending) >= _PNG_IDAT_BYTES:
            _png_chunk(fh, b"IDAT", bytes(pending[:_PNG_IDAT_BYTES]))
            del pending[:_PNG_IDAT_BYTES]
    pending += compressor.flush()
    for start in range(0, len(pending), _PNG_IDAT_BYTES):
        _png_chunk(fh, b"IDAT", bytes(pending[start : start + _PNG_IDAT_BYTES]))
    _png_chunk(fh, b"IEND", b"")


def _write_tiff16(fh: IO[bytes], *, pixels: np.ndarray, icc: bytes | None) -> None:
    """Encode ``(H, W, 3|4)`` uint16 as a deflate-compressed 16-bit RGB(A) TIFF."""
    import tifffile

    tifffile.imwrite(
        fh,
        pixels,
        photometric="rgb",
        planarconfig="contig",
        extrasamples=("unassalpha",) if pixels.shape[2] == 4 else None,
        compression="zlib",
        predictor=True,
        iccprofile=icc,
        metadata=None,
    )


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
