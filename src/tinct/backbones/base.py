"""What every backbone shares: pyramid levels by index, and how a model holds it.

A backbone is a feature pyramid: levels 0, 1, ... from the shallowest (highest resolution) to
the deepest. ``out_indices`` (at construction, as timm's ``features_only=True, out_indices=``)
names the levels ``forward`` returns by default, all of them unless given; the network is built
only as deep as the deepest of them, so later blocks are neither computed nor stored.
``forward(x, levels=(1, 2))`` asks for other built levels, and stops after the deepest one asked
for. ``.channels`` and ``.strides`` describe the ``out_indices`` levels.

How a colorization model holds its backbone lives here too, once for every model:

* ``freeze()``: no gradients, and its BatchNorm statistics stay the pretrained ones: a frozen
  backbone stays in eval mode when its model is put in train mode;
* ``freeze(tune_levels=n)``: as frozen, but the layers of the last ``n`` built levels still
  train (their BatchNorm statistics stay fixed all the same);
* ``forward`` records autograd only when some of the backbone trains (a fully frozen backbone
  runs as under ``torch.no_grad()`` even while the head trains).

This is a base class of the backbones rather than a module wrapped around them, so that a
model's backbone stays at ``model.backbone`` with its tensors under ``backbone.<name>``: saved
weights (and ``tinct.weights``' "packaged" EfficientNet-Lite prefixes) keep their keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import torch
from torch import nn

from ..errors import UsageError

__all__ = ["Backbone"]


class Backbone(nn.Module):
    """Base class of tinct's backbones (see the module docstring).

    A subclass calls ``select_levels`` in its constructor and implements ``_stem`` (input ->
    what the first level's layers take) and ``_level_layers(i)`` (the layers that compute level
    ``i`` from level ``i - 1``, or from the stem for level 0).
    """

    def __init__(self) -> None:
        super().__init__()
        self.frozen = False
        self.tuned_levels = 0

    # -- levels ----------------------------------------------------------------------------
    def select_levels(self, channels: Sequence[int], strides: Sequence[int],
                      out_indices: Iterable[int] | None) -> int:
        """Record the whole pyramid's ``channels``/``strides`` and the chosen ``out_indices``.

        Returns the number of levels to build (the deepest chosen level + 1).
        """
        n = len(channels)
        chosen = tuple(range(n)) if out_indices is None else tuple(int(i) for i in out_indices)
        if not chosen or len(set(chosen)) != len(chosen) or not all(0 <= i < n for i in chosen):
            raise UsageError(f"out_indices must be distinct pyramid levels in 0..{n - 1}; got {out_indices!r}")
        self.all_channels: tuple[int, ...] = tuple(channels)
        self.all_strides: tuple[int, ...] = tuple(strides)
        self.out_indices: tuple[int, ...] = chosen
        self.depth = max(chosen) + 1
        self.channels: tuple[int, ...] = tuple(self.all_channels[i] for i in chosen)
        self.strides: tuple[int, ...] = tuple(self.all_strides[i] for i in chosen)
        return self.depth

    def _stem(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _level_layers(self, i: int) -> list[nn.Module]:  # pragma: no cover - abstract
        raise NotImplementedError

    def pyramid(self, x: torch.Tensor) -> Iterator[torch.Tensor]:
        """Every built level in order, each computed only when the previous one has been taken."""
        y = self._stem(x)
        for i in range(self.depth):
            for layer in self._level_layers(i):
                y = layer(y)
            yield y

    def forward(self, x: torch.Tensor, levels: Sequence[int] | None = None) -> list[torch.Tensor]:
        """x (B,in_channels,H,W) in [0,1] -> the ``levels`` (default ``out_indices``), in that order.

        Level i is (B, all_channels[i], ceil(H/all_strides[i]), ceil(W/all_strides[i])). Nothing
        deeper than the deepest level asked for is computed.
        """
        levels = self.out_indices if levels is None else tuple(int(i) for i in levels)
        if not levels or not all(0 <= i < self.depth for i in levels):
            raise UsageError(f"levels must be in 0..{self.depth - 1} (the levels this backbone builds); got {levels!r}")
        deepest = max(levels)
        computed: list[torch.Tensor] = []
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.trains):
            for i, y in enumerate(self.pyramid(x)):
                computed.append(y)
                if i == deepest:
                    break
        return [computed[i] for i in levels]

    # -- how a model holds it --------------------------------------------------------------
    @property
    def trains(self) -> bool:
        """Whether any of the backbone trains (not frozen, or frozen with tuned levels)."""
        return not self.frozen or self.tuned_levels > 0

    def train_last_levels(self, n: int) -> list[nn.Parameter]:
        """Freeze everything but the layers of the last ``n`` built levels; return their parameters.

        n = 0 freezes the whole network; n = ``depth`` trains every level (a stem outside the
        levels, such as EfficientNet's, stays frozen). BatchNorm statistics are ``freeze``'s
        business. On a CPU, tuning is slow even for the deepest, low-resolution levels:
        the backward through their depthwise convolutions halved the training throughput with
        two tuned Lite1 levels (docs/experiments.md).
        """
        if not 0 <= n <= self.depth:
            raise UsageError(f"can train the last 0..{self.depth} levels, not {n}")
        self.requires_grad_(False)
        params: list[nn.Parameter] = []
        for i in range(self.depth - n, self.depth):
            for layer in self._level_layers(i):
                layer.requires_grad_(True)
                params += list(layer.parameters())
        return params

    def freeze(self, tune_levels: int = 0) -> Backbone:
        """Fix the backbone: no gradients except in its last ``tune_levels`` levels, BatchNorm
        statistics fixed (it stays in eval mode, whatever ``train()`` says). Returns self."""
        self.train_last_levels(tune_levels)
        self.frozen, self.tuned_levels = True, tune_levels
        return self.train(self.training)

    def train(self, mode: bool = True) -> Backbone:
        """As nn.Module.train, but a frozen backbone stays in eval mode (fixed BatchNorm statistics)."""
        return super().train(mode and not self.frozen)
