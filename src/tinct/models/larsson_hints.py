"""Larsson et al.'s histogram model that follows user color hints (Zhang et al. 2017's idea).

The network is ``Larsson`` (``models/larsson.py``) plus hint attention. Hints arrive as a map the
size of the input, (B,3,H,W): a, b (Lab units) where a hint lies and a mask (``tinct.hints``).
The map is pooled to the head's grid (stride ``out_stride``); each cell that holds a hint becomes
a *key*: the projected hypercolumn at that cell (what is there: object, texture, edges) and a
*value* made from the hint's ab. Every pixel the head colors is a *query*: its own projected
hypercolumn. A pixel attends to the hints that look like it and lie near it, or to a learned
"none of them" slot:

    score(p, k) = tau * cos(q(h_p), k(h_k)) - softplus(d) * |pos_p - pos_k|,   score(p, none) = b
    hint(p)     = sum_k softmax(score)(p, k) * v(ab_k, coverage_k)           (v(none) = 0)

and ``hint(p)`` is added to the projected hypercolumn before the head's BatchNorm, at the sampled
points in training and densely at inference:

    L --backbone--> levels --HypercolumnProjection--> h --(+ hint)--> head --> histogram per pixel
    hints --pool to the head's grid--> keys (h at the hint), values (ab)  --^

Without hints only the "none" slot exists and ``hint(p) = 0``: the model is exactly its head on
the hypercolumn. ``v``'s last layer starts at zero, so a run started from the automatic model
(``init`` in the recipe) begins as exactly that model. Training draws hints from the true colors
of each crop (``train_inputs``, ``tinct.hints.simulate_hints``), a quarter of the crops with none,
so that without hints it still colorizes on its own. Cost: one (pixels x hinted cells) score
matrix; the hinted cells are capped at ``max_cells`` (the most covered first).
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

__all__ = ["LarssonHints", "HintAttention", "grid_positions"]


class HintAttention(nn.Module):
    """Pixels attend to hinted cells (see the module docstring).

    Args:
        hidden: width of the projected hypercolumn (queries, keys and the output).
        key_width: width of the query/key space.
    """

    def __init__(self, hidden: int, key_width: int = 64):
        super().__init__()
        self.query = nn.Conv2d(hidden, key_width, 1, bias=False)
        self.key = nn.Conv2d(hidden, key_width, 1, bias=False)
        self.value = nn.Sequential(nn.Conv2d(3, 64, 1), nn.ReLU(inplace=True), nn.Conv2d(64, hidden, 1))
        nn.init.zeros_(self.value[-1].weight)
        nn.init.zeros_(self.value[-1].bias)
        self.temperature = nn.Parameter(torch.tensor(5.0))
        self.distance = nn.Parameter(torch.tensor(1.0))
        self.none = nn.Parameter(torch.tensor(0.0))

    def forward(self, queries: torch.Tensor, query_pos: torch.Tensor, keys: torch.Tensor, key_pos: torch.Tensor,
                hint: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """queries (B,C,N,1) at query_pos (B,N,2); keys (B,C,K,1) at key_pos (B,K,2); hint (B,3,K,1) =
        (a/110, b/110, coverage); valid (B,K) bool -> (B,C,N,1). Positions in grid_sample units."""
        q = F.normalize(self.query(queries)[..., 0], dim=1)               # (B,D,N)
        k = F.normalize(self.key(keys)[..., 0], dim=1)                    # (B,D,K)
        score = self.temperature * torch.einsum("bdn,bdk->bnk", q, k)
        score = score - F.softplus(self.distance) * torch.cdist(query_pos.float(), key_pos.float())
        score = score.masked_fill(~valid[:, None, :], float("-inf"))
        none = self.none.expand(score.shape[0], score.shape[1], 1)
        weights = torch.softmax(torch.cat([score, none], dim=2), dim=2)[..., :-1]  # (B,N,K)
        values = self.value(hint)[..., 0]                                 # (B,C,K)
        return torch.einsum("bnk,bck->bcn", weights, values).unsqueeze(-1)


def grid_positions(h: int, w: int, device: torch.device | None = None) -> torch.Tensor:
    """Centers of an (h, w) grid's cells in grid_sample units, row-major -> (h*w, 2) as (x, y)."""
    ys = (2 * torch.arange(h, device=device, dtype=torch.float32) + 1) / h - 1
    xs = (2 * torch.arange(w, device=device, dtype=torch.float32) + 1) / w - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)


@register("larsson-hints")
class LarssonHints(Larsson):
    """Larsson et al.'s model with a color-hint branch (see the module docstring).

    Args (besides ``Larsson``'s):
        key_width: width of the attention's query/key space.
        max_cells: most hinted cells one image's pixels attend to (the most covered first).
        no_hint_share: share of training crops given no hint.
        hint_p: parameter of the geometric number of hints per crop (mean 1 / p).
        max_hints: cap of the number of hints per training crop.
    """

    forward_options = ("hints",)
    init_archs = ("larsson",)  # a recipe may start from the automatic model (the hint values start at zero)

    def __init__(self, key_width: int = 64, max_cells: int = 256, no_hint_share: float = 0.25,
                 hint_p: float = 0.125, max_hints: int = 64, **larsson: Any):
        super().__init__(**larsson)
        self.config.update(key_width=key_width, max_cells=max_cells, no_hint_share=no_hint_share,
                           hint_p=hint_p, max_hints=max_hints)
        if not 0 <= no_hint_share <= 1 or not 0 < hint_p <= 1 or max_hints < 1 or max_cells < 1:
            raise UsageError("no_hint_share must be in [0,1], hint_p in (0,1], max_hints and max_cells >= 1")
        self.max_cells = max_cells
        self.hint_attention = HintAttention(int(self.config["hidden"]), key_width)

    def forward(self, L: torch.Tensor, hints: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """L (B,1,H,W) in [0,100], hints (B,3,h,w) or None (no hint) -> prediction (as ``Larsson``).

        A hint map smaller than L is padded with "no hint" at the bottom and right, the way
        ``ColorModel.predict`` pads L to a multiple of 32.
        """
        return self.from_features(self.features(L), L.shape[-2:], hints=hints)

    def fold_norms(self) -> None:
        """Inference copies (``tinct.folding``): the head's norm follows the projection plus the
        hint attention, which reads the projection itself, so it stays; the backbone folds its own."""

    def from_features(self, feats: list[torch.Tensor], image_size: tuple[int, int],
                      hints: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The head on the backbone's levels and the hint map (None: no hint); see ``forward``
        (a hint map smaller than ``image_size`` is padded the same way)."""
        B = feats[0].shape[0]
        H, W = int(image_size[0]), int(image_size[1])
        if hints is not None and hints.shape[-2:] != (H, W):
            dh, dw = H - hints.shape[-2], W - hints.shape[-1]
            if dh < 0 or dw < 0:
                raise UsageError(f"hint map {tuple(hints.shape[-2:])} is larger than the image {(H, W)}")
            hints = F.pad(hints, [0, dw, 0, dh])
        keys = None if hints is None else self.hint_cells(hints.float(), feats)
        if self.training:
            pts = sample_points(B, H, W, self.points).to(feats[0].device)
            h = self.project.sparse(feats, pts)
            return {"logits": self.head(h + self.attend(h, pts, keys)), "points": pts}
        size = (max(1, H // self.out_stride), max(1, W // self.out_stride))
        h = self.project.dense(feats, size)
        if keys is not None:
            pos = grid_positions(*size, device=h.device).expand(B, -1, -1)
            h = h + self.attend(h.flatten(2).unsqueeze(-1), pos, keys).view_as(h)
        return {"logits": self.head(h)}

    def hint_cells(self, hints: torch.Tensor, feats: list[torch.Tensor]) -> tuple[torch.Tensor, ...] | None:
        """The hinted cells of the head's grid: (keys (B,C,K,1), positions (B,K,2), hint (B,3,K,1), valid
        (B,K)), or None when no image of the batch has a hint."""
        H, W = hints.shape[-2:]
        size = (max(1, H // self.out_stride), max(1, W // self.out_stride))
        coverage = F.adaptive_avg_pool2d(hints[:, 2:3], size).flatten(1)                  # (B, h*w)
        if not bool((coverage > 0).any()):
            return None
        ab = F.adaptive_avg_pool2d(hints[:, :2], size).flatten(2) / coverage.clamp_min(1e-6)[:, None]
        K = min(self.max_cells, coverage.shape[1])
        cover, idx = coverage.topk(K, dim=1)                                                # (B, K)
        pos = grid_positions(*size, device=hints.device)[idx]                              # (B, K, 2)
        hint = torch.cat([torch.gather(ab, 2, idx[:, None].expand(-1, 2, -1)) / AB_SCALE, cover[:, None]], dim=1)
        keys = self.project.sparse(feats, pos)                                             # (B, C, K, 1)
        return keys, pos, hint.unsqueeze(-1), cover > 0

    def attend(self, h: torch.Tensor, pos: torch.Tensor, keys: tuple[torch.Tensor, ...] | None) -> torch.Tensor:
        """Projected hypercolumns h (B,C,N,1) at pos (B,N,2) -> what the hints add to them (0 without hints)."""
        if keys is None:
            return torch.zeros_like(h)
        return self.hint_attention(h, pos, *keys)

    def train_inputs(self, batch: dict[str, Any], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Hints drawn from the batch's true ab (``tinct.hints.simulate_hints``)."""
        hints = simulate_hints(batch["ab"].float().cpu(), generator, no_hint_share=float(self.config["no_hint_share"]),
                               p=float(self.config["hint_p"]), max_hints=int(self.config["max_hints"]))
        return {"hints": hints.to(batch["ab"].device)}
