"""Colorization evaluation metrics as plain functions on per-image numpy arrays.

Conventions (checked at every public entry point):

* RGB images are sRGB ``uint8`` arrays shaped ``(H, W, 3)``; values 0..255.
* ab arrays are float arrays shaped ``(H, W, 2)`` or ``(N, 2)`` holding CIE Lab a and b
  (D65, 2 degree observer; roughly [-110, 110] inside the sRGB gamut).
* Lab arrays are float ``(..., 3)`` with L in [0, 100].
* Every metric returns a Python ``float``.

Metrics and their sources:

* :func:`psnr` - peak signal-to-noise ratio on sRGB, ``10 log10(255^2 / MSE)``.
* :func:`ssim` - Wang, Bovik, Sheikh & Simoncelli, "Image Quality Assessment: From Error
  Visibility to Structural Similarity", IEEE TIP 13(4), 2004 (via scikit-image).
* :func:`qssim` - Kolaman & Yadid-Pecht, "Quaternion Structural Similarity: A New Quality
  Index for Color Images", IEEE TIP 21(4), 2012 (the metric seed 004 evaluates with).
* :func:`auc_raw_accuracy`, :func:`auc_rebalanced`, :func:`pooled_auc` - Zhang, Isola &
  Efros, "Colorful Image Colorization", ECCV 2016: area under the cumulative curve of
  per-pixel ab errors, raw and class-rebalanced.
* :func:`colorfulness`, :func:`colorfulness_gap` - Hasler & Suesstrunk, "Measuring
  Colourfulness in Natural Images", SPIE Human Vision and Electronic Imaging VIII, 2003.
* :func:`ciede2000`, :func:`ciede2000_lab` - Sharma, Wu & Dalal, "The CIEDE2000
  Color-Difference Formula", Color Research & Application 30(1), 2005 (via scikit-image).
* :func:`top1_accuracy` - classification accuracy for "semantic interpretability" tests.

:func:`image_metrics` bundles the per-image metrics into a dict and :func:`aggregate` averages
such dicts over a set; :func:`pooled_auc` computes the set-level AuC exactly as Zhang et al.
do (pooling pixels over the whole set rather than averaging per-image AuCs).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import torch
from scipy.ndimage import gaussian_filter
from skimage.color import deltaE_ciede2000, rgb2lab
from skimage.metrics import structural_similarity

from .errors import UsageError

__all__ = [
    "METRIC_KEYS",
    "ab_bin_index",
    "ab_from_rgb_u8",
    "ab_prior",
    "aggregate",
    "auc_raw_accuracy",
    "auc_rebalanced",
    "ciede2000",
    "ciede2000_lab",
    "colorfulness",
    "colorfulness_gap",
    "image_metrics",
    "pooled_auc",
    "psnr",
    "qssim",
    "rebalancing_weights",
    "ssim",
    "top1_accuracy",
]

METRIC_KEYS = ("psnr", "ssim", "qssim", "auc", "auc_rebal", "colorfulness", "cf_gap", "ciede2000")

AB_LIMIT = 110.0  # the ab grid for rebalancing covers [-AB_LIMIT, AB_LIMIT]^2 (Zhang et al.)

# QSSIM window: Gaussian sigma 1.5 truncated at 3.5 sigma -> radius int(3.5*1.5+0.5) = 5, 11x11.
_QSSIM_SIGMA = 1.5
_QSSIM_TRUNCATE = 3.5
_QSSIM_RADIUS = int(_QSSIM_TRUNCATE * _QSSIM_SIGMA + 0.5)


# ----------------------------------------------------------------------------- validation
def _check_rgb_u8(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype != np.uint8:
        raise TypeError(f"{name} must be an sRGB uint8 array, got dtype {x.dtype}")
    if x.ndim != 3 or x.shape[-1] != 3:
        raise UsageError(f"{name} must be shaped (H, W, 3), got {x.shape}")
    return x


def _check_rgb_pair(pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = _check_rgb_u8(pred, "pred_rgb_u8")
    true = _check_rgb_u8(true, "true_rgb_u8")
    if pred.shape != true.shape:
        raise UsageError(f"shape mismatch: pred {pred.shape} vs true {true.shape}")
    return pred, true


def _check_ab(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 2 or x.shape[-1] != 2:
        raise UsageError(f"{name} must be shaped (H, W, 2) or (N, 2), got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise UsageError(f"{name} contains non-finite values")
    return x


def _check_ab_pair(pred_ab: np.ndarray, true_ab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred_ab = _check_ab(pred_ab, "pred_ab")
    true_ab = _check_ab(true_ab, "true_ab")
    if pred_ab.shape != true_ab.shape:
        raise UsageError(f"shape mismatch: pred_ab {pred_ab.shape} vs true_ab {true_ab.shape}")
    return pred_ab, true_ab


# ----------------------------------------------------------------------------- PSNR / SSIM
def psnr(pred_rgb_u8: np.ndarray, true_rgb_u8: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB between two sRGB uint8 images (H, W, 3).

    ``PSNR = 10 log10(255^2 / MSE)`` with ``MSE`` the mean squared difference over all
    H*W*3 values (one MSE over the three channels, not a mean of per-channel PSNRs),
    computed in float64. Identical images have MSE = 0 and return ``math.inf``; note that
    :func:`aggregate` then reports ``inf`` for the set mean too.
    """
    pred, true = _check_rgb_pair(pred_rgb_u8, true_rgb_u8)
    mse = float(np.mean((pred.astype(np.float64) - true.astype(np.float64)) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(255.0**2 / mse)


def ssim(pred_rgb_u8: np.ndarray, true_rgb_u8: np.ndarray, gaussian_weights: bool = False) -> float:
    """Mean SSIM (Wang et al. 2004) of two sRGB uint8 images (H, W, 3), in [-1, 1].

    Computed by ``skimage.metrics.structural_similarity(..., channel_axis=-1,
    data_range=255)``: per channel, the local index
    ``((2 mu_x mu_y + C1)(2 s_xy + C2)) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2))``
    with ``C1 = (0.01*255)^2``, ``C2 = (0.03*255)^2`` is averaged over the image (after
    cropping a border of half a window) and then over the three channels.

    Window settings:

    * ``gaussian_weights=False`` (default; scikit-image's own defaults, i.e. what a plain
      ``structural_similarity`` call reports): 7x7 uniform window and sample (N-1)
      covariances. Images must be at least 7x7.
    * ``gaussian_weights=True`` (Wang et al.'s published settings): 11x11 Gaussian window
      with sigma 1.5 and population covariances - the same window :func:`qssim` uses.
      Images must be at least 11x11.
    """
    pred, true = _check_rgb_pair(pred_rgb_u8, true_rgb_u8)
    kwargs: dict[str, object] = {"channel_axis": -1, "data_range": 255}
    if gaussian_weights:
        kwargs.update(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    return float(structural_similarity(pred, true, **kwargs))


# ----------------------------------------------------------------------------- QSSIM
def qssim(pred_rgb_u8: np.ndarray, true_rgb_u8: np.ndarray) -> float:
    """Quaternion SSIM (Kolaman & Yadid-Pecht, IEEE TIP 21(4), 2012) of two sRGB uint8 images.

    Shapes: ``(H, W, 3)`` uint8 each, H and W at least 11. Returns a float in [0, 1];
    exactly 1 for identical images, symmetric in its arguments.

    Each pixel is the pure quaternion ``q = R i + G j + B k`` with R, G, B scaled to [0, 1]
    (so ``L = 1``). Local statistics use normalised Gaussian weights ``w`` (sigma 1.5,
    truncated at 3.5 sigma -> 11x11 window, image borders reflected, the SSIM settings of
    Wang et al. 2004), with ``E[.]`` the weighted window mean:

    * ``mu_x = E[x]`` (a pure quaternion),
    * ``sigma_x^2 = E[|x - mu_x|^2] = E[|x|^2] - |mu_x|^2`` (real; the sum of the three
      channel variances),
    * ``sigma_xy = E[(x - mu_x)(y - mu_y)^*] = E[x y^*] - mu_x mu_y^*`` (a full quaternion;
      products are Hamilton products, ``^*`` is the quaternion conjugate),

    and the local index is the modulus of the quaternion-valued ratio

    ``QSSIM_w = | (2 mu_x mu_y^* + C1)(2 sigma_xy + C2) | /
    ((|mu_x|^2 + |mu_y|^2 + C1)(sigma_x^2 + sigma_y^2 + C2))``

    with ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2``, ``L = 1`` (real constants added to the
    real part). The denominator is real, so the modulus of the quaternion quotient is the
    modulus of the numerator's Hamilton product over the denominator. This is the reading
    implemented: "the magnitude of the quaternion-valued index per window", averaged over
    all window centres at least 5 pixels (one window radius) from the border, exactly as
    scikit-image crops its SSIM map.

    Properties that follow from this reading (and are tested):

    * ``|2 mu_x mu_y^* + C1| <= |mu_x|^2 + |mu_y|^2 + C1`` and ``|sigma_xy| <=
      sigma_x sigma_y`` (Cauchy-Schwarz), so the index is <= 1 with equality iff both
      windows agree; swapping x and y conjugates both factors, so it is symmetric.
    * For gray images (R = G = B) every quaternion is parallel to ``i + j + k``, the
      products are real and the index equals ``|SSIM map|`` of the gray channel computed
      with ``C1/3, C2/3`` (i.e. ``K1/sqrt 3, K2/sqrt 3``) - close to, but not equal to,
      ordinary SSIM.
    * Caveat of the modulus: ``|mu_x mu_y^*| = |mu_x| |mu_y|`` whatever the angle between
      the two mean colours, so hue differences in the means enter only through C1. Two
      constant images, pure red and pure green, score ``sqrt(4 + C1^2) / (2 + C1)``
      ~= 0.99995. Likewise ``|sigma_xy| = sigma_x sigma_y`` whenever all deviations in a
      window lie along one colour direction in each image, whatever the two directions;
      e.g. a red/black checkerboard against the same green/black checkerboard scores
      ~0.998 (SSIM 0.33). Hue errors lower QSSIM only where a window mixes deviations in
      several colour directions that are not rotated alike. Expect colour-blind
      predictions (e.g. a gray image) to score high; pair QSSIM with ab-based metrics.
    """
    index_map = _qssim_map(_check_rgb_u8(pred_rgb_u8, "pred_rgb_u8"), _check_rgb_u8(true_rgb_u8, "true_rgb_u8"))
    return float(index_map.mean())


def _qssim_map(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Local QSSIM index (H-10, W-10) at every window centre 5+ pixels from the border.

    Implementation of the formula in :func:`qssim` with the quaternion algebra written out
    for pure quaternions x = a_1 i + a_2 j + a_3 k, y = b_1 i + b_2 j + b_3 k:

    * Hamilton product with a conjugate: ``x y^* = -x y = (a . b) - (a x b)`` (real part the
      dot product, vector part minus the cross product). Hence ``mu_x mu_y^* =
      (mu_a . mu_b) - (mu_a x mu_b)`` and, window means being linear,
      ``sigma_xy = E[x y^*] - mu_x mu_y^* = (E[a . b] - mu_a . mu_b) - (E[a x b] - mu_a x mu_b)``.
    * The quaternion norm is multiplicative, ``|P Q| = |P| |Q|``, so the modulus of the
      numerator's Hamilton product is ``|2 mu_x mu_y^* + C1| * |2 sigma_xy + C2|``.

    Each line is arranged so identical inputs give a bit-identical numerator and denominator
    (index exactly 1).
    """
    if pred.shape != true.shape:
        raise UsageError(f"shape mismatch: pred {pred.shape} vs true {true.shape}")
    h, w, _ = pred.shape
    r = _QSSIM_RADIUS
    if min(h, w) < 2 * r + 1:
        raise UsageError(f"qssim needs images of at least 11x11 pixels, got {h}x{w}")
    # Vector (i, j, k) parts of the pure quaternions, in [0, 1].
    # (Channel-first C-contiguous copies: elementwise work on strided views is several x slower.)
    a0, a1, a2 = np.moveaxis(pred, -1, 0).astype(np.float64, order="C") / 255.0
    b0, b1, b2 = np.moveaxis(true, -1, 0).astype(np.float64, order="C") / 255.0
    # Window means of the 12 per-pixel quantities a (3), b (3), |a|^2, |b|^2, a . b, a x b (3),
    # filtered in one call on a contiguous (12, H, W) stack.
    stack = np.empty((12, h, w), dtype=np.float64)
    stack[0], stack[1], stack[2] = a0, a1, a2
    stack[3], stack[4], stack[5] = b0, b1, b2
    stack[6] = a0 * a0 + a1 * a1 + a2 * a2
    stack[7] = b0 * b0 + b1 * b1 + b2 * b2
    stack[8] = a0 * b0 + a1 * b1 + a2 * b2
    stack[9] = a1 * b2 - a2 * b1
    stack[10] = a2 * b0 - a0 * b2
    stack[11] = a0 * b1 - a1 * b0
    means = gaussian_filter(stack, sigma=(0.0, _QSSIM_SIGMA, _QSSIM_SIGMA), truncate=_QSSIM_TRUNCATE, mode="reflect")
    # Only window centres one radius from the border are kept (like scikit-image's crop),
    # so crop before the per-window algebra.
    ma0, ma1, ma2, mb0, mb1, mb2, e_aa, e_bb, e_ab, e_c0, e_c1, e_c2 = means[:, r : h - r, r : w - r]
    mu_x_sq = ma0 * ma0 + ma1 * ma1 + ma2 * ma2  # |mu_x|^2
    mu_y_sq = mb0 * mb0 + mb1 * mb1 + mb2 * mb2  # |mu_y|^2
    mu_dot = ma0 * mb0 + ma1 * mb1 + ma2 * mb2  # real part of mu_x mu_y^*
    mu_c0 = ma1 * mb2 - ma2 * mb1  # mu_a x mu_b (minus the vector part of mu_x mu_y^*)
    mu_c1 = ma2 * mb0 - ma0 * mb2
    mu_c2 = ma0 * mb1 - ma1 * mb0
    var_x = e_aa - mu_x_sq  # sigma_x^2 = E|x - mu_x|^2 = E|x|^2 - |mu_x|^2
    var_y = e_bb - mu_y_sq
    cov_re = e_ab - mu_dot  # real part of sigma_xy
    cov_v0 = e_c0 - mu_c0  # minus the vector part of sigma_xy
    cov_v1 = e_c1 - mu_c1
    cov_v2 = e_c2 - mu_c2

    c1 = 0.01**2
    c2 = 0.03**2
    # |2 mu_x mu_y^* + C1| and |2 sigma_xy + C2| (the sign of the vector parts drops out).
    lum_abs = np.sqrt((2.0 * mu_dot + c1) ** 2 + 4.0 * (mu_c0 * mu_c0 + mu_c1 * mu_c1 + mu_c2 * mu_c2))
    struct_abs = np.sqrt((2.0 * cov_re + c2) ** 2 + 4.0 * (cov_v0 * cov_v0 + cov_v1 * cov_v1 + cov_v2 * cov_v2))
    denominator = (mu_x_sq + mu_y_sq + c1) * (var_x + var_y + c2)
    return lum_abs * struct_abs / denominator


# ----------------------------------------------------------------------------- AuC (Zhang et al.)
def _auc_from_hist(hist: np.ndarray, max_threshold: int) -> float:
    """AuC in percent from a histogram over k = ceil(distance), k = 0..max_threshold+1.

    ``hist[k]`` is the (weighted) mass of pixels whose error needs threshold k; the last
    entry collects every pixel beyond ``max_threshold``.
    """
    total = float(hist.sum())
    if total <= 0.0:
        raise UsageError("AuC needs a positive total pixel weight")
    accuracy = np.cumsum(hist[: max_threshold + 1]) / total  # accuracy(t), t = 0..max_threshold
    return float(accuracy.mean() * 100.0)


def _threshold_index(pred_ab: np.ndarray, true_ab: np.ndarray, max_threshold: int) -> np.ndarray:
    """Flat int array: ceil of each pixel's ab L2 error, clipped to max_threshold + 1."""
    diff = pred_ab - true_ab
    da, db = diff[..., 0], diff[..., 1]
    dist = np.sqrt(da * da + db * db).reshape(-1)
    return np.minimum(np.ceil(dist), max_threshold + 1).astype(np.int64)


def _check_threshold(max_threshold: int) -> int:
    if int(max_threshold) != max_threshold or max_threshold < 0:
        raise UsageError(f"max_threshold must be a non-negative integer, got {max_threshold}")
    return int(max_threshold)


def auc_raw_accuracy(
    pred_ab: np.ndarray,
    true_ab: np.ndarray,
    max_threshold: int = 150,
    weights: np.ndarray | None = None,
) -> float:
    """Raw-accuracy AuC of Zhang et al. (ECCV 2016), in percent (perfect = 100).

    ``pred_ab``, ``true_ab``: float arrays (H, W, 2) or (N, 2) of Lab a, b values.
    ``weights``: optional non-negative per-pixel weights shaped like the leading dims
    ((H, W) or (N,)); used by the rebalanced variant.

    With ``d_i = ||pred_ab_i - true_ab_i||_2`` and
    ``acc(t) = sum_i w_i [d_i <= t] / sum_i w_i`` (``w_i = 1`` when unweighted), the score is

    ``AuC = 100 / (T + 1) * sum_{t=0}^{T} acc(t)``,   T = ``max_threshold`` = 150,

    i.e. the mean over the T+1 = 151 integer thresholds 0, 1, ..., 150 inclusive. A pixel
    with error d is counted from threshold ceil(d) on, so a pixel off by exactly 50
    contributes ``(150 - 50 + 1) / 151``; a pixel off by more than 150 contributes 0.
    This is the per-image score; see :func:`pooled_auc` for the set-level one.
    """
    max_threshold = _check_threshold(max_threshold)
    pred_ab, true_ab = _check_ab_pair(pred_ab, true_ab)
    k = _threshold_index(pred_ab, true_ab, max_threshold)
    w = None
    if weights is not None:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != pred_ab.shape[:-1]:
            raise UsageError(f"weights must be shaped {pred_ab.shape[:-1]}, got {w.shape}")
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise UsageError("weights must be finite and non-negative")
        w = w.reshape(-1)
    hist = np.bincount(k, weights=w, minlength=max_threshold + 2)
    return _auc_from_hist(hist, max_threshold)


def _n_bins(bin_size: float) -> int:
    if bin_size <= 0:
        raise UsageError(f"bin_size must be positive, got {bin_size}")
    return math.ceil(2 * AB_LIMIT / bin_size - 1e-9)


def ab_bin_index(ab: np.ndarray, bin_size: float = 10.0) -> np.ndarray:
    """Flat index of each ab value's cell on the square grid over [-110, 110]^2.

    ``ab``: (..., 2) float -> int64 array shaped (...). Cells are ``bin_size`` wide
    (n = 22 per axis for the default 10, 484 cells in all, matching
    :func:`tinct.bins.ab_grid`); the index is ``i_a * n + i_b`` with
    ``i = floor((v + 110) / bin_size)`` clipped to [0, n-1], so values outside the grid
    fall into the border cells.
    """
    ab = np.asarray(ab, dtype=np.float64)
    n = _n_bins(bin_size)
    idx = np.clip(np.floor((ab + AB_LIMIT) / bin_size), 0, n - 1).astype(np.int64)
    return idx[..., 0] * n + idx[..., 1]


def _prior_array(prior: Mapping[object, float] | np.ndarray | Sequence[float], n: int) -> np.ndarray:
    """Normalise a prior given as dict or array into a (n*n,) float array of frequencies."""
    if isinstance(prior, Mapping):
        arr = np.zeros(n * n, dtype=np.float64)
        for key, freq in prior.items():
            if isinstance(key, tuple):
                ia, ib = key
                if not (0 <= ia < n and 0 <= ib < n):
                    raise UsageError(f"prior key {key} outside the {n}x{n} grid")
                arr[int(ia) * n + int(ib)] += float(freq)
            else:
                if not 0 <= int(key) < n * n:
                    raise UsageError(f"prior key {key} outside 0..{n * n - 1}")
                arr[int(key)] += float(freq)
    else:
        arr = np.asarray(prior, dtype=np.float64)
        if arr.shape not in ((n * n,), (n, n)):
            raise UsageError(f"prior array must be shaped ({n * n},) or ({n}, {n}), got {arr.shape}")
        arr = arr.reshape(-1).copy()
    if not np.all(np.isfinite(arr)) or np.any(arr < 0) or arr.sum() <= 0:
        raise UsageError("prior frequencies must be finite, non-negative and not all zero")
    return arr / arr.sum()


def _bin_weights(freq: np.ndarray) -> np.ndarray:
    """Per-bin weights 1 / (Q p_k) for occupied bins (Q = number of them), 0 elsewhere."""
    p = freq / freq.sum()
    occupied = p > 0
    w = np.zeros_like(p)
    w[occupied] = 1.0 / (occupied.sum() * p[occupied])
    return w


def ab_prior(true_abs: Iterable[np.ndarray], bin_size: float = 10.0) -> np.ndarray:
    """Dataset-level ab bin frequencies: (n*n,) float array summing to 1.

    ``true_abs``: iterable of ground-truth ab arrays, each (H, W, 2) or (N, 2); every pixel
    of every array counts once. Pass the result as ``prior=`` to :func:`auc_rebalanced`,
    :func:`rebalancing_weights` or :func:`pooled_auc`.
    """
    n = _n_bins(bin_size)
    counts = np.zeros(n * n, dtype=np.float64)
    for ab in true_abs:
        ab = _check_ab(ab, "true_ab")
        counts += np.bincount(ab_bin_index(ab, bin_size).reshape(-1), minlength=n * n)
    if counts.sum() <= 0:
        raise UsageError("ab_prior needs at least one pixel")
    return counts / counts.sum()


def rebalancing_weights(
    true_ab: np.ndarray,
    bin_size: float = 10.0,
    prior: Mapping[object, float] | np.ndarray | None = None,
) -> np.ndarray:
    """Per-pixel class-rebalancing weights for the ground truth ``true_ab`` (H, W, 2) or (N, 2).

    Each pixel falls into the ``bin_size`` cell of its true ab value (see
    :func:`ab_bin_index`; 22x22 cells over [-110, 110]^2 by default). With ``p_k`` the
    frequency of cell k, pixel i in cell k(i) gets

    ``w_i = 1 / (Q p_{k(i)})``,   Q = number of cells with ``p_k > 0``,

    so every occupied cell carries the same total weight and the weights average to 1 over
    the pixels ``p`` was measured on.

    * ``prior=None`` (default): ``p`` is this image's own histogram.
    * ``prior`` given: dataset-level frequencies as Zhang et al. use - an array shaped
      (n*n,) (index ``i_a * n + i_b``) or (n, n), or a dict keyed by flat index or by
      ``(i_a, i_b)``; counts or frequencies (the scale cancels). Build one with
      :func:`ab_prior`. A pixel whose cell has zero prior frequency raises ``ValueError``
      (smooth or recompute the prior on data that includes the evaluated images).

    Returns float64 weights shaped like ``true_ab.shape[:-1]``.
    """
    true_ab = _check_ab(true_ab, "true_ab")
    n = _n_bins(bin_size)
    idx = ab_bin_index(true_ab, bin_size)
    if prior is None:
        freq = np.bincount(idx.reshape(-1), minlength=n * n).astype(np.float64)
    else:
        freq = _prior_array(prior, n)
        if np.any(freq[idx] <= 0):
            raise UsageError("prior has zero frequency for a bin occupied by true_ab")
    return _bin_weights(freq)[idx]


def auc_rebalanced(
    pred_ab: np.ndarray,
    true_ab: np.ndarray,
    max_threshold: int = 150,
    bin_size: float = 10.0,
    prior: Mapping[object, float] | np.ndarray | None = None,
) -> float:
    """Class-rebalanced AuC of Zhang et al. (ECCV 2016), in percent (perfect = 100).

    :func:`auc_raw_accuracy` with pixels weighted by :func:`rebalancing_weights`, i.e.
    inversely to the frequency of their ground-truth ab cell (10-unit grid over
    [-110, 110]^2), so every occupied colour cell counts equally:

    ``acc_rebal(t) = (1/Q) sum_k (fraction of cell-k pixels with d_i <= t)`` with the
    image's own frequencies (with a ``prior``, cell k's fraction is weighted by
    ``(n_k / p_k) / sum_j (n_j / p_j)``, n_k the image's pixel count in cell k).

    ``prior=None`` uses this image's own cell frequencies; pass a dataset-level prior
    (see :func:`ab_prior`) to reproduce Zhang et al.'s dataset-frequency rebalancing.
    For the set-level score with set-level frequencies use
    ``pooled_auc(..., rebalanced=True)``.
    """
    weights = rebalancing_weights(true_ab, bin_size=bin_size, prior=prior)
    return auc_raw_accuracy(pred_ab, true_ab, max_threshold=max_threshold, weights=weights)


def pooled_auc(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]],
    max_threshold: int = 150,
    rebalanced: bool = False,
    bin_size: float = 10.0,
    prior: Mapping[object, float] | np.ndarray | None = None,
) -> float:
    """Set-level AuC over all pixels of all ``(pred_ab, true_ab)`` pairs, in percent.

    Zhang et al. pool pixels over the whole evaluation set: ``acc(t)`` is the fraction of
    all pixels of all images with error <= t, so large images weigh more than in the mean of
    per-image AuCs. Here one pass accumulates a joint count ``N[k, c]`` of (true ab cell k,
    threshold index c = ceil(error)) over every pixel; then

    * raw: ``acc(t) = sum_k sum_{c<=t} N[k, c] / sum N``;
    * ``rebalanced=True``: cell k's counts are weighted by ``1 / p_k`` with ``p_k`` the
      set-level frequency of cell k (the row sums of N) or ``prior`` if given, so every
      occupied cell of the whole set counts equally.

    Both average acc(t) over t = 0..``max_threshold`` (151 thresholds) and scale by 100.
    For a single pair this equals :func:`auc_raw_accuracy` / :func:`auc_rebalanced`.
    ``pairs`` may be a generator (memory stays O(cells x thresholds)).
    """
    max_threshold = _check_threshold(max_threshold)
    n = _n_bins(bin_size)
    n_c = max_threshold + 2
    joint = np.zeros(n * n * n_c, dtype=np.float64)
    for pred_ab, true_ab in pairs:
        pred_ab, true_ab = _check_ab_pair(pred_ab, true_ab)
        c = _threshold_index(pred_ab, true_ab, max_threshold)
        k = ab_bin_index(true_ab, bin_size).reshape(-1)
        joint += np.bincount(k * n_c + c, minlength=n * n * n_c)
    joint = joint.reshape(n * n, n_c)
    if joint.sum() <= 0:
        raise UsageError("pooled_auc needs at least one pixel")
    if not rebalanced:
        return _auc_from_hist(joint.sum(0), max_threshold)
    occupied = joint.sum(1) > 0
    freq = joint.sum(1) if prior is None else _prior_array(prior, n)
    if np.any(freq[occupied] <= 0):
        raise UsageError("prior has zero frequency for a bin occupied by the ground truth")
    w = _bin_weights(freq)
    return _auc_from_hist((w[:, None] * joint).sum(0), max_threshold)


# ----------------------------------------------------------------------------- colourfulness
def colorfulness(rgb_u8: np.ndarray) -> float:
    """Colourfulness M of Hasler & Suesstrunk (2003) for an sRGB uint8 image (H, W, 3).

    On the 0..255 values: ``rg = R - G``, ``yb = (R + G)/2 - B``,
    ``M = sqrt(std_rg^2 + std_yb^2) + 0.3 sqrt(mean_rg^2 + mean_yb^2)`` with population
    (ddof = 0) standard deviations over all pixels. 0 for any gray image.
    """
    rgb = _check_rgb_u8(rgb_u8, "rgb_u8").astype(np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    rg = r - g
    yb = 0.5 * (r + g) - b
    return float(math.hypot(rg.std(), yb.std()) + 0.3 * math.hypot(rg.mean(), yb.mean()))


def colorfulness_gap(pred_rgb_u8: np.ndarray, true_rgb_u8: np.ndarray) -> float:
    """``|M(pred) - M(true)|`` with M from :func:`colorfulness`; inputs sRGB uint8 (H, W, 3)."""
    return abs(colorfulness(pred_rgb_u8) - colorfulness(true_rgb_u8))


# ----------------------------------------------------------------------------- CIEDE2000
def ciede2000_lab(pred_lab: np.ndarray, true_lab: np.ndarray) -> float:
    """Mean CIEDE2000 colour difference (Sharma et al. 2005; kL = kC = kH = 1).

    ``pred_lab``, ``true_lab``: float Lab arrays of equal shape (..., 3), L in [0, 100];
    a single (3,) triple is fine. Returns the mean Delta E_00 over all positions
    (``skimage.color.deltaE_ciede2000``).
    """
    pred_lab = np.asarray(pred_lab, dtype=np.float64)
    true_lab = np.asarray(true_lab, dtype=np.float64)
    if pred_lab.shape != true_lab.shape or pred_lab.shape[-1:] != (3,):
        raise UsageError(f"expected two equal (..., 3) Lab arrays, got {pred_lab.shape} and {true_lab.shape}")
    return float(np.mean(deltaE_ciede2000(pred_lab, true_lab, channel_axis=-1)))


def ciede2000(pred_rgb_u8: np.ndarray, true_rgb_u8: np.ndarray) -> float:
    """Mean CIEDE2000 between two sRGB uint8 images (H, W, 3); 0 for identical images.

    Both images go to Lab with ``skimage.color.rgb2lab`` (D65, 2 degrees, float64), then
    ``skimage.color.deltaE_ciede2000`` per pixel and the mean. For speed the per-pixel
    Delta E is evaluated on float32 Lab (about 2x faster): per-pixel deviations from a
    float64 evaluation are below 1e-4 and the image mean moves by ~1e-6 - far below the
    quantisation of 8-bit inputs. Use :func:`ciede2000_lab` for float64 throughout.
    """
    pred, true = _check_rgb_pair(pred_rgb_u8, true_rgb_u8)
    return _ciede2000_rgb_lab(rgb2lab(pred), rgb2lab(true))


def _ciede2000_rgb_lab(pred_lab: np.ndarray, true_lab: np.ndarray) -> float:
    """Mean Delta E_00 of two (H, W, 3) Lab images, evaluated in float32 (see :func:`ciede2000`)."""
    de = deltaE_ciede2000(pred_lab.astype(np.float32), true_lab.astype(np.float32), channel_axis=-1)
    return float(np.mean(de, dtype=np.float64))


def ab_from_rgb_u8(rgb_u8: np.ndarray) -> np.ndarray:
    """sRGB uint8 (H, W, 3) -> float64 (H, W, 2) CIE Lab a, b (``skimage.color.rgb2lab``).

    D65 white, 2 degree observer, the same Lab as :func:`tinct.color.rgb_to_lab` up to
    float error. Gray pixels give |a|, |b| below about 0.01 (not exactly 0, because of
    the rounded D65 white point).
    """
    return rgb2lab(_check_rgb_u8(rgb_u8, "rgb_u8"))[..., 1:]


# ----------------------------------------------------------------------------- bundles
def image_metrics(pred_rgb_u8: np.ndarray, true_rgb_u8: np.ndarray,
                  keys: Sequence[str] = METRIC_KEYS) -> dict[str, float]:
    """All per-image metrics for one sRGB uint8 pair (H, W, 3), H, W >= 11.

    Keys (:data:`METRIC_KEYS`): ``psnr`` (:func:`psnr`), ``ssim`` (:func:`ssim`, default
    window), ``qssim`` (:func:`qssim`), ``auc`` (:func:`auc_raw_accuracy` on the ab of
    both images), ``auc_rebal`` (:func:`auc_rebalanced` with the image's own cell
    frequencies), ``colorfulness`` (of the prediction), ``cf_gap``
    (:func:`colorfulness_gap`) and ``ciede2000`` (:func:`ciede2000`). Lab is computed
    once per image and shared. ``keys`` picks a subset (SSIM, QSSIM and CIEDE2000 cost most).
    """
    unknown = set(keys) - set(METRIC_KEYS)
    if unknown:
        raise UsageError(f"unknown metric(s) {', '.join(sorted(unknown))}; choose from {', '.join(METRIC_KEYS)}")
    pred, true = _check_rgb_pair(pred_rgb_u8, true_rgb_u8)
    pred_lab = rgb2lab(pred)
    true_lab = rgb2lab(true)
    pred_ab = np.ascontiguousarray(pred_lab[..., 1:])
    true_ab = np.ascontiguousarray(true_lab[..., 1:])
    cf_pred = colorfulness(pred)
    compute = {
        "psnr": lambda: psnr(pred, true),
        "ssim": lambda: ssim(pred, true),
        "qssim": lambda: qssim(pred, true),
        "auc": lambda: auc_raw_accuracy(pred_ab, true_ab),
        "auc_rebal": lambda: auc_rebalanced(pred_ab, true_ab),
        "colorfulness": lambda: cf_pred,
        "cf_gap": lambda: abs(cf_pred - colorfulness(true)),
        "ciede2000": lambda: _ciede2000_rgb_lab(pred_lab, true_lab),
    }
    return {k: compute[k]() for k in METRIC_KEYS if k in keys}


def aggregate(results: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Mean of each key over a non-empty list of per-image metric dicts.

    All dicts must have the same keys. An ``inf`` PSNR (an exactly reproduced image) makes
    the mean PSNR ``inf``. Note that the mean of per-image ``auc``/``auc_rebal`` is not the
    set-level AuC of Zhang et al., which pools pixels over the set: use :func:`pooled_auc`
    for that.
    """
    if len(results) == 0:
        raise UsageError("aggregate needs at least one result")
    keys = list(results[0].keys())
    for r in results:
        if set(r.keys()) != set(keys):
            raise UsageError(f"inconsistent keys: {sorted(r.keys())} vs {sorted(keys)}")
    return {k: float(np.mean([float(r[k]) for r in results])) for k in keys}


def top1_accuracy(logits: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor) -> float:
    """Top-1 accuracy in percent: ``100 * mean(argmax_c logits[n, c] == labels[n])``.

    ``logits``: (N, C) scores (e.g. C = 1000 ImageNet classes; probabilities work too),
    ``labels``: (N,) integer class ids; numpy arrays or torch tensors. Ties go to the
    lowest class index.
    """
    if isinstance(logits, torch.Tensor):
        logits = logits.detach().cpu().numpy()
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    logits = np.asarray(logits)
    labels = np.asarray(labels)
    if logits.ndim != 2 or labels.shape != (logits.shape[0],) or logits.shape[0] == 0:
        raise UsageError(f"expected logits (N, C) and labels (N,) with N > 0, got {logits.shape}, {labels.shape}")
    return float(np.mean(np.argmax(logits, axis=1) == labels) * 100.0)
