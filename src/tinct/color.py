"""Color-space conversions used everywhere in tinct (training, inference, evaluation).

All functions are pure, batched and differentiable torch functions on tensors shaped
``(*, 3, H, W)`` (channel axis at -3), except three tables built once per process and shared (do
not modify them): ``srgb8_to_linear``, ``gray8_to_lightness`` and ``max_chroma_table`` (gamut fitting).  Ranges:

* sRGB: float in [0, 1], gamma-encoded (IEC 61966-2-1 companding).
* CIE Lab (D65 white, 2 degree observer): L in [0, 100], a and b roughly [-110, 110] for
  colors inside the sRGB gamut.
* LCh: L in [0, 100], C = hypot(a, b) >= 0, h = atan2(b, a) in radians, (-pi, pi].
* YUV: exactly seed 004's formulas on the 0..255 scale:
  ``Y = .299 R + .587 G + .114 B``, ``U = -.168736 R - .331264 G + .5 B + 128``,
  ``V = .5 R - .418688 G - .081312 B + 128``; here R, G, B are sRGB in [0, 1] and Y, U, V
  are returned divided by 255, so all three lie in [0, 1] (U = V = 0.5 means no color).

sRGB -> Lab uses kornia's well-tested implementation (imported on first use: photos to
colorize never need it). Lab -> sRGB, on every output pixel, is
written here with kornia's constants for speed (tests pin it to kornia's within 1e-5 inside
the gamut, 5e-5 far outside it). YUV and LCh are small enough to own.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence

import torch

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
    "lightness_of_linear",
    "srgb_to_linear",
    "srgb8_to_linear",
    "gray8_to_lightness",
    "max_chroma_table",
    "fit_to_gamut",
    "lab_to_rgb_in_gamut",
    "columns_to_rgb_in_gamut",
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
    from kornia.color import rgb_to_lab as kornia_rgb_to_lab  # here: importing kornia costs 0.15 s

    return kornia_rgb_to_lab(rgb)


def lab_to_rgb(lab: torch.Tensor, clip: bool = True) -> torch.Tensor:
    """CIE Lab (*,3,H,W) -> sRGB (*,3,H,W); with ``clip`` the result is clamped to [0,1].

    Clamping in sRGB is how out-of-gamut (L, a, b) triples are brought back into the gamut.
    """
    _check(lab)
    if torch.is_grad_enabled() and lab.requires_grad:  # autograd records: kornia's out-of-place version
        from kornia.color import lab_to_rgb as kornia_lab_to_rgb

        return kornia_lab_to_rgb(lab, clip=clip)
    rgb = _uncolumns(_cols_to_rgb(_columns(lab)), lab)
    return rgb.clamp_(0.0, 1.0) if clip else rgb


# CIE Lab -> sRGB with kornia's constants (D65 white, its XYZ -> linear RGB matrix with the
# white folded in; CIE's exact toe slope 3 (6/29)^2 where kornia rounds it to 1/7.787), written
# for the full-resolution output path: three columns (3,N), in-place steps and no masks, a 256K-
# pixel strip in 3.6 ms against 7.2 ms for the masked version and more for kornia's; equal to
# kornia's within 1e-5 for colors inside the gamut, within 5e-5 far outside it (float32 rounding
# of larger values).
_D65_WHITE = (0.95047, 1.0, 1.08883)
_RGB_FROM_XYZ = torch.tensor([[3.2404813432005266, -1.5371515162713185, -0.4985363261688878],
                              [-0.9692549499965682, 1.8759900014898907, 0.0415559265582928],
                              [0.0556466391351772, -0.2040413383665112, 1.0573110696453443]],
                             dtype=torch.float64) * torch.tensor(_D65_WHITE, dtype=torch.float64)


_DELTA = 6.0 / 29.0  # where CIE's f(t) = t^(1/3) meets its linear toe
_LINEAR_BELOW = 0.0031308  # sRGB companding: 12.92 x below this, 1.055 x^(1/2.4) - 0.055 above
# XYZ / white = max(f, DELTA)^3 + 3 DELTA^2 (min(f, DELTA) - DELTA): f^3 above DELTA, the
# toe (the tangent of f^3 at DELTA) below it; the constant -3 DELTA^3 rides in the matrix product.
_TOE_OFFSET = -3 * _DELTA**3 * _RGB_FROM_XYZ.sum(dim=1, keepdim=True)  # (3,1)


def _cols_to_rgb(lab: torch.Tensor, out: torch.Tensor | None = None,
                 work: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
    """Lab columns (3,N) -> sRGB columns (3,N), unclipped, written into ``out`` (a new tensor when
    None; not ``lab``). ``work``, two (3,N) tensors it overwrites, is its working memory
    (allocated when None): with both given nothing is allocated, which matters strip after strip
    at full resolution (a fresh buffer of a few MB costs its page faults). The two-piece curves
    are evaluated with clamps instead of masks (``torch.where`` on a bool mask costs as much as
    ten arithmetic passes). In place, so not for autograd: ``lab_to_rgb`` hands gradients to
    kornia's version."""
    L, a, b = lab
    out = torch.empty_like(lab) if out is None else out
    f, step = torch.empty((2, *lab.shape), dtype=lab.dtype, device=lab.device) if work is None else work
    fy = torch.add(L, 16.0, out=f[1]).div_(116.0)
    torch.add(fy, a, alpha=1 / 500, out=f[0])
    torch.sub(fy, b, alpha=1 / 200, out=f[2]).clamp_(min=0.0)
    cube = torch.clamp(f, min=_DELTA, out=out).pow_(3)
    xyz = torch.add(cube, f.clamp_(max=_DELTA), alpha=3 * _DELTA**2, out=out)
    lin = torch.addmm(_TOE_OFFSET.to(lab), _RGB_FROM_XYZ.to(lab), xyz, out=f)
    # 12.92 lin at or below _LINEAR_BELOW, the gamma curve above: lerp between them by a 0/1 step;
    # pow(1/2.4) as exp(log / 2.4), 5x faster
    torch.sub(lin, _LINEAR_BELOW, out=step).sign_().clamp_(min=0.0)
    gamma = torch.clamp(lin, min=_LINEAR_BELOW, out=out).log_().mul_(1 / 2.4).exp_().mul_(1.055).sub_(0.055)
    return torch.lerp(lin.mul_(12.92), gamma, step, out=out)


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


def srgb_to_linear(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0,1] -> linear light in [0,1] (IEC 61966-2-1 companding undone), elementwise, any shape."""
    return torch.where(rgb > 0.04045, ((rgb.clamp_min(0.0) + 0.055) / 1.055) ** 2.4, rgb / 12.92)


@functools.cache
def srgb8_to_linear() -> torch.Tensor:
    """(256,) float32: ``srgb_to_linear`` of the 8-bit samples 0..255 (as ``k / 255``), for lookups."""
    return srgb_to_linear(torch.arange(256, dtype=torch.float32) / 255)


@functools.cache
def gray8_to_lightness() -> torch.Tensor:
    """(256,) float32: the Lab L of the gray sRGB colors (k, k, k) / 255, k = 0..255, for lookups."""
    lin = srgb8_to_linear()
    return lightness_of_linear(lin.view(1, 1, 256).expand(3, 1, 256)).view(256)


def lightness(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB (*,3,H,W) in [0,1] -> Lab lightness L (*,1,H,W) in [0,100], without computing a, b.

    L depends only on the luminance Y = 0.2126 R + 0.7152 G + 0.0722 B of the linearised
    channels, so this is about three times cheaper than ``rgb_to_lab`` at full resolution.
    """
    _check(rgb)
    return lightness_of_linear(srgb_to_linear(rgb))


def lightness_of_linear(lin: torch.Tensor) -> torch.Tensor:
    """Linear RGB (*,3,H,W) (``srgb_to_linear``) -> Lab lightness L (*,1,H,W) in [0,100]."""
    w = torch.tensor([0.2126, 0.7152, 0.0722], dtype=lin.dtype, device=lin.device)
    y = torch.einsum("c,...chw->...hw", w, lin).unsqueeze(-3)
    return _l_from_y(y)


def _l_from_y(y: torch.Tensor) -> torch.Tensor:
    eps = (6.0 / 29.0) ** 3
    cube_root = y.clamp_min(eps).log().mul_(1.0 / 3.0).exp_()  # as ** (1/3) within 2e-7, several times faster
    f = torch.where(y > eps, cube_root, y / (3 * (6.0 / 29.0) ** 2) + 4.0 / 29.0)
    return 116.0 * f - 16.0


# ---- fitting into the sRGB gamut ----------------------------------------------------------
# A Lab color is in gamut when its sRGB channels lie in [-GAMUT_TOLERANCE, 1 + GAMUT_TOLERANCE].
# An out-of-gamut color keeps L and hue and gets its chroma scaled by k / 2**iterations, the
# factor that ``iterations`` halvings of [0, 1] find (``_bisect_scale``). Along a ray from gray
# the gamut is one interval, so that factor is the last step in gamut: the table of the largest
# in-gamut chroma per (L, hue) predicts k, two conversions (step k in gamut, step k + 1 not)
# confirm it, and the few colors it does not settle are bisected. Near the yellow cusp a ray
# can leave the gamut and enter it again (measured: L 91.7..98.4, hue 97.2..107.1 degrees); there
# the factor depends on bisection's path, so colors in REENTRANT_BOX are always bisected.
GAMUT_TOLERANCE = 1e-4
TABLE_HUES = 360  # hue columns of max_chroma_table, one per degree (plus the first one repeated)
_TABLE_LOCK = threading.Lock()  # one thread builds max_chroma_table; the others wait for it
REENTRANT_BOX = ((90.0, float("inf")), (95.0, 110.0))  # (L range, hue range in degrees)


def _in_gamut(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB (3,*) -> (*) bool: every channel within [-GAMUT_TOLERANCE, 1 + GAMUT_TOLERANCE] (NaN is not)."""
    return (rgb.amin(dim=0) >= -GAMUT_TOLERANCE) & (rgb.amax(dim=0) <= 1 + GAMUT_TOLERANCE)


def _scale_chroma(lab: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Lab columns (3,N) and chroma factors (N,) -> Lab (3,N) with a, b multiplied."""
    return torch.cat([lab[:1], lab[1:] * scale], dim=0)


def _bisect_scale(lab: torch.Tensor, iterations: int) -> torch.Tensor:
    """Lab columns (3,N), out of gamut -> (N,) the chroma factor ``iterations`` halvings of [0, 1] find."""
    lo = torch.zeros(lab.shape[1], dtype=lab.dtype, device=lab.device)
    hi = torch.ones_like(lo)
    for _ in range(iterations):
        mid = (lo + hi) / 2
        ok = _in_gamut(_cols_to_rgb(_scale_chroma(lab, mid)))
        lo = torch.where(ok, mid, lo)
        hi = torch.where(ok, hi, mid)
    return lo


def max_chroma_table() -> torch.Tensor:
    """(101, TABLE_HUES + 1) float32: the largest in-gamut chroma at L = 0, 1, ..., 100 (rows) and
    hue = 0, 1, ..., 360 degrees (columns; the last repeats the first), found by 40 halvings of
    [0, 200] in float64. Built once per process (about 0.1 s; ``start_max_chroma_table``
    builds it on another thread while a model loads)."""
    with _TABLE_LOCK:
        return _max_chroma_table()


@functools.cache
def _max_chroma_table() -> torch.Tensor:
    L = torch.arange(101, dtype=torch.float64).view(-1, 1).expand(101, TABLE_HUES + 1)
    hue = torch.deg2rad(torch.arange(TABLE_HUES + 1, dtype=torch.float64) * (360 / TABLE_HUES)).expand_as(L)
    widest = torch.stack([L, 200.0 * torch.cos(hue), 200.0 * torch.sin(hue)]).reshape(3, -1)
    return (_bisect_scale(widest, 40) * 200.0).view(L.shape).float()


def start_max_chroma_table() -> None:
    """Start building ``max_chroma_table`` on a background thread unless it is built: for callers
    that load a model meanwhile (``Colorizer``), so that the first photo does not wait for it."""
    if not _max_chroma_table.cache_info().currsize:
        # not a daemon: the interpreter must not finalize while it runs PyTorch code (that aborts)
        threading.Thread(target=max_chroma_table, name="tinct-gamut-table").start()


def _table_scale(lab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Lab columns (3,N) -> (estimated largest in-gamut chroma factor (N,), trusted (N,) bool).

    The estimate is ``max_chroma_table`` bilinearly interpolated at each color's (L, hue), over
    its chroma; it may be a little off near the cusps. Colors in REENTRANT_BOX are not trusted.
    """
    table = max_chroma_table().to(lab.device).flatten()
    L, a, b = lab.float()
    hue = torch.atan2(b, a).rad2deg_()
    hue = torch.where(hue < 0, hue + 360, hue)  # [0, 360]
    (l_lo, l_hi), (h_lo, h_hi) = REENTRANT_BOX
    trusted = ~((L >= l_lo) & (L <= l_hi) & (hue >= h_lo) & (hue <= h_hi))
    row, col = L.clamp(0.0, 99.999), hue.mul_(TABLE_HUES / 360)
    row0, col0 = row.floor(), col.floor().clamp_(max=TABLE_HUES - 1)
    i = (row0 * (TABLE_HUES + 1) + col0).long().clamp_(0, 99 * (TABLE_HUES + 1) + TABLE_HUES - 1)  # NaN stays inside
    col_t = col.sub_(col0)
    lower = table.take(i).lerp_(table.take(i + 1), col_t)
    upper = table.take(i + TABLE_HUES + 1).lerp_(table.take(i + TABLE_HUES + 2), col_t)
    chroma = lower.lerp_(upper, row.sub_(row0))
    return chroma.div_(torch.hypot(a, b).clamp_min_(1e-12)).to(lab.dtype), trusted


def _fit_scale(lab: torch.Tensor, iterations: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Lab columns (3,N), out of gamut -> (chroma factors (N,), their sRGB (3,N) unclipped): the
    factors ``_bisect_scale`` finds, predicted by the table and checked with two conversions."""
    steps = 2**iterations
    estimate, trusted = _table_scale(lab)
    k = estimate.mul_(steps).floor_().clamp_(0, steps - 1)
    scale = k / steps
    rgb = _cols_to_rgb(_scale_chroma(lab, scale))
    next_out = ~_in_gamut(_cols_to_rgb(_scale_chroma(lab, (k + 1) / steps))) | (k == steps - 1)
    unsettled = (~(trusted & _in_gamut(rgb) & next_out)).nonzero().squeeze(1)
    if unsettled.numel():
        rest = lab.index_select(1, unsettled)
        found = _bisect_scale(rest, iterations)
        scale.index_copy_(0, unsettled, found)
        rgb.index_copy_(1, unsettled, _cols_to_rgb(_scale_chroma(rest, found)))
    return scale, rgb


def _columns(x: torch.Tensor) -> torch.Tensor:
    """(*,3,H,W) -> (3,P) columns, P = all pixels: a view for a single image, else a copy."""
    return x.movedim(-3, 0).reshape(3, -1)


def _uncolumns(cols: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(3,P) columns -> (*,3,H,W) shaped like ``like`` (the inverse of ``_columns``)."""
    return cols.view(like.movedim(-3, 0).shape).movedim(0, -3)


def _fit(lab: torch.Tensor, iterations: int, out: torch.Tensor | None = None,
         work: Sequence[torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Lab columns (3,P) -> (sRGB columns (3,P) unclipped of the fitted colors, in ``out`` when
    given, indices (N,) of the out-of-gamut pixels, their chroma factors (N,)). ``out`` and
    ``work`` as ``_cols_to_rgb``."""
    rgb = _cols_to_rgb(lab, out, work)
    bad = (~_in_gamut(rgb)).nonzero().squeeze(1)
    if not bad.numel():
        return rgb, bad, lab.new_empty(0)
    scale, fixed = _fit_scale(lab.index_select(1, bad), iterations)
    rgb.index_copy_(1, bad, fixed)
    return rgb, bad, scale


def fit_to_gamut(lab: torch.Tensor, iterations: int = 8) -> torch.Tensor:
    """Bring Lab colors (*,3,H,W) into the sRGB gamut by scaling chroma, keeping L and hue.

    Clipping RGB (the usual way) changes the lightness of saturated colors; here each
    out-of-gamut pixel's (a, b) is shrunk towards gray by the largest factor k / 2**iterations
    that is in gamut (within 0.4% of the largest in-gamut chroma for 8 iterations), which is
    what bisection finds. In-gamut pixels are untouched. Returns a new Lab tensor.
    """
    _check(lab)
    _, bad, scale = _fit(_columns(lab), iterations)
    out = _columns(lab).clone()
    out[1:].index_copy_(1, bad, out[1:].index_select(1, bad) * scale)
    return _uncolumns(out, lab)


def lab_to_rgb_in_gamut(lab: torch.Tensor, iterations: int = 8) -> torch.Tensor:
    """``lab_to_rgb(fit_to_gamut(lab))`` in one pass: (*,3,H,W) Lab -> sRGB in [0,1].

    Converts every pixel once and redoes only the out-of-gamut ones.
    """
    _check(lab)
    return _uncolumns(_fit(_columns(lab), iterations)[0].clamp_(0.0, 1.0), lab)


def columns_to_rgb_in_gamut(lab: torch.Tensor, out: torch.Tensor, work: Sequence[torch.Tensor] | None = None,
                            iterations: int = 8) -> torch.Tensor:
    """``lab_to_rgb_in_gamut`` of Lab columns (3,N), written into ``out`` (3,N) and returned.

    For callers that convert a big image strip by strip: ``work``, two (3,N) tensors reused from strip to
    strip, is the only working memory it needs besides a few (N,) masks and the out-of-gamut
    pixels' fitting (``Colorizer.compose``).
    """
    return _fit(lab, iterations, out, work)[0].clamp_(0.0, 1.0)
