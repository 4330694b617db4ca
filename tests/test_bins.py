"""Bin layouts, target encoding and every decoder, on hand-made histograms."""

import math
from statistics import NormalDist

import pytest
import torch

from tinct import bins


def _hist(values: list[float]) -> torch.Tensor:
    """A (1,K,1,1) histogram from a list of K masses."""
    p = torch.tensor(values, dtype=torch.float32)
    return (p / p.sum()).view(1, -1, 1, 1)


def test_gaussian_quantile_edges_pinned():
    e = bins.gaussian_quantile_edges(32, sigma=25.0)
    assert e.shape == (33,) and e[0] == -math.inf and e[-1] == math.inf
    assert e[16] == pytest.approx(0.0, abs=1e-6)                        # the median
    assert e[24] == pytest.approx(25 * 0.6744897501960817, rel=1e-6)     # 75% quantile = 0.6745 sigma
    assert e[1] == pytest.approx(25 * NormalDist().inv_cdf(1 / 32), rel=1e-6)  # -46.5...
    assert torch.all(e[1:] > e[:-1])
    c = bins.gaussian_quantile_centers(32)
    assert torch.all((c > e[:-1]) & (c < e[1:]))


def test_joint_and_grid_layouts():
    j = bins.joint_quantile_centers(16)
    assert j.shape == (256, 2)
    g = bins.ab_grid(10, 110)
    assert g.shape == (484, 2)
    assert g[0].tolist() == [-105.0, -105.0] and g[-1].tolist() == [105.0, 105.0]
    edges, centers = bins.unit_bins(32)
    assert edges[0] == 0 and edges[-1] == 1 and centers[0] == pytest.approx(1 / 64)


def test_onehot_encode_round_trip():
    edges = bins.gaussian_quantile_edges(32)
    centers = bins.gaussian_quantile_centers(32)
    x = torch.tensor([[[-200.0, -10.0], [0.0, 3.0]]])  # (1,2,2)
    idx = bins.bin_index(x, edges)
    # -10 = -0.4 sigma: Phi(-0.4) = 0.345 -> bin floor(0.345*32) = 11; 3: Phi(0.12) = 0.548 -> bin 17
    assert idx.tolist() == [[[0, 11], [16, 17]]]
    oh = bins.encode_onehot(idx, 32)
    assert oh.shape == (1, 32, 2, 2) and torch.all(oh.sum(1) == 1)
    # decoding a one-hot histogram by its mode returns the bin's center, which re-encodes to the same bin
    mode = bins.decode_marginal(oh, centers, "mode")
    assert torch.equal(bins.bin_index(mode[:, 0], edges), idx)


def test_soft_encoding_and_grid_fast_path_agree():
    torch.manual_seed(0)
    ab = (torch.randn(2, 2, 5, 7) * 40).clamp(-99.3, 99.3)  # no exact ties between two centers
    centers = bins.ab_grid()
    dense = bins.encode_soft(ab, centers)
    idx, w = bins.soft_targets_grid(ab)
    sparse = torch.zeros_like(dense).scatter_add_(1, idx, w)
    assert torch.allclose(dense.sum(1), torch.ones(2, 5, 7))
    assert torch.allclose(dense, sparse, atol=1e-5)
    # a color on a bin center puts most of its mass there
    on_center = torch.tensor([-105.0 + 10 * 3, -105.0 + 10 * 7]).view(1, 2, 1, 1)
    h = bins.encode_soft(on_center, centers)
    assert h.argmax().item() == 3 * 22 + 7 and h.max() > 0.5


def test_marginal_decoders_on_a_hand_made_histogram():
    centers = torch.tensor([0.0, 10.0, 20.0, 30.0])
    p = _hist([0.1, 0.2, 0.6, 0.1])
    assert bins.decode_marginal(p, centers, "expectation").item() == pytest.approx(17.0)
    assert bins.decode_marginal(p, centers, "mode").item() == pytest.approx(20.0)
    # median: CDF reaches 0.3 at the end of bin 1 (edge 15), bin 2 spans [15,25] with mass 0.6
    # -> 15 + (0.5-0.3)/0.6 * 10 = 18.333
    assert bins.decode_marginal(p, centers, "median").item() == pytest.approx(15 + 10 * 0.2 / 0.6, abs=1e-4)
    # annealed mean sharpens toward the mode: between expectation and mode
    ann = bins.decode_marginal(p, centers, "annealed", temperature=0.38).item()
    assert 17.0 < ann < 20.0
    # T -> 1 is the expectation
    assert bins.decode_marginal(p, centers, "annealed", temperature=1.0).item() == pytest.approx(17.0, abs=1e-4)


def test_joint_decoders():
    centers = torch.tensor([[-50.0, 0.0], [50.0, 0.0], [0.0, 40.0]])
    p = _hist([0.45, 0.45, 0.1])
    assert bins.decode_joint(p, centers, "expectation").flatten().tolist() == pytest.approx([0.0, 4.0], abs=1e-5)
    assert bins.decode_joint(p, centers, "mode").flatten().tolist() in ([-50.0, 0.0], [50.0, 0.0])
    with pytest.raises(ValueError):
        bins.decode_joint(p, centers, "median")


def test_hue_expectation_is_circular_and_fades_uncertain_hue():
    k = 32
    _, centers = bins.unit_bins(k)
    # bimodal around hue 0: mass at the first and last bins. A linear mean would give 0.5 (cyan);
    # the circular mean is ~0 (red), with |z| ~ 1 (confident).
    p = torch.zeros(k)
    p[0] = p[-1] = 0.5
    hue, fade = bins.decode_hue(p.view(1, k, 1, 1), centers, "expectation")
    assert min(hue.item(), 1 - hue.item()) < 1e-4
    assert fade.item() == pytest.approx(1.0)
    assert bins.decode_marginal(p.view(1, k, 1, 1), centers, "expectation").item() == pytest.approx(0.5)
    # two opposite hues with equal mass: |z| ~ 0 -> chroma faded to ~0
    q = torch.zeros(k)
    q[0] = q[16] = 0.5
    _, fade = bins.decode_hue(q.view(1, k, 1, 1), centers, "expectation", eta=0.03)
    assert fade.item() < 0.01
    # |z| = 0.015 -> fade = 0.015 / 0.03 = 0.5
    r = torch.zeros(k)
    r[0], r[16] = 0.5075, 0.4925
    _, fade = bins.decode_hue(r.view(1, k, 1, 1), centers, "expectation", eta=0.03)
    assert fade.item() == pytest.approx(0.5, abs=1e-3)
    with pytest.raises(ValueError, match="circular"):
        bins.decode_hue(p.view(1, k, 1, 1), centers, "median")


def test_sampling_is_reproducible_with_a_seed_and_follows_the_histogram():
    centers = torch.tensor([[0.0, 0.0], [10.0, 0.0], [20.0, 0.0]])
    p = _hist([0.2, 0.0, 0.8]).expand(1, 3, 60, 60).contiguous()
    a = bins.decode_joint(p, centers, "sample", generator=torch.Generator().manual_seed(7))
    b = bins.decode_joint(p, centers, "sample", generator=torch.Generator().manual_seed(7))
    c = bins.decode_joint(p, centers, "sample", generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    frac = (a[:, 0] == 20.0).float().mean().item()
    assert 0.75 < frac < 0.85 and not (a[:, 0] == 10.0).any()


def test_entropy():
    k = 8
    uniform = torch.full((1, k, 1, 1), 1 / k)
    onehot = torch.zeros(1, k, 1, 1)
    onehot[0, 3] = 1
    assert bins.entropy(uniform).item() == pytest.approx(1.0)
    assert bins.entropy(onehot).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("channels_last", [False, True])
def test_channel_softmax_and_decoders_read_channels_last_predictions_alike(channels_last):
    """The decoders' fast path over the last axis gives what softmax and einsum over dim 1 give."""
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 16, 5, 7, generator=g) * 3
    x = logits.contiguous(memory_format=torch.channels_last) if channels_last else logits
    probs = bins.channel_softmax(x)
    assert torch.allclose(probs, torch.softmax(logits, dim=1), atol=1e-6)
    centers = torch.randn(16, 2, generator=g) * 30
    for method in ("expectation", "annealed"):
        ab = bins.decode_joint(probs, centers, method, temperature=0.4)
        p = probs if method == "expectation" else torch.softmax(torch.log(probs.clamp_min(1e-12)) / 0.4, dim=1)
        assert ab.is_contiguous() and torch.allclose(ab, torch.einsum("bkhw,kc->bchw", p, centers), atol=1e-4)
    a = bins.decode_marginal(probs, centers[:, 0], "expectation")
    assert torch.allclose(a, torch.einsum("bkhw,k->bhw", probs, centers[:, 0]).unsqueeze(1), atol=1e-4)
