"""EXIF, ICC and orientation: the metadata tinct reads, carries over and writes back.

* ``LoadedImage.exif`` is the source's raw EXIF block (``b"Exif\\0\\0"`` + TIFF structure)
  with the Orientation value patched to 1 in place (:func:`reset_exif_orientation`), so every
  other byte (maker notes, GPS, thumbnails) survives untouched.  A TIFF's own IFD0 is turned
  into a fresh EXIF block holding only its descriptive tags (:func:`source_exif`).
* The EXIF orientation (:func:`exif_orientation`) is applied to decoded arrays with
  :func:`orient_array`, exactly like ``PIL.ImageOps.exif_transpose``.
* ``LoadedImage.icc_profile`` only ever holds an RGB profile (:func:`icc_space`): grey/CMYK
  profiles do not describe the RGB pixels tinct produces and are dropped (untagged output is
  read as sRGB).
"""

from __future__ import annotations

import struct

import numpy as np
from PIL import Image

EXIF_HEADER = b"Exif\x00\x00"
_ORIENTATION_TAG = 0x0112
# EXIF-worthy TIFF tags kept when a TIFF's own IFD0 is turned into an EXIF block (the rest of a
# TIFF IFD0 describes the pixel layout of that file and must not be copied).
_TIFF_DESCRIPTIVE_TAGS = (270, 271, 272, 274, 282, 283, 296, 305, 306, 315, 33432)
_EXIF_SUB_IFDS = (0x8769, 0x8825)  # Exif IFD, GPS IFD


def exif_orientation(im: Image.Image) -> int:
    """The EXIF orientation (1..8) of ``im``; 1 when it is missing, invalid or unreadable."""
    try:
        value = im.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # noqa: BLE001 - unreadable EXIF means "no orientation", never a failure
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def orient_array(a: np.ndarray, orientation: int) -> np.ndarray:
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


def icc_space(icc: bytes | None) -> bytes | None:
    """The 4-byte colour-space signature of an ICC profile (``b"RGB "``, ``b"GRAY"``, ...)."""
    if not icc or len(icc) < 128:
        return None
    return bytes(icc[16:20])


def with_exif_header(exif: bytes) -> bytes:
    """``exif`` with the ``b"Exif\\0\\0"`` header in front if it starts with a bare TIFF header."""
    if exif.startswith((b"II*\x00", b"MM\x00*")):
        return EXIF_HEADER + exif
    return exif


def reset_exif_orientation(exif: bytes) -> bytes:
    """Return ``exif`` with IFD0's Orientation set to 1, patched in place (no re-encoding).

    Blocks that cannot be parsed are returned unchanged (Pillow could not have read an
    orientation from them either, so the pixels were not rotated).
    """
    start = len(EXIF_HEADER) if exif.startswith(EXIF_HEADER) else 0
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


def source_exif(im: Image.Image) -> bytes | None:
    """The EXIF block to carry to the output, orientation reset to 1 (see LoadedImage)."""
    raw = im.info.get("exif")
    if isinstance(raw, (bytes, bytearray)) and raw:
        return reset_exif_orientation(with_exif_header(bytes(raw)))
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
