"""HyperColumns colorizer (seed 000), with a regression head or a histogram head.

Gray image -> pretrained backbone (1-channel stem) -> hypercolumn of every pyramid level,
bilinearly upsampled and concatenated -> 1x1 convolutions ("squeezing" the hypercolumn) -> a,b.

* ``head="regression"`` is seed 000 as written: the 1x1 convs output a,b directly (MSE loss).
* ``head="histogram"`` predicts a distribution over an ab grid per pixel (cross-entropy on
  soft-encoded targets, optional class rebalancing) and decodes it with the annealed mean by
  default; regression to the mean of a multimodal color distribution is what makes seed 000's
  results sepia, and the histogram head is tinct's shipped default for that reason.

The hypercolumn is produced at ``out_stride`` (4 by default) and the decoded ab map is
upsampled bilinearly by the pipeline; ``global_context`` adds the image-level average of the
deepest level to every hypercolumn.

Head: projection of the hypercolumn (a 1x1 conv over it, ``HypercolumnProjection``) -> BN ->
ReLU -> ``head_kernel`` x ``head_kernel`` conv -> BN -> ReLU -> 1x1 conv to the outputs.
``head_kernel=3`` (the default, and the shipped model's) lets the head look at a 3x3
neighbourhood of hypercolumns; ``head_kernel=1`` makes the whole head per-pixel 1x1
convolutions, seed 000's "1x1 convolutions squeeze the hypercolumn" literally. Both have the
same parameter names, so any saved model loads into the kernel size it was trained with.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import bins
from ..backbones import build_backbone
from ..color import gray_rgb_from_l
from ..errors import UsageError
from ..hypercolumn import HypercolumnProjection
from ..losses import rebalance_weights, sparse_target_cross_entropy
from .base import AB_SCALE, AbRegressionOrGrid, register


@register("hypercolumns")
class HyperColumns(AbRegressionOrGrid):
    def __init__(self, backbone: str = "efficientnet_lite0", backbone_weights: str | None = None,
                 pretrained: bool = True, freeze_backbone: bool = True, head: str = "histogram",
                 hidden: int = 128, out_stride: int = 4, global_context: bool = True,
                 grid_step: float = 10.0, soft_neighbours: int = 5, soft_sigma: float = 5.0,
                 rebalance: float = 0.0, temperature: float = 0.38, prior_momentum: float = 0.99,
                 head_kernel: int = 3):
        super().__init__(backbone=backbone, backbone_weights=backbone_weights, pretrained=pretrained,
                         freeze_backbone=freeze_backbone, head=head, hidden=hidden, out_stride=out_stride,
                         global_context=global_context, grid_step=grid_step, soft_neighbours=soft_neighbours,
                         soft_sigma=soft_sigma, rebalance=rebalance, temperature=temperature,
                         prior_momentum=prior_momentum, head_kernel=head_kernel)
        if head not in ("regression", "histogram"):
            raise UsageError("head must be 'regression' or 'histogram'")
        if head_kernel not in (1, 3):
            raise UsageError(f"head_kernel must be 1 or 3; got {head_kernel!r}")
        self.backbone = build_backbone(backbone, pretrained=pretrained, weights=backbone_weights, freeze=freeze_backbone)
        self.freeze_backbone = freeze_backbone
        self.out_stride = out_stride
        self.head_kind = head
        self.project = HypercolumnProjection(self.backbone.channels, hidden, global_context)
        out = self.setup_head(bins.ab_grid(grid_step, AB_SCALE) if head == "histogram" else None)
        if head == "histogram":
            self.register_buffer("prior", torch.full((out,), 1.0 / out))
        self.squeeze = nn.Sequential(
            nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, head_kernel, padding=head_kernel // 2, bias=False),
            nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, out, 1),
        )

    def forward(self, L: torch.Tensor) -> dict[str, torch.Tensor]:
        """L (B,1,H,W) in [0,100] -> {"ab": (B,2,H/s,W/s)} or {"logits": (B,K,H/s,W/s)}."""
        feats = self.backbone(gray_rgb_from_l(L))
        size = (L.shape[-2] // self.out_stride, L.shape[-1] // self.out_stride)
        y = self.squeeze(self.project.dense(feats, size))
        if self.head_kind == "regression":
            return {"ab": torch.tanh(y) * AB_SCALE}
        return {"logits": y}

    def _target_ab(self, ab: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return ab if ab.shape[-2:] == size else F.adaptive_avg_pool2d(ab, size)

    def loss(self, pred: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        if self.head_kind == "regression":
            ab = self._target_ab(batch["ab"], pred["ab"].shape[-2:])
            loss = F.mse_loss(pred["ab"] / AB_SCALE, ab / AB_SCALE)
            return loss, {"mse": loss.item()}
        logits = pred["logits"]
        ab = self._target_ab(batch["ab"], logits.shape[-2:])
        index, weight = bins.soft_targets_grid(ab, self.config["grid_step"], AB_SCALE,
                                               self.config["soft_neighbours"], self.config["soft_sigma"])
        if self.training:
            with torch.no_grad():
                seen = torch.zeros_like(self.prior).index_add_(0, index.flatten(), weight.flatten())
                m = self.config["prior_momentum"]
                self.prior.mul_(m).add_(seen / seen.sum(), alpha=1 - m)
        lam = self.config["rebalance"]
        weights = rebalance_weights(self.prior, lam) if lam > 0 else None
        loss = sparse_target_cross_entropy(logits, index, weight, weights)
        return loss, {"ce": loss.item()}
