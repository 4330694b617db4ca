"""Larsson et al. 2016 (seed 001): bins per space, every decoder, the chroma-weighted loss,
sparse training points, save/load, the CLI and a smoke run through the real trainer."""

import json
import math
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from tinct import bins
from tinct.cli import main
from tinct.color import gray_rgb_from_l
from tinct.hypercolumn import sample_points
from tinct.losses import kl_histogram
from tinct.models import build_model
from tinct.train import TrainConfig, train
from tinct.weights import load_weights, save_weights

from conftest import assert_onnx_matches_pytorch, fit, make_photo

ROOT = Path(__file__).resolve().parent.parent
SPACES = ("lab-marginal", "lab-joint", "hue-chroma")



def tiny(space: str, **kw):
    torch.manual_seed(0)
    cfg = {"pretrained": False, "hidden": 8, "points": 32, **kw}
    return build_model("larsson", space=space, **cfg)


def pred_of(*hists: list[float] | torch.Tensor) -> dict[str, torch.Tensor]:
    """A (1,K,1,1) logits prediction whose per-histogram softmaxes are the given masses."""
    ps = [torch.as_tensor(h, dtype=torch.float32) for h in hists]
    logits = torch.cat([torch.log((p / p.sum()).clamp_min(1e-12)) for p in ps])
    return {"logits": logits.view(1, -1, 1, 1)}


def onehot(k: int, i: int, mass: float = 1.0) -> torch.Tensor:
    p = torch.zeros(k)
    p[i] = mass
    return p


# ----------------------------------------------------------------------------- bins
def test_joint_index_round_trip_and_layout():
    g = torch.Generator().manual_seed(0)
    ia, ib = torch.randint(0, 16, (3, 5), generator=g), torch.randint(0, 16, (3, 5), generator=g)
    j = bins.joint_index(ia, ib, 16)
    assert j.min() >= 0 and j.max() < 256
    back_a, back_b = bins.split_joint_index(j, 16)
    assert torch.equal(back_a, ia) and torch.equal(back_b, ib)
    c = bins.gaussian_quantile_centers(16)
    joint = bins.joint_quantile_centers(16)
    assert torch.equal(joint[j], torch.stack([c[ia], c[ib]], dim=-1))


def test_bounded_edges_keep_the_quantile_edges():
    e, c = bins.gaussian_quantile_edges(32), bins.gaussian_quantile_centers(32)
    b = bins.bounded_edges(e, c)
    assert torch.isfinite(b).all() and torch.equal(b[1:-1], e[1:-1])
    assert b[0] == pytest.approx(2 * c[0].item() - e[1].item()) and b[-1] == pytest.approx(-b[0].item(), abs=1e-4)
    unit_e, unit_c = bins.unit_bins(32)
    assert torch.equal(bins.bounded_edges(unit_e, unit_c), unit_e)


def test_hue_chroma_definition_and_round_trip():
    ab = torch.tensor([[0.0, 50.0], [-30.0, 0.0], [10.0, -10.0], [150.0, 0.0], [0.0, 0.0]]).T.reshape(1, 2, 1, 5)
    hue, chroma = bins.ab_to_hue_chroma(ab)
    assert hue.flatten().tolist() == pytest.approx([0.25, 0.5, 0.875, 0.0, 0.0], abs=1e-6)
    assert chroma.flatten().tolist() == pytest.approx([0.5, 0.3, math.hypot(10, 10) / 100, 1.0, 0.0], abs=1e-6)
    assert ((hue >= 0) & (hue < 1)).all()
    g = torch.Generator().manual_seed(1)
    ab = (torch.rand(2, 2, 6, 7, generator=g) - 0.5) * 140  # chroma < 100: no clamping
    assert torch.allclose(bins.hue_chroma_to_ab(*bins.ab_to_hue_chroma(ab)), ab, atol=1e-4)


@pytest.mark.parametrize("space", SPACES)
def test_onehot_encoding_round_trips_through_the_mode(space):
    """ab -> one-hot target bins -> mode decode (bin centers) -> the same bins again."""
    model = tiny(space).eval()
    g = torch.Generator().manual_seed(2)
    ab = (torch.rand(2, 2, 5, 6, generator=g) - 0.5) * 180
    targets = model.encode(ab)
    assert [t.shape[1] for t in targets] == list(model.groups)
    assert all(torch.equal(t.sum(1), torch.ones(2, 5, 6)) for t in targets)
    logits = torch.log(torch.cat(targets, dim=1).clamp_min(1e-12))
    decoded = model.decode({"logits": logits}, "mode")
    again = model.encode(decoded)
    assert all(torch.equal(a, b) for a, b in zip(targets, again))


# ----------------------------------------------------------------------------- decoders
def test_hue_is_decoded_by_the_circular_mean():
    model = tiny("hue-chroma").eval()
    k = 32
    chroma = onehot(k, 15)                  # chroma bin [15/32, 16/32): center 0.484 -> C = 48.4
    hue = onehot(k, 0, 0.5) + onehot(k, 31, 0.5)   # around red (hue 0), on both sides of the seam
    pred = pred_of(chroma, hue)
    c = 100 * 15.5 / 32
    for method in ("median", "expectation", "annealed"):
        a, b = model.decode(pred, method).flatten().tolist()
        assert a == pytest.approx(c, abs=1e-2) and b == pytest.approx(0.0, abs=1e-2), method
    # a linear mean of the hue bins would say 0.5 (cyan, a < 0)
    assert bins.decode_marginal(hue.view(1, k, 1, 1), model.centers, "expectation").item() == pytest.approx(0.5)
    a, b = model.decode(pred, "mode").flatten().tolist()  # one of the two modes, 1/64 turn off red
    assert a == pytest.approx(c * math.cos(2 * math.pi / 64), abs=1e-2)
    assert abs(b) == pytest.approx(c * math.sin(2 * math.pi / 64), abs=1e-2)


def test_chromatic_fading_of_uncertain_hue():
    model = tiny("hue-chroma").eval()
    k = 32
    chroma = onehot(k, 20)
    c = 100 * 20.5 / 32
    opposite = pred_of(chroma, onehot(k, 0, 0.5) + onehot(k, 16, 0.5))  # |z| = 0
    for method in ("median", "expectation"):
        assert model.decode(opposite, method).abs().max() < 1e-3, method
    assert model.decode(opposite, "mode").norm().item() == pytest.approx(c, abs=1e-3)  # mode: no fading
    half = pred_of(chroma, onehot(k, 0, 0.5075) + onehot(k, 16, 0.4925))  # |z| = 0.015 = eta / 2
    assert model.decode(half, "median").norm().item() == pytest.approx(0.5 * c, abs=0.1)
    assert model.decode(half, "median", eta=0.015).norm().item() == pytest.approx(c, abs=0.1)


def test_median_of_lab_marginals_uses_the_gaussian_quantile_edges():
    model = tiny("lab-marginal").eval()
    k = 32
    q = NormalDist(0.0, 25.0).inv_cdf
    pa = onehot(k, 10, 0.3) + onehot(k, 16, 0.4) + onehot(k, 20, 0.3)  # CDF 0.3 before bin 16 -> its middle
    pb = onehot(k, 5)
    a, b = model.decode(pred_of(pa, pb), "median").flatten().tolist()
    assert a == pytest.approx((0.0 + q(17 / 32)) / 2, abs=1e-3)
    assert b == pytest.approx((q(5 / 32) + q(6 / 32)) / 2, abs=1e-3)
    centers = bins.gaussian_quantile_centers(k)
    ea, eb = model.decode(pred_of(pa, pb), "expectation").flatten().tolist()
    assert ea == pytest.approx((0.3 * centers[10] + 0.4 * centers[16] + 0.3 * centers[20]).item(), abs=1e-3)
    assert eb == pytest.approx(centers[5].item(), abs=1e-3)
    assert model.decode(pred_of(pa, pb), "mode").flatten().tolist() == pytest.approx([centers[16].item(), centers[5].item()])


def test_lab_joint_decoders_and_annealing_temperature():
    model = tiny("lab-joint").eval()
    c = bins.joint_quantile_centers(16)
    i, j = bins.joint_index(torch.tensor(3), torch.tensor(12)).item(), bins.joint_index(torch.tensor(9), torch.tensor(4)).item()
    pred = pred_of(onehot(256, i, 0.7) + onehot(256, j, 0.3))
    expect = 0.7 * c[i] + 0.3 * c[j]
    assert model.decode(pred).flatten().tolist() == pytest.approx(expect.tolist(), abs=1e-3)  # default: expectation
    assert model.decode(pred, "mode").flatten().tolist() == pytest.approx(c[i].tolist())
    assert model.decode(pred, "annealed", temperature=1.0).flatten().tolist() == pytest.approx(expect.tolist(), abs=1e-3)
    sharp = model.decode(pred, "annealed", temperature=0.05).flatten()
    assert torch.allclose(sharp, c[i], atol=1e-2)
    with pytest.raises(ValueError, match="median"):
        model.decode(pred, "median")


def test_decode_methods_and_defaults_per_space():
    m, j, h = (tiny(s) for s in SPACES)
    assert m.default_decode == "expectation" and set(m.decode_methods) == {"expectation", "annealed", "mode", "median", "sample"}
    assert j.default_decode == "expectation" and "median" not in j.decode_methods
    assert h.default_decode == "median" and set(h.decode_methods) == {"expectation", "annealed", "mode", "median", "sample"}
    with pytest.raises(ValueError, match="space"):
        tiny("rgb")


def test_a_recipe_can_choose_the_default_decoder():
    assert tiny("lab-joint", decode="annealed").default_decode == "annealed"
    assert tiny("lab-joint").default_decode == "expectation"
    with pytest.raises(ValueError, match="median"):
        tiny("lab-joint", decode="median")  # no median of a 2-D histogram


@pytest.mark.parametrize("space", ["lab-marginal", "hue-chroma", "lab-joint"])
def test_sampling_is_reproducible_with_a_generator(space):
    model = tiny(space).eval()
    g = torch.Generator().manual_seed(3)
    pred = {"logits": torch.randn(1, sum(model.groups), 12, 12, generator=g)}

    def draw(seed: int) -> torch.Tensor:
        return model.decode(pred, "sample", generator=torch.Generator().manual_seed(seed))

    assert torch.equal(draw(5), draw(5)) and not torch.equal(draw(5), draw(6))
    L = torch.rand(1, 1, 40, 40, generator=g) * 100
    a = model.predict_ab(L, "sample", generator=torch.Generator().manual_seed(1))
    b = model.predict_ab(L, "sample", generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


# ----------------------------------------------------------------------------- loss and training
def test_chroma_weighted_hue_loss_by_hand():
    """Two pixels: gray (chroma 0, teaches no hue) and (a, b) = (0, 50) (chroma 0.5, hue 0.25)."""
    model = tiny("hue-chroma")
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(1, 64, 1, 2, generator=g, requires_grad=True)
    ab = torch.tensor([[0.0, 0.0], [0.0, 50.0]]).T.reshape(1, 2, 1, 2)
    loss, logs = model.loss({"logits": logits}, {"ab": ab})
    lc = torch.log_softmax(logits[0, :32, 0], dim=0)   # (32, 2)
    lh = torch.log_softmax(logits[0, 32:, 0], dim=0)
    # chroma bins: 0 and 16; hue bins: 0 (gray: atan2(0,0)=0) and 8; lambda_H = 5
    expected = (-lc[0, 0] - lc[16, 1]) / 2 + 5 * (0.0 * -lh[0, 0] + 0.5 * -lh[8, 1]) / 2
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert logs["kl_chroma"] == pytest.approx(((-lc[0, 0] - lc[16, 1]) / 2).item(), rel=1e-5)
    loss.backward()
    assert logits.grad[0, 32:, 0, 0].abs().max() == 0  # no hue gradient at the gray pixel
    assert logits.grad[0, 32:, 0, 1].abs().max() > 0


def test_lab_losses_are_kl_to_onehot_targets():
    g = torch.Generator().manual_seed(5)
    ab = torch.tensor([[-10.0, 3.0]]).T.reshape(1, 2, 1, 1)  # Gaussian-quantile bins 11 and 17 of 32
    m = tiny("lab-marginal")
    logits = torch.randn(1, 64, 1, 1, generator=g)
    loss, logs = m.loss({"logits": logits}, {"ab": ab})
    la, lb = torch.log_softmax(logits[0, :32, 0, 0], 0), torch.log_softmax(logits[0, 32:, 0, 0], 0)
    assert loss.item() == pytest.approx(-(la[11] + lb[17]).item(), rel=1e-5)
    j = tiny("lab-joint")
    logits = torch.randn(1, 256, 1, 1, generator=g)
    loss, _ = j.loss({"logits": logits}, {"ab": ab})
    # 16 bins per axis: -10 -> bin 5 (Phi(-0.4) = 0.345 -> 5.5), 3 -> bin 8
    assert loss.item() == pytest.approx(-torch.log_softmax(logits[0, :, 0, 0], 0)[5 * 16 + 8].item(), rel=1e-5)
    assert loss.item() == pytest.approx(kl_histogram(logits, j.encode(ab)[0]).item(), rel=1e-6)


@pytest.mark.parametrize("space", SPACES)
def test_training_reads_targets_at_the_sampled_points(space):
    model = tiny(space, points=20).train()
    B, H, W = 2, 32, 48
    L = torch.rand(B, 1, H, W) * 100
    yy, xx = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
    ab = torch.stack([xx - 20, yy - 10]).expand(B, 2, H, W).clone()  # every pixel's ab names it
    pred = model(L)
    assert pred["logits"].shape == (B, sum(model.groups), 20, 1) and pred["points"].shape == (B, 20, 2)
    pts = pred["points"]
    assert (pts.abs() < 1).all()
    got = model.target_ab(pred, ab)[..., 0]  # (B,2,N)
    xs = ((pts[..., 0] + 1) * W - 1) / 2
    ys = ((pts[..., 1] + 1) * H - 1) / 2
    assert torch.allclose(got[:, 0], xs - 20, atol=1e-4) and torch.allclose(got[:, 1], ys - 10, atol=1e-4)
    loss, logs = model.loss(pred, {"L": L, "ab": ab})
    loss.backward()
    assert math.isfinite(loss.item()) and all(math.isfinite(v) for v in logs.values())
    assert all(p.grad is None for p in model.backbone.parameters())  # frozen
    assert model.head[-1].weight.grad is not None and not model.backbone.training


def test_sparse_hypercolumns_match_the_dense_map():
    """The head read at sampled points (training) equals the dense map (inference) at those pixels."""
    model = tiny("lab-joint", out_stride=1).eval()
    L = torch.rand(1, 1, 32, 32) * 100
    pts = sample_points(1, 32, 32, 15, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        dense = model(L)["logits"]
        sparse = model.head(model.project.sparse(model.backbone(gray_rgb_from_l(L)), pts))[0, :, :, 0]
    xs = (((pts[0, :, 0] + 1) * 32 - 1) / 2).round().long()
    ys = (((pts[0, :, 1] + 1) * 32 - 1) / 2).round().long()
    assert torch.allclose(sparse, dense[0][:, ys, xs], atol=1e-4)


@pytest.mark.parametrize("space", SPACES)
@pytest.mark.parametrize("hw", [(37, 53), (1, 70)])
def test_dense_predict_ab_and_confidence_on_odd_sizes(space, hw):
    model = tiny(space).eval()
    L = torch.rand(2, 1, *hw) * 100
    ab = model.predict_ab(L)
    assert ab.shape == (2, 2, *hw) and torch.isfinite(ab).all()
    with torch.no_grad():
        pred = model(L)
        conf = model.confidence(pred)
    assert "points" not in pred and conf.shape == (2, 1, *pred["logits"].shape[-2:])
    assert ((conf >= 0) & (conf <= 1)).all()
    uniform = {"logits": torch.zeros(1, sum(model.groups), 2, 2)}
    assert torch.allclose(model.confidence(uniform), torch.zeros(1, 1, 2, 2), atol=1e-5)


def test_hue_chroma_model_learns_a_constant_color():
    model = tiny("hue-chroma", hidden=16, points=64).train()
    hue, chroma = 5.5 / 32, 20.5 / 32  # bin centers of both axes
    target = bins.hue_chroma_to_ab(torch.tensor(hue).view(1, 1, 1, 1), torch.tensor(chroma).view(1, 1, 1, 1))
    g = torch.Generator().manual_seed(6)
    L = torch.rand(4, 1, 32, 32, generator=g) * 100
    batch = {"L": L, "ab": target.expand(4, 2, 32, 32)}
    first, last, _ = fit(model, batch, steps=60, lr=1e-2)
    assert last < 0.2 * first
    model.eval()
    pred = model.predict_ab(L).mean(dim=(0, 2, 3))  # default decode: median chroma + circular hue
    assert torch.allclose(pred, target.flatten(), atol=1.5), (pred, target.flatten())


def test_save_and_load_weights(tmp_path):
    model = tiny("lab-marginal", hidden=8, points=17, global_context=False).eval()
    L = torch.rand(1, 1, 40, 56) * 100
    for half in (False, True):
        path = save_weights(model, tmp_path / f"larsson-{half}.safetensors", {"name": "t"}, half=half)
        loaded = load_weights(path)
        assert loaded.arch == "larsson" and loaded.config == model.config and loaded.space == "lab-marginal"
        assert loaded.decode_methods == model.decode_methods and loaded.default_decode == "expectation"
        for method in ("expectation", "median"):
            a, b = model.predict_ab(L, method), loaded.predict_ab(L, method)
            assert torch.equal(a, b) if not half else torch.allclose(a, b, atol=0.5)


def test_tune_levels_trains_only_the_deep_backbone_levels(tmp_path):
    model = tiny("lab-joint", tune_levels=2).train()
    bb = model.backbone
    first_tuned = bb._level_ends[2] + 1  # the blocks after the stride-8 level
    L = torch.rand(2, 1, 64, 64) * 100
    batch = {"L": L, "ab": torch.randn(2, 2, 64, 64) * 20}
    loss, _ = model.loss(model(L), batch)
    loss.backward()
    for i, block in enumerate(bb._blocks):
        grads = [p.grad for p in block.parameters()]
        if i < first_tuned:
            assert all(g is None for g in grads), i
        else:
            assert all(g is not None and g.abs().sum() > 0 for g in grads), i
    assert bb._conv_stem.weight.grad is None
    assert not bb._bn0.training and not bb._blocks[-1]._bn2.training  # ImageNet statistics kept
    # the tuned backbone is stored with the head and comes back from the file
    with torch.no_grad():
        bb._blocks[-1]._project_conv.weight.add_(0.5)
    model.eval()
    path = save_weights(model, tmp_path / "tuned.safetensors", half=False)
    assert torch.equal(load_weights(path).predict_ab(L[:1]), model.predict_ab(L[:1]))
    with pytest.raises(ValueError, match="tune_levels"):
        tiny("lab-joint", tune_levels=1, freeze_backbone=False)


def test_configs_share_the_lite0_budget():
    lite0 = yaml.safe_load((ROOT / "configs" / "tinct-lite0-hc.yaml").read_text())
    shared = ("data", "size", "resize", "batch_size", "max_steps", "optimizer", "schedule", "grad_clip", "seed")
    found = {}
    for path in sorted((ROOT / "configs").glob("larsson-*.yaml")):
        cfg = yaml.safe_load(path.read_text())
        TrainConfig.from_dict(cfg)
        assert all(cfg[k] == lite0[k] for k in shared), path
        model_cfg = dict(cfg["model"])
        assert model_cfg.pop("arch") == "larsson"
        found[path.stem] = build_model("larsson", **{**model_cfg, "pretrained": False, "hidden": 8})
    assert {found[f"larsson-{s}"].space for s in SPACES} == set(SPACES)
    vgg = yaml.safe_load((ROOT / "configs" / "larsson-vgg16.yaml").read_text())["model"]
    assert vgg["backbone"] == "vgg16" and vgg["backbone_weights"] is None


# ----------------------------------------------------------------------------- CLI and trainer
@pytest.fixture(scope="module")
def larsson_files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("larsson")
    files = {}
    for space in SPACES:
        files[space] = save_weights(tiny(space).eval(), d / f"{space}.safetensors", {"name": space})
    photo = d / "photo.png"
    Image.fromarray(make_photo(40, 60, 1)).convert("L").save(photo)
    files["photo"] = photo
    return files


CASES = [(s, m) for s in SPACES for m in ("expectation", "annealed", "mode", "median", "sample")
         if not (s == "lab-joint" and m == "median")]


@pytest.mark.parametrize("space,method", CASES)
def test_cli_colorizes_with_every_decoder(larsson_files, tmp_path, space, method):
    out = tmp_path / "out"
    args = ["colorize", str(larsson_files["photo"]), "-o", str(out), "--model", str(larsson_files[space]),
            "--decode", method, "--render-size", "64", "-q"]
    assert main(args) == 0
    with Image.open(out / "photo.png") as im:
        assert im.size == (60, 40) and im.mode == "RGB"


def test_cli_samples_with_a_seed_and_confidence(larsson_files, tmp_path):
    base = ["colorize", str(larsson_files["photo"]), "--model", str(larsson_files["hue-chroma"]), "--render-size", "64", "-q"]
    assert main([*base, "-o", str(tmp_path / "s"), "--samples", "2", "--seed", "1"]) == 0
    assert main([*base, "-o", str(tmp_path / "t"), "--samples", "2", "--seed", "1"]) == 0
    s1, s2 = (np.asarray(Image.open(tmp_path / "s" / f"photo.sample{i}.png")) for i in (1, 2))
    t1 = np.asarray(Image.open(tmp_path / "t" / "photo.sample1.png"))
    assert (tmp_path / "s" / "photo.png").is_file()  # the decoded photo, beside its samples
    assert np.array_equal(s1, t1) and not np.array_equal(s1, s2)
    assert main([*base, "-o", str(tmp_path / "c"), "--confidence"]) == 0
    with Image.open(tmp_path / "c" / "photo.confidence.png") as im:
        assert im.size == (60, 40)
    # with samples, one confidence map (the distribution is the same for every sample)
    assert main([*base, "-o", str(tmp_path / "sc"), "--samples", "2", "--confidence"]) == 0
    assert sorted(p.name for p in (tmp_path / "sc").iterdir()) == [
        "photo.confidence.png", "photo.png", "photo.sample1.png", "photo.sample2.png"]
    assert np.array_equal(np.asarray(Image.open(tmp_path / "sc" / "photo.confidence.png")),
                          np.asarray(Image.open(tmp_path / "c" / "photo.confidence.png")))
    # a bad decoder is one clear error, not a traceback
    assert main([*base, "-o", str(tmp_path / "x"), "--decode", "nope"]) == 2


def test_smoke_training_through_the_trainer(tmp_path):
    data = tmp_path / "images"
    data.mkdir()
    for i in range(10):
        Image.fromarray(make_photo(40, 44, seed=50 + i)).save(data / f"{i:02d}.png")
    cfg = TrainConfig(
        name="larsson-smoke", model={"arch": "larsson", "space": "lab-marginal", "pretrained": False, "hidden": 8,
                                     "points": 16},
        data={"roots": [str(data)], "fractions": [0.8, 0.2, 0.0]}, size=32, resize=36, batch_size=4, max_steps=30,
        optimizer={"name": "adam", "lr": 3e-3}, schedule={"name": "cosine", "warmup": 3}, workers=0, log_every=10,
        val_every=1000, val_images=4, figure_images=2, checkpoint_every=1000, keep_last=1, seed=1)
    final = train(cfg, tmp_path / "run", progress=False)
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r for r in records if "loss" in r]
    assert [r["step"] for r in losses] == [10, 20, 30]
    assert all(math.isfinite(r["loss"]) and "kl_a" in r and "kl_b" in r for r in losses)
    assert any("val_loss" in r and math.isfinite(r["val_loss"]) for r in records)
    model = load_weights(final)
    assert model.arch == "larsson" and model.metadata["steps"] == 30
    assert model.predict_ab(torch.rand(1, 1, 33, 45) * 100).shape == (1, 2, 33, 45)


@pytest.mark.parametrize("space", SPACES)
def test_onnx_export_matches_pytorch(space, tmp_path):
    """`tinct colorize` runs the default (a Larsson model) through onnxruntime when it is installed."""
    model = tiny(space, backbone="efficientnet_lite2", global_context=True).eval()
    assert_onnx_matches_pytorch(model, tmp_path / f"{space}.onnx", torch.rand(1, 1, 40, 72) * 100)
