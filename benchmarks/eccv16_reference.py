"""A network with the published layer shapes of Zhang et al.'s ECCV16 colorization generator.

Used only as a speed yardstick (random weights: speed does not depend on them): 8 conv blocks
(64-128-256-512-512 dilated-512 dilated-512-256 channels), a 313-way ab classifier at 1/4
resolution, a 1x1 ab readout and x4 upsampling. 32.2 M parameters; 41.8 GMACs at 256^2.
Written from the paper's architecture table, not from its code.
"""

from __future__ import annotations

import torch
from torch import nn


def _block(cin: int, cout: int, n: int, stride_last: int = 1, dilation: int = 1, bn: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for i in range(n):
        s = stride_last if i == n - 1 else 1
        layers += [nn.Conv2d(cin if i == 0 else cout, cout, 3, stride=s, padding=dilation, dilation=dilation),
                   nn.ReLU(inplace=True)]
    if bn:
        layers.append(nn.BatchNorm2d(cout))
    return layers


class ECCV16Reference(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *_block(1, 64, 2, stride_last=2),
            *_block(64, 128, 2, stride_last=2),
            *_block(128, 256, 3, stride_last=2),
            *_block(256, 512, 3),
            *_block(512, 512, 3, dilation=2),
            *_block(512, 512, 3, dilation=2),
            *_block(512, 512, 3),
            nn.ConvTranspose2d(512, 256, 4, stride=2, padding=1), nn.ReLU(inplace=True),
            *_block(256, 256, 2, bn=False),
            nn.Conv2d(256, 313, 1),
        )
        self.readout = nn.Conv2d(313, 2, 1, bias=False)
        self.up = nn.Upsample(scale_factor=4, mode="bilinear", align_corners=False)

    def forward(self, L: torch.Tensor) -> torch.Tensor:
        """L (B,1,H,W) -> ab (B,2,H,W)."""
        return self.up(self.readout(torch.softmax(self.body(L), dim=1)))


def reference() -> ECCV16Reference:
    """The yardstick as timed: eval mode, weights channels-last like tinct's own models
    (``tinct.models.base.build_model``), so that both sides get oneDNN's faster layout."""
    return ECCV16Reference().eval().to(memory_format=torch.channels_last)


if __name__ == "__main__":
    net = ECCV16Reference()
    print(f"{sum(p.numel() for p in net.parameters()) / 1e6:.1f} M parameters")
