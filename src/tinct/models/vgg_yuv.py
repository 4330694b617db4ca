"""VGG16 pool3 hypercolumn -> U,V (seed 004: "Convolutional Neural Networks for automatic image colorization").

Gray image -> VGG16 up to its third max pool (frozen) -> hypercolumn T of the input and every
block output, upsampled to the input size -> two conv layers, concatenated into Q -> U, V.

The hypercolumn T (the seed's 224x224x451 matrix). The layers before the third max pool are
conv1_1, conv1_2, [pool1], conv2_1, conv2_2, [pool2], conv3_1, conv3_2, conv3_3. 451 channels are
the gray input repeated on three channels (3) + conv1_2 (64) + conv2_2 (128) + conv3_3 (256):
the last layer of each of the three blocks, i.e. what enters pool1, pool2 and pool3 (adding
every conv layer would give 1152). The three input copies are identical and T's first use is
linear, so tinct feeds the gray channel once (its weight is the sum of the three): 449
effective channels, and ``VGG16Features(out_indices=(0, 1, 2))`` supplies exactly conv1_2, conv2_2, conv3_3.

Layers on top (the seed: "two more convolutional layers ... concatenated into a 224x224x144
matrix Q", then Q -> UV). tinct reads them as a small dense chain:

    A = ReLU(BN(1x1 conv over T))          ``hidden`` = 128 channels
    B = ReLU(BN(3x3 conv over A))          ``hidden2`` = 16 channels
    Q = [A, B]                             128 + 16 = 144 channels, the seed's count
    UV = sigmoid(1x1 conv over Q)          (B,2,H,W) in [0,1], i.e. U/255 and V/255

The 1x1 conv over T is computed level by level (``HypercolumnProjection``: exactly a 1x1 conv
over the concatenated, upsampled maps, without building the 449-channel tensor). A 3x3 conv
over T itself would cost 19 GMACs per 192^2 image, more than the frozen VGG trunk.

Color space (``color_space = "yuv"``): the seed's formulas (``color.rgb_to_yuv``):
Y = .299 R + .587 G + .114 B, U = -.168736 R - .331264 G + .5 B + 128,
V = .5 R - .418688 G - .081312 B + 128, on 0..255, divided by 255 here.

Loss (``losses.uv_cross_entropy``): the seed writes L = -1/(WH) sum UV log(UV_p). Taken
literally that term alone is minimised by UV_p -> 1 everywhere, so tinct reads it as the
per-channel Bernoulli cross-entropy it abbreviates,
-1/(WH) sum_{pixels} sum_{c in U,V} [UV_c log UV_p,c + (1 - UV_c) log(1 - UV_p,c)], with targets
UV in [0,1] (value/255): minimised exactly at UV_p = UV, gradient UV_p - UV with respect to the
pre-sigmoid output. It is not zero at the minimum (it equals the targets' entropy), so the logs
also give ``ce_excess`` (loss minus that entropy; 0 for a perfect prediction) and ``uv_mae``
(mean absolute U,V error on the 0..255 scale).

Decoding: the prediction carries the Y channel of the input as well (``"y"``: the gray image's
sRGB value, ``color.gray_rgb_from_l(L)``; for R = G = B = g the seed's Y is g). ``decode`` joins
it with the predicted UV -> RGB (``color.yuv_to_rgb``, clamped) -> Lab (``color.rgb_to_lab``)
and returns ab. The pipeline then pairs that ab with the original L. The seed's gray input is the
luma Y of the color photo; tinct's input is CIE lightness L, whose gray has a slightly different
luma than the color it came from: a color's ab comes back exactly when the gray's luma equals
the color's, within about 2 units for ordinary colors, and up to 15-20 units off for fully
saturated primaries (pure red, green, blue), whose rebuilt RGB leaves the gamut and is clipped.

Backbones: ``"vgg16"`` (the seed's; ``backbone_weights`` = a torchvision-format VGG16 file,
tinct never downloads it) or ``"efficientnet_lite0"`` standing in (bundled ImageNet weights),
of which the first three pyramid levels are used, at strides 2, 4, 8 (16 + 24 + 40 channels;
the later blocks are dropped, not computed). The seed trains only the layers on top of T, so
the backbone is frozen by default.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..backbones import build_backbone
from ..color import gray_rgb_from_l, lab_to_rgb, rgb_to_lab, rgb_to_yuv, yuv_to_rgb
from ..errors import UsageError
from ..hypercolumn import HypercolumnProjection
from ..losses import uv_cross_entropy
from .base import ColorModel, register

__all__ = ["VggYuv", "LEVELS"]

LEVELS = 3  # pyramid levels before the third max pool (VGG16: conv1_2, conv2_2, conv3_3)


@register("vgg-yuv")
class VggYuv(ColorModel):
    """Seed 004: hypercolumn of VGG16 up to pool3 -> two conv layers -> U, V (see the module docstring).

    Args:
        backbone: "vgg16" (needs ``backbone_weights``) or "efficientnet_lite0" (standing in).
        backbone_weights: path of a torchvision-format VGG16 state dict (ignored by Lite).
        pretrained: load the backbone's ImageNet weights (False: random init, for tests).
        freeze_backbone: keep the backbone (and its BatchNorm statistics) fixed, as the seed does.
        hidden: channels of A, the 1x1 conv over the hypercolumn T.
        hidden2: channels of B, the 3x3 conv over A (Q = [A, B] has hidden + hidden2 channels).
        out_stride: stride of the predicted UV map (1: the input size, as in the seed).
    """

    color_space = "yuv"
    head_kind = "regression"
    decode_methods = ("identity",)
    default_decode = "identity"
    pad_multiple = 8  # the deepest level used is at stride 4 (VGG) or 8 (Lite)

    def __init__(self, backbone: str = "vgg16", backbone_weights: str | None = None, pretrained: bool = True,
                 freeze_backbone: bool = True, hidden: int = 128, hidden2: int = 16, out_stride: int = 1):
        super().__init__(backbone=backbone, backbone_weights=backbone_weights, pretrained=pretrained,
                         freeze_backbone=freeze_backbone, hidden=hidden, hidden2=hidden2, out_stride=out_stride)
        if hidden < 1 or hidden2 < 1 or out_stride < 1:
            raise UsageError("hidden, hidden2 and out_stride must be positive")
        # The first three levels only (VGG16: conv1_1..conv3_3); the later layers are dropped.
        self.backbone = build_backbone(backbone, pretrained=pretrained, weights=backbone_weights,
                                       out_indices=range(LEVELS), freeze=freeze_backbone)
        self.freeze_backbone = freeze_backbone
        self.out_stride = out_stride
        # T = [gray input, level 1, level 2, level 3]; A = ReLU(BN(1x1 conv over T)).
        self.project = HypercolumnProjection((1, *self.backbone.channels), hidden)
        self.bn_a = nn.BatchNorm2d(hidden)
        self.conv_b = nn.Sequential(nn.Conv2d(hidden, hidden2, 3, padding=1, bias=False), nn.BatchNorm2d(hidden2),
                                    nn.ReLU(inplace=True))
        self.to_uv = nn.Conv2d(hidden + hidden2, 2, 1)
        nn.init.zeros_(self.to_uv.weight)  # start at U = V = 0.5 (gray is 128/255): no random colors
        nn.init.zeros_(self.to_uv.bias)

    def forward(self, L: torch.Tensor) -> dict[str, torch.Tensor]:
        """L (B,1,H,W) in [0,100] -> {"uv": (B,2,H/s,W/s) in [0,1], "y": (B,1,H,W) in [0,1]}.

        ``uv`` is the predicted U, V (/255); ``y`` is the Y (/255) of the gray input, which
        ``decode`` needs to rebuild a color.
        """
        gray = gray_rgb_from_l(L)
        feats = self.backbone(gray)
        size = (max(1, L.shape[-2] // self.out_stride), max(1, L.shape[-1] // self.out_stride))
        a = F.relu(self.bn_a(self._project([gray, *feats], size)))
        q = torch.cat([a, self.conv_b(a)], dim=1)
        return {"uv": torch.sigmoid(self.to_uv(q)), "y": gray}

    def _project(self, maps: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        """The 1x1 conv over the hypercolumn T of ``maps`` (B,C_i,h_i,w_i) at ``size`` -> (B,hidden,*size).

        Exact in either order (a 1x1 conv commutes with bilinear resizing); per level the cheaper
        order is taken: a map with fewer channels than ``hidden`` (the gray input, Lite's levels)
        is resized first, which also spares the backward pass an upsampling of ``hidden``
        channels; a wider one (VGG's conv3_3) is projected at its own resolution first.
        """
        out = None
        for conv, f in zip(self.project.levels, maps):
            if tuple(f.shape[-2:]) != tuple(size) and f.shape[1] < conv.out_channels:
                y = conv(F.interpolate(f, size=size, mode="bilinear", align_corners=False))
            else:
                y = conv(f)
                if tuple(y.shape[-2:]) != tuple(size):
                    y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
            out = y if out is None else out + y
        return out

    @staticmethod
    def target_uv(batch: dict[str, torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        """The true U, V (/255) of a batch's Lab crops, (B,2,h,w) in [0,1], averaged over each output cell."""
        rgb = lab_to_rgb(torch.cat([batch["L"], batch["ab"]], dim=1).float())
        uv = rgb_to_yuv(rgb)[:, 1:]
        return uv if tuple(uv.shape[-2:]) == tuple(size) else F.adaptive_avg_pool2d(uv, size)

    def loss(self, pred: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Seed 004's UV cross-entropy (``losses.uv_cross_entropy``) -> (loss, logs)."""
        uv_p = pred["uv"].float()
        uv = self.target_uv(batch, uv_p.shape[-2:])
        loss = uv_cross_entropy(uv_p, uv)
        with torch.no_grad():
            floor = uv_cross_entropy(uv, uv).item()
            mae = (uv_p - uv).abs().mean().item() * 255
        return loss, {"ce": loss.item(), "ce_excess": loss.item() - floor, "uv_mae": mae}

    def decode(self, pred: dict[str, torch.Tensor], method: str | None = None, **options: Any) -> torch.Tensor:
        """Prediction -> ab (B,2,H,W) in Lab units: YUV = (input's Y, predicted U, V) -> sRGB -> Lab -> ab."""
        self.check_method(method)
        y, uv = pred["y"].float(), pred["uv"].float()
        if uv.shape[-2:] != y.shape[-2:]:
            uv = F.interpolate(uv, size=y.shape[-2:], mode="bilinear", align_corners=False)
        rgb = yuv_to_rgb(torch.cat([y, uv], dim=1))
        return rgb_to_lab(rgb)[:, 1:]
