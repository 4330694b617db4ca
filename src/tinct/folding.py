"""An inference copy of a network: batch norms folded into the convolutions before them.

In eval mode a BatchNorm is a per-channel affine map, so ``norm(conv(x))`` equals one
convolution with scaled weights and a bias (``torch.nn.utils.fusion.fuse_conv_bn_weights``).
Folding removes every norm's pass over the activations: on the CPU, in bfloat16, those passes
cost about a sixth of the default model's forward.

Where PyTorch's CPU build offers it, a convolution followed by ReLU6 also becomes one fused
oneDNN call (``conv_relu6``: the activation applied as the output is written).

Modules say what they can fold: a module with a ``fold_norms()`` method folds its own norms in
place (``fold_conv_norm`` for a conv followed by its norm; other layouts, such as a norm after a
sum of projections, do their own algebra). ``inference_network`` copies a model, calls every
``fold_norms`` and, for bfloat16, stores the convolution and linear weights in bfloat16 so that
autocast does not cast them again on every forward. The copy is for inference only; the model
it came from is untouched.
"""

from __future__ import annotations

import copy
import functools

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

__all__ = ["fold_conv_norm", "inference_network", "conv_relu6", "fused_conv_relu6_available"]


def fold_conv_norm(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> None:
    """In place: ``conv`` becomes ``norm(conv(.))`` (eval-mode statistics); the caller then
    replaces ``norm`` with ``nn.Identity()``. Keeps the weight's memory format."""
    channels_last = conv.weight.is_contiguous(memory_format=torch.channels_last)
    weight, bias = fuse_conv_bn_weights(conv.weight, conv.bias, norm.running_mean, norm.running_var, norm.eps,
                                        norm.weight, norm.bias)
    if channels_last:
        weight = nn.Parameter(weight.detach().contiguous(memory_format=torch.channels_last), requires_grad=False)
    conv.weight, conv.bias = weight, bias


def conv_relu6(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: tuple[int, int],
               stride: tuple[int, int], dilation: tuple[int, int], groups: int) -> torch.Tensor:
    """``relu6(conv2d(x, weight, bias, ...))`` as one oneDNN call on the CPU (the fused
    convolution PyTorch's own compiler emits, ``torch.ops.mkldnn._convolution_pointwise``): the
    activation is applied as the convolution writes its output, instead of in a second pass.
    ``x`` is cast to the weight's dtype (autocast does not see this call)."""
    return torch.ops.mkldnn._convolution_pointwise(x.to(weight.dtype), weight, bias, list(padding), list(stride),
                                                   list(dilation), groups, "hardtanh", [0.0, 6.0], "")


@functools.cache
def fused_conv_relu6_available() -> bool:
    """Whether ``conv_relu6`` runs here and agrees with the unfused pair, in float32 and bfloat16
    (it is an internal operator of PyTorch's CPU build; without it inference copies stay unfused)."""
    with torch.autocast("cpu", enabled=False), torch.no_grad():  # the answer must not depend on the caller
        return _fused_conv_relu6_works()


def _fused_conv_relu6_works() -> bool:
    try:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(1, 4, 9, 11, generator=g) * 4
        w = torch.randn(4, 1, 3, 3, generator=g).contiguous(memory_format=torch.channels_last)
        b = torch.randn(4, generator=g)
        for dtype, tol in ((torch.float32, 1e-4), (torch.bfloat16, 0.1)):
            ours = conv_relu6(x, w.to(dtype), b.to(dtype), (1, 1), (1, 1), (1, 1), 4).float()
            theirs = F.relu6(F.conv2d(x.to(dtype), w.to(dtype), b.to(dtype), 1, 1, 1, 4)).float()
            if ours.shape != theirs.shape or not torch.allclose(ours, theirs, atol=tol, rtol=0.02):
                return False
        return True
    except (RuntimeError, AttributeError, TypeError):
        return False


def inference_network(model: nn.Module, dtype: torch.dtype = torch.float32) -> nn.Module:
    """A copy of ``model`` in eval mode with its norms folded (every ``fold_norms()``), no
    gradients, and for ``torch.bfloat16`` its Conv2d and Linear parameters in bfloat16 (run it
    under ``torch.autocast``). Outputs equal the model's up to rounding."""
    net = copy.deepcopy(model).eval().requires_grad_(False)
    for module in list(net.modules()):
        fold = getattr(module, "fold_norms", None)
        if callable(fold):
            fold()
    if dtype != torch.float32:
        for module in net.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                module.to(dtype)
    return net
