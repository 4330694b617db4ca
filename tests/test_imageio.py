"""Tests for tinct.imageio: decoding every supported format/mode, metadata, errors, caps, atomic writes.

All images are synthesised in tmp_path; no external data is used.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageFile, ImageOps

from tinct import imageio as tio
from tinct.imageio import (
    DEFAULT_MAX_PIXELS,
    SUPPORTED_EXTENSIONS,
    ImageError,
    LoadedImage,
    is_image_path,
    read_image,
    write_image,
)
from tinct.imageio import deep as tio_deep
from tinct.imageio import metadata as tio_metadata
from tinct.imageio import read as tio_read
from tinct.imageio import write as tio_write

RNG = np.random.default_rng(1234)
ORIENTATION = 0x0112
MAKE = 0x010F


# ---- helpers -------------------------------------------------------------------------------


def pattern(h: int = 24, w: int = 32) -> np.ndarray:
    """Deterministic (H, W, 3) uint8 image with distinct values per channel."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([(x * 7) % 256, (y * 11) % 256, (x * 3 + y * 5) % 256], axis=2).astype(np.uint8)


def smooth(h: int = 48, w: int = 64) -> np.ndarray:
    """Smooth (H, W, 3) float32 image in [0, 1] (compresses well with lossy codecs)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([x / (w - 1), y / (h - 1), 0.5 + 0.25 * np.sin(x / 9)], axis=2).astype(np.float32)


def u8(x: np.ndarray) -> np.ndarray:
    return np.round(x * 255).astype(np.uint8)


def u16(x: np.ndarray) -> np.ndarray:
    return np.round(x.astype(np.float64) * 65535).astype(np.uint16)


def srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def make_exif(orientation: int | None = None, make: str = "tinct-test-camera") -> bytes:
    exif = Image.Exif()
    exif[MAKE] = make
    if orientation is not None:
        exif[ORIENTATION] = orientation
    exif.get_ifd(0x8769)[0x9003] = "2021:02:03 04:05:06"  # DateTimeOriginal in the Exif IFD
    return exif.tobytes()


def parse_exif(raw: bytes) -> Image.Exif:
    exif = Image.Exif()
    exif.load(raw)
    return exif


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def png16(arr: np.ndarray, *, interlace: bool = False, exif: bytes | None = None, trns: bytes | None = None) -> bytes:
    """Independent 16-bit PNG encoder for tests (filter 'Sub' or none, optional Adam7)."""
    h, w, c = arr.shape
    color_type = {2: 4, 3: 2, 4: 6}[c]
    big = arr.astype(">u2")
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    rows = []
    for x0, y0, dx, dy in passes:
        sub = big[y0::dy, x0::dx]
        if sub.size == 0:
            continue
        raw = sub.view(np.uint8).reshape(sub.shape[0], -1)
        filtered = raw.copy()
        bpp = 2 * c
        filtered[:, bpp:] = raw[:, bpp:] - raw[:, :-bpp]  # Sub filter (type 1), wraps mod 256
        rows.append(np.concatenate([np.ones((raw.shape[0], 1), np.uint8), filtered], axis=1).tobytes())
    out = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, int(interlace)))
    if exif is not None:
        out += png_chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif)
    if trns is not None:
        out += png_chunk(b"tRNS", trns)
    return out + png_chunk(b"IDAT", zlib.compress(b"".join(rows))) + png_chunk(b"IEND", b"")


def cmyk_profile_to_constant_lab(lightness: float = 50.0) -> bytes:
    """A minimal valid ICC v2 CMYK output profile whose A2B0 maps every colour to Lab(L, 0, 0).

    Lets the test tell a real ICC transform (uniform grey) from Pillow's plain CMYK formula.
    """

    def s15(v: float) -> bytes:
        return struct.pack(">i", round(v * 65536))

    d50 = s15(0.9642) + s15(1.0) + s15(0.8249)
    text = b"tinct test CMYK\x00"
    desc = b"desc" + bytes(4) + struct.pack(">I", len(text)) + text + bytes(4 + 4 + 2 + 1 + 67)
    cprt = b"text" + bytes(4) + b"public domain\x00"
    wtpt = b"XYZ " + bytes(4) + d50
    identity = bytes(range(256))
    lab = bytes([round(lightness / 100 * 255), 128, 128])
    lut = b"mft1" + bytes(4) + bytes([4, 3, 2, 0])  # 4 inputs, 3 outputs, 2 grid points
    lut += b"".join(s15(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
    lut += identity * 4 + lab * 2**4 + identity * 3
    tags = [(b"desc", desc), (b"wtpt", wtpt), (b"cprt", cprt), (b"A2B0", lut)]
    table, body = struct.pack(">I", len(tags)), b""
    start = 128 + 4 + 12 * len(tags)
    for sig, data in tags:
        table += sig + struct.pack(">II", start + len(body), len(data))
        body += data + bytes(-len(data) % 4)
    size = 128 + len(table) + len(body)
    header = (
        struct.pack(">I", size) + bytes(4) + bytes([2, 0x10, 0, 0]) + b"prtr" + b"CMYK" + b"Lab "
        + bytes(12) + b"acsp" + bytes(4 * 4 + 8 + 4) + d50 + bytes(4 + 16 + 28)
    )  # fmt: skip
    assert len(header) == 128
    return header + table + body


def save_pil(im: Image.Image, path: Path, **params: object) -> Path:
    im.save(path, **params)
    return path


def leftovers(directory: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name not in keep)


# ---- basic API -----------------------------------------------------------------------------


def test_public_constants() -> None:
    assert DEFAULT_MAX_PIXELS == 100_000_000
    assert SUPPORTED_EXTENSIONS == frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp"})


@pytest.mark.parametrize(
    ("path", "expected"),
    [("a.jpg", True), ("A.JPEG", True), ("x/y.Png", True), ("t.TIFF", True), ("w.webp", True), ("b.BMP", True),
     ("t.tif", True), ("n.gif", False), ("n.txt", False), ("png", False), (".png", False), ("a.png.bak", False)],
)  # fmt: skip
def test_is_image_path(path: str, expected: bool) -> None:
    assert is_image_path(path) is expected
    assert is_image_path(Path(path)) is expected


def test_loaded_image_repr_is_short() -> None:
    img = read_image(np.zeros((300, 400, 3), np.uint8))
    text = repr(img)
    assert "400x300" in text and len(text) < 300


# ---- round trips per format ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("ext", "fmt", "tol"),
    [(".png", "PNG", 0), (".tif", "TIFF", 0), (".tiff", "TIFF", 0), (".bmp", "BMP", 0),
     (".jpg", "JPEG", 12), (".jpeg", "JPEG", 12), (".webp", "WEBP", 12)],
)  # fmt: skip
def test_rgb_round_trip_each_format(tmp_path: Path, ext: str, fmt: str, tol: int) -> None:
    src = smooth()
    out = write_image(tmp_path / f"img{ext}", src)
    assert out == tmp_path / f"img{ext}" and out.is_file()
    img = read_image(out)
    assert isinstance(img, LoadedImage)
    assert img.rgb.shape == src.shape and img.rgb.dtype == np.float32 and img.rgb.flags.c_contiguous
    assert 0.0 <= img.rgb.min() and img.rgb.max() <= 1.0
    assert img.alpha is None and img.bit_depth == 8
    assert img.source_format == fmt and img.source_mode == "RGB" and img.name == str(out)
    diff = np.abs(u8(img.rgb).astype(int) - u8(src).astype(int)).max()
    assert diff <= tol


@pytest.mark.parametrize("ext", [".png", ".tif", ".webp"])
def test_alpha_round_trip(tmp_path: Path, ext: str) -> None:
    rgb = pattern(16, 16)
    alpha = np.arange(256, dtype=np.uint8).reshape(16, 16)  # every 8-bit alpha value
    img = read_image(write_image(tmp_path / f"a{ext}", rgb, alpha))
    assert img.alpha is not None and img.alpha.shape == (16, 16) and img.alpha.dtype == np.float32
    np.testing.assert_array_equal(u8(img.alpha), alpha)
    if ext != ".webp":
        np.testing.assert_array_equal(u8(img.rgb), rgb)


@pytest.mark.parametrize("ext", [".jpg", ".bmp"])
def test_alpha_is_dropped_for_formats_without_it(tmp_path: Path, ext: str) -> None:
    rgb = smooth(16, 16)
    img = read_image(write_image(tmp_path / f"a{ext}", rgb, np.zeros((16, 16), np.float32)))
    assert img.alpha is None
    assert np.abs(img.rgb - rgb).max() < 0.06  # not composited: colours kept under transparent pixels


def test_jpeg_quality_parameter(tmp_path: Path) -> None:
    src = np.clip(smooth(64, 64) + RNG.normal(0, 0.05, (64, 64, 3)), 0, 1)
    low = write_image(tmp_path / "q50.jpg", src, quality=50).stat().st_size
    high = write_image(tmp_path / "q95.jpg", src, quality=95).stat().st_size
    assert low < high


# ---- reading modes -------------------------------------------------------------------------


def test_read_grey_l(tmp_path: Path) -> None:
    grey = pattern()[..., 0]
    img = read_image(save_pil(Image.fromarray(grey, "L"), tmp_path / "g.png"))
    assert img.source_mode == "L" and img.bit_depth == 8 and img.alpha is None
    assert img.rgb.shape == (*grey.shape, 3)
    for c in range(3):
        np.testing.assert_array_equal(u8(img.rgb[..., c]), grey)


def test_read_grey_alpha_la(tmp_path: Path) -> None:
    grey, alpha = pattern()[..., 0], pattern()[..., 1]
    im = Image.fromarray(np.stack([grey, alpha], axis=2), "LA")
    img = read_image(save_pil(im, tmp_path / "la.png"))
    assert img.source_mode == "LA"
    np.testing.assert_array_equal(u8(img.rgb[..., 1]), grey)
    np.testing.assert_array_equal(u8(img.alpha), alpha)


def test_read_rgba_alpha_exact(tmp_path: Path) -> None:
    rgba = np.concatenate([pattern(), RNG.integers(0, 256, (24, 32, 1), dtype=np.uint8)], axis=2)
    img = read_image(save_pil(Image.fromarray(rgba, "RGBA"), tmp_path / "rgba.png"))
    assert img.source_mode == "RGBA"
    np.testing.assert_array_equal(u8(img.rgb), rgba[..., :3])
    np.testing.assert_array_equal(u8(img.alpha), rgba[..., 3])


def test_read_palette_with_and_without_transparency(tmp_path: Path) -> None:
    index = (np.arange(24 * 32).reshape(24, 32) % 4).astype(np.uint8)
    palette = [255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30]
    im = Image.fromarray(index, "P")
    im.putpalette(palette)
    plain = read_image(save_pil(im, tmp_path / "p.png"))
    assert plain.source_mode == "P" and plain.alpha is None
    np.testing.assert_array_equal(u8(plain.rgb[0, 3]), [10, 20, 30])

    transparent = read_image(save_pil(im, tmp_path / "pt.png", transparency=1))
    assert transparent.alpha is not None
    np.testing.assert_array_equal(transparent.alpha, (index != 1).astype(np.float32))
    np.testing.assert_array_equal(u8(transparent.rgb[0, 0]), [255, 0, 0])


def test_read_bilevel(tmp_path: Path) -> None:
    bits = (pattern()[..., 0] > 100).astype(np.uint8) * 255
    im = Image.fromarray(bits, "L").convert("1")
    for name in ("b.png", "b.tif", "b.bmp"):
        img = read_image(save_pil(im, tmp_path / name))
        assert img.source_mode == "1" and img.bit_depth == 8
        np.testing.assert_array_equal(img.rgb[..., 2], bits / 255.0)


def test_read_grey_png_with_trns_key(tmp_path: Path) -> None:
    grey = pattern()[..., 0]
    img = read_image(save_pil(Image.fromarray(grey, "L"), tmp_path / "k.png", transparency=int(grey[0, 0])))
    np.testing.assert_array_equal(img.alpha, (grey != grey[0, 0]).astype(np.float32))


def test_read_rgb_png_with_trns_colour_key(tmp_path: Path) -> None:
    rgb = pattern()
    key = tuple(int(v) for v in rgb[0, 0])
    img = read_image(save_pil(Image.fromarray(rgb), tmp_path / "k.png", transparency=key))
    assert img.alpha is not None
    expected = np.any(rgb != np.array(key), axis=2).astype(np.float32)
    np.testing.assert_array_equal(img.alpha, expected)


def test_read_cmyk_jpeg_without_profile_uses_plain_conversion(tmp_path: Path) -> None:
    cmyk = Image.fromarray(RNG.integers(0, 256, (16, 16, 4), dtype=np.uint8), "CMYK")
    path = save_pil(cmyk, tmp_path / "c.jpg", quality=100)
    img = read_image(path)
    assert img.source_mode == "CMYK" and img.source_format == "JPEG" and img.icc_profile is None
    with Image.open(path) as reread:
        expected = np.asarray(reread.convert("RGB"))
    np.testing.assert_array_equal(u8(img.rgb), expected)


def test_read_cmyk_jpeg_with_embedded_profile_uses_icc_transform(tmp_path: Path) -> None:
    profile = cmyk_profile_to_constant_lab(50.0)
    cmyk = Image.fromarray(RNG.integers(0, 256, (16, 16, 4), dtype=np.uint8), "CMYK")
    path = save_pil(cmyk, tmp_path / "c.jpg", quality=95, icc_profile=profile)
    img = read_image(path)
    # The profile maps every ink combination to one grey, so the ICC path gives a uniform image
    # (the plain formula would give varied colours) ...
    assert np.ptp(img.rgb) == 0
    # ... equal to what LittleCMS itself makes of it (perceptual intent, to sRGB).
    with Image.open(path) as im:
        expected = ImageCms.profileToProfile(
            im, ImageCms.ImageCmsProfile(io.BytesIO(profile)), ImageCms.createProfile("sRGB"), outputMode="RGB"
        )
    np.testing.assert_array_equal(u8(img.rgb), np.asarray(expected))
    assert img.icc_profile is None  # a CMYK profile must never be attached to RGB output


def test_read_cmyk_with_broken_profile_falls_back_with_warning(tmp_path: Path) -> None:
    broken = bytearray(cmyk_profile_to_constant_lab())
    broken[128 + 4 :] = bytes(len(broken) - 132)  # wipe the tag table
    cmyk = Image.fromarray(RNG.integers(0, 256, (8, 8, 4), dtype=np.uint8), "CMYK")
    path = save_pil(cmyk, tmp_path / "c.jpg", quality=100, icc_profile=bytes(broken))
    with pytest.warns(RuntimeWarning, match="CMYK ICC profile"):
        img = read_image(path)
    with Image.open(path) as reread:
        np.testing.assert_array_equal(u8(img.rgb), np.asarray(reread.convert("RGB")))


def test_read_16bit_grey_png_full_precision(tmp_path: Path) -> None:
    values = np.array([[0x1234, 0x1235], [0xFF00, 0xFFFF]], dtype=np.uint16)  # differ in the low byte
    path = save_pil(Image.fromarray(values), tmp_path / "g16.png")
    img = read_image(path)
    assert img.bit_depth == 16 and img.source_mode.startswith("I")
    np.testing.assert_array_equal(u16(img.rgb[..., 0]), values)
    assert img.rgb[0, 0, 0] != img.rgb[0, 1, 0]


@pytest.mark.parametrize("interlace", [False, True])
@pytest.mark.parametrize("channels", [2, 3, 4])
def test_read_16bit_colour_png_full_precision(tmp_path: Path, channels: int, interlace: bool) -> None:
    data = RNG.integers(0, 65536, (13, 11, channels), dtype=np.uint16)
    data[0, 0, 0], data[0, 1, 0] = 0x4000, 0x4001  # only the low byte differs
    path = tmp_path / "c16.png"
    path.write_bytes(png16(data, interlace=interlace))
    img = read_image(path)
    assert img.bit_depth == 16 and img.rgb.shape == (13, 11, 3)
    if channels == 2:
        np.testing.assert_array_equal(u16(img.rgb[..., 0]), data[..., 0])
        np.testing.assert_array_equal(u16(img.alpha), data[..., 1])
    else:
        np.testing.assert_array_equal(u16(img.rgb), data[..., :3])
        if channels == 4:
            np.testing.assert_array_equal(u16(img.alpha), data[..., 3])
        else:
            assert img.alpha is None
    assert img.rgb[0, 0, 0] != img.rgb[0, 1, 0]


def test_read_16bit_rgb_png_trns_key(tmp_path: Path) -> None:
    data = RNG.integers(0, 65536, (5, 6, 3), dtype=np.uint16)
    key = data[2, 3]
    path = tmp_path / "t16.png"
    path.write_bytes(png16(data, trns=struct.pack(">HHH", *key.tolist())))
    img = read_image(path)
    expected = np.ones((5, 6), np.float32)
    expected[np.all(data == key, axis=2)] = 0
    np.testing.assert_array_equal(img.alpha, expected)


def _tiff16(path: Path, data: np.ndarray, **kwargs: object) -> Path:
    import tifffile

    extras = {"extrasamples": ["unassalpha"]} if data.shape[2] == 4 else {}
    if kwargs.get("planarconfig") == "separate":
        data = np.moveaxis(data, -1, 0)
    tifffile.imwrite(path, data, photometric="rgb", metadata=None, **extras, **kwargs)
    return path


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"compression": "zlib", "predictor": True}, {"planarconfig": "separate"}, {"byteorder": ">"}],
)
@pytest.mark.parametrize("channels", [3, 4])
def test_read_16bit_tiff_full_precision(tmp_path: Path, channels: int, kwargs: dict) -> None:
    data = RNG.integers(0, 65536, (9, 7, channels), dtype=np.uint16)
    data[0, 0, 1], data[0, 1, 1] = 0x0100, 0x0101
    img = read_image(_tiff16(tmp_path / "c16.tif", data, **kwargs))
    assert img.bit_depth == 16 and img.source_format == "TIFF"
    np.testing.assert_array_equal(u16(img.rgb), data[..., :3])
    if channels == 4:
        np.testing.assert_array_equal(u16(img.alpha), data[..., 3])


@pytest.mark.parametrize("kwargs", [{}, {"compression": "zlib"}, {"byteorder": ">"}])
def test_read_16bit_tiff_when_tifffile_cannot_decode(tmp_path: Path, monkeypatch, kwargs: dict) -> None:
    """E.g. LZW without imagecodecs: Pillow decodes, the low bytes come from a second pass."""

    def unavailable(*args: object, **kw: object) -> None:
        raise KeyError("<COMPRESSION.LZW: 5> requires the 'imagecodecs' package")

    monkeypatch.setattr(tio_read, "tiff_via_tifffile", unavailable)
    data = RNG.integers(0, 65536, (9, 7, 3), dtype=np.uint16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # full precision, so no "using 8 bits" warning
        img = read_image(_tiff16(tmp_path / "c16.tif", data, **kwargs))
    assert img.bit_depth == 16
    np.testing.assert_array_equal(u16(img.rgb), data)


def test_read_16bit_png_falls_back_to_8_bits_with_warning(tmp_path: Path, monkeypatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("unknown raw mode for given image mode")

    monkeypatch.setattr(tio_deep, "_redecode", broken)
    data = RNG.integers(0, 65536, (4, 5, 3), dtype=np.uint16)
    path = tmp_path / "c16.png"
    path.write_bytes(png16(data))
    with pytest.warns(RuntimeWarning, match="8 bits"):
        img = read_image(path)
    assert img.bit_depth == 8
    np.testing.assert_array_equal(u8(img.rgb), (data >> 8).astype(np.uint8))


# ---- orientation and metadata --------------------------------------------------------------


def test_exif_orientation_6_is_applied(tmp_path: Path) -> None:
    stored = np.zeros((40, 60, 3), np.uint8)  # landscape as stored
    stored[:8, :8] = [255, 0, 0]  # red marker in the stored top-left corner
    path = save_pil(Image.fromarray(stored), tmp_path / "o6.jpg", exif=make_exif(orientation=6), quality=95)
    img = read_image(path)
    # Orientation 6: rotate 90 degrees clockwise for display -> portrait, marker top-right.
    assert img.rgb.shape == (60, 40, 3)
    assert np.allclose(img.rgb[2, 37], [1, 0, 0], atol=0.1)
    assert np.allclose(img.rgb[2, 2], [0, 0, 0], atol=0.1)
    assert np.allclose(img.rgb[57, 37], [0, 0, 0], atol=0.1)
    exif = parse_exif(img.exif)
    assert exif[ORIENTATION] == 1 and exif[MAKE] == "tinct-test-camera"
    assert exif.get_ifd(0x8769)[0x9003] == "2021:02:03 04:05:06"


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_16bit_path_matches_pillow(tmp_path: Path, orientation: int) -> None:
    data = RNG.integers(0, 65536, (6, 10, 3), dtype=np.uint16)
    exif = make_exif(orientation=orientation)
    deep_path = tmp_path / "deep.png"
    deep_path.write_bytes(png16(data, exif=exif))
    eight_path = save_pil(Image.fromarray((data >> 8).astype(np.uint8)), tmp_path / "eight.png", exif=exif)
    deep, eight = read_image(deep_path), read_image(eight_path)
    assert deep.bit_depth == 16 and eight.bit_depth == 8
    with Image.open(eight_path) as im:
        expected = np.asarray(ImageOps.exif_transpose(im))
    np.testing.assert_array_equal(u8(eight.rgb), expected)
    np.testing.assert_array_equal((u16(deep.rgb) >> 8).astype(np.uint8), expected)
    assert parse_exif(deep.exif)[ORIENTATION] == 1


@pytest.mark.parametrize("ext", [".jpg", ".png", ".webp", ".tif"])
def test_exif_and_icc_preserved_on_write(tmp_path: Path, ext: str) -> None:
    icc = srgb_icc()
    path = write_image(tmp_path / f"m{ext}", smooth(16, 24), exif=make_exif(orientation=8), icc_profile=icc)
    img = read_image(path)
    assert img.icc_profile == icc
    assert img.exif.startswith(b"Exif\x00\x00")  # one convention, whatever the container
    exif = parse_exif(img.exif)
    assert exif[MAKE] == "tinct-test-camera"
    assert exif.get(ORIENTATION, 1) == 1  # written upright, so never re-rotated
    assert exif.get_ifd(0x8769)[0x9003] == "2021:02:03 04:05:06"
    assert img.rgb.shape == (16, 24, 3)  # the orientation-8 tag was not applied to upright pixels


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_icc_preserved_in_16bit_output(tmp_path: Path, ext: str) -> None:
    icc = srgb_icc()
    img = read_image(write_image(tmp_path / f"m{ext}", smooth(8, 8), icc_profile=icc, bit_depth=16))
    assert img.bit_depth == 16 and img.icc_profile == icc


def test_exif_preserved_in_16bit_png(tmp_path: Path) -> None:
    img = read_image(write_image(tmp_path / "e.png", smooth(8, 8), exif=make_exif(orientation=3), bit_depth=16))
    exif = parse_exif(img.exif)
    assert exif[MAKE] == "tinct-test-camera" and exif[ORIENTATION] == 1
    assert img.rgb.shape == (8, 8, 3)


def test_16bit_tiff_output_warns_that_exif_is_dropped(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="EXIF"):
        img = read_image(write_image(tmp_path / "e.tif", smooth(8, 8), exif=make_exif(), bit_depth=16))
    assert img.bit_depth == 16


def test_exif_round_trip_between_formats(tmp_path: Path) -> None:
    first = read_image(write_image(tmp_path / "a.tif", smooth(8, 8), exif=make_exif(orientation=6)))
    assert first.exif is not None and first.exif.startswith(b"Exif\x00\x00")
    second = read_image(write_image(tmp_path / "b.jpg", first.rgb, exif=first.exif))
    exif = parse_exif(second.exif)
    assert exif[MAKE] == "tinct-test-camera" and exif.get(ORIENTATION, 1) == 1


def test_exif_orientation_patch_keeps_other_bytes() -> None:
    raw = make_exif(orientation=6)
    patched = tio_metadata.reset_exif_orientation(raw)
    assert len(patched) == len(raw) and parse_exif(patched)[ORIENTATION] == 1
    assert sum(a != b for a, b in zip(raw, patched, strict=True)) == 1
    assert tio_metadata.reset_exif_orientation(b"not exif at all") == b"not exif at all"


def test_grey_icc_profile_is_not_carried_to_rgb_output(tmp_path: Path) -> None:
    grey_profile = bytearray(srgb_icc())
    grey_profile[16:20] = b"GRAY"
    path = save_pil(Image.fromarray(pattern()[..., 0], "L"), tmp_path / "g.png", icc_profile=bytes(grey_profile))
    assert read_image(path).icc_profile is None
    with pytest.raises(ValueError, match="RGB"):
        write_image(tmp_path / "out.png", smooth(4, 4), icc_profile=bytes(grey_profile))


# ---- 16-bit writing ------------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_16bit_write_round_trip_exact(tmp_path: Path, ext: str) -> None:
    rgb = RNG.integers(0, 65536, (11, 13, 3), dtype=np.uint16)
    alpha = RNG.integers(0, 65536, (11, 13), dtype=np.uint16)
    path = write_image(tmp_path / f"d{ext}", rgb, alpha, bit_depth=16)
    img = read_image(path)
    assert img.bit_depth == 16
    np.testing.assert_array_equal(u16(img.rgb), rgb)
    np.testing.assert_array_equal(u16(img.alpha), alpha)
    with Image.open(path) as im:  # a standard file other readers understand
        assert im.size == (13, 11) and im.mode == "RGBA"
        im.load()


def test_16bit_png_writer_streams_blocks_and_splits_idat(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(tio_deep, "_PNG16_BLOCK_BYTES", 1)  # one row per filter/compress step
    monkeypatch.setattr(tio_deep, "_PNG_IDAT_BYTES", 100)
    rgb = RNG.integers(0, 65536, (17, 9, 3), dtype=np.uint16)
    path = write_image(tmp_path / "s.png", rgb, bit_depth=16)
    assert path.read_bytes().count(b"IDAT") > 3
    np.testing.assert_array_equal(u16(read_image(path).rgb), rgb)


def test_16bit_write_from_float_keeps_precision(tmp_path: Path) -> None:
    rgb = smooth(32, 32)
    img = read_image(write_image(tmp_path / "f.png", rgb, bit_depth=16))
    assert np.abs(img.rgb - rgb).max() <= 0.5 / 65535 + 1e-7


@pytest.mark.parametrize("ext", [".jpg", ".webp", ".bmp"])
def test_16bit_request_falls_back_to_8bit_for_other_formats(tmp_path: Path, ext: str) -> None:
    assert read_image(write_image(tmp_path / f"x{ext}", smooth(8, 8), bit_depth=16)).bit_depth == 8


def test_write_value_conversions(tmp_path: Path) -> None:
    rgb = np.array([[[-0.5, 0.5, 2.0], [np.nan, 1.0, 0.0]]], dtype=np.float64)
    img = read_image(write_image(tmp_path / "c.png", rgb))
    np.testing.assert_array_equal(u8(img.rgb), [[[0, 128, 255], [0, 255, 0]]])
    as16 = np.array([[[0, 257, 65535]]], dtype=np.uint16)
    np.testing.assert_array_equal(u8(read_image(write_image(tmp_path / "d.png", as16)).rgb), [[[0, 1, 255]]])


def test_write_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="unsupported image extension"):
        write_image(tmp_path / "x.gif", smooth(4, 4))
    with pytest.raises(ImageError, match="unsupported image extension"):
        write_image(tmp_path / "noext", smooth(4, 4))
    with pytest.raises(ValueError, match="H, W, 3"):
        write_image(tmp_path / "x.png", np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="alpha shape"):
        write_image(tmp_path / "x.png", smooth(4, 4), np.zeros((3, 4), np.float32))
    with pytest.raises(TypeError):
        write_image(tmp_path / "x.png", np.zeros((4, 4, 3), np.int32))
    with pytest.raises(ValueError, match="bit_depth"):
        write_image(tmp_path / "x.png", smooth(4, 4), bit_depth=12)
    with pytest.raises(ValueError, match="quality"):
        write_image(tmp_path / "x.jpg", smooth(4, 4), quality=0)
    assert list(tmp_path.iterdir()) == []


# ---- atomic writes -------------------------------------------------------------------------


def test_write_creates_parent_directories(tmp_path: Path) -> None:
    out = write_image(str(tmp_path / "a" / "b" / "c.png"), smooth(4, 4))
    assert out == tmp_path / "a" / "b" / "c.png" and isinstance(out, Path)
    assert read_image(out).rgb.shape == (4, 4, 3)
    assert leftovers(out.parent, {"c.png"}) == []


@pytest.mark.parametrize("exc_type", [OSError, KeyboardInterrupt])
@pytest.mark.parametrize("existing", [False, True])
def test_atomic_write_failure_leaves_nothing_behind(tmp_path: Path, monkeypatch, exc_type, existing: bool) -> None:
    dest = tmp_path / "out.png"
    if existing:
        dest.write_bytes(b"previous content")
    seen: list[str] = []

    def failing_save(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        seen.append(fp.name)
        fp.write(b"\x89PNG\r\n\x1a\n half an image")
        fp.flush()
        assert Path(fp.name).stat().st_size > 0
        raise exc_type("simulated failure in the middle of encoding")

    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(exc_type, match="simulated"):
        write_image(dest, smooth(8, 8))
    assert len(seen) == 1
    tmp = Path(seen[0])
    assert tmp.parent == tmp_path and tmp.name.startswith(".out.png.tmp-")
    assert not tmp.exists()
    if existing:
        assert dest.read_bytes() == b"previous content"
        assert leftovers(tmp_path, {"out.png"}) == []
    else:
        assert not dest.exists() and leftovers(tmp_path, set()) == []


def test_remove_stale_temporaries_removes_only_old_temporaries_of_write_image(tmp_path: Path, monkeypatch) -> None:
    seen: list[str] = []

    def killed_save(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        seen.append(fp.name)
        raise OSError("simulated kill")

    monkeypatch.setattr(Image.Image, "save", killed_save)
    with pytest.raises(OSError):
        write_image(tmp_path / "sub" / "photo.jpg", smooth(8, 8))
    monkeypatch.undo()
    stale = Path(seen[0])
    stale.write_bytes(b"half a JPEG")  # what a process killed at that moment leaves behind
    fresh = tmp_path / ".other.png.tmp-0123abcd"  # being written by a run that started later
    others = [tmp_path / ".photo.jpg.tmp-xyz", tmp_path / "photo.jpg.tmp-0123abcd", tmp_path / "keep.png"]
    for f in [fresh, *others]:
        f.write_bytes(b"x")
    for f, t in [(stale, 1_000), (fresh, 3_000), *((f, 1_000) for f in others)]:
        os.utime(f, (t, t))
    assert tio_write.TEMPORARY_NAME.fullmatch(stale.name)
    assert tio.remove_stale_temporaries(tmp_path, older_than=2_000) == 1
    assert not stale.exists() and fresh.exists() and all(f.exists() for f in others)
    assert tio.remove_stale_temporaries(tmp_path / "missing", older_than=2_000) == 0


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_atomic_write_failure_in_16bit_encoders(tmp_path: Path, monkeypatch, ext: str) -> None:
    import tifffile

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("simulated")

    monkeypatch.setattr(tio_deep, "_paeth_filter", boom)
    monkeypatch.setattr(tifffile, "imwrite", boom)
    dest = tmp_path / f"deep{ext}"
    dest.write_bytes(b"old")
    with pytest.raises(OSError, match="simulated"):
        write_image(dest, smooth(4, 4), bit_depth=16)
    assert dest.read_bytes() == b"old" and leftovers(tmp_path, {dest.name}) == []


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_write_permissions(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    fresh = write_image(tmp_path / "new.png", smooth(4, 4))
    assert fresh.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    existing = tmp_path / "old.png"
    existing.write_bytes(b"x")
    existing.chmod(0o640)
    write_image(existing, smooth(4, 4))
    assert existing.stat().st_mode & 0o777 == 0o640


def test_write_replaces_existing_file(tmp_path: Path) -> None:
    dest = tmp_path / "x.png"
    write_image(dest, np.zeros((4, 4, 3), np.float32))
    write_image(dest, np.ones((4, 4, 3), np.float32))
    assert read_image(dest).rgb.min() == 1.0
    assert leftovers(tmp_path, {"x.png"}) == []


# ---- file errors ---------------------------------------------------------------------------


def _jpeg_bytes() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("make", [_jpeg_bytes, _png_bytes])
@pytest.mark.parametrize("fraction", [0.6, 0.05])
def test_truncated_files(tmp_path: Path, make, fraction: float) -> None:
    data = make()
    path = tmp_path / "cut.img"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ImageError, match="truncated") as info:
        read_image(path)
    assert "cut.img" in str(info.value) and "\n" not in str(info.value)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"  # the extension lies
    path.write_text("this is plain text, not a JPEG\n" * 10)
    with pytest.raises(ImageError, match=r"notes\.jpg' is not an image file \(or an unsupported format\)"):
        read_image(path)


def test_unsupported_format(tmp_path: Path) -> None:
    path = save_pil(Image.fromarray(pattern()), tmp_path / "anim.gif")
    with pytest.raises(ImageError, match="not an image file"):
        read_image(path)


def test_empty_file_and_bytes(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(ImageError, match=r"empty\.png' is empty"):
        read_image(path)
    with pytest.raises(ImageError, match="empty"):
        read_image(b"")


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"nope\.jpg' not found"):
        read_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="directory"):
        read_image(tmp_path)


def test_content_sniffing_ignores_extension(tmp_path: Path) -> None:
    path = tmp_path / "really_a_png.jpg"
    path.write_bytes(_png_bytes())
    assert read_image(path).source_format == "PNG"


def test_read_bytes_and_str_path(tmp_path: Path) -> None:
    data = _png_bytes()
    from_bytes = read_image(data)
    assert from_bytes.name == "<bytes>" and from_bytes.source_format == "PNG"
    path = tmp_path / "x.png"
    path.write_bytes(data)
    np.testing.assert_array_equal(read_image(str(path)).rgb, from_bytes.rgb)
    with pytest.raises(ImageError, match="<bytes> is not an image"):
        read_image(b"GIF? no, garbage")
    with pytest.raises(TypeError):
        read_image(12345)  # type: ignore[arg-type]


# ---- pixel cap -----------------------------------------------------------------------------


def test_pixel_cap_on_real_png(tmp_path: Path) -> None:
    path = save_pil(Image.fromarray(pattern(60, 50)), tmp_path / "small.png")
    with pytest.raises(ImageError, match=r"small\.png' has 3,000 pixels, over the limit of 2,999; raise max_pixels"):
        read_image(path, max_pixels=2999)
    assert read_image(path, max_pixels=3000).rgb.shape == (60, 50, 3)


def _huge_header_png(width: int = 20_000, height: int = 20_000) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\x00" * 100))
        + png_chunk(b"IEND", b"")
    )  # fmt: skip


def test_pixel_cap_rejects_huge_header_before_decoding(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(_huge_header_png())
    assert path.stat().st_size < 300

    def no_decoding(self: ImageFile.ImageFile) -> None:
        raise AssertionError("pixels must not be decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)  # refused from the header alone
    with pytest.raises(ImageError, match=r"has 400,000,000 pixels, over the limit of 100,000,000"):
        read_image(path)
    with pytest.raises(ImageError, match=r"400,000,000 pixels, over the limit of 1,000,000"):
        read_image(path.read_bytes(), max_pixels=1_000_000)


def test_cap_above_pillows_global_limit(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow alone would refuse 64x64 = 4096
    path = save_pil(Image.fromarray(pattern(64, 64)), tmp_path / "p.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no DecompressionBombWarning either
        assert read_image(path).rgb.shape == (64, 64, 3)
        assert read_image(path, max_pixels=4096).rgb.shape == (64, 64, 3)
        tif = save_pil(Image.fromarray(pattern(64, 64)), tmp_path / "p.tif")  # TIFF re-checks on load
        assert read_image(tif, max_pixels=5000).rgb.shape == (64, 64, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # our ImageError only, no redundant Pillow warning
        with pytest.raises(ImageError, match="4,096 pixels, over the limit of 4,095"):
            read_image(path, max_pixels=4095)
    assert Image.MAX_IMAGE_PIXELS == 1000  # restored


def test_cap_below_pillows_global_limit_and_bomb_warning_as_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    path = save_pil(Image.fromarray(pattern(40, 40)), tmp_path / "p.png")  # 1,600 px: Pillow warns
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(ImageError, match="1,600 pixels, over the limit of 500"):
            read_image(path, max_pixels=500)
        with pytest.raises(ImageError, match="1,600 pixels, over the limit of 1,000"):
            read_image(path, max_pixels=1000)
    assert Image.MAX_IMAGE_PIXELS == 1000


def test_concurrent_reads_with_different_caps(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    path = save_pil(Image.fromarray(pattern(64, 64)), tmp_path / "p.png")

    def job(i: int) -> bool:
        if i % 2:
            return read_image(path).rgb.shape == (64, 64, 3)
        try:
            read_image(path, max_pixels=4000)
        except ImageError:
            return True
        return False

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert all(pool.map(job, range(80)))
    assert Image.MAX_IMAGE_PIXELS == 1000


# ---- numpy and PIL inputs ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("array", "bit_depth"),
    [(pattern()[..., 0], 8), (pattern()[..., :1], 8), (pattern(), 8),
     (pattern().astype(np.uint16) * 257, 16), (pattern() / 255.0, 16), (pattern().astype(np.float32) / 255, 16)],
)  # fmt: skip
def test_numpy_inputs(array: np.ndarray, bit_depth: int) -> None:
    img = read_image(array)
    assert img.name == "<array>" and img.bit_depth == bit_depth and img.alpha is None
    assert img.source_format is None and img.source_mode is None and img.exif is None
    assert img.rgb.shape == (24, 32, 3) and img.rgb.dtype == np.float32 and img.rgb.flags.c_contiguous
    expected = pattern()
    if array.ndim == 2 or array.shape[2] == 1:
        expected = np.repeat(expected[..., :1], 3, axis=2)
    np.testing.assert_array_equal(u8(img.rgb), expected)


def test_numpy_rgba_float_is_clipped_and_not_aliased() -> None:
    arr = np.array([[[-1.0, 0.25, 3.0, 0.5], [np.nan, 1.0, 0.0, 2.0]]], dtype=np.float32)
    img = read_image(arr)
    np.testing.assert_array_equal(img.rgb, [[[0.0, 0.25, 1.0], [0.0, 1.0, 0.0]]])
    np.testing.assert_array_equal(img.alpha, [[0.5, 1.0]])
    img.rgb[...] = 0.75
    assert arr[0, 0, 1] == 0.25  # the caller's array is never modified


def test_numpy_grey_alpha_and_bool() -> None:
    la = np.stack([pattern()[..., 0], pattern()[..., 1]], axis=2)
    img = read_image(la)
    np.testing.assert_array_equal(u8(img.alpha), la[..., 1])
    mask = pattern()[..., 0] > 100
    np.testing.assert_array_equal(read_image(mask).rgb[..., 0], mask.astype(np.float32))


def test_8bit_pixels_stay_compact_and_rgb_is_their_float_form(tmp_path: Path) -> None:
    """8-bit sources keep uint8 pixels (3 bytes per pixel, 1 for grey: one plane seen three times);
    ``rgb`` is the same float32 array the reader returned before (samples / 255)."""
    colour = read_image(save_pil(Image.fromarray(pattern()), tmp_path / "c.png"))
    assert colour.pixels.dtype == np.uint8 and colour.pixels.flags.c_contiguous and colour.nbytes == 24 * 32 * 3
    np.testing.assert_array_equal(colour.pixels, pattern())
    grey = read_image(save_pil(Image.fromarray(pattern()[..., 0], "L"), tmp_path / "g.png"))
    assert grey.pixels.shape == (24, 32, 3) and grey.pixels.strides[2] == 0 and grey.nbytes == 24 * 32
    assert not grey.pixels.flags.writeable
    for img in (colour, grey):
        assert img.rgb.dtype == np.float32 and img.rgb.flags.c_contiguous
        np.testing.assert_array_equal(img.rgb, np.divide(img.pixels, 255, dtype=np.float32))
    rgba = read_image(save_pil(Image.fromarray(np.dstack([pattern(), pattern()[..., :1]]), "RGBA"), tmp_path / "a.png"))
    assert rgba.pixels.dtype == np.uint8 and rgba.pixels.flags.c_contiguous and rgba.alpha.dtype == np.float32
    assert rgba.nbytes == 24 * 32 * (3 + 4)


def test_deeper_pixels_are_float32_and_are_rgb(tmp_path: Path) -> None:
    img = read_image(write_image(tmp_path / "d.png", smooth(8, 8), bit_depth=16))
    assert img.bit_depth == 16 and img.pixels.dtype == np.float32 and img.rgb is img.pixels


def test_numpy_uint8_input_is_copied_not_aliased() -> None:
    for arr in (pattern(), pattern()[..., 0]):
        img = read_image(arr)
        arr[...] = 0
        assert img.pixels.max() > 0


@pytest.mark.parametrize(
    "array",
    [np.zeros((4, 4, 5), np.uint8), np.zeros((4,), np.uint8), np.zeros((0, 4, 3), np.uint8),
     np.zeros((4, 4, 3), np.int32), np.zeros((4, 4, 3), np.complex64)],
)  # fmt: skip
def test_numpy_rejects_unsupported(array: np.ndarray) -> None:
    with pytest.raises(ValueError):
        read_image(array)


def test_pil_inputs_of_many_modes() -> None:
    rgb = pattern()
    img = read_image(Image.fromarray(rgb))
    assert img.name == "<image>" and img.source_mode == "RGB" and img.source_format is None
    np.testing.assert_array_equal(u8(img.rgb), rgb)

    i16 = Image.fromarray(np.full((3, 4), 0x1234, np.uint16))
    assert i16.mode.startswith("I;16")
    deep = read_image(i16)
    assert deep.bit_depth == 16 and u16(deep.rgb)[0, 0, 0] == 0x1234

    as_i = Image.fromarray(np.array([[-5, 0x1234, 70000]], np.int32))
    assert as_i.mode == "I"
    np.testing.assert_array_equal(u16(read_image(as_i).rgb[..., 0]), [[0, 0x1234, 65535]])

    as_f = Image.fromarray(np.array([[-0.5, 0.25, 1.5]], np.float32))
    assert as_f.mode == "F"
    np.testing.assert_array_equal(read_image(as_f).rgb[..., 0], [[0.0, 0.25, 1.0]])

    cmyk = Image.new("CMYK", (2, 2), (0, 0, 0, 0))
    np.testing.assert_array_equal(read_image(cmyk).rgb, np.ones((2, 2, 3), np.float32))

    premultiplied = Image.new("RGBA", (2, 2), (100, 50, 20, 128)).convert("RGBa")
    img = read_image(premultiplied)
    assert img.alpha is not None and abs(img.alpha[0, 0] - 128 / 255) < 1e-6

    ycc = Image.fromarray(rgb).convert("YCbCr")
    assert np.abs(u8(read_image(ycc).rgb).astype(int) - rgb).max() <= 3


def test_pil_input_lazy_truncated_and_oriented(tmp_path: Path) -> None:
    data = _jpeg_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with Image.open(path) as lazy, pytest.raises(ImageError, match="truncated"):
        read_image(lazy)

    stored = np.zeros((10, 20, 3), np.uint8)
    oriented = save_pil(Image.fromarray(stored), tmp_path / "o.png", exif=make_exif(orientation=6))
    with Image.open(oriented) as im:
        img = read_image(im)
    assert img.rgb.shape == (20, 10, 3) and img.name == str(oriented)
    with Image.open(oriented) as im:
        with pytest.raises(ImageError, match="200 pixels, over the limit of 100"):
            read_image(im, max_pixels=100)


# ---- reading ahead -------------------------------------------------------------------------
def _photos(tmp_path: Path, sizes: list[tuple[int, int]]) -> list[Path]:
    paths = []
    for i, (h, w) in enumerate(sizes):
        p = tmp_path / f"p{i}.png"
        Image.fromarray(RNG.integers(0, 256, (h, w), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


def test_read_ahead_gives_each_photo_once_as_read_image_decodes_it(tmp_path):
    paths = _photos(tmp_path, [(20, 30), (10, 12), (7, 9)])
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot a png")
    paths.insert(1, tmp_path / "broken.png")
    ahead = tio.ReadAhead(paths)
    ahead.join(10)
    for p in paths:
        if p.name == "broken.png":
            with pytest.raises(ImageError) as want:
                read_image(p)
            with pytest.raises(ImageError) as got:
                ahead.take(p)
            assert str(got.value) == str(want.value)
        else:
            assert np.array_equal(ahead.take(p).pixels, read_image(p).pixels)
        assert ahead.take(p) is None  # taken once
    assert ahead.take(tmp_path / "never-listed.png") is None


def test_read_ahead_stops_at_its_memory_budget_but_always_reads_the_first_photo(tmp_path):
    paths = _photos(tmp_path, [(40, 50), (4, 5), (4, 5)])
    ahead = tio.ReadAhead(paths, budget=100)  # the first photo alone holds 2,000 bytes (gray, 8-bit)
    ahead.join(10)
    assert ahead.take(paths[0]) is not None
    assert ahead.take(paths[1]) is None and ahead.take(paths[2]) is None


def test_read_ahead_counts_the_memory_the_pixels_hold(tmp_path):
    """A gray 8-bit photo holds one plane; 8-bit RGB three; 16-bit RGB three float32 planes."""
    from tinct.imageio.ahead import _bytes

    gray = read_image(np.zeros((10, 20), np.uint8))
    rgb = read_image(np.zeros((10, 20, 3), np.uint8))
    deep = read_image(np.zeros((10, 20, 3), np.uint16))
    assert (_bytes(gray), _bytes(rgb), _bytes(deep)) == (200, 600, 2400)


def test_read_ahead_after_stop_holds_a_prefix_of_the_list(tmp_path):
    paths = _photos(tmp_path, [(30, 30)] * 12)
    ahead = tio.ReadAhead(paths)
    ahead.stop()
    ahead.join(10)
    taken = [ahead.take(p) is not None for p in paths]
    assert taken == sorted(taken, reverse=True)  # decoded in order: read ones first, then none
