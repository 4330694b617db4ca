"""tinct.color against scikit-image (the reference) on random colors and the sRGB gamut corners.

Measured max errors (float32): Lab 2e-3 (L, a, b units), RGB round trip 1e-5, YUV vs the seed
004 formulas 1e-5 on the 0..255 scale. The tolerances below leave a little room above those.
"""

import itertools

import numpy as np
import pytest
import torch
from skimage import color as skcolor

from tinct import color

RNG = np.random.default_rng(0)
CORNERS = np.array(list(itertools.product([0.0, 1.0], repeat=3)), dtype=np.float64)  # 8 gamut corners


def _to_t(rgb_n3: np.ndarray) -> torch.Tensor:
    """(N,3) -> (1,3,N,1) float32."""
    return torch.from_numpy(rgb_n3.astype(np.float32)).T.reshape(1, 3, -1, 1)


def _from_t(t: torch.Tensor) -> np.ndarray:
    return t.reshape(3, -1).T.double().numpy()


@pytest.mark.parametrize("rgb", [RNG.random((2000, 3)), CORNERS], ids=["random", "corners"])
def test_rgb_to_lab_matches_skimage(rgb):
    ours = _from_t(color.rgb_to_lab(_to_t(rgb)))
    ref = skcolor.rgb2lab(rgb[None])[0]
    assert np.abs(ours - ref).max() < 5e-3


@pytest.mark.parametrize("rgb", [RNG.random((2000, 3)), CORNERS], ids=["random", "corners"])
def test_lab_round_trip(rgb):
    lab = color.rgb_to_lab(_to_t(rgb))
    back = _from_t(color.lab_to_rgb(lab))
    assert np.abs(back - rgb).max() < 1e-4
    ref = skcolor.lab2rgb(_from_t(lab)[None])[0]
    assert np.abs(back - ref).max() < 1e-3


def test_lightness_matches_full_conversion():
    rgb = _to_t(np.concatenate([RNG.random((2000, 3)), CORNERS]))
    assert torch.allclose(color.lightness(rgb), color.rgb_to_lab(rgb)[:, :1], atol=0.01)


def test_gray_rgb_from_l_inverts_lightness():
    L = torch.linspace(0, 100, 101).view(1, 1, -1, 1)
    g = color.gray_rgb_from_l(L)
    assert torch.allclose(color.lightness(g.expand(1, 3, -1, 1)), L, atol=0.02)


def test_yuv_matches_seed_formulas():
    rgb = np.concatenate([RNG.random((500, 3)), CORNERS])
    R, G, B = (rgb * 255).T
    Y = R * 0.299 + G * 0.587 + B * 0.114
    U = R * -0.168736 + G * -0.331264 + B * 0.5 + 128
    V = R * 0.5 + G * -0.418688 + B * -0.081312 + 128
    ours = _from_t(color.rgb_to_yuv(_to_t(rgb))) * 255
    assert np.abs(ours - np.stack([Y, U, V], 1)).max() < 1e-3
    back = _from_t(color.yuv_to_rgb(color.rgb_to_yuv(_to_t(rgb))))
    assert np.abs(back - rgb).max() < 1e-5


def test_lch_round_trip_and_hue():
    lab = torch.tensor([[50.0, 0.0, 30.0], [60.0, -20.0, 0.0], [70.0, 10.0, 10.0]]).T.reshape(1, 3, 3, 1)
    lch = color.lab_to_lch(lab)
    assert torch.allclose(lch[0, 1, :, 0], torch.tensor([30.0, 20.0, 200**0.5]))
    assert torch.allclose(lch[0, 2, :, 0], torch.tensor([np.pi / 2, np.pi, np.pi / 4]))
    assert torch.allclose(color.lch_to_lab(lch), lab, atol=1e-5)


def test_functions_are_batched_and_differentiable():
    x = torch.rand(2, 4, 3, 5, 6, requires_grad=True)
    y = color.rgb_to_lab(x)
    assert y.shape == x.shape
    y.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_fit_to_gamut_keeps_lightness_and_hue():
    lab = torch.tensor([[50.0, 120.0, 80.0], [90.0, -90.0, 90.0], [30.0, 5.0, 5.0]]).T.reshape(1, 3, 3, 1)
    fitted = color.fit_to_gamut(lab)
    rgb = color.lab_to_rgb(fitted, clip=False)
    assert rgb.min() > -1e-3 and rgb.max() < 1 + 1e-3
    assert torch.equal(fitted[:, 0], lab[:, 0])
    lch_in, lch_out = color.lab_to_lch(lab), color.lab_to_lch(fitted)
    assert torch.allclose(lch_in[:, 2], lch_out[:, 2], atol=1e-4)
    assert torch.equal(fitted[..., 2, :], lab[..., 2, :])  # the in-gamut color is untouched
    assert (lch_out[:, 1, :2] < lch_in[:, 1, :2]).all()


def test_bad_shapes_raise():
    with pytest.raises(ValueError):
        color.rgb_to_lab(torch.rand(2, 4, 4))
    with pytest.raises(TypeError):
        color.rgb_to_lab(np.zeros((3, 2, 2)))


def test_lab_to_rgb_in_gamut_equals_fit_then_convert():
    torch.manual_seed(0)
    lab = torch.cat([torch.rand(1, 1, 9, 11) * 100, torch.randn(1, 2, 9, 11) * 60], dim=1)
    expected = color.lab_to_rgb(color.fit_to_gamut(lab))
    assert torch.allclose(color.lab_to_rgb_in_gamut(lab), expected, atol=1e-5)
