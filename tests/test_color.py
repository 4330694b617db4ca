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


def test_lab_to_rgb_matches_kornia():
    """tinct's own Lab -> sRGB (the output path's) equals kornia's, including the dark toe, the
    negative fz clamp and out-of-gamut colors, for single images and batches."""
    from kornia.color import lab_to_rgb as kornia_lab_to_rgb

    g = torch.Generator().manual_seed(5)
    lab = torch.stack([torch.rand(2, 40, 50, generator=g) * 100, torch.randn(2, 40, 50, generator=g) * 60,
                       torch.randn(2, 40, 50, generator=g) * 60], dim=1)
    lab[0, 0, :5] = torch.rand(5, 50, generator=g) * 3  # very dark: the linear toe of f
    for x in (lab, lab[:1], lab.double()):
        for clip in (True, False):
            ours, theirs = color.lab_to_rgb(x, clip=clip), kornia_lab_to_rgb(x, clip=clip)
            inside = ((theirs >= 0) & (theirs <= 1)).all(dim=1, keepdim=True).expand_as(theirs)
            assert (ours - theirs).abs().max() < 5e-5 and (ours - theirs)[inside].abs().max() < 1e-5


def test_lab_to_rgb_matches_kornia_at_the_joins_of_the_two_piece_curves():
    """Both curves are two pieces joined by clamps instead of masks: CIE's f meets its toe at
    L = 8 for gray, and sRGB's gamma meets its linear segment at linear light 0.0031308 (L about
    2.83 for gray). Colors straddling the joins equal kornia's (to 2e-6: kornia's toe slope
    1/7.787 rounds CIE's 3 (6/29)^2; a branch taken wrongly would be 1e-5 off or more)."""
    from kornia.color import lab_to_rgb as kornia_lab_to_rgb

    L = torch.cat([torch.linspace(7.9, 8.1, 2001), torch.linspace(2.7, 2.95, 2001)])
    ab = torch.linspace(-0.3, 0.3, 11)
    lab = torch.stack(torch.meshgrid(L, ab, ab, indexing="ij")).reshape(3, 1, -1)
    ours, theirs = color.lab_to_rgb(lab, clip=False), kornia_lab_to_rgb(lab, clip=False)
    assert (ours - theirs).abs().max() < 2e-6


def test_columns_with_reused_buffers_equal_the_image_conversion():
    """``columns_to_rgb_in_gamut`` writes into ``out`` and works in ``work`` whatever they held."""
    g = torch.Generator().manual_seed(8)
    lab = torch.cat([torch.rand(1, 1, 30, 40, generator=g) * 100, torch.randn(1, 2, 30, 40, generator=g) * 70], dim=1)
    cols = lab[0].reshape(3, -1)
    out, work = torch.full_like(cols, float("nan")), [torch.full_like(cols, float("inf")), torch.rand(cols.shape)]
    got = color.columns_to_rgb_in_gamut(cols, out, work)
    assert got.data_ptr() == out.data_ptr()
    assert torch.equal(got.view(3, 30, 40), color.lab_to_rgb_in_gamut(lab)[0])
    assert torch.equal(cols, lab[0].reshape(3, -1))  # the input is left alone


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
    lab = y.detach().requires_grad_(True)  # and back: the fast output path is not autograd's
    color.lab_to_rgb(lab, clip=False).sum().backward()
    assert lab.grad is not None and torch.isfinite(lab.grad).all()


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


# ---- gamut fitting: the table's step against plain bisection --------------------------------
# HEAD's fitting bisected every out-of-gamut pixel; the table now predicts the step and two
# conversions confirm it. Measured on these colors: the fitted Lab is bit-identical to
# bisection's, sRGB within 1e-7.


def _bisected_rgb(lab: torch.Tensor, iterations: int = 8, tol: float = 1e-4) -> torch.Tensor:
    """Reference: Lab (1,3,H,W) -> sRGB in [0,1], out-of-gamut chroma halved per pixel, as HEAD did."""
    rgb = color.lab_to_rgb(lab, clip=False)
    bad = ((rgb < -tol) | (rgb > 1 + tol)).any(dim=1, keepdim=True)
    lo, hi = torch.zeros_like(lab[:, :1]), torch.ones_like(lab[:, :1])
    for _ in range(iterations):
        mid = (lo + hi) / 2
        trial = color.lab_to_rgb(torch.cat([lab[:, :1], lab[:, 1:] * mid], dim=1), clip=False)
        ok = ((trial >= -tol) & (trial <= 1 + tol)).all(dim=1, keepdim=True)
        lo, hi = torch.where(ok, mid, lo), torch.where(ok, hi, mid)
    fitted = color.lab_to_rgb(torch.cat([lab[:, :1], lab[:, 1:] * lo], dim=1), clip=False)
    return torch.where(bad, fitted, rgb).clamp(0, 1)


def _lch_grid(L: torch.Tensor, hue_deg: torch.Tensor, chroma: torch.Tensor) -> torch.Tensor:
    """Every (L, hue, chroma) combination -> Lab (1,3,len(L),len(hue)*len(chroma))."""
    Lg, hg, cg = torch.meshgrid(L, torch.deg2rad(hue_deg), chroma, indexing="ij")
    return torch.stack([Lg, cg * torch.cos(hg), cg * torch.sin(hg)]).reshape(1, 3, len(L), -1).float()


HARD_COLORS = {
    # every lightness and hue, between the table's rows and columns as well as on them
    "grid": _lch_grid(torch.arange(0, 100.01, 0.5), torch.arange(0, 360, 0.5),
                      torch.tensor([2.0, 10, 25, 50, 80, 110, 140, 180])),
    # where rays from gray leave the gamut and come back (REENTRANT_BOX) and around it
    "yellow cusp": _lch_grid(torch.arange(88, 100.01, 0.2), torch.arange(92, 113, 0.25), torch.arange(20, 170, 10.0)),
    # dark colors: almost all out of gamut (a black scan), and saturated ones at every L
    "dark": _lch_grid(torch.arange(0, 8, 0.25), torch.arange(0, 360, 2.0), torch.tensor([0.5, 1, 2, 4, 8, 16, 40])),
    "saturated": torch.cat([torch.rand(1, 1, 300, 300, generator=torch.Generator().manual_seed(3)) * 100,
                            torch.randn(1, 2, 300, 300, generator=torch.Generator().manual_seed(4)) * 120], dim=1),
}


@pytest.mark.parametrize("lab", HARD_COLORS.values(), ids=HARD_COLORS.keys())
def test_fitting_equals_bisection_and_stays_in_gamut(lab):
    ours = color.lab_to_rgb_in_gamut(lab)
    assert (ours - _bisected_rgb(lab)).abs().max() < 1e-5  # far below 1/255
    raw = color.lab_to_rgb(color.fit_to_gamut(lab), clip=False)
    assert raw.min() >= -1e-4 and raw.max() <= 1 + 1e-4
    assert torch.allclose(color.lab_to_rgb(color.fit_to_gamut(lab)), ours, atol=1e-6)


def test_max_chroma_table_is_the_gamut_boundary():
    table = color.max_chroma_table().double()
    assert table.shape == (101, color.TABLE_HUES + 1) and torch.equal(table[:, 0], table[:, -1])
    L = torch.arange(101, dtype=torch.float64).view(-1, 1).expand_as(table)
    hue = torch.deg2rad(torch.arange(color.TABLE_HUES + 1, dtype=torch.float64) * (360 / color.TABLE_HUES)).expand_as(table)

    def in_gamut(chroma):
        rgb = color.lab_to_rgb(torch.stack([L, chroma * torch.cos(hue), chroma * torch.sin(hue)]), clip=False)
        return ((rgb >= -1e-4) & (rgb <= 1 + 1e-4)).all(dim=0)

    assert in_gamut(table * (1 - 1e-6)).all() and not in_gamut(table + 0.01).any()
    assert 130 < table.max() < 135  # sRGB's most saturated color, its blue at L 32


def _reentrant_rays(L: torch.Tensor, hue_deg: torch.Tensor, chroma_step: float) -> list[tuple[float, float]]:
    """(L, hue) of the rays from gray (chroma 0..200 in ``chroma_step``) that leave the gamut and come back."""
    chroma = torch.arange(0, 200.01, chroma_step)
    found = []
    for lightness in L.tolist():
        h, c = torch.meshgrid(torch.deg2rad(hue_deg), chroma, indexing="ij")
        rgb = color.lab_to_rgb(torch.stack([torch.full_like(h, lightness), c * torch.cos(h), c * torch.sin(h)]), clip=False)
        ok = ((rgb >= -1e-4) & (rgb <= 1 + 1e-4)).all(dim=0)  # (hues, chromas)
        first_out = (~ok).int().argmax(dim=1)
        last_in = ok.shape[1] - 1 - ok.flip(1).int().argmax(dim=1)
        found += [(lightness, float(hue_deg[i])) for i in (last_in > first_out).nonzero().flatten().tolist()]
    return found


def test_rays_from_gray_leave_the_gamut_once_outside_the_reentrant_box():
    """What lets the table's step stand for bisection's: along a ray from gray the in-gamut chromas
    are one interval, except in REENTRANT_BOX (measured: L 91.7..98.4, hue 97.2..107.1 degrees)."""
    (l_lo, l_hi), (h_lo, h_hi) = color.REENTRANT_BOX
    coarse = _reentrant_rays(torch.arange(0, 100.01, 1.0), torch.arange(0, 360, 1.0), 0.5)
    fine = _reentrant_rays(torch.arange(85, 100.01, 0.1), torch.arange(90, 115, 0.1), 0.25)
    assert len(fine) > 100  # the box is not empty
    assert [(L, h) for L, h in coarse + fine if not (l_lo <= L <= l_hi and h_lo <= h <= h_hi)] == []


def test_fitting_passes_nan_through():
    lab = torch.tensor([[50.0, float("nan"), 20.0], [float("nan"), 10.0, 10.0], [50.0, 200.0, 0.0]]).T.reshape(1, 3, 3, 1)
    rgb = color.lab_to_rgb_in_gamut(lab)
    assert torch.isnan(rgb[0, :, :2, 0]).any(dim=0).all() and not torch.isnan(rgb[0, :, 2, 0]).any()
