"""The full-resolution pipeline: sizes, the L channel, alpha, and the Python API."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import tinct
from tinct.color import lightness
from tinct.pipeline import Colorizer, _resize_rows, render_shape

from conftest import make_photo


@pytest.fixture(scope="module")
def colorizer(tiny_model_path):
    return Colorizer(tiny_model_path, render_size=64)


def _L(rgb_u8: np.ndarray) -> torch.Tensor:
    return lightness(torch.from_numpy(np.array(rgb_u8)).permute(2, 0, 1).float().div(255)[None])


@pytest.mark.parametrize("shape", [(1, 1), (7, 1000), (1000, 7), (3000, 4000)])
def test_output_size_equals_input_size(colorizer, shape):
    gray = np.full(shape, 128, np.uint8)
    gray[: shape[0] // 2] = 60
    out = colorizer.colorize(gray).to_pil()
    assert out.size == (shape[1], shape[0])


def test_output_keeps_the_input_lightness(colorizer):
    # A gray photo and a color photo: both are colorized from their own L, which the output keeps.
    # Measured: max |L_out - L_in| = 0.38 for 8-bit output (quantisation), 0.02 before quantising.
    for rgb in (np.repeat(make_photo(90, 120, 5).mean(2, keepdims=True).astype(np.uint8), 3, 2), make_photo(90, 120, 6)):
        res = colorizer.colorize(rgb)
        L_in = _L(rgb)
        L_float = lightness(torch.from_numpy(res.rgb).permute(2, 0, 1)[None])
        assert (L_float - L_in).abs().max() < 0.05
        out_u8 = np.asarray(res.to_pil())
        assert (_L(out_u8) - L_in).abs().max() < 0.6


def test_output_is_colored_and_in_gamut(tiny_model_path):
    model = tinct.load_model(tiny_model_path)
    with torch.no_grad():  # push the head towards a saturated color so that fitting to gamut matters
        model.squeeze[-1].bias.zero_()
        model.squeeze[-1].bias[21 * 22 + 21] = 50.0  # bin at (a, b) = (105, 105)
    res = Colorizer(model, render_size=64, method="mode").colorize(np.full((20, 30), 200, np.uint8))
    assert 0.0 <= res.rgb.min() and res.rgb.max() <= 1.0
    assert np.ptp(res.rgb[10, 10]) > 0.05  # not gray
    assert (lightness(torch.from_numpy(res.rgb).permute(2, 0, 1)[None]) - _L(np.full((20, 30, 3), 200, np.uint8))).abs().max() < 0.05


def test_alpha_is_carried_unchanged(colorizer):
    rgba = np.dstack([make_photo(20, 25, 7), np.linspace(0, 255, 20 * 25).reshape(20, 25).astype(np.uint8)])
    out = colorizer.colorize(Image.fromarray(rgba, "RGBA")).to_pil()
    assert out.mode == "RGBA"
    assert np.array_equal(np.asarray(out)[..., 3], rgba[..., 3])


def test_strip_resize_matches_full_bilinear():
    ab = torch.randn(1, 2, 13, 17)
    full = F.interpolate(ab, size=(101, 77), mode="bilinear", align_corners=False)
    parts = torch.cat([_resize_rows(ab, 101, 77, t, min(101, t + 10)) for t in range(0, 101, 10)], dim=2)
    assert torch.allclose(parts, full, atol=1e-5)


def test_render_shape_keeps_aspect():
    assert render_shape(3000, 4000, 384) == (288, 384)
    assert render_shape(7, 1000, 384) == (3, 384)
    assert render_shape(1, 1, 384) == (384, 384)


def test_api_accepts_path_pil_and_array(tiny_model_path, tmp_path):
    arr = make_photo(21, 34, 8)
    p = tmp_path / "x.png"
    Image.fromarray(arr).save(p)
    for src in (p, str(p), Image.fromarray(arr), arr, arr.astype(np.float32) / 255):
        out = tinct.colorize(src, model=tiny_model_path, render_size=64)
        assert isinstance(out, Image.Image) and out.size == (34, 21)


def test_api_bad_input_is_one_clear_error(tiny_model_path, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(tinct.io.ImageError, match="bad.jpg"):
        tinct.colorize(bad, model=tiny_model_path)
    with pytest.raises(ValueError, match="decodes with"):
        Colorizer(tiny_model_path, method="median")
