"""Small from-scratch CNN baselines (seed 003): a pool/upsample CNN, a transposed-conv CNN, a U-Net.

Seed 003 is the colorization exercise of a university neural-networks course: no pretrained
features, just an encoder-decoder trained from scratch on gray -> color, and figures of the
validation predictions at an early and a late epoch (the trainer writes them: rows gray / truth
/ prediction in ``run_dir/figures/``). Three registered architectures share one shape, so that
they differ only where the seed's networks differ (how they go down, how they come back up and
whether they use skip connections):

* ``"cnn-pool"``: [block -> 2x2 max-pool] on the way down, [2x bilinear upsampling -> block] on
  the way up, no skips.
* ``"cnn-transpose"``: blocks whose first conv has stride 2 on the way down, [2x2 transposed conv
  (stride 2) -> BN -> ReLU -> conv] on the way up, no skips.
* ``"unet"``: max-pool down, transposed conv up, and the encoder map of the same resolution
  concatenated before each decoder block (Ronneberger et al. 2015).

Widths double at each of the ``depth`` downsamplings: ``width * 2**i`` channels at stride
``2**i`` (16, 32, 64, 128, 256 by default). A block is two (3x3 conv -> BatchNorm -> ReLU). The
input is L mapped to [-1, 1] (``color.l_to_unit``); the output is at the input's resolution
(inputs are replicate-padded to a multiple of ``2**depth`` inside ``forward`` and cropped back).

Heads (``head``):

* ``"regression"``: 2 channels -> ab = 110 tanh(y); loss MSE on ab / 110.
* ``"classes"``: logits over a fixed palette of K ab colours (``ring_palette``); loss
  cross-entropy to the palette colour nearest to the true ab (the seed's course exercise
  classifies pixels into 24 k-means colours). Decoded by ``annealed`` (default, Zhang et al.'s
  annealed mean, T = ``temperature``), ``expectation``, ``mode`` (the exercise's argmax) or
  ``sample``; ``confidence`` is 1 - the normalised entropy.

The palette is deterministic instead of k-means-fitted, so that a model needs no data to be
built and every run and rank agrees on it: rings of constant chroma around gray in the ab
plane (``PALETTE_RINGS``: chroma 0, 10, 24, 42, 65, 95 with 1, 6, 8, 10, 10, 8 hues, evenly
spaced from hue 0), keeping the colours that exist in sRGB at some lightness -> K = 34. Rings
are denser near gray because natural images are mostly low-chroma: on near-neutral pixels the
nearest palette colour is 4.7 ab units away on average (a 10-unit square grid, 484 bins, gives
about 3.8). Like Larsson's bin layouts, the palette is derived from code, not saved with the
weights (which store floats in fp16); a changed palette size would fail to load loudly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .. import bins
from ..color import l_to_unit, lab_to_rgb
from ..errors import UsageError
from .base import AB_SCALE, AbRegressionOrGrid, register

__all__ = ["BaselineCNN", "CNNPool", "CNNTranspose", "UNet", "ring_palette", "PALETTE_RINGS"]

PALETTE_RINGS: tuple[tuple[float, int], ...] = ((0.0, 1), (10.0, 6), (24.0, 8), (42.0, 10), (65.0, 10), (95.0, 8))
HEADS = ("regression", "classes")


def ring_palette(rings: tuple[tuple[float, int], ...] = PALETTE_RINGS) -> torch.Tensor:
    """The classes head's ab palette, (K, 2) in Lab units (K = 34 for ``PALETTE_RINGS``).

    Ring (chroma r, n hues) contributes ab = r (cos 2 pi k/n, sin 2 pi k/n), k = 0..n-1; a colour
    is kept when it lies in the sRGB gamut at some lightness L in 5, 10, ..., 95.
    """
    Ls = torch.arange(5.0, 100.0, 5.0, dtype=torch.float64)
    keep = []
    for r, n in rings:
        for k in range(n):
            a, b = r * math.cos(2 * math.pi * k / n), r * math.sin(2 * math.pi * k / n)
            lab = torch.stack([Ls, torch.full_like(Ls, a), torch.full_like(Ls, b)]).view(3, -1, 1)
            rgb = lab_to_rgb(lab, clip=False)
            if bool(((rgb >= -1e-3) & (rgb <= 1 + 1e-3)).all(dim=0).any()):
                keep.append((a, b))
    return torch.tensor(keep, dtype=torch.float32)


def _conv_bn_relu(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """Two (3x3 conv -> BN -> ReLU); the first conv has ``stride``. (B,cin,H,W) -> (B,cout,H/s,W/s)."""
    return nn.Sequential(*_conv_bn_relu(cin, cout, stride), *_conv_bn_relu(cout, cout))


def _up_transpose(cin: int, cout: int) -> nn.Sequential:
    """2x2 transposed conv with stride 2 -> BN -> ReLU: (B,cin,h,w) -> (B,cout,2h,2w)."""
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 2, stride=2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class BaselineCNN(AbRegressionOrGrid):
    """Shared head, loss and decoding of the seed-003 networks (see the module docstring).

    Subclasses build ``self.down`` / ``self.up`` and may override ``body``.

    Args:
        head: "regression" (ab by MSE) or "classes" (palette colours by cross-entropy).
        width: channels at full resolution; doubled at each downsampling.
        depth: number of 2x downsamplings (the bottleneck is at stride ``2**depth``).
        temperature: default temperature of the annealed mean (classes head).
    """

    def __init__(self, head: str = "regression", width: int = 16, depth: int = 4, temperature: float = 0.38):
        super().__init__(head=head, width=width, depth=depth, temperature=temperature)
        if head not in HEADS:
            raise UsageError(f"head must be one of {', '.join(HEADS)}; got {head!r}")
        if width < 1 or depth < 1:
            raise UsageError("width and depth must be positive")
        self.head_kind = head
        self.depth = depth
        self.pad_multiple = 2**depth
        self.widths = [width * 2**i for i in range(depth + 1)]
        self.stem = block(1, width)
        self.build_body()
        # The palette (K, 2) is derived from code, not saved.
        out = self.setup_head(ring_palette() if head == "classes" else None, persistent=False)
        self.out = nn.Conv2d(width, out, 1)
        nn.init.zeros_(self.out.weight)  # start gray (ab = 0) or from a uniform palette distribution
        nn.init.zeros_(self.out.bias)

    def build_body(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def body(self, x: torch.Tensor) -> torch.Tensor:
        """Stem output (B,width,H,W), H and W multiples of 2**depth -> decoder output (B,width,H,W)."""
        for down in self.down:
            x = down(x)
        for up in self.up:
            x = up(x)
        return x

    def forward(self, L: torch.Tensor) -> dict[str, torch.Tensor]:
        """L (B,1,H,W) in [0,100] -> {"ab": (B,2,H,W) in [-110,110]} or {"logits": (B,K,H,W)}."""
        H, W = L.shape[-2:]
        m = self.pad_multiple
        x = l_to_unit(L)
        if H % m or W % m:
            x = F.pad(x, [0, (-W) % m, 0, (-H) % m], mode="replicate")
        y = self.out(self.body(self.stem(x)))[..., :H, :W]
        if self.head_kind == "regression":
            return {"ab": torch.tanh(y) * AB_SCALE}
        return {"logits": y}

    def loss(self, pred: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """MSE on ab/110 (regression) or cross-entropy to the nearest palette colour (classes)."""
        ab = batch["ab"].float()
        if self.head_kind == "regression":
            loss = F.mse_loss(pred["ab"].float() / AB_SCALE, ab / AB_SCALE)
            return loss, {"mse": loss.item()}
        logits = pred["logits"].float()
        target = bins.nearest_center(ab, self.centers)                  # (B,H,W)
        loss = F.cross_entropy(logits, target)
        with torch.no_grad():
            acc = (logits.argmax(dim=1) == target).float().mean().item()
        return loss, {"ce": loss.item(), "accuracy": acc}


@register("cnn-pool")
class CNNPool(BaselineCNN):
    """Max-pool down, bilinear upsampling up, no skip connections."""

    def build_body(self) -> None:
        w = self.widths
        self.down = nn.ModuleList(nn.Sequential(nn.MaxPool2d(2), block(w[i - 1], w[i])) for i in range(1, self.depth + 1))
        self.up = nn.ModuleList(
            nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), block(w[i], w[i - 1]))
            for i in range(self.depth, 0, -1))


@register("cnn-transpose")
class CNNTranspose(BaselineCNN):
    """Stride-2 convolutions down, 2x2 transposed convolutions up, no skip connections."""

    def build_body(self) -> None:
        w = self.widths
        self.down = nn.ModuleList(block(w[i - 1], w[i], stride=2) for i in range(1, self.depth + 1))
        self.up = nn.ModuleList(
            nn.Sequential(_up_transpose(w[i], w[i - 1]), *_conv_bn_relu(w[i - 1], w[i - 1]))
            for i in range(self.depth, 0, -1))


@register("unet")
class UNet(BaselineCNN):
    """Max-pool down, transposed convolutions up, encoder maps concatenated into the decoder."""

    def build_body(self) -> None:
        w = self.widths
        self.down = nn.ModuleList(nn.Sequential(nn.MaxPool2d(2), block(w[i - 1], w[i])) for i in range(1, self.depth + 1))
        self.up_sample = nn.ModuleList(_up_transpose(w[i], w[i - 1]) for i in range(self.depth, 0, -1))
        self.up = nn.ModuleList(block(2 * w[i - 1], w[i - 1]) for i in range(self.depth, 0, -1))

    def body(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for down in self.down:
            skips.append(x)
            x = down(x)
        for up_sample, up, skip in zip(self.up_sample, self.up, reversed(skips)):
            x = up(torch.cat([up_sample(x), skip], dim=1))
        return x
