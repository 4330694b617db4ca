"""Color hints: a user pins the color of a few points, a hint-conditioned model follows them.

A hint is a point of the original photo and an sRGB color. Only the color's chroma is used
(its a, b in CIE Lab): the lightness of the output is always the photo's own.

    [{"x": 120, "y": 45, "color": "#3050c0"}, ...]   pixel coordinates of the original photo
    [{"x": 0.25, "y": 0.5, "color": "#3050c0"}]      fractions of width and height, when both
                                                      x and y of a hint are <= 1 and either is
                                                      not a whole number (0 and 1 stay pixels
                                                      only with an integer partner > 1)

Networks see hints as a map the size of their input, ``(B,3,H,W)``: channels a and b in Lab
units where a hint lies (0 elsewhere) and a mask (1 where a hint lies). ``render_hints`` draws
user hints into that map; ``simulate_hints`` draws training hints from the true ab, as in
Zhang et al. 2017 ("Real-Time User-Guided Image Colorization with Learned Deep Priors"): a
geometric number of points, each the mean ab of a small square patch, placed at random or
where the photo is colorful, and some photos with no hint at all.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .errors import UsageError

__all__ = ["Hint", "HintError", "hint_list", "parse_hints", "load_hints", "hint_ab", "render_hints", "simulate_hints",
           "HINT_PATCH", "color_hex"]

HINT_PATCH = 5  # side, in network-input pixels, of the square a user hint covers
_HEX = re.compile(r"^#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})$")


class HintError(UsageError):
    """A hint that cannot be used (out of the photo, unparsable color, bad JSON)."""


@dataclass(frozen=True)
class Hint:
    """One pinned color: (x, y) in pixels of the original photo, ``color`` an sRGB hex string."""

    x: float
    y: float
    color: str

    def to_json(self) -> dict[str, Any]:
        return {"x": self.x, "y": self.y, "color": self.color}


def parse_color(text: Any, where: str) -> tuple[int, int, int]:
    """'#3050c0', '3050c0' or '#35c' -> (r, g, b) in 0..255; anything else is a HintError naming ``where``."""
    m = _HEX.match(text.strip()) if isinstance(text, str) else None
    if m is None:
        raise HintError(f"{where}: color {text!r} is not an sRGB hex color such as \"#3050c0\"")
    digits = m.group(1)
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)


def color_hex(rgb: tuple[float, float, float]) -> str:
    """(r, g, b) in [0,1] -> '#rrggbb'."""
    return "#" + "".join(f"{max(0, min(255, round(c * 255))):02x}" for c in rgb)


def hint_list(data: Any) -> list[Any]:
    """JSON text, ``{"hints": [...]}`` or a list -> the list of hint objects, not yet checked one by
    one (that needs the photo's size: ``parse_hints``). HintError when it is not such a list."""
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise HintError(f"hints are not valid JSON: {exc}") from None
    if isinstance(data, dict) and "hints" in data:
        data = data["hints"]
    if not isinstance(data, list):
        raise HintError('hints must be a JSON list such as [{"x": 120, "y": 45, "color": "#3050c0"}]')
    return data


def parse_hints(data: Any, width: int, height: int) -> list[Hint]:
    """JSON text or a decoded list of hint objects -> hints in pixels of a ``width`` x ``height`` photo.

    Raises HintError (one line, naming the hint by its index) for anything that is not a list
    of {"x", "y", "color"} objects inside the photo.
    """
    data = hint_list(data)
    out = []
    for i, item in enumerate(data):
        where = f"hint {i + 1}"
        if not isinstance(item, dict) or not {"x", "y", "color"} <= set(item):
            raise HintError(f'{where}: needs "x", "y" and "color"; got {json.dumps(item)[:80]}')
        x, y = item["x"], item["y"]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (x, y)):
            raise HintError(f"{where}: x and y must be numbers; got x={x!r}, y={y!r}")
        parse_color(item["color"], where)
        if _is_fraction(x, y):
            x, y = x * width, y * height
        if not (0 <= x < width + 0.5 and 0 <= y < height + 0.5):
            raise HintError(f"{where}: ({item['x']}, {item['y']}) is outside the {width}x{height} photo")
        out.append(Hint(float(min(x, width - 1)), float(min(y, height - 1)), str(item["color"]).strip()))
    return out


def _is_fraction(x: float, y: float) -> bool:
    """Both coordinates in [0, 1] and at least one of them not a whole number: fractions of the size."""
    return 0 <= x <= 1 and 0 <= y <= 1 and not (float(x).is_integer() and float(y).is_integer())


def load_hints(path: str | Path, width: int, height: int) -> list[Hint]:
    """A hints JSON file -> hints (HintError naming the file for an unreadable or bad one)."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise HintError(f"cannot read hints file {path}: {exc.strerror if isinstance(exc, OSError) else exc}") from None
    try:
        return parse_hints(text, width, height)
    except HintError as exc:
        raise HintError(f"{path}: {exc}") from None


def hint_ab(color: str) -> tuple[float, float]:
    """An sRGB hex color -> its (a, b) in CIE Lab (D65)."""
    from .color import rgb_to_lab

    r, g, b = parse_color(color, "color")
    lab = rgb_to_lab(torch.tensor([r, g, b], dtype=torch.float32).div(255).view(1, 3, 1, 1))
    return float(lab[0, 1, 0, 0]), float(lab[0, 2, 0, 0])


def render_hints(hints: list[Hint], size: tuple[int, int], photo_size: tuple[int, int],
                 patch: int = HINT_PATCH) -> torch.Tensor:
    """Hints on a photo of ``photo_size`` (H, W) -> the hint map (1,3,h,w) at ``size`` (h, w).

    Each hint covers a ``patch`` x ``patch`` square around its point (clipped at the border);
    channels are a, b (Lab units) and the mask. A later hint overwrites an earlier one.
    """
    h, w = size
    H, W = photo_size
    out = torch.zeros(1, 3, h, w)
    r = patch // 2
    for hint in hints:
        cy = min(h - 1, int((hint.y + 0.5) * h / H))
        cx = min(w - 1, int((hint.x + 0.5) * w / W))
        a, b = hint_ab(hint.color)
        region = (slice(max(0, cy - r), cy + r + 1), slice(max(0, cx - r), cx + r + 1))
        out[0, 0][region], out[0, 1][region], out[0, 2][region] = a, b, 1.0
    return out


def simulate_hints(ab: torch.Tensor, generator: torch.Generator | None = None, count: int | None = None,
                   no_hint_share: float = 0.25, p: float = 0.125, max_hints: int = 64,
                   colorful_share: float = 0.5, patch_sizes: tuple[int, ...] = (1, 3, 5, 7, 9)) -> torch.Tensor:
    """Hints drawn from the true ab (B,2,H,W) -> a hint map (B,3,H,W) (see the module docstring).

    Per image: with probability ``no_hint_share`` none; else a Geometric(``p``) number of points
    (at most ``max_hints``), or exactly ``count`` when given (for benchmarks). Each point is a
    ``patch_sizes`` square (uniform choice) whose mean true ab fills it; a ``colorful_share`` of
    the points are drawn in proportion to the true chroma, the rest uniformly.
    """
    B, _, H, W = ab.shape
    ab = ab.float()
    out = torch.zeros(B, 3, H, W)
    means = {k: torch.nn.functional.avg_pool2d(ab, k, stride=1, padding=k // 2, count_include_pad=False)
             for k in patch_sizes}
    chroma = ab.pow(2).sum(1).sqrt().flatten(1) + 1.0  # (B, H*W); +1 so gray photos still get points
    rand = lambda *shape: torch.rand(*shape, generator=generator)  # noqa: E731
    for i in range(B):
        if count is None:
            if rand(1).item() < no_hint_share:
                continue
            n = min(max_hints, int(math.floor(math.log(1.0 - rand(1).item()) / math.log(1.0 - p))) + 1)
        else:
            n = count
        if n <= 0:
            continue
        colorful = rand(n) < colorful_share
        by_chroma = torch.multinomial(chroma[i], n, replacement=True, generator=generator)
        uniform = torch.randint(0, H * W, (n,), generator=generator)
        where = torch.where(colorful, by_chroma, uniform)
        sizes = torch.randint(0, len(patch_sizes), (n,), generator=generator)
        for idx, s in zip(where.tolist(), sizes.tolist()):
            k = patch_sizes[s]
            y, x = divmod(idx, W)
            r = k // 2
            region = (slice(max(0, y - r), y + r + 1), slice(max(0, x - r), x + r + 1))
            m = means[k][i, :, y, x]
            out[i, 0][region], out[i, 1][region], out[i, 2][region] = m[0], m[1], 1.0
    return out
