"""Larsson et al.'s histogram model that follows user color hints (Zhang et al. 2017's idea).

The network is ``Larsson`` (``models/larsson.py``) plus a hint branch. Hints arrive as a map the
size of the input, (B,3,H,W): a, b (Lab units) where a hint lies and a mask (``tinct.hints``).
The branch pools that map to stride 8, joins it with the frozen backbone's levels 1-3 there
(which tell it where edges and objects are), and spreads it with a stack of dilated 3x3
convolutions (receptive field about 65 cells = 520 pixels). Its output, ``hidden`` wide, is added
to the projected hypercolumn before the head's BatchNorm, at the sampled points in training
and densely at inference:

    L --backbone--> levels --HypercolumnProjection--> (+) --head--> histogram per pixel
                      |                                ^
                      +-- levels 1..3 at stride 8 --+  |
    hints (B,3,H,W) --pool to stride 8------------- HintBranch

The branch's last convolution starts at zero, so a model started from the automatic one
(``init`` in the recipe) begins as exactly that model and learns to use the hints. Training
draws hints from the true colors of each crop (``train_inputs``, ``tinct.hints.simulate_hints``),
a quarter of the crops with none, so that without hints it still colorizes on its own.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UsageError
from ..hints import simulate_hints
from ..hypercolumn import sample_points
from .base import AB_SCALE, register
from .larsson import Larsson

__all__ = ["LarssonHints", "HintBranch"]

HINT_STRIDE = 8


class HintBranch(nn.Module):
    """Hint map + backbone levels -> a dense hint feature map at stride 8.

    Args:
        level_channels: channels of the backbone levels it reads (levels 1, 2, 3).
        width: channels of the branch.
        out_channels: channels of the output (the head's ``hidden``).
        dilations: dilation of each 3x3 convolution of the stack.
    """

    def __init__(self, level_channels: tuple[int, ...], width: int, out_channels: int,
                 dilations: tuple[int, ...] = (1, 2, 4, 8, 16, 1)):
        super().__init__()
        self.guide = nn.Conv2d(sum(level_channels), width, 1)
        self.enter = nn.Conv2d(4, width, 1)
        self.stack = nn.ModuleList(nn.Conv2d(width, width, 3, padding=d, dilation=d) for d in dilations)
        self.out = nn.Conv2d(width, out_channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, hints: torch.Tensor, levels: list[torch.Tensor]) -> torch.Tensor:
        """hints (B,3,H,W), levels [(B,C_i,h_i,w_i)] -> (B,out,ceil(H/8),ceil(W/8))."""
        H, W = hints.shape[-2:]
        size = (-(-H // HINT_STRIDE), -(-W // HINT_STRIDE))
        coverage = F.adaptive_avg_pool2d(hints[:, 2:3], size)
        ab = F.adaptive_avg_pool2d(hints[:, :2], size) / coverage.clamp_min(1e-6)
        present = (coverage > 0).to(hints.dtype)
        x = torch.cat([ab / AB_SCALE, present, coverage], dim=1)
        guide = torch.cat([F.interpolate(f.float(), size=size, mode="bilinear", align_corners=False)
                           for f in levels], dim=1)
        y = F.relu(self.enter(x) + self.guide(guide))
        for conv in self.stack:
            y = F.relu(y + conv(y))
        return self.out(y)


@register("larsson-hints")
class LarssonHints(Larsson):
    """Larsson et al.'s model with a color-hint branch (see the module docstring).

    Args (besides ``Larsson``'s):
        hint_width: channels of the hint branch.
        hint_levels: backbone levels the branch reads (indices into the pyramid).
        no_hint_share: share of training crops given no hint.
        hint_p: parameter of the geometric number of hints per crop (mean 1 / p).
        max_hints: cap of the number of hints per training crop.
    """

    forward_options = ("hints",)
    init_archs = ("larsson",)  # a recipe may start from the automatic model (the branch starts at zero)

    def __init__(self, hint_width: int = 64, hint_levels: tuple[int, ...] = (1, 2, 3), no_hint_share: float = 0.25,
                 hint_p: float = 0.125, max_hints: int = 64, **larsson: Any):
        super().__init__(**larsson)
        hint_levels = tuple(int(i) for i in hint_levels)
        self.config.update(hint_width=hint_width, hint_levels=list(hint_levels), no_hint_share=no_hint_share,
                           hint_p=hint_p, max_hints=max_hints)
        if not 0 <= no_hint_share <= 1 or not 0 < hint_p <= 1 or max_hints < 1:
            raise UsageError("no_hint_share must be in [0,1], hint_p in (0,1] and max_hints >= 1")
        self.hint_levels = hint_levels
        channels = self.backbone.channels
        self.hint_branch = HintBranch(tuple(channels[i] for i in hint_levels), hint_width,
                                      int(self.config["hidden"]))

    def forward(self, L: torch.Tensor, hints: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """L (B,1,H,W) in [0,100], hints (B,3,h,w) or None (no hint) -> prediction (as ``Larsson``).

        A hint map smaller than L is padded with "no hint" at the bottom and right, the way
        ``ColorModel.predict`` pads L to a multiple of 32.
        """
        return self.from_features(self.features(L), L.shape[-2:], hints=hints)

    def from_features(self, feats: list[torch.Tensor], image_size: tuple[int, int],
                      hints: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The head on the backbone's levels and the hint map (None: no hint); see ``forward``
        (a hint map smaller than ``image_size`` is padded the same way)."""
        B = feats[0].shape[0]
        H, W = int(image_size[0]), int(image_size[1])
        if hints is None:
            hints = feats[0].new_zeros(B, 3, H, W, dtype=torch.float32)
        elif hints.shape[-2:] != (H, W):
            dh, dw = H - hints.shape[-2], W - hints.shape[-1]
            if dh < 0 or dw < 0:
                raise UsageError(f"hint map {tuple(hints.shape[-2:])} is larger than the image {(H, W)}")
            hints = F.pad(hints, [0, dw, 0, dh])
        spread = self.hint_branch(hints.float(), [feats[i] for i in self.hint_levels])
        if self.training:
            pts = sample_points(B, H, W, self.points).to(feats[0].device)
            grid = pts.unsqueeze(2).to(spread.dtype)
            at_points = F.grid_sample(spread, grid, mode="bilinear", padding_mode="border", align_corners=False)
            return {"logits": self.head(self.project.sparse(feats, pts) + at_points), "points": pts}
        size = (max(1, H // self.out_stride), max(1, W // self.out_stride))
        dense = F.interpolate(spread, size=size, mode="bilinear", align_corners=False)
        return {"logits": self.head(self.project.dense(feats, size) + dense)}

    def train_inputs(self, batch: dict[str, Any], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Hints drawn from the batch's true ab (``tinct.hints.simulate_hints``)."""
        hints = simulate_hints(batch["ab"].float().cpu(), generator, no_hint_share=float(self.config["no_hint_share"]),
                               p=float(self.config["hint_p"]), max_hints=int(self.config["max_hints"]))
        return {"hints": hints.to(batch["ab"].device)}
