"""Iizuka, Simo-Serra & Ishikawa 2016 (seed 002): global and local image priors, fused.

    L (any H,W) ---------------------> low-level net --> mid-level net ----------+
                                       (shared)          256 x H/8 x W/8         |
    L (or a style image) --resize 224x224--> low-level net --> global net        v
                                               512 x 28 x 28    conv x4, fc x3 -> fusion (1x1 conv over
                                                                      |  256-d    [mid; global at every
                                                                      |           position]) -> 256
                                                 fc2 (512-d) -> classifier       |
                                                 (joint training, labels)        v
                                                                 colorization net -> ab at H/2 x W/2

Layers (widths at ``width`` = 1; every width is multiplied by ``width``, rounded, >= 4):

* low level (``low_level="scratch"``): six 3x3 convs 64(s2), 128, 128(s2), 256, 256(s2), 512,
  each BatchNorm + ReLU, on L / 50 - 1 -> 512 x H/8 x W/8.
* low level (``low_level="efficientnet_lite0"``): the ImageNet EfficientNet-Lite0 backbone
  (``tinct.backbones``, 1-channel stem, on the sRGB gray the L encodes) cut after its stride-16
  stage; its stride-8 level (40 ch, 5 MBConv blocks deep) and its stride-16 level (112 ch, 11
  blocks deep, bilinearly upsampled to stride 8) are concatenated and projected by one 3x3 conv
  (+ BN + ReLU) to 512 x H/8 x W/8. Both levels, because the stride-8 level alone is too shallow
  to carry the scene/object cues the global net and the classifier need, while the stride-16
  level alone would blur the local path; the later Lite0 stages are dropped (never computed).
  ``freeze_low_level`` keeps the backbone (and its BatchNorm statistics) fixed; the projection
  always trains.
* mid level: 3x3 convs 512, 256 (BN + ReLU) -> 256 x H/8 x W/8.
* global: 3x3 convs 512(s2), 512, 512(s2), 512 (BN + ReLU) on the low-level features of the
  224x224 image -> 512 x 7 x 7, flattened, then fully connected 1024 -> 512 -> 256 (ReLU; no
  BatchNorm, so a batch of one trains too).
* fusion: a 1x1 conv over the concatenation [mid (256); global vector (256) repeated at every
  position] -> 256, ReLU. It is computed as conv(mid) + W_g @ global, which is the same map
  without materialising the repeated vector (the weights are one ordinary Conv2d(512, 256, 1)).
* colorization: conv 128, nearest x2, conv 64, conv 64, nearest x2, conv 32 (3x3, BN + ReLU),
  then a 3x3 conv to 2 channels and a sigmoid -> s in [0,1] at H/2 x W/2.
  ab = (2 s - 1) * 110 (Lab units); the pipeline upsamples it bilinearly.
* classification (``num_classes`` > 0, set by the trainer from the folder labels): fc2's 512-d
  output -> fc 256 -> ReLU -> ``num_classes`` logits.

Loss: MSE between s and the true ab mapped the same way, (ab / 110 + 1) / 2 in [0,1], area-
averaged to the output resolution, plus ``alpha`` (the paper's 1/300) times the cross-entropy of
the class logits against ``batch["label"]`` (label -1 = unknown, ignored). Logs "mse", "ce" and
"acc" (classification accuracy over the batch's labelled samples; absent when none is).

Any image size: the local path (low + mid level, fusion, colorization) is fully convolutional and
runs on the image at its own size (``predict`` pads it to a multiple of ``pad_multiple``); the
global path always sees the image resized to 224x224 (aspect ratio not kept, as in the paper)
in its own pass through the shared low-level net. When the input is already 224x224 the two
passes are the same and the low-level features are computed once (the paper's training case).
``predict`` gives the global path the unpadded image, so padding never leaks into global features.

Style transfer: ``forward(L, style_L=S)`` takes the global features (and the class logits) from
S (B or 1, 1, h, w) instead of L (``forward_options = ("style_L",)``, so ``Colorizer.colorize(
photo, style=reference)`` and ``tinct colorize --style`` reach it). ``global_features=False`` is
the paper's ablation: no global net, no fusion with a global vector (the fusion layer is a 1x1
conv over the mid-level features alone), no classification, no style.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..backbones import build_backbone
from ..color import gray_rgb_from_l, l_to_unit
from ..errors import UsageError
from .base import AB_SCALE, ColorModel, register

__all__ = ["Iizuka", "AB_SCALE", "GLOBAL_SIZE", "LOW_LEVELS"]

GLOBAL_SIZE = 224         # the global path's input side, fixed by its fully connected layers
LOW_LEVELS = ("scratch", "efficientnet_lite0")


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """3x3 conv (padding 1) + BatchNorm + ReLU: (B,cin,H,W) -> (B,cout,ceil(H/stride),ceil(W/stride))."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class _ScratchLowLevel(nn.Module):
    """The paper's low-level net: L (B,1,H,W) in [0,100] -> (B,c512,H/8,W/8), H and W multiples of 8."""

    def __init__(self, ch: tuple[int, int, int, int]):
        super().__init__()
        c64, c128, c256, c512 = ch
        self.net = nn.Sequential(_conv(1, c64, 2), _conv(c64, c128), _conv(c128, c128, 2),
                                 _conv(c128, c256), _conv(c256, c256, 2), _conv(c256, c512))

    def forward(self, L: torch.Tensor) -> torch.Tensor:
        return self.net(l_to_unit(L))


class _LiteLowLevel(nn.Module):
    """EfficientNet-Lite0 to stride 16, levels 8 and 16 joined and projected (see the module docstring).

    L (B,1,H,W) in [0,100] -> (B,c512,ceil(H/8),ceil(W/8)).
    """

    def __init__(self, c512: int, pretrained: bool, freeze: bool):
        super().__init__()
        # The stride-8 and stride-16 levels; the blocks after the latter are dropped.
        self.backbone = build_backbone("efficientnet_lite0", pretrained=pretrained, out_indices=(2, 3), freeze=freeze)
        self.project = _conv(sum(self.backbone.channels), c512)

    def forward(self, L: torch.Tensor) -> torch.Tensor:
        f8, f16 = self.backbone(gray_rgb_from_l(L))
        f16 = F.interpolate(f16, size=f8.shape[-2:], mode="bilinear", align_corners=False)
        return self.project(torch.cat([f8, f16], dim=1))


@register("iizuka")
class Iizuka(ColorModel):
    """Iizuka et al. 2016: low/mid/global features, fusion layer, joint classification (module docstring).

    Args:
        global_features: build the global path (False: the paper's ablation without it).
        num_classes: classes of the joint classification head (0: no head). The trainer sets it to
            the number of folder labels; ignored without global features.
        alpha: weight of the classification cross-entropy in the loss; the paper's 1/300.
        low_level: "scratch" (the paper's six convs) or "efficientnet_lite0" (pretrained backbone).
        pretrained: load Lite0's ImageNet weights (False: random init, for tests; "scratch" ignores it).
        freeze_low_level: keep the Lite0 backbone fixed (only with ``low_level="efficientnet_lite0"``).
        width: multiplier of every layer width (1.0 = the paper's sizes).
    """

    head_kind = "regression"
    color_space = "lab"
    needs_labels = True
    pad_multiple = 8
    forward_options: tuple[str, ...] = ("style_L",)

    def __init__(self, global_features: bool = True, num_classes: int = 0, alpha: float = 1.0 / 300.0,
                 low_level: str = "scratch", pretrained: bool = True, freeze_low_level: bool = True,
                 width: float = 1.0):
        super().__init__(global_features=global_features, num_classes=num_classes, alpha=alpha,
                         low_level=low_level, pretrained=pretrained, freeze_low_level=freeze_low_level,
                         width=width)
        if low_level not in LOW_LEVELS:
            raise UsageError(f"low_level must be one of {', '.join(LOW_LEVELS)}; got {low_level!r}")
        if not width > 0:
            raise UsageError(f"width must be positive, got {width}")
        if num_classes < 0 or alpha < 0:
            raise UsageError("num_classes and alpha must be >= 0")

        def ch(n: int) -> int:
            return max(4, round(n * width))

        c32, c64, c128, c256, c512, c1024 = (ch(n) for n in (32, 64, 128, 256, 512, 1024))
        self.global_features = global_features
        self.alpha = float(alpha)
        if low_level == "scratch":
            self.low_level: nn.Module = _ScratchLowLevel((c64, c128, c256, c512))
        else:
            self.low_level = _LiteLowLevel(c512, pretrained, freeze_low_level)
            self.pad_multiple = 16  # the stride-16 level lines up with the stride-8 one
        self.mid_level = nn.Sequential(_conv(c512, c512), _conv(c512, c256))
        self.num_classes = num_classes if global_features else 0
        if global_features:
            side = GLOBAL_SIZE // 32
            self.global_conv = nn.Sequential(_conv(c512, c512, 2), _conv(c512, c512),
                                             _conv(c512, c512, 2), _conv(c512, c512))
            self.global_fc1 = nn.Sequential(nn.Linear(c512 * side * side, c1024), nn.ReLU(inplace=True))
            self.global_fc2 = nn.Sequential(nn.Linear(c1024, c512), nn.ReLU(inplace=True))
            self.global_fc3 = nn.Sequential(nn.Linear(c512, c256), nn.ReLU(inplace=True))
            if self.num_classes:
                self.classifier = nn.Sequential(nn.Linear(c512, c256), nn.ReLU(inplace=True),
                                                nn.Linear(c256, self.num_classes))
            self.fusion = nn.Conv2d(2 * c256, c256, 1)
        else:
            self.forward_options = ()  # nothing to take from a style image
            self.fusion = nn.Conv2d(c256, c256, 1)
        self.colorization = nn.Sequential(
            _conv(c256, c128), nn.Upsample(scale_factor=2, mode="nearest"),
            _conv(c128, c64), _conv(c64, c64), nn.Upsample(scale_factor=2, mode="nearest"),
            _conv(c64, c32), nn.Conv2d(c32, 2, 3, padding=1), nn.Sigmoid(),
        )

    # -- prediction ----------------------------------------------------------------------
    def global_input(self, L: torch.Tensor) -> torch.Tensor:
        """L (B,1,h,w) in [0,100] -> (B,1,224,224): what the global path sees.

        Plain bilinear (align_corners=False), not antialiased: ONNX opset 17 has no antialiased
        resize, and this way the exported graph computes the same function. The pipeline has
        already reduced the photo (antialiased) to the render size, 384 by default, so this last
        step shrinks by 1.7x at most there; training crops (192) are enlarged.
        """
        if tuple(L.shape[-2:]) == (GLOBAL_SIZE, GLOBAL_SIZE):
            return L
        return F.interpolate(L, size=(GLOBAL_SIZE, GLOBAL_SIZE), mode="bilinear", align_corners=False)

    def global_path(self, low: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Low-level features of the 224x224 image (B,c512,28,28) -> (global vector (B,c256), logits (B,K) | None)."""
        h2 = self.global_fc2(self.global_fc1(self.global_conv(low).flatten(1)))
        logits = self.classifier(h2) if self.num_classes else None
        return self.global_fc3(h2), logits

    def fuse(self, mid: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
        """Mid-level (B,c256,h,w) [+ global vector (B,c256)] -> fused (B,c256,h,w), ReLU.

        Equal to the 1x1 conv over the concatenation [mid; g repeated at every position].
        """
        if g is None:
            return F.relu(self.fusion(mid))
        c = mid.shape[1]
        w = self.fusion.weight
        y = F.conv2d(mid, w[:, :c], self.fusion.bias) + F.linear(g, w[:, c:, 0, 0])[:, :, None, None]
        return F.relu(y)

    def forward(self, L: torch.Tensor, style_L: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """L (B,1,H,W) in [0,100], H and W multiples of ``pad_multiple`` -> prediction dict.

        ``style_L`` (B or 1, 1, h, w) in [0,100], any size: the image the global features come
        from (default: L itself). Returns {"ab_unit": (B,2,H/2,W/2) sigmoid output in [0,1]} plus
        {"logits": (B,num_classes)} when the model has a classification head.
        """
        low = self.low_level(L)
        mid = self.mid_level(low)
        out: dict[str, torch.Tensor] = {}
        g = None
        if self.global_features:
            src = L if style_L is None else style_L
            if src is L and tuple(L.shape[-2:]) == (GLOBAL_SIZE, GLOBAL_SIZE):
                glow = low  # the image is its own 224x224 version: one low-level pass serves both paths
            else:
                glow = self.low_level(self.global_input(src.to(L)))
            g, logits = self.global_path(glow)
            B = L.shape[0]
            if g.shape[0] != B:
                if g.shape[0] != 1:
                    raise UsageError(f"style_L has batch {g.shape[0]}; it must be 1 or that of L ({B})")
                g = g.expand(B, -1)
                logits = None if logits is None else logits.expand(B, -1)
            if logits is not None:
                out["logits"] = logits
        out = {"ab_unit": self.colorization(self.fuse(mid, g)), **out}
        return out

    @torch.no_grad()
    def predict(self, L: torch.Tensor, method: str | None = None, with_confidence: bool = False,
                **options: Any) -> dict[str, torch.Tensor]:
        """As ``ColorModel.predict``; the global path sees the unpadded L (or ``style_L``). A
        ``network`` that takes L only (an exported graph) sees the padded L on both paths."""
        if self.global_features and options.get("style_L") is None and options.get("network") is None:
            options["style_L"] = L
        return super().predict(L, method, with_confidence, **options)

    # -- training ------------------------------------------------------------------------
    @staticmethod
    def ab_to_unit(ab: torch.Tensor) -> torch.Tensor:
        """ab (*) in Lab units -> (ab / 110 + 1) / 2, clamped to [0,1] (the sigmoid's scale)."""
        return ((ab / AB_SCALE + 1.0) * 0.5).clamp(0.0, 1.0)

    def loss(self, pred: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """MSE on ab in [0,1] at the output resolution + alpha * CE on known labels -> (loss, logs).

        batch: "ab" (B,2,H,W) in Lab units; "label" (B,) long, -1 = unknown (optional).
        """
        s = pred["ab_unit"].float()
        ab = batch["ab"].float()
        if ab.shape[-2:] != s.shape[-2:]:
            ab = F.adaptive_avg_pool2d(ab, s.shape[-2:])
        mse = F.mse_loss(s, self.ab_to_unit(ab))
        logs = {"mse": mse.item()}
        if "logits" not in pred:
            return mse, logs
        logits = pred["logits"].float()
        labels = batch.get("label")
        known = labels >= 0 if labels is not None else torch.zeros(logits.shape[0], dtype=torch.bool)
        if bool(known.any()):
            labels = labels.to(logits.device).long()
            if int(labels.max()) >= logits.shape[1]:
                raise UsageError(f"label {int(labels.max())} is out of range for a model with "
                                 f"{logits.shape[1]} classes")
            ce = F.cross_entropy(logits, labels, ignore_index=-1)
            logs["acc"] = (logits.argmax(1)[known] == labels[known]).float().mean().item()
        else:
            ce = logits.sum() * 0.0  # keeps every parameter in the graph (DDP)
        logs["ce"] = ce.item()
        return mse + self.alpha * ce, logs

    # -- decoding ------------------------------------------------------------------------
    def decode(self, pred: dict[str, torch.Tensor], method: str | None = None, **options: Any) -> torch.Tensor:
        """Prediction -> ab (B,2,H/2,W/2) in [-110,110] Lab units: (2 s - 1) * 110."""
        self.check_method(method)
        return (pred["ab_unit"].float() * 2.0 - 1.0) * AB_SCALE
