"""Decoding files, bytes, PIL images and numpy arrays into a :class:`LoadedImage`.

Everything that enters tinct goes through :func:`read_image`, which returns a
:class:`LoadedImage` with the pixels in one canonical layout:

* ``pixels``: ``(H, W, 3)`` sRGB-encoded (gamma, not linear) samples with the EXIF orientation
  already applied (the array is upright), kept compact: uint8 0..255 for 8-bit sources (1 byte
  per pixel for grey ones), float32 in [0, 1] for deeper ones.  ``rgb`` gives them as float32 in
  [0, 1] (a conversion of the whole image for 8-bit sources: for small images and tests).
* ``alpha``: ``(H, W)`` float32 in [0, 1], or ``None`` when the source has no transparency.

Design notes
------------
* Files are identified by content, never by extension.  Only JPEG, PNG, TIFF, WebP and BMP are
  accepted; every user-caused failure (missing, empty, not an image, truncated, too large)
  raises :class:`ImageError` with a one-line message naming the file.  The extensions
  (:data:`SUPPORTED_EXTENSIONS`, :func:`is_image_path`) only serve to list files and to pick
  :func:`~tinct.imageio.write_image`'s encoder.
* The pixel cap is checked from the header before decoding (see ``limits``).  Pillow's
  ``DecompressionBombError`` (and the warning, if it gets raised as an error) become
  :class:`ImageError`.
* 16-bit sources keep their precision (see ``deep``).
* Pixel modes: palette, grey, grey+alpha, 1-bit, CMYK, YCbCr, premultiplied and 16-bit/32-bit/
  float grey all end up as RGB (+ alpha).  CMYK is converted to sRGB with LittleCMS
  (``PIL.ImageCms``) when a CMYK ICC profile is embedded, else with Pillow's plain formula.
* EXIF, ICC and orientation handling live in ``metadata``.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import os
import re
import struct
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import UsageError
from .deep import deep_after_load, deep_tiff_layout, tiff_via_tifffile, tile_rawmode, unpremultiply
from .errors import ImageError, label_for, one_line
from .limits import DEFAULT_MAX_PIXELS, check_pixels, pil_allows, pil_header_guard, too_many_pixels
from .metadata import exif_orientation, icc_space, orient_array, source_exif

FORMAT_BY_EXTENSION: dict[str, str] = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
    ".bmp": "BMP",
}
"""Pillow format name for each supported (lower-case) extension."""
SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(FORMAT_BY_EXTENSION)
"""Lower-case file extensions (with the dot) that :func:`write_image` and
:func:`is_image_path` accept."""

# Pillow plugins we let parse untrusted input (the JPEG plugin also yields MPO files).
_PIL_FORMATS = ("JPEG", "PNG", "TIFF", "WEBP", "BMP")
_PRETTY_FORMAT = {"JPEG": "JPEG", "PNG": "PNG", "TIFF": "TIFF", "WEBP": "WebP", "BMP": "BMP"}


@dataclass(eq=False, repr=False)
class LoadedImage:
    """An image decoded into tinct's canonical layout (see the module docstring).

    Attributes:
        pixels: ``(H, W, 3)`` sRGB samples, EXIF orientation applied; read them, never write
            into them.  ``bit_depth == 8``: uint8 0..255, C-contiguous, except that a grey
            source's pixels are one ``(H, W)`` plane seen three times (a read-only broadcast
            view, strides ``(W, 1, 0)``).  ``bit_depth == 16``: float32 in [0, 1], C-contiguous.
            Whole-image code reads them strip by strip (``tinct.pipeline.lightness_of``).
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

    pixels: np.ndarray
    alpha: np.ndarray | None
    bit_depth: int
    exif: bytes | None
    icc_profile: bytes | None
    source_format: str | None
    source_mode: str | None
    name: str

    @property
    def rgb(self) -> np.ndarray:
        """``(H, W, 3)`` float32 in [0, 1], C-contiguous: ``pixels`` as floats.  For 8-bit images
        this is a new array on every access (12 bytes per pixel: 2.2 GB for 180 MP), which
        whole-scan code avoids by reading ``pixels``; for deeper ones it is ``pixels`` itself."""
        return _to_unit(self.pixels) if self.pixels.dtype == np.uint8 else self.pixels

    @property
    def nbytes(self) -> int:
        """Bytes held by ``pixels`` and ``alpha`` (a grey image's one plane counts once)."""
        return sum(_held_bytes(a) for a in (self.pixels, self.alpha) if a is not None)

    def __repr__(self) -> str:
        h, w = self.pixels.shape[:2]
        return (
            f"LoadedImage(name={self.name!r}, size={w}x{h}, alpha={self.alpha is not None}, "
            f"bit_depth={self.bit_depth}, source_format={self.source_format!r}, "
            f"source_mode={self.source_mode!r}, exif={_nbytes(self.exif)}, "
            f"icc_profile={_nbytes(self.icc_profile)})"
        )


def _nbytes(data: bytes | None) -> str:
    return "None" if data is None else f"<{len(data)} bytes>"


def _held_bytes(arr: np.ndarray) -> int:
    """Bytes of an array's distinct elements: an axis with stride 0 (a broadcast) counts once."""
    return arr.itemsize * math.prod(n for n, stride in zip(arr.shape, arr.strides) if stride != 0)


def is_image_path(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` has one of :data:`SUPPORTED_EXTENSIONS` (case-insensitive).

    Only the name is looked at; use :func:`read_image` to find out what a file really holds.
    """
    return Path(path).suffix.lower() in SUPPORTED_EXTENSIONS


def read_image(
    source: str | os.PathLike[str] | bytes | Image.Image | np.ndarray,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> LoadedImage:
    """Decode ``source`` into a :class:`LoadedImage` (pixels ``(H, W, 3)``, uint8 or float32).

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


def _open_file(name: str) -> IO[bytes]:
    label = label_for(name)
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


@contextlib.contextmanager
def _decode_errors(label: str, max_pixels: int, sniffed: str | None) -> Iterator[None]:
    """Translate Pillow's parse/decode exceptions into one-line :class:`ImageError`s."""
    try:
        yield
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        raise too_many_pixels(label, int(found[1]) if found else None, max_pixels) from exc
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
        raise ImageError(f"{label} is truncated or corrupt ({one_line(exc)})") from exc


def _read_stream(fh: IO[bytes], name: str, max_pixels: int) -> LoadedImage:
    label = label_for(name)
    sniffed = _sniff(fh.read(16))
    fh.seek(0)
    with _decode_errors(label, max_pixels, sniffed), pil_header_guard(max_pixels):
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
    label = label_for(name)
    pixels = check_pixels(im.size, label, max_pixels)
    rawmode = tile_rawmode(im)  # the tile list is gone after load()
    tiff = deep_tiff_layout(im) if fh is not None else None
    deep: np.ndarray | None = None
    tifffile_error: BaseException | None = None
    if tiff is not None and fh is not None:
        width, height = im.size
        try:
            deep = tiff_via_tifffile(fh, (height, width, tiff[0]))
        except Exception as exc:  # noqa: BLE001 - e.g. LZW needs imagecodecs; Pillow takes over
            tifffile_error = exc
    if deep is None:
        with _decode_errors(label, max_pixels, sniffed), pil_allows(pixels):
            im.load()  # forces lazy decoding here, so truncation is reported as ImageError
        if fh is not None:
            deep = deep_after_load(im, rawmode, fh, label, pixels, tifffile_error)
    orientation = exif_orientation(im)
    exif = source_exif(im)
    icc = im.info.get("icc_profile") or None
    fmt, mode = im.format, im.mode

    if deep is not None:
        pixels, alpha = _split_channels(orient_array(deep, orientation), _to_unit)
        if tiff is not None and tiff[1] == 1 and alpha is not None:  # premultiplied alpha
            unpremultiply(pixels, alpha)
        bit_depth = 16
    else:
        if orientation != 1:
            im = ImageOps.exif_transpose(im)
        pixels, alpha, bit_depth = _pil_to_pixels(im, icc, label)

    return LoadedImage(
        pixels=pixels,
        alpha=alpha,
        bit_depth=bit_depth,
        exif=exif,
        icc_profile=icc if icc_space(icc) == b"RGB " else None,
        source_format=fmt,
        source_mode=mode,
        name=name,
    )


# ---- PIL image -> pixel arrays -------------------------------------------------------------

_DIRECT_MODES = ("L", "LA", "RGB", "RGBA", "1")
_DEEP_GREY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
_SIMPLE_CONVERSIONS = {"La": "LA", "RGBa": "RGBA", "PA": "RGBA", "RGBX": "RGB", "YCbCr": "RGB"}


@functools.cache
def _srgb_profile() -> Any:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _cmyk_to_rgb(im: Image.Image, icc: bytes | None, label: str) -> Image.Image:
    if icc_space(icc) == b"CMYK":
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
                f"{label}: embedded CMYK ICC profile is unusable ({one_line(exc)}); using a plain CMYK->RGB conversion",
                RuntimeWarning,
                stacklevel=6,
            )
    return im.convert("RGB")


def _palette_has_alpha(im: Image.Image) -> bool:
    if "transparency" in im.info:
        return True
    palette = im.palette
    return palette is not None and palette.mode == "RGBA"


def _pil_to_pixels(im: Image.Image, icc: bytes | None, label: str) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Loaded, upright PIL image -> (pixels (H,W,3) u8 or f32, alpha (H,W) f32 | None, bit_depth)."""
    mode = im.mode
    if mode in _DEEP_GREY_MODES:
        arr = np.asarray(im)
        pixels, _ = _split_channels(arr, _to_unit)
        alpha = None
        key = im.info.get("transparency")
        if mode != "F" and isinstance(key, int):
            alpha = (arr != key).astype(np.float32)
        return pixels, alpha, 16

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
    pixels, alpha = _split_channels(np.asarray(im), _to_uint8)
    return pixels, alpha, 8


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
    raise UsageError(f"unsupported sample dtype {arr.dtype}")


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """8-bit samples (uint8, or bool as 0/255) -> C-contiguous uint8, ``arr`` itself if it is one."""
    if arr.dtype.kind == "b":
        return arr.astype(np.uint8) * np.uint8(255)
    return np.ascontiguousarray(arr, dtype=np.uint8)


def _grey_pixels(grey: np.ndarray) -> np.ndarray:
    """``(H, W)`` samples -> ``(H, W, 3)`` pixels: uint8 as a read-only view of the one plane
    (no copy), float32 as three contiguous copies (writable, as the deep path needs)."""
    if grey.dtype == np.uint8:
        return np.broadcast_to(grey[:, :, None], (*grey.shape, 3))
    return np.repeat(grey[:, :, None], 3, axis=2)


def _split_channels(arr: np.ndarray, to_samples: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
    """``(H, W)`` or ``(H, W, C)`` samples, C in 1..4 (grey, grey+alpha, RGB, RGBA) -> (pixels
    ``(H, W, 3)`` as ``to_samples`` makes them (``_to_uint8`` or ``_to_unit``), alpha ``(H, W)``
    float32 in [0, 1] or None)."""
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        return _grey_pixels(to_samples(arr)), None
    channels = arr.shape[2]
    if channels == 2:
        return _grey_pixels(to_samples(arr[..., 0])), _to_unit(arr[..., 1])
    if channels == 3:
        return to_samples(arr), None
    if channels == 4:
        return to_samples(arr[..., :3]), _to_unit(arr[..., 3])
    raise UsageError(f"unsupported channel count {channels}")


def _read_array(arr: np.ndarray) -> LoadedImage:
    ok_dtype = arr.dtype.kind in "bf" or arr.dtype in (np.uint8, np.uint16)
    if not ok_dtype:
        raise UsageError(f"unsupported array dtype {arr.dtype}; expected uint8, uint16, bool or float in [0, 1]")
    ok_shape = arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (1, 2, 3, 4))
    if not ok_shape or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise UsageError(
            f"unsupported array shape {arr.shape}; expected (H, W), (H, W, 1), (H, W, 2), "
            "(H, W, 3) or (H, W, 4) with H, W > 0"
        )
    eight_bit = arr.dtype.kind == "b" or arr.dtype == np.uint8
    if arr.dtype == np.uint8:
        arr = arr.copy()  # uint8 samples are kept as they are: never alias the caller's array
    pixels, alpha = _split_channels(arr, _to_uint8 if eight_bit else _to_unit)
    return LoadedImage(
        pixels=pixels,
        alpha=alpha,
        bit_depth=8 if eight_bit else 16,
        exif=None,
        icc_profile=None,
        source_format=None,
        source_mode=None,
        name="<array>",
    )
