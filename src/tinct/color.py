"""Color-space conversions used everywhere in tinct (training, inference, evaluation).

All functions are pure, batched and differentiable torch functions on tensors shaped
``(*, 3, H, W)`` (channel axis at -3).  Ranges:

* sRGB: float in [0, 1], gamma-encoded (IEC 61966-2-1 companding).
* CIE Lab (D65 white, 2 degree observer): L in [0, 100], a and b roughly [-110, 110] for
  colors inside the sRGB gamut.
* LCh: L in [0, 100], C = hypot(a, b) >= 0, h = atan2(b, a) in radians, (-pi, pi].
* YUV: exactly seed 004's formulas on the 0..255 scale:
  ``Y = .299 R + .587 G + .114 B``, ``U = -.168736 R - .331264 G + .5 B + 128``,
  ``V = .5 R - .418688 G - .081312 B + 128``; here R, G, B are sRGB in [0, 1] and Y, U, V
  are returned divided by 255, so all three lie in [0, 1] (U = V = 0.5 means no color).

Lab uses kornia's well-tested implementation; YUV and LCh are small enough to own.
"""

from __future__ import annotations

import torch
from kornia.color import lab_to_rgb as _kornia_lab_to_rgb
from kornia.color import rgb_to_lab as _kornia_rgb_to_lab

from .errors import UsageError

__all__ = [
    "rgb_to_lab",
    "lab_to_rgb",
    "lab_to_lch",
    "lch_to_lab",
    "rgb_to_yuv",
    "yuv_to_rgb",
    "gray_rgb_from_l",
    "l_to_unit",
    "lightness",
    "fit_to_gamut",
    "lab_to_rgb_in_gamut",
]

_YUV_FROM_RGB = torch.tensor(
    [
        [0.299000, 0.587000, 0.114000],
        [-0.168736, -0.331264, 0.500000],
        [0.500000, -0.418688, -0.081312],
    ],
    dtype=torch.float64,
)
_RGB_FROM_YUV = torch.linalg.inv(_YUV_FROM_RGB)
_YUV_OFFSET = torch.tensor([0.0, 128.0 / 255.0, 128.0 / 255.0], dtype=torch.float64)


def _check(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 3 or x.shape[-3] != 3:
        raise UsageError(f"expected a tensor shaped (*, 3, H, W), got {tuple(x.shape)}")


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB (*,3,H,W) in [0,1] -> CIE Lab (*,3,H,W): L in [0,100], a,b about [-110,110]."""
    _check(rgb)
    return _kornia_rgb_to_lab(rgb)


def lab_to_rgb(lab: torch.Tensor, clip: bool = True) -> torch.Tensor:
    """CIE Lab (*,3,H,W) -> sRGB (*,3,H,W); with ``clip`` the result is clamped to [0,1].

    Clamping in sRGB is how out-of-gamut (L, a, b) triples are brought back into the gamut.
    """
    _check(lab)
    return _kornia_lab_to_rgb(lab, clip=clip)


def lab_to_lch(lab: torch.Tensor) -> torch.Tensor:
    """Lab (*,3,H,W) -> LCh (*,3,H,W): chroma C = |(a,b)|, hue h = atan2(b,a) in (-pi,pi]."""
    _check(lab)
    L, a, b = lab.unbind(-3)
    return torch.stack([L, torch.hypot(a, b), torch.atan2(b, a)], dim=-3)


def lch_to_lab(lch: torch.Tensor) -> torch.Tensor:
    """LCh (*,3,H,W) (hue in radians) -> Lab (*,3,H,W)."""
    _check(lch)
    L, C, h = lch.unbind(-3)
    return torch.stack([L, C * torch.cos(h), C * torch.sin(h)], dim=-3)


def _apply_matrix(x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    m = matrix.to(dtype=x.dtype, device=x.device)
    return torch.einsum("ij,...jhw->...ihw", m, x)


def rgb_to_yuv(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB (*,3,H,W) in [0,1] -> YUV (*,3,H,W) in [0,1] with seed 004's formulas (/255)."""
    _check(rgb)
    offset = _YUV_OFFSET.to(dtype=rgb.dtype, device=rgb.device).view(3, 1, 1)
    return _apply_matrix(rgb, _YUV_FROM_RGB) + offset


def yuv_to_rgb(yuv: torch.Tensor, clip: bool = True) -> torch.Tensor:
    """YUV (*,3,H,W) in [0,1] (seed 004, /255) -> sRGB (*,3,H,W), clamped to [0,1] by default."""
    _check(yuv)
    offset = _YUV_OFFSET.to(dtype=yuv.dtype, device=yuv.device).view(3, 1, 1)
    rgb = _apply_matrix(yuv - offset, _RGB_FROM_YUV)
    return rgb.clamp(0.0, 1.0) if clip else rgb


def gray_rgb_from_l(L: torch.Tensor) -> torch.Tensor:
    """Lightness (*,1,H,W) in [0,100] -> the neutral sRGB gray (*,1,H,W) in [0,1] it encodes.

    This is the inverse of Lab's L for a = b = 0: Y = f^-1((L+16)/116), then sRGB companding.
    It is what a pretrained RGB network sees when given a black-and-white photo.
    """
    fy = (L + 16.0) / 116.0
    y = torch.where(fy > 6.0 / 29.0, fy**3, (fy - 16.0 / 116.0) * 3.0 * (6.0 / 29.0) ** 2)
    y = y.clamp(0.0, 1.0)
    srgb = torch.where(y > 0.0031308, 1.055 * y.clamp_min(1e-12) ** (1 / 2.4) - 0.055, 12.92 * y)
    return srgb.clamp(0.0, 1.0)


def l_to_unit(L: torch.Tensor) -> torch.Tensor:
    """Lightness in [0,100] -> [-1,1], the input normalisation of the from-scratch networks."""
    return L / 50.0 - 1.0


def lightness(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB (*,3,H,W) in [0,1] -> Lab lightness L (*,1,H,W) in [0,100], without computing a, b.

    L depends only on the luminance Y = 0.2126 R + 0.7152 G + 0.0722 B of the linearised
    channels, so this is about three times cheaper than ``rgb_to_lab`` at full resolution.
    """
    _check(rgb)
    lin = torch.where(rgb > 0.04045, ((rgb.clamp_min(0.0) + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    w = torch.tensor([0.2126, 0.7152, 0.0722], dtype=rgb.dtype, device=rgb.device)
    y = torch.einsum("c,...chw->...hw", w, lin).unsqueeze(-3)
    return _l_from_y(y)


def _l_from_y(y: torch.Tensor) -> torch.Tensor:
    eps = (6.0 / 29.0) ** 3
    f = torch.where(y > eps, y.clamp_min(eps) ** (1.0 / 3.0), y / (3 * (6.0 / 29.0) ** 2) + 4.0 / 29.0)
    return 116.0 * f - 16.0


def _shrink_chroma(sel: torch.Tensor, iterations: int, tol: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Out-of-gamut Lab rows (N,3) -> (fitted Lab (N,3), their sRGB (N,3)) by bisection on chroma."""
    lo = torch.zeros(sel.shape[0], 1, dtype=sel.dtype, device=sel.device)
    hi = torch.ones_like(lo)
    for _ in range(iterations):
        mid = (lo + hi) / 2
        trial = torch.cat([sel[:, :1], sel[:, 1:] * mid], dim=1)
        rgb_t = _kornia_lab_to_rgb(trial.T.reshape(3, -1, 1), clip=False).reshape(3, -1).T
        ok = ((rgb_t >= -tol) & (rgb_t <= 1 + tol)).all(dim=1, keepdim=True)
        lo = torch.where(ok, mid, lo)
        hi = torch.where(ok, hi, mid)
    fitted = torch.cat([sel[:, :1], sel[:, 1:] * lo], dim=1)
    rgb = _kornia_lab_to_rgb(fitted.T.reshape(3, -1, 1), clip=False).reshape(3, -1).T
    return fitted, rgb


def _fit(lab: torch.Tensor, iterations: int) -> tuple[torch.Tensor, torch.Tensor]:
    _check(lab)
    tol = 1e-4
    rgb = _kornia_lab_to_rgb(lab, clip=False)
    bad = ((rgb < -tol) | (rgb > 1 + tol)).any(dim=-3)  # (*,H,W)
    if not bool(bad.any()):
        return lab, rgb
    lab_m, rgb_m = lab.movedim(-3, -1).clone(), rgb.movedim(-3, -1)  # (*,H,W,3) views
    fitted, fixed = _shrink_chroma(lab_m[bad], iterations, tol)
    lab_m[bad] = fitted
    rgb_m[bad] = fixed
    return lab_m.movedim(-1, -3), rgb


def fit_to_gamut(lab: torch.Tensor, iterations: int = 8) -> torch.Tensor:
    """Bring Lab colors (*,3,H,W) into the sRGB gamut by scaling chroma, keeping L and hue.

    Clipping RGB (the usual way) changes the lightness of saturated colors; here each
    out-of-gamut pixel's (a, b) is shrunk towards gray by a factor found by bisection
    (``iterations`` halvings, so within 0.4% of the largest in-gamut chroma). In-gamut pixels
    are untouched. Returns a new Lab tensor.
    """
    return _fit(lab, iterations)[0]


def lab_to_rgb_in_gamut(lab: torch.Tensor, iterations: int = 8) -> torch.Tensor:
    """``lab_to_rgb(fit_to_gamut(lab))`` in one pass: (*,3,H,W) Lab -> sRGB in [0,1].

    Converts every pixel once and redoes only the out-of-gamut ones.
    """
    return _fit(lab, iterations)[1].clamp_(0.0, 1.0)
