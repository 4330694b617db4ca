"""Loss functions shared by the models. Shapes: predictions (B,K,H,W) or (B,C,H,W)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["histogram_cross_entropy", "sparse_target_cross_entropy", "kl_histogram", "hue_chroma_kl", "uv_cross_entropy", "rebalance_weights"]


def histogram_cross_entropy(logits: torch.Tensor, target: torch.Tensor,
                            class_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy of predicted logits (B,K,H,W) against target histograms (B,K,H,W).

    Equal to KL(target || softmax(logits)) up to the target's entropy, which does not depend on
    the model. ``class_weights`` (K,) rebalances pixels by the weight of their target's bins
    (Zhang et al. 2016: w = sum_k target_k * weight_k).
    """
    logp = F.log_softmax(logits, dim=1)
    per_pixel = -(target * logp).sum(dim=1)
    if class_weights is not None:
        per_pixel = per_pixel * torch.einsum("bkhw,k->bhw", target, class_weights)
    return per_pixel.mean()


def sparse_target_cross_entropy(logits: torch.Tensor, index: torch.Tensor, weight: torch.Tensor,
                                class_weights: torch.Tensor | None = None) -> torch.Tensor:
    """``histogram_cross_entropy`` for targets given as a few (index, weight) pairs per pixel.

    logits (B,K,H,W); index, weight (B,n,H,W) (e.g. from ``bins.soft_targets_grid``).
    """
    logp = F.log_softmax(logits, dim=1).gather(1, index)
    per_pixel = -(weight * logp).sum(dim=1)
    if class_weights is not None:
        per_pixel = per_pixel * (weight * class_weights[index]).sum(dim=1)
    return per_pixel.mean()


def kl_histogram(logits: torch.Tensor, target: torch.Tensor, pixel_weights: torch.Tensor | None = None) -> torch.Tensor:
    """KL(target || softmax(logits)) per pixel, averaged (optionally weighted by (B,H,W) weights).

    logits, target: (B,K,...) with target histograms summing to 1 over K.
    """
    logp = F.log_softmax(logits, dim=1)
    kl = (target * (torch.log(target.clamp_min(1e-12)) - logp)).sum(dim=1)
    if pixel_weights is not None:
        kl = kl * pixel_weights
    return kl.mean()


def hue_chroma_kl(chroma_logits: torch.Tensor, hue_logits: torch.Tensor, chroma_target: torch.Tensor,
                  hue_target: torch.Tensor, chroma_value: torch.Tensor, lambda_hue: float = 5.0) -> torch.Tensor:
    """Larsson et al.'s hue/chroma loss: KL(y_C||f_C) + lambda_H * y_C * KL(y_H||f_H).

    chroma_value (B,...) is each pixel's true chroma in [0,1], so hue counts less where the
    pixel is nearly gray (its hue is unstable there).
    """
    return kl_histogram(chroma_logits, chroma_target) + lambda_hue * kl_histogram(hue_logits, hue_target, chroma_value)


def uv_cross_entropy(uv_pred: torch.Tensor, uv_true: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Seed 004's loss L = -1/(WH) sum UV log(UV_p), read as a per-channel binary cross-entropy.

    uv_pred, uv_true: (B,2,H,W) in [0,1] (U, V divided by 255). The seed writes only the
    ``UV log UV_p`` term; alone it is minimised by UV_p -> 1 everywhere, so we read it as the
    Bernoulli cross-entropy it abbreviates, -[UV log UV_p + (1-UV) log(1-UV_p)], which is
    minimised exactly at UV_p = UV. Summed over U and V, averaged over pixels and batch.
    """
    p = uv_pred.clamp(eps, 1 - eps)
    ce = -(uv_true * torch.log(p) + (1 - uv_true) * torch.log(1 - p))
    return ce.sum(dim=1).mean()


def rebalance_weights(prior: torch.Tensor, lam: float = 0.5) -> torch.Tensor:
    """Zhang et al.'s class-rebalancing weights from a bin prior (K,): w ~ 1/((1-lam) p + lam/K), E_p[w] = 1."""
    k = prior.numel()
    w = 1.0 / ((1 - lam) * prior + lam / k)
    return w / (prior * w).sum()
