"""Hypercolumns: per-pixel descriptors made of several feature maps of a CNN.

A hypercolumn at pixel p is the concatenation of every tapped feature map, bilinearly
upsampled to the image grid, read at p (Hariharan et al. 2015; seeds 000, 001 and 004).
Models never build that tensor: its first use is always a linear map (a 1x1 convolution or a
fully connected layer), and a linear map commutes with bilinear interpolation, so

    conv1x1(concat_i(up(f_i))) == sum_i up(conv1x1_i(f_i))

``HypercolumnProjection`` computes a mix of both sides, whichever costs less per level: a
level with many channels is projected at its own resolution, then upsampled and added; levels
with few channels are resized and joined, and projected by one convolution (no full-size sum
per level). It can produce the dense map at any size (``dense``) or only at sampled pixels
(``sparse``, Larsson et al.'s way of training on a few pixels per image).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["HypercolumnProjection", "upsample_concat", "sample_points", "JOIN_CHANNELS"]

# Levels coarser than the output with at most this many channels are resized before their
# projection, and projected together (``HypercolumnProjection.dense``): resizing them costs less
# than resizing their ``out_channels``-wide projections and adding them up. In bfloat16 (CPUs with
# AMX) the full-size projection that joining costs is cheaper still, so wider levels join
# (measured on the default model: float32 85 ms at 64 against 91 at 128; bfloat16 39 against 35).
JOIN_CHANNELS = {torch.float32: 64, torch.bfloat16: 128}


def upsample_concat(features: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
    """The literal hypercolumn: each (B,C_i,h_i,w_i) map bilinearly resized to ``size``, concatenated.

    Returns (B, sum C_i, H, W). Used by tests to pin ``HypercolumnProjection`` and by models
    that want the raw descriptor.
    """
    return torch.cat(
        [F.interpolate(f, size=size, mode="bilinear", align_corners=False) for f in features], dim=1
    )


def sample_points(batch: int, height: int, width: int, count: int,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """``count`` random pixel positions per image, as grid_sample coordinates (B, count, 2) in [-1,1].

    Coordinates address pixel centers of an (height, width) grid with align_corners=False.
    """
    ys = torch.randint(0, height, (batch, count), generator=generator)
    xs = torch.randint(0, width, (batch, count), generator=generator)
    gx = (2 * xs.float() + 1) / width - 1
    gy = (2 * ys.float() + 1) / height - 1
    return torch.stack([gx, gy], dim=-1)


class HypercolumnProjection(nn.Module):
    """Linear projection of a hypercolumn, computed level by level.

    Args:
        channels: channels of each tapped feature map.
        out_channels: width of the projected descriptor.
        global_context: also add a linear map of the last level's global average (Iizuka-style
            image-level context, equal to concatenating that vector to every hypercolumn).
    """

    def __init__(self, channels: tuple[int, ...], out_channels: int, global_context: bool = False):
        super().__init__()
        self.levels = nn.ModuleList(
            nn.Conv2d(c, out_channels, 1, bias=(i == 0)) for i, c in enumerate(channels)
        )
        self.global_fc = nn.Linear(channels[-1], out_channels, bias=False) if global_context else None

    def _global(self, features: list[torch.Tensor]) -> torch.Tensor | None:
        if self.global_fc is None:
            return None
        return self.global_fc(features[-1].mean(dim=(2, 3)))

    def dense(self, features: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        """features[i]: (B,C_i,h_i,w_i) -> projected hypercolumns (B,out,H,W) at ``size``.

        Levels at ``size`` or finer, and coarser ones with at most ``JOIN_CHANNELS[dtype]`` channels,
        are resized to ``size``, concatenated and projected by one 1x1 convolution (their
        weights side by side). Each other level is projected at its resolution and upsampled
        (a map of ``out`` channels), the global context added to the coarsest of them before
        upsampling: bilinear weights sum to 1, so a constant passes through unchanged.
        Equal to projecting every level and summing, up to rounding; several times less
        full-size traffic than that sum (no full-size addition per level).
        """
        joined, weights, bias, coarse = [], [], None, []
        join = JOIN_CHANNELS.get(features[0].dtype, JOIN_CHANNELS[torch.float32])
        for conv, f in zip(self.levels, features):
            at_size = tuple(f.shape[-2:]) == tuple(size)
            if at_size or f.shape[-2] * f.shape[-1] > size[0] * size[1] or f.shape[1] <= join:
                joined.append(f if at_size else F.interpolate(f, size=size, mode="bilinear", align_corners=False))
                weights.append(conv.weight)
                if conv.bias is not None:
                    bias = conv.bias if bias is None else bias + conv.bias
            else:
                coarse.append(conv(f))
        g = self._global(features)
        if g is not None and coarse:
            coarse[-1] = coarse[-1] + g[:, :, None, None]
            g = None
        out = F.conv2d(torch.cat(joined, dim=1), torch.cat(weights, dim=1), bias) if joined else None
        for y in coarse:
            y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
            out = y if out is None else out.add_(y)
        if g is not None:
            out = out + g[:, :, None, None]
        return out

    def fold_affine(self, scale: torch.Tensor, shift: torch.Tensor) -> None:
        """In place, for inference: the projection becomes ``scale * projection + shift``, per
        output channel ((out,) each; a bilinear resize passes both through). This is how a batch
        norm that follows the projection is folded into it (``tinct.folding``)."""
        with torch.no_grad():
            for conv in self.levels:
                conv.weight.mul_(scale.view(-1, 1, 1, 1))
            self.levels[0].bias.mul_(scale).add_(shift)
            if self.global_fc is not None:
                self.global_fc.weight.mul_(scale.view(-1, 1))

    def sparse(self, features: list[torch.Tensor], points: torch.Tensor) -> torch.Tensor:
        """Projected hypercolumns at ``points`` (B,N,2) grid coords -> (B,out,N,1)."""
        grid = points.to(features[0].dtype).unsqueeze(2)  # (B,N,1,2)
        out = None
        for conv, f in zip(self.levels, features):
            # Sampling first is exact too (bilinear weights sum to 1) and cheaper.
            y = conv(F.grid_sample(f, grid, mode="bilinear", padding_mode="border", align_corners=False))
            out = y if out is None else out + y
        g = self._global(features)
        if g is not None:
            out = out + g[:, :, None, None]
        return out
