"""VGG16 as a feature pyramid, with weights from a torchvision-format file the user points to.

VGG16 ImageNet weights cannot be installed here, so tinct never fetches them: pass the path of
a state dict saved by torchvision (``features.N.weight`` / ``classifier.N.weight`` keys, e.g.
``vgg16-397923af.pth``) or a safetensors file with the same keys. ``weights=None`` builds a
randomly initialised network (for tests and from-scratch training).

``VGG16Features(weights, in_channels=1)(x)`` takes x (B,C,H,W) in [0,1] and returns the outputs of
conv1_2, conv2_2, conv3_3, conv4_3, conv5_3 (after ReLU) at strides 1, 2, 4, 8, 16; ``out_indices``
picks some of them and leaves out the layers after the deepest one (``backbones.base.Backbone``).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from ..errors import MissingFileError, UsageError
from .base import Backbone

__all__ = ["VGG16Features", "load_vgg16_state_dict", "VGG16_CFG"]

VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


def load_vgg16_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a torchvision-format VGG16 state dict (.pth/.pt via the weights-only loader, or .safetensors)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise MissingFileError(
            f"VGG16 weights file not found: {p}. tinct does not download weights; point to a "
            "torchvision-format VGG16 state dict (e.g. vgg16-397923af.pth)."
        )
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(p))
        else:
            with warnings.catch_warnings():  # torch warns about the pickle protocol of odd files
                warnings.simplefilter("ignore")
                state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets one clear line
        kind = "safetensors file" if p.suffix == ".safetensors" else "PyTorch state dict"
        raise UsageError(f"cannot read the VGG16 weights file {p} ({_first_sentence(exc)}): it is truncated, "
                         f"corrupt or not a {kind}; point to a torchvision-format VGG16 state dict "
                         "(e.g. vgg16-397923af.pth)") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or "features.0.weight" not in state:
        raise UsageError(f"{p} does not look like a torchvision VGG16 state dict (no 'features.0.weight')")
    return state


def _first_sentence(exc: BaseException) -> str:
    """The first sentence of an error, on one line (torch's unpickling errors run to paragraphs)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = text.split(". ", 1)[0].rstrip(".")
    return text if len(text) <= 120 else text[:117] + "..."


class VGG16Features(Backbone):
    """VGG16 convolutional trunk returning five pyramid levels (64,128,256,512,512 channels).

    A 1-channel stem is folded exactly from the RGB one: for a gray input g repeated on three
    channels and normalised per channel, conv = g * sum_c w_c/s_c + (b - sum_c w_c m_c/s_c).
    ``out_indices``: the levels (0..4) ``forward`` returns (None: all); the layers after the
    deepest one are dropped once the weights are loaded (``features`` keeps its numbering).
    """

    def __init__(self, weights: str | Path | None = None, in_channels: int = 1,
                 out_indices: Iterable[int] | None = None):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for v in VGG16_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
            else:
                layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=True)]
                cin = v
        self.features = nn.Sequential(*layers)
        if weights is not None:
            state = load_vgg16_state_dict(weights)
            own = {k: v for k, v in state.items() if k.startswith("features.")}
            missing = set(self.features.state_dict()) - {k[len("features."):] for k in own}
            if missing:
                raise UsageError(f"{weights}: the VGG16 state dict misses {sorted(missing)[:4]}...")
            try:
                self.load_state_dict(own, strict=False)
            except RuntimeError as exc:  # tensors of other shapes: another network's weights
                raise UsageError(f"{weights} does not hold VGG16 weights ({_first_sentence(exc)})") from None
        self.in_channels = in_channels
        mean = torch.tensor(_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(_STD).view(1, 3, 1, 1)
        if in_channels == 1:
            conv: nn.Conv2d = self.features[0]
            with torch.no_grad():
                w = conv.weight / std.view(1, 3, 1, 1)
                new = nn.Conv2d(1, 64, 3, padding=1)
                new.weight.copy_(w.sum(dim=1, keepdim=True))
                new.bias.copy_(conv.bias - (conv.weight * (mean / std).view(1, 3, 1, 1)).sum(dim=(1, 2, 3)))
            self.features[0] = new
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)
        depth = self.select_levels((64, 128, 256, 512, 512), (1, 2, 4, 8, 16), out_indices)
        # Indices (in self.features) of the ReLU after conv1_2, conv2_2, conv3_3, conv4_3, conv5_3.
        self._taps = [3, 8, 15, 22, 29][:depth]
        self.features = self.features[: self._taps[-1] + 1]

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std if self.in_channels == 3 else x

    def _level_layers(self, i: int) -> list[nn.Module]:
        first = self._taps[i - 1] + 1 if i > 0 else 0
        return [self.features[j] for j in range(first, self._taps[i] + 1)]
