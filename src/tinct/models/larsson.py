"""Larsson, Maire & Shakhnarovich 2016 (seed 001): hypercolumns -> per-pixel color histograms.

Gray image -> ImageNet backbone (1-channel stem) -> hypercolumn at each pixel (every pyramid
level read at that pixel, plus a global vector standing in for VGG's fc7) -> a small per-pixel
head -> one softmax per histogram. Three output spaces (``space``), all from the paper:

* ``"lab-marginal"``: two 32-bin marginals, over a and over b, with edges at evenly spaced
  quantiles of N(0, 25^2) (``bins.gaussian_quantile_edges``). Loss KL(y_a||f_a) + KL(y_b||f_b).
* ``"lab-joint"``: one 16x16 = 256-bin joint ab histogram on the same Gaussian-quantile axes
  (bin (i, j) is i*16 + j). Loss KL(y||f).
* ``"hue-chroma"``: two 32-bin marginals on [0,1]. tinct reads the paper's hue/chroma in CIE LCh
  (the Lab-based reading; the paper derives them from an HSV-like cylinder): hue =
  atan2(b, a) / (2 pi) mod 1 and chroma = clamp(C_ab / 100, 0, 1) (``bins.ab_to_hue_chroma``;
  back to ab through ``color.lch_to_lab``). Loss KL(y_C||f_C) + lambda_H * y_C * KL(y_H||f_H)
  with lambda_H = 5: hue counts in proportion to the pixel's true chroma, so gray pixels, whose
  hue is noise, teach no hue (``losses.hue_chroma_kl``).

Targets are one-hot (the paper's R = 1). Training is sparse, as in the paper: in ``train()``
mode ``forward`` reads hypercolumns at ``points`` random pixels per image (256 by default; the
paper uses 128; the head on 256 points costs about a ninth of a dense stride-4 head at 192^2,
and the frozen backbone dominates the step anyway) and returns them, and ``loss`` reads the
true ab at exactly those pixels. In ``eval()`` mode the head runs densely at ``out_stride``
(4) and the pipeline upsamples the decoded ab. The two views agree: the sparse hypercolumn is
the dense one read at the point (``HypercolumnProjection``), and the only BatchNorm sees
uniformly sampled pixels in training, whose statistics are those of the dense map.

Head (per pixel, as 1x1 convolutions so the same modules serve (B,C,N,1) points and (B,C,h,w)
maps): hypercolumn --linear projection (``HypercolumnProjection``)--> ``hidden`` -> BatchNorm ->
ReLU -> 1x1 conv ``hidden`` -> ReLU -> 1x1 conv to the bins -> softmax per histogram. The
projection is the paper's h_fc1 (1024 wide there, 256 by default here for CPU); the BatchNorm
evens out the very different scales of the frozen levels.

Decoding (``decode(pred, method)``), per space:

* lab-marginal: expectation (default; the paper's best for Lab), annealed, mode, median,
  sample, each per axis (``sample`` draws a and b independently from their marginals).
* lab-joint: expectation (default), annealed, mode, sample (no median in 2-D).
* hue-chroma: median (default) = median chroma + circular expectation of hue, the paper's best
  pairing (the median is undefined on the hue circle); expectation and annealed (hue by the
  circular, complex mean; chroma by the plain/annealed mean); mode; sample. Whenever hue comes
  from the circular mean z = sum_k p_k exp(2 pi i h_k) (median, expectation, annealed), the chroma
  is multiplied by the chromatic-fading factor min(|z| / eta, 1), eta = 0.03. The seed's notes
  write max(eta^-1 |z|, 1), which is >= 1 and would never fade; the paper's intent (fade the
  color of pixels whose hue is uncertain) is the min, which ``bins.decode_hue`` implements.

``sample`` honours ``options["generator"]`` (a torch.Generator); ``annealed`` takes
``options["temperature"]`` (default ``temperature`` = 0.38); ``options["eta"]`` overrides the
fading constant. ``confidence`` is 1 - the normalised entropy, averaged over the histograms.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .. import bins
from ..backbones import build_backbone
from ..color import gray_rgb_from_l
from ..errors import UsageError
from ..hypercolumn import HypercolumnProjection, sample_points
from ..losses import hue_chroma_kl, kl_histogram
from .base import ColorModel, register

__all__ = ["Larsson", "SPACES", "HUE_CHROMA_METHODS"]

SPACES = ("lab-marginal", "lab-joint", "hue-chroma")
HUE_CHROMA_METHODS = ("median", "expectation", "annealed", "mode", "sample")


@register("larsson")
class Larsson(ColorModel):
    """Larsson et al. 2016: per-pixel color histograms from hypercolumns (see the module docstring).

    Args:
        space: "lab-marginal" | "lab-joint" | "hue-chroma".
        backbone: "efficientnet_lite0" (bundled ImageNet weights) or "vgg16" (the paper's; needs
            ``backbone_weights``, a torchvision-format VGG16 file).
        backbone_weights: path of the VGG16 weights file (ignored by EfficientNet-Lite).
        pretrained: load the backbone's ImageNet weights (False: random init, for tests).
        freeze_backbone: keep the backbone (and its BatchNorm statistics) fixed.
        tune_levels: with a frozen backbone, still train the layers of its last ``tune_levels``
            pyramid levels (BatchNorm statistics stay ImageNet's); 0 = fully frozen.
            They run at strides 16 and 32, yet backward through their depthwise convolutions is
            slow on a CPU: two tuned Lite1 levels halved training throughput (docs/experiments.md).
        hidden: width of the projected hypercolumn and of the head's hidden layer.
        points: pixels sampled per image in training mode.
        out_stride: stride of the dense prediction in eval mode.
        global_context: add a linear map of the image-level average of the deepest level (fc7's
            role in the paper's VGG hypercolumn).
        marginal_bins: K of each marginal histogram (a, b, hue, chroma); the paper's 32.
        joint_bins: bins per axis of the joint ab histogram; the paper's 16.
        sigma: std of the Gaussian whose quantiles bin the Lab axes; the paper's 25.
        lambda_hue: weight lambda_H of the chroma-weighted hue KL; the paper's 5.
        temperature: default temperature of the annealed mean (Zhang et al.'s 0.38).
        eta: chromatic-fading constant; the paper's 0.03.
        decode: the default decoder (None: the space's, as listed in the module docstring), so a
            recipe can ship a model that decodes, say, by the annealed mean.
    """

    training_only_config = ("points",)  # pixels sampled per crop in training; inference is dense

    head_kind = "histogram"
    color_space = "lab"

    def __init__(self, space: str = "hue-chroma", backbone: str = "efficientnet_lite0",
                 backbone_weights: str | None = None, pretrained: bool = True, freeze_backbone: bool = True,
                 tune_levels: int = 0, hidden: int = 256, points: int = 256, out_stride: int = 4, global_context: bool = True,
                 marginal_bins: int = 32, joint_bins: int = 16, sigma: float = 25.0, lambda_hue: float = 5.0,
                 temperature: float = 0.38, eta: float = 0.03, decode: str | None = None):
        super().__init__(space=space, backbone=backbone, backbone_weights=backbone_weights, pretrained=pretrained,
                         freeze_backbone=freeze_backbone, tune_levels=tune_levels, hidden=hidden, points=points, out_stride=out_stride,
                         global_context=global_context, marginal_bins=marginal_bins, joint_bins=joint_bins,
                         sigma=sigma, lambda_hue=lambda_hue, temperature=temperature, eta=eta,
                         decode=decode)
        if space not in SPACES:
            raise UsageError(f"space must be one of {', '.join(SPACES)}; got {space!r}")
        if points < 1 or out_stride < 1 or hidden < 1:
            raise UsageError("points, out_stride and hidden must be positive")
        self.space = space
        self.points = points
        self.out_stride = out_stride
        self.backbone = build_backbone(backbone, pretrained=pretrained, weights=backbone_weights,
                                       freeze=freeze_backbone, tune_levels=tune_levels)
        self.freeze_backbone = freeze_backbone
        self.tune_levels = tune_levels

        # Bin layouts are derived from the config, so they are not saved with the weights.
        k = marginal_bins
        if space == "lab-marginal":
            edges = bins.gaussian_quantile_edges(k, sigma)
            centers = bins.gaussian_quantile_centers(k, sigma)
            self.groups: tuple[int, ...] = (k, k)           # a, b
            self.decode_methods = bins.MARGINAL_METHODS
            self.default_decode = "expectation"
        elif space == "lab-joint":
            edges = bins.gaussian_quantile_edges(joint_bins, sigma)
            centers = bins.gaussian_quantile_centers(joint_bins, sigma)
            self.register_buffer("joint_centers", bins.joint_quantile_centers(joint_bins, sigma), persistent=False)
            self.groups = (joint_bins * joint_bins,)
            self.decode_methods = bins.JOINT_METHODS
            self.default_decode = "expectation"
        else:
            edges, centers = bins.unit_bins(k)
            self.groups = (k, k)                            # chroma, hue
            self.decode_methods = HUE_CHROMA_METHODS
            self.default_decode = "median"
        if decode is not None:
            if decode not in self.decode_methods:
                raise UsageError(f"space {space!r} decodes with {', '.join(self.decode_methods)}; got {decode!r}")
            self.default_decode = decode
        self.register_buffer("edges", edges, persistent=False)              # (K+1,) per axis
        self.register_buffer("centers", centers, persistent=False)          # (K,) per axis
        self.register_buffer("median_edges", bins.bounded_edges(edges, centers), persistent=False)

        self.project = HypercolumnProjection(self.backbone.channels, hidden, global_context)
        self.head = nn.Sequential(
            nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 1), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, sum(self.groups), 1),
        )

    def fold_norms(self) -> None:
        """Inference only: the head's batch norm folded into the hypercolumn projection before it
        (``tinct.folding``; the backbone folds its own)."""
        norm = self.head[0]
        if isinstance(norm, nn.BatchNorm2d):
            scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
            self.project.fold_affine(scale, norm.bias - norm.running_mean * scale)
            self.head[0] = nn.Identity()

    # -- prediction ----------------------------------------------------------------------
    def forward(self, L: torch.Tensor) -> dict[str, torch.Tensor]:
        """L (B,1,H,W) in [0,100] -> prediction dict.

        Training mode: {"logits": (B,K,N,1), "points": (B,N,2)}, N = ``points`` random pixel
        centers per image as grid_sample coordinates in [-1,1] (align_corners=False).
        Eval mode: {"logits": (B,K,H/s,W/s)}, s = ``out_stride``. K = sum of the histogram sizes
        (64 for the marginal spaces, 256 for lab-joint); softmax is applied per histogram later.
        """
        return self.from_features(self.features(L), L.shape[-2:])

    def features(self, L: torch.Tensor) -> list[torch.Tensor]:
        """L (B,1,H,W) in [0,100] -> the backbone's pyramid levels, (B,C_i,H/2^(i+1),W/2^(i+1)).

        With a frozen backbone these are what ``tinct.feature_cache`` stores, so that training
        the head for many epochs runs the backbone once per crop.
        """
        return self.backbone(gray_rgb_from_l(L))

    def from_features(self, feats: list[torch.Tensor], image_size: tuple[int, int]) -> dict[str, torch.Tensor]:
        """The head on the backbone's levels of an image of ``image_size`` (H, W): see ``forward``."""
        B = feats[0].shape[0]
        H, W = image_size[0], image_size[1]
        if self.training:
            pts = sample_points(B, H, W, self.points).to(feats[0].device)
            return {"logits": self.head(self.project.sparse(feats, pts)), "points": pts}
        size = (max(1, H // self.out_stride), max(1, W // self.out_stride))
        return {"logits": self.head(self.project.dense(feats, size))}

    def histograms(self, pred: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """The predicted histograms: a list of (B,K_i,...) probabilities summing to 1 over K_i.

        lab-marginal: [p_a, p_b]; lab-joint: [p_ab]; hue-chroma: [p_chroma, p_hue].
        """
        return [bins.channel_softmax(x) for x in pred["logits"].split(self.groups, dim=1)]

    # -- training ------------------------------------------------------------------------
    def target_ab(self, pred: dict[str, torch.Tensor], ab: torch.Tensor) -> torch.Tensor:
        """True ab (B,2,H,W) -> ab where ``pred`` was made: (B,2,N,1) at its points, else (B,2,h,w).

        Points are read with nearest-neighbour grid_sample (they are pixel centers, so this is
        exact); a dense prediction's target is the ab averaged over each output cell.
        """
        if "points" in pred:
            grid = pred["points"].to(ab).unsqueeze(2)  # (B,N,1,2)
            return F.grid_sample(ab, grid, mode="nearest", padding_mode="border", align_corners=False)
        size = pred["logits"].shape[-2:]
        return ab if ab.shape[-2:] == size else F.adaptive_avg_pool2d(ab, size)

    def encode(self, ab: torch.Tensor) -> list[torch.Tensor]:
        """ab (B,2,h,w) -> one-hot target histograms (R = 1), one (B,K_i,h,w) per predicted histogram."""
        if self.space == "hue-chroma":
            hue, chroma = bins.ab_to_hue_chroma(ab)
            k = self.groups[0]
            return [bins.encode_onehot(bins.bin_index(chroma[:, 0], self.edges), k),
                    bins.encode_onehot(bins.bin_index(hue[:, 0], self.edges), k)]
        ia = bins.bin_index(ab[:, 0], self.edges)
        ib = bins.bin_index(ab[:, 1], self.edges)
        if self.space == "lab-joint":
            k = self.centers.numel()
            return [bins.encode_onehot(bins.joint_index(ia, ib, k), k * k)]
        k = self.groups[0]
        return [bins.encode_onehot(ia, k), bins.encode_onehot(ib, k)]

    def loss(self, pred: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """KL(y || f(x)) at the predicted pixels (see the module docstring); -> (loss, logs)."""
        ab = self.target_ab(pred, batch["ab"].float())
        logits = pred["logits"].float().split(self.groups, dim=1)
        targets = self.encode(ab)
        if self.space == "lab-joint":
            loss = kl_histogram(logits[0], targets[0])
            return loss, {"kl": loss.item()}
        if self.space == "lab-marginal":
            kl_a, kl_b = kl_histogram(logits[0], targets[0]), kl_histogram(logits[1], targets[1])
            return kl_a + kl_b, {"kl_a": kl_a.item(), "kl_b": kl_b.item()}
        _, chroma = bins.ab_to_hue_chroma(ab)
        lam = float(self.config["lambda_hue"])
        loss = hue_chroma_kl(logits[0], logits[1], targets[0], targets[1], chroma[:, 0], lam)
        with torch.no_grad():
            kl_c = kl_histogram(logits[0], targets[0]).item()
        return loss, {"kl_chroma": kl_c, "kl_hue_weighted": (loss.item() - kl_c) / lam}

    # -- decoding ------------------------------------------------------------------------
    def decode(self, pred: dict[str, torch.Tensor], method: str | None = None, **options: Any) -> torch.Tensor:
        """Prediction -> ab (B,2,h,w) in Lab units, by ``method`` (see ``decode_methods``).

        options: ``temperature`` (annealed), ``generator`` (sample), ``eta`` (hue-chroma fading).
        """
        method = self.check_method(method)
        temperature = float(options.get("temperature", self.config["temperature"]))
        generator = options.get("generator")
        probs = self.histograms(pred)
        if self.space == "lab-joint":
            return bins.decode_joint(probs[0], self.joint_centers, method, temperature, generator)
        if self.space == "lab-marginal":
            a, b = (bins.decode_marginal(p, self.centers, method, temperature, generator, self.median_edges)
                    for p in probs)
            return torch.cat([a, b], dim=1)
        p_chroma, p_hue = probs
        eta = float(options.get("eta", self.config["eta"]))
        chroma = bins.decode_marginal(p_chroma, self.centers, method, temperature, generator, self.edges)
        hue_method = "expectation" if method == "median" else method
        hue, fade = bins.decode_hue(p_hue, self.centers, hue_method, temperature, generator, eta)
        return bins.hue_chroma_to_ab(hue, chroma * fade)

    def color_distribution(self, pred: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(probabilities (B,K,h,w), ab (K,2)) over colors: the joint histogram as it is; the two
        marginals of the other spaces as their product (K = 32 x 32), in their bin centers."""
        probs = self.histograms(pred)
        if self.space == "lab-joint":
            return probs[0], self.joint_centers
        first, second = probs
        joint = (first.unsqueeze(2) * second.unsqueeze(1)).flatten(1, 2)  # (B, K1*K2, h, w)
        u, v = torch.meshgrid(self.centers, self.centers, indexing="ij")
        if self.space == "lab-marginal":
            return joint, torch.stack([u.reshape(-1), v.reshape(-1)], dim=1)
        chroma, hue = u.reshape(1, 1, -1, 1), v.reshape(1, 1, -1, 1)  # first = chroma, second = hue
        return joint, bins.hue_chroma_to_ab(hue, chroma)[0, :, :, 0].T.contiguous()

    def confidence(self, pred: dict[str, torch.Tensor]) -> torch.Tensor:
        """1 - normalised entropy, averaged over the pixel's histograms -> (B,1,h,w) in [0,1]."""
        h = torch.stack([bins.entropy(p) for p in self.histograms(pred)]).mean(dim=0)
        return (1.0 - h).clamp(0.0, 1.0)
