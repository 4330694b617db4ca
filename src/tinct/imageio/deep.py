"""16-bit samples that Pillow truncates or cannot write: full-precision decoding and encoding.

Reading.  Pillow decodes 16-bit grey PNG/TIFF natively (mode ``I;16``) but truncates
16-bit-per-channel RGB(A) to 8 bits, so:

- PNG: the image is decoded a second time by Pillow with the unpacker of the opposite byte
  order (``RGB;16L`` instead of ``RGB;16B``), which yields the low bytes; high and low bytes
  are combined with numpy.  16-bit grey+alpha PNGs are re-decoded with the byte-copying
  ``RGBA`` unpacker (same 4 bytes per pixel).  Both passes are Pillow's C decoder, so
  interlacing and all PNG filters are handled (:func:`deep_after_load`).
- TIFF: read with ``tifffile`` (handles planar layouts and deflate/LZMA/none,
  :func:`tiff_via_tifffile`), falling back to the byte-order trick above for codecs
  ``tifffile`` cannot decode without ``imagecodecs`` (e.g. LZW).

If both fail, the 8-bit data is used and a warning is emitted.

Writing.  Pillow cannot write 16-bit RGB(A): :func:`write_png16` is tinct's own vectorised,
streaming PNG encoder, and :func:`write_tiff16` writes deflate+predictor TIFFs with
``tifffile``.
"""

from __future__ import annotations

import struct
import sys
import warnings
import zlib
from typing import IO, Any

import numpy as np
from PIL import Image

from ..errors import UsageError
from .errors import one_line
from .limits import pil_allows
from .metadata import EXIF_HEADER

# zlib level for PNG output: ~2.5x faster than Pillow's default 6 on photos, <1% larger files.
PNG_COMPRESS_LEVEL = 4
_PNG16_BLOCK_BYTES = 1 << 22  # raw bytes filtered per step by the 16-bit PNG writer
_PNG_IDAT_BYTES = 1 << 20


# ---- reading 16-bit sources Pillow would truncate -----------------------------------------


def _tile_with_rawmode(tile: Any, rawmode: str) -> Any:
    args = tile[3]
    new_args = (rawmode, *args[1:]) if isinstance(args, tuple) else rawmode
    if hasattr(tile, "_replace"):
        return tile._replace(args=new_args)
    return (tile[0], tile[1], tile[2], new_args)


def tile_rawmode(im: Image.Image) -> str | None:
    """The Pillow rawmode of ``im``'s first tile (read it before ``load()``, which drops tiles)."""
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
    with pil_allows(pixels):
        im = Image.open(fh, formats=(fmt,))
        im.tile = [_tile_with_rawmode(t, rawmode) for t in im.tile]
        im.load()
    return np.asarray(im)


def deep_tiff_layout(im: Image.Image) -> tuple[int, int] | None:
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


def deep_after_load(
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


def tiff_via_tifffile(fh: IO[bytes], shape: tuple[int, int, int]) -> np.ndarray:
    """The first page of the TIFF in ``fh`` as ``(H, W, C)`` uint16, read with ``tifffile``;
    raises if ``tifffile`` cannot decode it or the data is not ``shape`` uint16."""
    import tifffile  # optional dependency (ships with scikit-image); imported lazily

    fh.seek(0)
    with tifffile.TiffFile(fh) as tif:
        page = tif.pages[0]
        data = page.asarray()
        axes = page.axes
    if axes == "SYX":
        data = np.moveaxis(data, 0, -1)
    elif axes != "YXS":
        raise UsageError(f"unexpected TIFF axes {axes!r}")
    if data.shape != shape or data.dtype.kind != "u" or data.dtype.itemsize != 2:
        raise UsageError(f"unexpected TIFF data {data.shape} {data.dtype}")
    return data


def _warn_8bit(label: str, exc: BaseException) -> None:
    warnings.warn(
        f"{label}: could not read the 16-bit samples at full precision ({one_line(exc)}); using 8 bits",
        RuntimeWarning,
        stacklevel=6,
    )


def unpremultiply(rgb: np.ndarray, alpha: np.ndarray) -> None:
    """Undo premultiplied alpha in place: ``rgb /= alpha`` where alpha > 0, clipped to [0, 1]."""
    a = alpha[..., None]
    np.divide(rgb, a, out=rgb, where=a > 0)
    np.clip(rgb, 0.0, 1.0, out=rgb)


# ---- writing 16-bit RGB(A), which Pillow cannot encode ------------------------------------


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


def write_png16(fh: IO[bytes], *, pixels: np.ndarray, exif: bytes | None, icc: bytes | None) -> None:
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
        body = exif[len(EXIF_HEADER) :] if exif.startswith(EXIF_HEADER) else exif
        _png_chunk(fh, b"eXIf", body)
    compressor = zlib.compressobj(PNG_COMPRESS_LEVEL)
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


def write_tiff16(fh: IO[bytes], *, pixels: np.ndarray, icc: bytes | None) -> None:
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
