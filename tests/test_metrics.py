"""Tests for tinct.metrics.

Expected values are worked out by hand in the comments (or come from published tables),
never copied from the implementation's output.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from tinct import metrics as M

C1 = 0.01**2  # QSSIM constants with L = 1
C2 = 0.03**2


# ----------------------------------------------------------------------------- helpers
def const_image(rgb: tuple[int, int, int], h: int = 16, w: int = 16) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, dtype=np.uint8), (h, w, 3)).copy()


def textured_rgb(h: int = 48, w: int = 48, seed: int = 0) -> np.ndarray:
    """A smooth colour texture plus a little noise (uint8)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack(
        [
            128 + 90 * np.sin(xx / 4.0),
            128 + 90 * np.cos(yy / 5.0),
            128 + 70 * np.sin((xx + yy) / 6.0),
        ],
        axis=-1,
    )
    return np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)


def add_noise(img: np.ndarray, sigma: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(img + rng.normal(0, sigma, img.shape), 0, 255).astype(np.uint8)


def gray3(g: np.ndarray) -> np.ndarray:
    return np.repeat(g[..., None], 3, axis=-1)


def hamilton(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Reference Hamilton product on (..., 4) = (real, i, j, k) arrays."""
    p0, p1, p2, p3 = np.moveaxis(p, -1, 0)
    q0, q1, q2, q3 = np.moveaxis(q, -1, 0)
    return np.stack(
        [
            p0 * q0 - p1 * q1 - p2 * q2 - p3 * q3,
            p0 * q1 + p1 * q0 + p2 * q3 - p3 * q2,
            p0 * q2 - p1 * q3 + p2 * q0 + p3 * q1,
            p0 * q3 + p1 * q2 - p2 * q1 + p3 * q0,
        ],
        axis=-1,
    )


def conj(q: np.ndarray) -> np.ndarray:
    return q * np.array([1.0, -1.0, -1.0, -1.0])


# ----------------------------------------------------------------------------- PSNR
def test_psnr_constant_offset():
    true = np.random.default_rng(0).integers(0, 246, (8, 9, 3)).astype(np.uint8)
    pred = true + np.uint8(10)  # every value off by exactly 10 -> MSE = 100
    assert M.psnr(pred, true) == pytest.approx(20 * math.log10(255 / 10), abs=1e-12)
    assert M.psnr(true, pred) == pytest.approx(20 * math.log10(255 / 10), abs=1e-12)


def test_psnr_single_value_wrong():
    # 2x2x3 = 12 values, one off by 255: MSE = 255^2 / 12 -> PSNR = 10 log10(12) dB.
    true = np.zeros((2, 2, 3), dtype=np.uint8)
    pred = true.copy()
    pred[1, 0, 2] = 255
    assert M.psnr(pred, true) == pytest.approx(10 * math.log10(12), abs=1e-12)


def test_psnr_identical_is_inf():
    img = textured_rgb()
    assert M.psnr(img, img) == math.inf


def test_rgb_inputs_are_validated():
    img = textured_rgb()
    with pytest.raises(TypeError):
        M.psnr(img.astype(np.float32) / 255, img.astype(np.float32) / 255)
    with pytest.raises(ValueError):
        M.psnr(img, img[:-1])
    with pytest.raises(ValueError):
        M.colorfulness(img[..., :2])


# ----------------------------------------------------------------------------- SSIM
@pytest.mark.parametrize("gaussian", [False, True])
def test_ssim_identical_and_constant(gaussian):
    img = textured_rgb()
    assert M.ssim(img, img, gaussian_weights=gaussian) == pytest.approx(1.0, abs=1e-12)
    # Constant images 100 vs 200: no variance, so the structure factor is C2/C2 = 1 and SSIM is
    # the luminance term (2*100*200 + C1) / (100^2 + 200^2 + C1), C1 = (0.01*255)^2 = 6.5025.
    a, b = const_image((100, 100, 100)), const_image((200, 200, 200))
    expected = (40000 + 6.5025) / (50000 + 6.5025)
    assert M.ssim(a, b, gaussian_weights=gaussian) == pytest.approx(expected, abs=1e-9)


# ----------------------------------------------------------------------------- QSSIM
def test_reference_hamilton_product_sanity():
    i, j, k = np.eye(4)[1], np.eye(4)[2], np.eye(4)[3]
    np.testing.assert_allclose(hamilton(i, j), k)
    np.testing.assert_allclose(hamilton(j, i), -k)
    np.testing.assert_allclose(hamilton(i, i), [-1, 0, 0, 0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_qssim_identical_is_exactly_one(seed):
    img = np.random.default_rng(seed).integers(0, 256, (23, 31, 3)).astype(np.uint8)
    assert M.qssim(img, img) == 1.0
    tex = textured_rgb(seed=seed)
    assert M.qssim(tex, tex) == 1.0


def test_qssim_below_one_and_symmetric():
    x = textured_rgb()
    for y in [add_noise(x, 5), add_noise(x, 30), x[:, ::-1].copy(), x[..., ::-1].copy()]:
        q = M.qssim(x, y)
        assert 0.0 <= q < 1.0
        assert M.qssim(y, x) == pytest.approx(q, abs=1e-12)
    # More distortion -> lower score.
    assert M.qssim(add_noise(x, 30), x) < M.qssim(add_noise(x, 5), x)


def test_qssim_constant_gray_hand_computed():
    # x = white (1,1,1), y = gray 51/255 = 0.2 -> (0.2, 0.2, 0.2); all variances vanish so
    # QSSIM = |2 mu_x mu_y^* + C1| / (|mu_x|^2 + |mu_y|^2 + C1). Parallel pure quaternions:
    # mu_x mu_y^* = mu_x . mu_y = 3 * 0.2 = 0.6 (real), |mu_x|^2 = 3, |mu_y|^2 = 3 * 0.04 = 0.12.
    expected = (1.2 + C1) / (3.12 + C1)
    assert M.qssim(const_image((255, 255, 255)), const_image((51, 51, 51))) == pytest.approx(expected, abs=1e-9)


def test_qssim_constant_colours_hand_computed():
    # red (1,0,0) vs yellow (1,1,0): for pure quaternions a b^* = a.b - a x b, here
    # a.b = 1 and a x b = (0,0,1), so |2 a b^* + C1| = sqrt((2 + C1)^2 + 2^2); the denominator
    # is |a|^2 + |b|^2 + C1 = 1 + 2 + C1. (Variance terms vanish: factor C2/C2 = 1.)
    red, yellow, green = const_image((255, 0, 0)), const_image((255, 255, 0)), const_image((0, 255, 0))
    assert M.qssim(red, yellow) == pytest.approx(math.sqrt((2 + C1) ** 2 + 4) / (3 + C1), abs=1e-9)
    # red vs green: a.b = 0, |a x b| = 1 -> sqrt(C1^2 + 4) / (2 + C1) ~= 0.99995. The modulus
    # makes the mean term nearly hue-blind (documented caveat), but it is still < 1.
    q = M.qssim(red, green)
    assert q == pytest.approx(math.sqrt(C1**2 + 4) / (2 + C1), abs=1e-12)
    assert q < 1.0


def test_qssim_gray_equals_abs_ssim_map_with_scaled_constants():
    # For R = G = B every quaternion is g (i + j + k): |mu|^2 = 3 m^2, mu_x mu_y^* = 3 m_x m_y,
    # sigma^2 = 3 v, sigma_xy = 3 c (all real), so the local index is
    # |(6 m_x m_y + C1)(6 c + C2)| / ((3 m_x^2 + 3 m_y^2 + C1)(3 v_x + 3 v_y + C2))
    # = |SSIM map with C1/3 and C2/3|, i.e. K1, K2 divided by sqrt(3).
    g_true = textured_rgb()[..., 0]
    g_pred = add_noise(gray3(g_true), 25)[..., 1]  # noisy gray image (one channel of the noise)
    _, smap = structural_similarity(
        g_pred / 255.0,
        g_true / 255.0,
        data_range=1.0,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        K1=0.01 / math.sqrt(3),
        K2=0.03 / math.sqrt(3),
        full=True,
    )
    expected = np.abs(smap[5:-5, 5:-5]).mean()
    assert M.qssim(gray3(g_pred), gray3(g_true)) == pytest.approx(expected, abs=1e-10)


def test_qssim_gray_close_to_ssim():
    yy, xx = np.mgrid[0:64, 0:64]
    g = np.clip(128 + 60 * np.sin(xx / 3.0) * np.cos(yy / 5.0) + 30 * np.sin((xx + 2 * yy) / 7.0), 0, 255)
    g_true = g.astype(np.uint8)
    g_pred = add_noise(gray3(g), 5)[..., 0]
    q = M.qssim(gray3(g_pred), gray3(g_true))
    s = structural_similarity(
        g_pred / 255.0, g_true / 255.0, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    assert q != s
    assert abs(q - s) < 0.01


def test_qssim_map_matches_explicit_quaternion_window():
    # Independent two-pass computation at a few window centres with explicit Hamilton
    # products and an explicit 11x11 Gaussian window (sigma 1.5), straight from the formula.
    x_img = textured_rgb(seed=3)
    y_img = add_noise(x_img[..., [1, 2, 0]], 20)  # channel-permuted + noise: non-trivial hue change
    qmap = M._qssim_map(x_img, y_img)
    t = np.arange(-5, 6)
    w1 = np.exp(-0.5 * (t / 1.5) ** 2)
    wgt = np.outer(w1, w1)
    wgt /= wgt.sum()

    def quats(img: np.ndarray) -> np.ndarray:
        v = img.astype(np.float64) / 255.0
        return np.concatenate([np.zeros(v.shape[:-1] + (1,)), v], axis=-1)

    xq, yq = quats(x_img), quats(y_img)
    for ci, cj in [(5, 5), (17, 30), (42, 8), (24, 24)]:
        xw = xq[ci - 5 : ci + 6, cj - 5 : cj + 6]
        yw = yq[ci - 5 : ci + 6, cj - 5 : cj + 6]
        mu_x = (wgt[..., None] * xw).sum((0, 1))
        mu_y = (wgt[..., None] * yw).sum((0, 1))
        dx, dy = xw - mu_x, yw - mu_y
        var_x = (wgt * (dx**2).sum(-1)).sum()
        var_y = (wgt * (dy**2).sum(-1)).sum()
        sigma_xy = (wgt[..., None] * hamilton(dx, conj(dy))).sum((0, 1))
        lum = 2 * hamilton(mu_x, conj(mu_y)) + np.array([C1, 0, 0, 0])
        struct = 2 * sigma_xy + np.array([C2, 0, 0, 0])
        num = np.linalg.norm(hamilton(lum, struct))
        den = ((mu_x**2).sum() + (mu_y**2).sum() + C1) * (var_x + var_y + C2)
        assert qmap[ci - 5, cj - 5] == pytest.approx(num / den, rel=1e-10)
    assert qmap.shape == (48 - 10, 48 - 10)
    assert M.qssim(x_img, y_img) == pytest.approx(qmap.mean(), abs=1e-15)


def test_qssim_rejects_small_images_and_is_vectorised():
    with pytest.raises(ValueError):
        M.qssim(const_image((1, 2, 3), 10, 20), const_image((1, 2, 3), 10, 20))
    big = textured_rgb(256, 256)
    other = add_noise(big, 10)
    calls = 0

    def count(frame, event, arg):
        nonlocal calls
        calls += event in ("call", "c_call")

    sys.setprofile(count)
    try:
        M.qssim(big, other)
    finally:
        sys.setprofile(None)
    # counted work, not seconds: a per-pixel loop would make >= 65,536 Python or C calls
    assert calls < 5_000


# ----------------------------------------------------------------------------- AuC (raw)
def test_auc_identical_is_100():
    ab = np.random.default_rng(0).uniform(-100, 100, (7, 5, 2))
    assert M.auc_raw_accuracy(ab, ab) == pytest.approx(100.0, abs=1e-12)


def test_auc_all_pixels_off_by_50():
    # (30, 40) offset: distance exactly 50 -> counted for t = 50..150, i.e. 101 of 151 thresholds.
    true = np.random.default_rng(0).integers(-60, 60, (6, 6, 2)).astype(np.float64)
    pred = true + np.array([30.0, 40.0])
    assert M.auc_raw_accuracy(pred, true) == pytest.approx((150 - 50 + 1) / 151 * 100, abs=1e-12)


def test_auc_gray_prediction_truth_at_distance_d():
    # Gray prediction (ab = 0) while every true colour has chroma exactly d = 37, in several
    # directions (37^2 = 12^2 + 35^2, so (12, 35) and friends are exact) -> every pixel is
    # correct from t = 37 on: (150 - 37 + 1) / 151 * 100.
    true = np.array(
        [[37, 0], [0, 37], [-37, 0], [0, -37], [12, 35], [-35, 12], [-12, -35], [35, -12]], dtype=np.float64
    ).reshape(2, 4, 2)
    pred = np.zeros_like(true)
    assert M.auc_raw_accuracy(pred, true) == pytest.approx((150 - 37 + 1) / 151 * 100, abs=1e-12)


def test_auc_fractional_distance_and_mixtures():
    true = np.zeros((4, 2))
    # distance 10.5 -> first threshold that accepts it is 11: (150 - 11 + 1) / 151.
    assert M.auc_raw_accuracy(true + [10.5, 0.0], true) == pytest.approx(140 / 151 * 100, abs=1e-12)
    # half exact, half off by 200 (never within 150) -> accuracy 1/2 at every threshold.
    pred = true.copy()
    pred[2:] = [200.0, 0.0]
    assert M.auc_raw_accuracy(pred, true) == pytest.approx(50.0, abs=1e-12)
    # off by 151 -> never counted
    assert M.auc_raw_accuracy(true + [151.0, 0.0], true) == pytest.approx(0.0, abs=1e-12)
    # custom max threshold 10, off by 5: thresholds 5..10 of 0..10 -> 6/11
    assert M.auc_raw_accuracy(true + [3.0, 4.0], true, max_threshold=10) == pytest.approx(600 / 11, abs=1e-12)


def test_auc_shapes_weights_and_validation():
    rng = np.random.default_rng(0)
    true = rng.uniform(-80, 80, (6, 7, 2))
    pred = true + rng.uniform(-60, 60, (6, 7, 2))
    raw = M.auc_raw_accuracy(pred, true)
    assert M.auc_raw_accuracy(pred.reshape(-1, 2), true.reshape(-1, 2)) == pytest.approx(raw, abs=1e-12)
    assert M.auc_raw_accuracy(pred, true, weights=np.full((6, 7), 3.0)) == pytest.approx(raw, abs=1e-12)
    # zero weight on the wrong pixels: only the exact ones remain -> 100
    mixed = true.copy()
    mixed[:3] += 200.0
    w = np.ones((6, 7))
    w[:3] = 0.0
    assert M.auc_raw_accuracy(mixed, true, weights=w) == pytest.approx(100.0, abs=1e-12)
    with pytest.raises(ValueError):
        M.auc_raw_accuracy(pred, true, weights=np.ones(42))
    with pytest.raises(ValueError):
        M.auc_raw_accuracy(pred[..., :1], true[..., :1])
    with pytest.raises(ValueError):
        M.auc_raw_accuracy(pred, true[:-1])
    with pytest.raises(ValueError):
        M.auc_raw_accuracy(np.full((2, 2), np.nan), np.zeros((2, 2)))


# ----------------------------------------------------------------------------- AuC (rebalanced)
COMMON = np.array([0.0, 0.0])  # bin (11, 11)
RARE = np.array([100.0, 100.0])  # bin (21, 21)


def test_ab_bin_index_hand_computed():
    # i = floor((v + 110) / 10) clipped to 0..21, flat = i_a * 22 + i_b
    ab = np.array([[0.0, 0.0], [-110.0, -110.0], [110.0, 110.0], [-200.0, 5.0], [-101.0, 9.99]])
    np.testing.assert_array_equal(M.ab_bin_index(ab), [11 * 22 + 11, 0, 483, 11, 0 * 22 + 11])


def test_rebalanced_rare_wrong_common_right():
    # 3 pixels of a common colour predicted exactly, 1 pixel of a rare colour off by 200.
    true = np.stack([COMMON, COMMON, COMMON, RARE])
    pred = true.copy()
    pred[3] = RARE - [200.0, 0.0]
    # raw: 3/4 correct at every threshold -> 75
    assert M.auc_raw_accuracy(pred, true) == pytest.approx(75.0, abs=1e-12)
    # per-image frequencies 3/4 and 1/4, Q = 2 bins: w = 1/(2*3/4) = 2/3 for common pixels and
    # 1/(2*1/4) = 2 for the rare one; both bins weigh 2 in total -> accuracy (2)/(4) = 1/2 -> 50
    np.testing.assert_allclose(M.rebalancing_weights(true), [2 / 3, 2 / 3, 2 / 3, 2.0])
    assert M.auc_rebalanced(pred, true) == pytest.approx(50.0, abs=1e-12)


def test_rebalanced_rare_right_common_wrong():
    true = np.stack([COMMON, COMMON, COMMON, RARE])
    pred = true.copy()
    pred[:3] += [0.0, 200.0]
    assert M.auc_raw_accuracy(pred, true) == pytest.approx(25.0, abs=1e-12)  # 1/4
    assert M.auc_rebalanced(pred, true) == pytest.approx(50.0, abs=1e-12)  # one of two bins


def test_rebalanced_mixed_hand_computed():
    # common bin: 6 pixels, 3 exact and 3 off by 200; rare bin: 2 pixels off by exactly 50.
    true = np.stack([COMMON] * 6 + [RARE] * 2)
    pred = true.copy()
    pred[3:6] += [200.0, 0.0]
    pred[6:] += [-30.0, -40.0]
    # raw: acc(t) = (3 + 2 [t >= 50]) / 8 -> 100 * (3/8 + 2/8 * 101/151)
    assert M.auc_raw_accuracy(pred, true) == pytest.approx(100 * (3 / 8 + 2 / 8 * 101 / 151), abs=1e-12)
    # rebalanced: each bin 1/2: (1/2)(3/6) + (1/2)(1 for t >= 50) -> 100 * (1/4 + 1/2 * 101/151)
    assert M.auc_rebalanced(pred, true) == pytest.approx(100 * (1 / 4 + 1 / 2 * 101 / 151), abs=1e-12)


def test_rebalanced_with_dataset_prior():
    true = np.stack([COMMON, COMMON, COMMON, RARE])
    pred = true.copy()
    pred[3] = RARE - [200.0, 0.0]
    common_bin, rare_bin = 11 * 22 + 11, 21 * 22 + 21
    # equal dataset frequencies -> equal weights -> same as raw (75), in every accepted prior form
    flat = np.zeros(484)
    flat[[common_bin, rare_bin]] = 0.5
    forms = [flat, flat.reshape(22, 22), {common_bin: 5, rare_bin: 5}, {(11, 11): 0.5, (21, 21): 0.5}]
    for prior in forms:
        assert M.auc_rebalanced(pred, true, prior=prior) == pytest.approx(75.0, abs=1e-12)
    # dataset prior 0.9 / 0.1: weights proportional to 1/0.9 and 1/0.1; correct mass
    # 3/0.9 = 10/3 out of 10/3 + 10 -> 1/4 -> 25
    prior = {common_bin: 0.9, rare_bin: 0.1}
    assert M.auc_rebalanced(pred, true, prior=prior) == pytest.approx(25.0, abs=1e-12)
    with pytest.raises(ValueError):  # a pixel in a bin the prior never saw
        M.auc_rebalanced(pred, true, prior={common_bin: 1.0})
    with pytest.raises(ValueError):
        M.rebalancing_weights(true, prior=np.ones(10))


def test_ab_prior():
    prior = M.ab_prior([np.stack([COMMON, COMMON, RARE]), np.stack([[COMMON]])])
    assert prior.shape == (484,)
    assert prior[11 * 22 + 11] == pytest.approx(3 / 4)
    assert prior[21 * 22 + 21] == pytest.approx(1 / 4)
    assert prior.sum() == pytest.approx(1.0)


# ----------------------------------------------------------------------------- pooled AuC
def test_pooled_auc_hand_computed():
    # image 1: one exact pixel; image 2: three pixels off by 200.
    img1 = (np.zeros((1, 2)), np.zeros((1, 2)))
    img2 = (np.full((3, 2), 200.0), np.zeros((3, 2)))
    per_image = np.mean([M.auc_raw_accuracy(*img1), M.auc_raw_accuracy(*img2)])
    assert per_image == pytest.approx(50.0)  # (100 + 0) / 2
    assert M.pooled_auc([img1, img2]) == pytest.approx(25.0, abs=1e-12)  # 1 of 4 pixels


def test_pooled_rebalanced_uses_set_level_frequencies():
    # image 1: COMMON x3 exact + RARE x1 off by 200; image 2: COMMON x1 off by 200.
    t1 = np.stack([COMMON, COMMON, COMMON, RARE])
    p1 = t1.copy()
    p1[3] += [-200.0, 0.0]
    t2 = np.stack([COMMON])
    p2 = t2 + [0.0, 200.0]
    pairs = [(p1, t1), (p2, t2)]
    # set level: COMMON 4 pixels (3 right), RARE 1 pixel (wrong)
    assert M.pooled_auc(pairs) == pytest.approx(60.0, abs=1e-12)  # 3/5
    assert M.pooled_auc(pairs, rebalanced=True) == pytest.approx(37.5, abs=1e-12)  # (3/4 + 0)/2
    # versus the mean of per-image rebalanced scores: image 1 (1 + 0)/2, image 2 0 -> 25
    assert np.mean([M.auc_rebalanced(p, t) for p, t in pairs]) == pytest.approx(25.0, abs=1e-12)
    # a generator works, and an explicit prior overrides the set frequencies
    assert M.pooled_auc((pair for pair in pairs), rebalanced=True) == pytest.approx(37.5, abs=1e-12)
    eq = {11 * 22 + 11: 1.0, 21 * 22 + 21: 1.0}
    assert M.pooled_auc(pairs, rebalanced=True, prior=eq) == pytest.approx(60.0, abs=1e-12)


def test_pooled_single_pair_matches_per_image():
    rng = np.random.default_rng(5)
    true = rng.uniform(-100, 100, (20, 20, 2))
    pred = true + rng.normal(0, 40, true.shape)
    assert M.pooled_auc([(pred, true)]) == pytest.approx(M.auc_raw_accuracy(pred, true), abs=1e-9)
    assert M.pooled_auc([(pred, true)], rebalanced=True) == pytest.approx(M.auc_rebalanced(pred, true), abs=1e-9)


# ----------------------------------------------------------------------------- colourfulness
def test_colorfulness_half_red_half_green():
    # red (255,0,0): rg = 255, yb = (255+0)/2 - 0 = 127.5; green (0,255,0): rg = -255, yb = 127.5.
    # rg: mean 0, population std 255; yb: mean 127.5, std 0.
    # M = sqrt(255^2 + 0^2) + 0.3 * sqrt(0^2 + 127.5^2) = 255 + 38.25 = 293.25
    img = np.zeros((4, 6, 3), dtype=np.uint8)
    img[:2] = (255, 0, 0)
    img[2:] = (0, 255, 0)
    assert M.colorfulness(img) == pytest.approx(293.25, abs=1e-12)


def test_colorfulness_uniform_and_gray():
    # uniform red: stds 0, M = 0.3 * sqrt(255^2 + 127.5^2) = 0.3 * 127.5 * sqrt(5)
    assert M.colorfulness(const_image((255, 0, 0))) == pytest.approx(0.3 * 127.5 * math.sqrt(5), abs=1e-12)
    # any gray: rg = 0 and yb = g - g = 0 everywhere
    gray = gray3(np.arange(64, dtype=np.uint8).reshape(8, 8))
    assert M.colorfulness(gray) == 0.0


def test_colorfulness_gap():
    half = np.zeros((4, 6, 3), dtype=np.uint8)
    half[:2] = (255, 0, 0)
    half[2:] = (0, 255, 0)
    gray = np.full((4, 6, 3), 90, dtype=np.uint8)
    assert M.colorfulness_gap(gray, half) == pytest.approx(293.25, abs=1e-12)
    assert M.colorfulness_gap(half, gray) == pytest.approx(293.25, abs=1e-12)
    assert M.colorfulness_gap(half, half) == 0.0


# ----------------------------------------------------------------------------- CIEDE2000 / Lab
@pytest.mark.parametrize(
    ("lab1", "lab2", "expected"),
    [
        # Sharma, Wu & Dalal (2005), Table 1: pairs 1, 7, 17 and 25.
        ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
        ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
        ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
        ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ],
)
def test_ciede2000_sharma_pairs(lab1, lab2, expected):
    assert M.ciede2000_lab(np.array(lab1), np.array(lab2)) == pytest.approx(expected, abs=1e-4)
    assert M.ciede2000_lab(np.array(lab2), np.array(lab1)) == pytest.approx(expected, abs=1e-4)


def test_ciede2000_rgb():
    img = textured_rgb()
    assert M.ciede2000(img, img) == 0.0
    other = add_noise(img, 10)
    from skimage.color import rgb2lab

    # the float32 fast path agrees with a float64 evaluation far below 8-bit quantisation
    assert M.ciede2000(other, img) == pytest.approx(M.ciede2000_lab(rgb2lab(other), rgb2lab(img)), abs=1e-4)
    assert M.ciede2000(other, img) > 0.5


def test_ab_from_rgb_u8():
    # textbook sRGB (D65) Lab of pure red: (53.24, 80.09, 67.20)
    red_ab = M.ab_from_rgb_u8(const_image((255, 0, 0), 2, 2))
    assert red_ab.shape == (2, 2, 2)
    np.testing.assert_allclose(red_ab[0, 0], [80.09, 67.20], atol=0.01)
    gray_ab = M.ab_from_rgb_u8(gray3(np.arange(0, 256, 4, dtype=np.uint8).reshape(8, 8)))
    assert np.abs(gray_ab).max() < 0.01
    # consistent with tinct.color (kornia) Lab
    from tinct.color import rgb_to_lab

    img = textured_rgb(16, 16)
    lab = rgb_to_lab(torch.from_numpy(img).permute(2, 0, 1).double() / 255.0).permute(1, 2, 0).numpy()
    np.testing.assert_allclose(M.ab_from_rgb_u8(img), lab[..., 1:], atol=0.02)


# ----------------------------------------------------------------------------- bundles
def test_image_metrics_identical():
    img = textured_rgb()
    r = M.image_metrics(img, img)
    assert tuple(r) == M.METRIC_KEYS
    assert r["psnr"] == math.inf
    assert r["ssim"] == pytest.approx(1.0)
    assert r["qssim"] == 1.0
    assert r["auc"] == pytest.approx(100.0)
    assert r["auc_rebal"] == pytest.approx(100.0)
    assert r["cf_gap"] == 0.0
    assert r["ciede2000"] == 0.0
    assert r["colorfulness"] == pytest.approx(M.colorfulness(img))


def test_image_metrics_matches_standalone_functions():
    true = textured_rgb(seed=4)
    pred = add_noise(true[..., [0, 2, 1]], 8)
    r = M.image_metrics(pred, true)
    pa, ta = M.ab_from_rgb_u8(pred), M.ab_from_rgb_u8(true)
    expected = {
        "psnr": M.psnr(pred, true),
        "ssim": M.ssim(pred, true),
        "qssim": M.qssim(pred, true),
        "auc": M.auc_raw_accuracy(pa, ta),
        "auc_rebal": M.auc_rebalanced(pa, ta),
        "colorfulness": M.colorfulness(pred),
        "cf_gap": M.colorfulness_gap(pred, true),
        "ciede2000": M.ciede2000(pred, true),
    }
    for key, value in expected.items():
        assert r[key] == pytest.approx(value, abs=1e-9), key


def test_aggregate():
    out = M.aggregate([{"a": 1.0, "b": 2.0}, {"a": 3.0, "b": 4.0}, {"b": 9.0, "a": 5.0}])
    assert out == {"a": 3.0, "b": 5.0}
    with pytest.raises(ValueError):
        M.aggregate([])
    with pytest.raises(ValueError):
        M.aggregate([{"a": 1.0}, {"b": 1.0}])


# ----------------------------------------------------------------------------- top-1
def test_top1_accuracy_numpy_and_torch():
    logits = np.zeros((4, 1000))
    logits[0, 7] = 5.0
    logits[1, 999] = 1.0
    logits[2, 0] = 0.5
    logits[3, 3] = 2.0
    labels = np.array([7, 999, 0, 4])  # last one wrong -> 3 of 4 -> 75 %
    assert M.top1_accuracy(logits, labels) == pytest.approx(75.0)
    assert M.top1_accuracy(torch.from_numpy(logits).float(), torch.from_numpy(labels)) == pytest.approx(75.0)
    with pytest.raises(ValueError):
        M.top1_accuracy(logits, labels[:3])
    with pytest.raises(ValueError):
        M.top1_accuracy(logits[0], labels[:1])


def test_qssim_documented_hue_caveat():
    # Red/black vs green/black checkerboards: every window's deviations lie along one colour
    # axis in each image (red resp. green), so |sigma_xy| = sigma_x sigma_y and, as for the
    # means, only C1, C2 separate the score from 1 (documented caveat of the modulus reading).
    yy, xx = np.mgrid[0:32, 0:32]
    chk = (((xx // 2) + (yy // 2)) % 2).astype(np.uint8) * 255
    red = np.zeros((32, 32, 3), dtype=np.uint8)
    red[..., 0] = chk
    green = np.zeros((32, 32, 3), dtype=np.uint8)
    green[..., 1] = chk
    assert 0.99 < M.qssim(red, green) < 1.0
    assert M.ssim(red, green) < 0.5
