"""Color histograms: bin layouts, target encoding and decoding of predicted histograms.

Everything a histogram-predicting model needs, as pure functions on tensors, so that the
Larsson decoders live in one obvious file.

Bin layouts (all centers in Lab units unless stated):

* ``ab_grid(step=10, limit=110)``: a square grid over the ab plane (Zhang et al. 2016 style),
  ``(K, 2)`` centers, K = (2*limit/step)^2 = 484 by default.
* ``gaussian_quantile_edges(k, sigma=25)``: Larsson et al. 2016's per-axis bins, edges at evenly
  spaced quantiles of N(0, sigma^2); K=32 for marginals, 16x16 for the joint histogram.
* ``unit_bins(k=32)``: K uniform bins on [0, 1] for Larsson's hue and chroma marginals.

Decoding methods (``decode_*``): ``expectation``, ``annealed`` (Zhang et al.'s annealed mean,
temperature T=0.38), ``mode``, ``median`` (1-D marginals only), ``sample`` (seeded with a
``torch.Generator``), and for hue the circular (complex) expectation with chromatic fading.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import torch
import torch.nn.functional as F

from .color import lab_to_lch, lch_to_lab
from .errors import UsageError

__all__ = [
    "ab_grid",
    "gaussian_quantile_edges",
    "gaussian_quantile_centers",
    "unit_bins",
    "joint_quantile_centers",
    "bin_index",
    "encode_onehot",
    "encode_soft",
    "soft_targets_grid",
    "channel_softmax",
    "decode_joint",
    "decode_marginal",
    "decode_hue",
    "entropy",
    "joint_index",
    "split_joint_index",
    "bounded_edges",
    "ab_to_hue_chroma",
    "hue_chroma_to_ab",
    "JOINT_METHODS",
    "MARGINAL_METHODS",
]

JOINT_METHODS = ("expectation", "annealed", "mode", "sample")
MARGINAL_METHODS = ("expectation", "annealed", "mode", "median", "sample")
CHROMA_MAX = 100.0  # Lab chroma that maps to 1.0 on Larsson's [0,1] chroma axis (sRGB max is ~134)


# ----------------------------------------------------------------------------- layouts
def ab_grid(step: float = 10.0, limit: float = 110.0) -> torch.Tensor:
    """Centers of a square ab grid, (K, 2) with K = (2*limit/step)^2, row-major over (a, b)."""
    n = int(round(2 * limit / step))
    axis = -limit + step / 2 + step * torch.arange(n, dtype=torch.float32)
    a, b = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([a.reshape(-1), b.reshape(-1)], dim=1)


def gaussian_quantile_edges(k: int, sigma: float = 25.0) -> torch.Tensor:
    """K+1 bin edges at evenly spaced quantiles of N(0, sigma^2); the outer edges are +-inf."""
    nd = NormalDist(0.0, sigma)
    inner = [nd.inv_cdf(i / k) for i in range(1, k)]
    return torch.tensor([-math.inf, *inner, math.inf], dtype=torch.float32)


def gaussian_quantile_centers(k: int, sigma: float = 25.0) -> torch.Tensor:
    """(K,) representative values: the Gaussian's quantile at the middle of each bin's mass."""
    nd = NormalDist(0.0, sigma)
    return torch.tensor([nd.inv_cdf((i + 0.5) / k) for i in range(k)], dtype=torch.float32)


def joint_quantile_centers(k_per_axis: int = 16, sigma: float = 25.0) -> torch.Tensor:
    """(k^2, 2) centers of Larsson's joint ab histogram, row-major over (a, b)."""
    c = gaussian_quantile_centers(k_per_axis, sigma)
    a, b = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([a.reshape(-1), b.reshape(-1)], dim=1)


def unit_bins(k: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Uniform bins on [0,1]: (edges (K+1,), centers (K,))."""
    edges = torch.linspace(0.0, 1.0, k + 1)
    return edges, (edges[:-1] + edges[1:]) / 2


# ----------------------------------------------------------------------------- encoding
def bin_index(x: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Index of the bin holding each value. x: any shape; edges: (K+1,) sorted -> long, same shape."""
    inner = edges[1:-1].to(x.device, x.dtype).contiguous()
    return torch.bucketize(x.contiguous(), inner, right=True)


def encode_onehot(index: torch.Tensor, k: int) -> torch.Tensor:
    """(B,H,W) long bin indices -> (B,K,H,W) one-hot float targets (Larsson's R=1 histograms)."""
    return F.one_hot(index, k).permute(0, 3, 1, 2).to(torch.float32)


def nearest_center(ab: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """ab (B,2,H,W), centers (K,2) -> (B,H,W) index of the nearest center."""
    flat = ab.permute(0, 2, 3, 1).reshape(-1, 2)
    idx = torch.cdist(flat, centers.to(ab)).argmin(dim=1)
    return idx.view(ab.shape[0], ab.shape[2], ab.shape[3])


def encode_soft(ab: torch.Tensor, centers: torch.Tensor, neighbours: int = 5, sigma: float = 5.0) -> torch.Tensor:
    """Soft-encode ab (B,2,H,W) onto centers (K,2) -> (B,K,H,W) histograms summing to 1.

    Zhang et al.'s encoding: the ``neighbours`` nearest centers weighted by a Gaussian of
    their distance (sigma in ab units). ``neighbours=1`` gives one-hot targets.
    """
    B, _, H, W = ab.shape
    flat = ab.permute(0, 2, 3, 1).reshape(-1, 2)
    dist = torch.cdist(flat, centers.to(ab))
    d, idx = dist.topk(neighbours, dim=1, largest=False)
    w = torch.softmax(-(d**2) / (2 * sigma**2), dim=1)
    out = torch.zeros_like(dist).scatter_(1, idx, w)
    return out.view(B, H, W, -1).permute(0, 3, 1, 2).contiguous()


def soft_targets_grid(ab: torch.Tensor, step: float = 10.0, limit: float = 110.0, neighbours: int = 5,
                      sigma: float = 5.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``encode_soft`` for the ``ab_grid(step, limit)`` layout, in sparse form and fast.

    ab (B,2,H,W) -> (index (B,n,H,W) long, weight (B,n,H,W)) of the ``neighbours`` nearest grid
    centers and their Gaussian weights (summing to 1). Only the 3x3 cells around each pixel's
    own cell are candidates, which holds the 5 nearest of a square grid. Scattering ``weight``
    at ``index`` over K channels gives exactly ``encode_soft(ab, ab_grid(step, limit))``.
    """
    n = int(round(2 * limit / step))
    cell = torch.floor((ab.clamp(-limit, limit - 1e-4) + limit) / step).long()  # (B,2,H,W)
    off = torch.tensor([-1, 0, 1], device=ab.device)
    da, db = torch.meshgrid(off, off, indexing="ij")
    ia = (cell[:, :1] + da.reshape(1, 9, 1, 1)).clamp(0, n - 1)  # (B,9,H,W)
    ib = (cell[:, 1:] + db.reshape(1, 9, 1, 1)).clamp(0, n - 1)
    ca = -limit + step / 2 + step * ia.to(ab.dtype)
    cb = -limit + step / 2 + step * ib.to(ab.dtype)
    d2 = (ca - ab[:, :1]) ** 2 + (cb - ab[:, 1:]) ** 2
    # Clamped candidates at the border repeat a cell; push repeats out of the top-k.
    flat = ia * n + ib
    dup = torch.zeros_like(d2, dtype=torch.bool)
    for j in range(1, 9):
        dup[:, j] = (flat[:, :j] == flat[:, j:j + 1]).any(dim=1)
    d2 = d2.masked_fill(dup, float("inf"))
    d2, pick = d2.topk(neighbours, dim=1, largest=False)
    w = torch.softmax(-d2 / (2 * sigma**2), dim=1)
    return flat.gather(1, pick), w


# ----------------------------------------------------------------------------- decoding
def channel_softmax(logits: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """``torch.softmax(logits.float(), dim)``, computed along the last axis of a ``movedim`` view:
    a channels-last prediction (B,K,H,W) is then read in place, where ``torch.softmax`` over
    dim 1 would copy it to channels-first first (several times slower on the CPU)."""
    return torch.softmax(logits.float().movedim(dim, -1), dim=-1).movedim(-1, dim)


def _weighted(probs: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """probs (B,K,H,W) and values (K,C) -> (B,C,H,W), the probability-weighted sum of the values.

    A matrix product over the last axis of (B,H,W,K): a view, no copy, for the channels-last
    predictions the networks give (an einsum over K copies them to channels-first first). The
    small result is returned channels-first, as everything downstream expects.
    """
    return torch.matmul(probs.movedim(1, -1), values).movedim(-1, 1).contiguous()


def _anneal(probs: torch.Tensor, temperature: float, dim: int = 1) -> torch.Tensor:
    """Re-normalised probs^(1/T), computed in log space for stability."""
    logp = torch.log(probs.clamp_min(1e-12)) / temperature
    return channel_softmax(logp, dim=dim)


def _sample_index(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """probs (B,K,H,W) -> (B,H,W) indices drawn per pixel (inverse-CDF with one uniform each)."""
    B, K, H, W = probs.shape
    cdf = probs.cumsum(dim=1)
    u = torch.rand((B, 1, H, W), generator=generator, dtype=probs.dtype, device=probs.device)
    u = u * cdf[:, -1:]
    return (cdf < u).sum(dim=1).clamp_max(K - 1)


def decode_joint(probs: torch.Tensor, centers: torch.Tensor, method: str = "annealed",
                 temperature: float = 0.38, generator: torch.Generator | None = None) -> torch.Tensor:
    """Joint ab histogram (B,K,H,W) over centers (K,2) -> ab (B,2,H,W).

    methods: expectation | annealed (T=``temperature``) | mode | sample.
    """
    c = centers.to(probs)
    if method == "expectation":
        return _weighted(probs, c)
    if method == "annealed":
        return _weighted(_anneal(probs, temperature), c)
    if method == "mode":
        idx = probs.argmax(dim=1)
    elif method == "sample":
        idx = _sample_index(probs, generator)
    else:
        raise UsageError(f"unknown decode method {method!r} for a joint histogram; use one of {JOINT_METHODS}")
    return c[idx].permute(0, 3, 1, 2)


def decode_marginal(probs: torch.Tensor, centers: torch.Tensor, method: str = "expectation",
                    temperature: float = 0.38, generator: torch.Generator | None = None,
                    edges: torch.Tensor | None = None) -> torch.Tensor:
    """One 1-D histogram per pixel (B,K,H,W) over centers (K,) -> values (B,1,H,W).

    methods: expectation | annealed | mode | median | sample. The median inverts the piecewise
    linear CDF through the bin edges (finite ``edges`` (K+1,) if given, else midpoints between
    centers, extended by half a bin at the ends).
    """
    c = centers.to(probs)
    if method == "expectation":
        return _weighted(probs, c[:, None])
    if method == "annealed":
        return _weighted(_anneal(probs, temperature), c[:, None])
    if method == "mode":
        return c[probs.argmax(dim=1)].unsqueeze(1)
    if method == "sample":
        return c[_sample_index(probs, generator)].unsqueeze(1)
    if method == "median":
        e = _finite_edges(c, edges)
        cdf = probs.cumsum(dim=1) / probs.sum(dim=1, keepdim=True).clamp_min(1e-12)
        k = (cdf < 0.5).sum(dim=1, keepdim=True).clamp_max(c.numel() - 1)  # bin holding the median
        prev = torch.where(k > 0, cdf.gather(1, (k - 1).clamp_min(0)), torch.zeros_like(k, dtype=cdf.dtype))
        mass = probs.gather(1, k) / probs.sum(dim=1, keepdim=True).clamp_min(1e-12)
        frac = ((0.5 - prev) / mass.clamp_min(1e-12)).clamp(0.0, 1.0)
        lo, hi = e[k], e[k + 1]
        return lo + frac * (hi - lo)
    raise UsageError(f"unknown decode method {method!r} for a marginal histogram; use one of {MARGINAL_METHODS}")


def _finite_edges(centers: torch.Tensor, edges: torch.Tensor | None) -> torch.Tensor:
    if edges is not None and torch.isfinite(edges).all():
        return edges.to(centers)
    mid = (centers[1:] + centers[:-1]) / 2
    first = centers[:1] - (mid[:1] - centers[:1])
    last = centers[-1:] + (centers[-1:] - mid[-1:])
    return torch.cat([first, mid, last])


def decode_hue(probs: torch.Tensor, centers: torch.Tensor, method: str = "expectation",
               temperature: float = 0.38, generator: torch.Generator | None = None,
               eta: float = 0.03) -> tuple[torch.Tensor, torch.Tensor]:
    """Hue histogram (B,K,H,W) over centers (K,) in [0,1) -> (hue (B,1,H,W) in [0,1), fade (B,1,H,W)).

    ``expectation`` is the circular (complex) mean z = sum_k p_k exp(2 pi i h_k), hue = arg z.
    ``fade`` = min(|z| / eta, 1) is Larsson's chromatic fading factor: multiply the decoded
    chroma by it so that pixels with an uncertain (spread-out) hue lose their color. Other
    methods return fade = 1.
    """
    if method in ("expectation", "annealed"):
        p = _anneal(probs, temperature) if method == "annealed" else probs
        angle = 2 * math.pi * centers.to(probs)
        re = torch.einsum("bkhw,k->bhw", p, torch.cos(angle))
        im = torch.einsum("bkhw,k->bhw", p, torch.sin(angle))
        hue = torch.remainder(torch.atan2(im, re) / (2 * math.pi), 1.0).unsqueeze(1)
        fade = (torch.hypot(re, im) / eta).clamp(max=1.0).unsqueeze(1)
        return hue, fade
    if method == "median":
        raise UsageError("the median is undefined for a circular hue histogram; use expectation")
    hue = decode_marginal(probs, centers, method, temperature, generator)
    return hue, torch.ones_like(hue)


def entropy(probs: torch.Tensor, normalized: bool = True) -> torch.Tensor:
    """Per-pixel entropy of (B,K,H,W) histograms -> (B,1,H,W); divided by log K if ``normalized``."""
    h = -(probs * torch.log(probs.clamp_min(1e-12))).sum(dim=1, keepdim=True)
    return h / math.log(probs.shape[1]) if normalized else h


# ----------------------------------------------------------------------------- Larsson helpers
# (added for the Larsson et al. 2016 model, tinct/models/larsson.py)

def joint_index(index_a: torch.Tensor, index_b: torch.Tensor, k_per_axis: int = 16) -> torch.Tensor:
    """Per-axis bin indices (any shape, long, in [0,k)) -> the joint bin index a*k + b, same shape.

    Row-major over (a, b), matching ``joint_quantile_centers``: ``centers[joint_index(i, j)] ==
    (c[i], c[j])``.
    """
    return index_a * k_per_axis + index_b


def split_joint_index(index: torch.Tensor, k_per_axis: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of ``joint_index``: joint indices (any shape) -> (index_a, index_b)."""
    return torch.div(index, k_per_axis, rounding_mode="floor"), torch.remainder(index, k_per_axis)


def bounded_edges(edges: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """Edges (K+1,) with infinite outer edges made finite, for the piecewise-linear median.

    ``gaussian_quantile_edges`` ends in -inf/+inf, and ``decode_marginal`` falls back to the
    midpoints between centers when given any infinite edge, which would move every inner edge.
    Here only the two outer edges change: each is the mirror image of the inner edge of the end
    bin across that bin's center (so the end bins' centers are their midpoints). Finite edges
    are returned unchanged.
    """
    e = edges.clone().to(centers.dtype)
    if not torch.isfinite(e[0]):
        e[0] = 2 * centers[0] - e[1]
    if not torch.isfinite(e[-1]):
        e[-1] = 2 * centers[-1] - e[-2]
    return e


def ab_to_hue_chroma(ab: torch.Tensor, chroma_max: float = CHROMA_MAX) -> tuple[torch.Tensor, torch.Tensor]:
    """Lab ab (B,2,H,W) -> Larsson's (hue, chroma), each (B,1,H,W) on [0,1].

    The Lab (CIE LCh) reading of the paper's hue/chroma: hue = atan2(b, a) / (2 pi) mod 1, in
    [0, 1); chroma = clamp(C_ab / ``chroma_max``, 0, 1) with C_ab = |(a, b)|. The paper builds
    hue/chroma from an HSV-like cylinder; LCh keeps L as the untouched input channel, which is
    the point the paper makes for chroma over saturation.
    """
    lch = lab_to_lch(torch.cat([torch.zeros_like(ab[:, :1]), ab], dim=1))
    hue = torch.remainder(lch[:, 2:3] / (2 * math.pi), 1.0)
    hue = torch.where(hue >= 1.0, hue - 1.0, hue)  # float rounding of tiny negative angles
    chroma = (lch[:, 1:2] / chroma_max).clamp(0.0, 1.0)
    return hue, chroma


def hue_chroma_to_ab(hue: torch.Tensor, chroma: torch.Tensor, chroma_max: float = CHROMA_MAX) -> torch.Tensor:
    """Inverse of ``ab_to_hue_chroma``: hue, chroma (B,1,H,W) on [0,1] -> ab (B,2,H,W) in Lab units."""
    lch = torch.cat([torch.zeros_like(hue), chroma * chroma_max, hue * (2 * math.pi)], dim=1)
    return lch_to_lab(lch)[:, 1:]
