"""Color hints: parsing and validation (tinct.hints), the hint map, simulated training hints, and
the hint model through the public door (Colorizer.colorize(hints=...), Colorizer.suggest)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tinct.hints import Hint, HintError, hint_ab, load_hints, parse_hints, render_hints, simulate_hints
from tinct.models.base import build_model
from tinct.pipeline import Colorizer


# ----------------------------------------------------------------------------- parsing
def test_parse_pixels_and_fractions():
    hints = parse_hints('[{"x": 120, "y": 45, "color": "#3050c0"}, {"x": 0.25, "y": 0.5, "color": "f00"}]', 400, 300)
    assert hints == [Hint(120.0, 45.0, "#3050c0"), Hint(100.0, 150.0, "f00")]


def test_whole_numbers_zero_and_one_are_pixels():
    assert parse_hints([{"x": 1, "y": 0, "color": "#000"}], 10, 10) == [Hint(1.0, 0.0, "#000")]


def test_hints_object_with_a_list_is_accepted():
    assert len(parse_hints({"hints": [{"x": 3, "y": 4, "color": "#123456"}]}, 10, 10)) == 1


@pytest.mark.parametrize("data, message", [
    ('[{"x": 500, "y": 45, "color": "#3050c0"}]', "hint 1: (500, 45) is outside the 400x300 photo"),
    ('[{"x": 1, "y": 1, "color": "#3050c0"}, {"x": 2, "y": 2, "color": "blue"}]', "hint 2: color 'blue'"),
    ('[{"x": 1, "y": 1}]', 'hint 1: needs "x", "y" and "color"'),
    ('[{"x": "a", "y": 1, "color": "#fff"}]', "hint 1: x and y must be numbers"),
    ('{"x": 1}', "hints must be a JSON list"),
    ("[{", "hints are not valid JSON"),
    ('[{"x": -3, "y": 1, "color": "#fff"}]', "hint 1: (-3, 1) is outside"),
])
def test_bad_hints_are_one_line_errors_naming_the_hint(data, message):
    with pytest.raises(HintError) as err:
        parse_hints(data, 400, 300)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_load_hints_names_the_file(tmp_path):
    f = tmp_path / "a.hints.json"
    f.write_text('[{"x": 1, "y": 1, "color": "#zzzzzz"}]')
    with pytest.raises(HintError, match="a.hints.json: hint 1: color"):
        load_hints(f, 10, 10)
    with pytest.raises(HintError, match="cannot read hints file"):
        load_hints(tmp_path / "missing.json", 10, 10)


def test_hint_ab_of_gray_is_zero_and_of_red_is_positive_a():
    a, b = hint_ab("#808080")
    assert abs(a) < 0.5 and abs(b) < 0.5
    a, b = hint_ab("#ff0000")
    assert a > 70 and b > 50  # sRGB red: a* ~ 80, b* ~ 67


# ----------------------------------------------------------------------------- maps
def test_render_hints_places_a_patch_at_render_scale():
    m = render_hints([Hint(50, 20, "#ff0000")], (30, 50), (60, 100), patch=3)
    assert m.shape == (1, 3, 30, 50)
    ys, xs = torch.nonzero(m[0, 2], as_tuple=True)
    assert set(ys.tolist()) == {9, 10, 11} and set(xs.tolist()) == {24, 25, 26}
    assert m[0, 0, 10, 25] > 70 and m[0, 0, 0, 0] == 0


def test_simulate_hints_counts_and_means():
    g = torch.Generator().manual_seed(0)
    ab = torch.zeros(3, 2, 32, 32)
    ab[:, 0] = 40.0  # a uniform color: every hint carries it exactly
    m = simulate_hints(ab, g, count=5, patch_sizes=(1,))
    assert m.shape == (3, 3, 32, 32)
    counts = m[:, 2].sum(dim=(1, 2))
    assert ((counts >= 1) & (counts <= 5)).all()  # 5 points each, some may coincide
    assert torch.all(m[:, 0][m[:, 2] > 0] == 40.0)
    none = simulate_hints(ab, torch.Generator().manual_seed(1), no_hint_share=1.0)
    assert none.abs().sum() == 0


def test_simulated_hint_count_is_geometric():
    g = torch.Generator().manual_seed(0)
    m = simulate_hints(torch.zeros(400, 2, 16, 16), g, no_hint_share=0.0, p=0.5, patch_sizes=(1,))
    points = m[:, 2].sum(dim=(1, 2))
    assert points.min() >= 1
    assert 1.6 < points.mean() < 2.4  # mean of Geometric(1/2) is 2 (coinciding points count once)


# ----------------------------------------------------------------------------- the model
@pytest.fixture(scope="module")
def hint_colorizer():
    torch.manual_seed(0)
    model = build_model("larsson-hints", space="lab-joint", backbone="efficientnet_lite0", pretrained=False,
                        hidden=32, key_width=8)
    torch.nn.init.normal_(model.hint_attention.value[-1].weight, std=5.0)  # untrained hint values are zero
    return Colorizer(model, render_size=64, name="tiny-hints")


def test_no_hints_is_the_automatic_output(hint_colorizer):
    img = np.random.default_rng(0).random((40, 56, 3)).astype(np.float32)
    auto = hint_colorizer.colorize(img).rgb
    assert np.array_equal(auto, hint_colorizer.colorize(img, hints=[]).rgb)
    assert np.array_equal(auto, hint_colorizer.colorize(hint_colorizer.prepare(img)).rgb)


def test_hints_change_the_output_and_prepared_features_agree(hint_colorizer):
    img = np.random.default_rng(1).random((40, 56, 3)).astype(np.float32)
    hints = [{"x": 10, "y": 10, "color": "#ff0000"}]
    fresh = hint_colorizer.colorize(img, hints=hints).rgb
    prepared = hint_colorizer.prepare(img)
    assert prepared.features is not None
    assert np.allclose(fresh, hint_colorizer.colorize(prepared, hints=json.dumps(hints)).rgb, atol=1e-5)
    assert np.abs(fresh - hint_colorizer.colorize(img).rgb).max() > 1e-3  # a dropped hint map gives 0


def test_a_model_without_hints_refuses_them(tiny_model_path):
    c = Colorizer(str(tiny_model_path), render_size=64, name="auto-only")
    img = np.zeros((32, 32, 3), np.float32)
    with pytest.raises(ValueError, match="model 'auto-only' takes no color hints"):
        c.colorize(img, hints=[{"x": 1, "y": 1, "color": "#f00"}])
    assert c.colorize(img, hints=[]).rgb.shape == (32, 32, 3)  # no hint is fine for any model


def test_suggest_gives_k_distinct_colors_most_likely_first(hint_colorizer):
    img = np.random.default_rng(2).random((40, 56, 3)).astype(np.float32)
    colors = hint_colorizer.suggest(img, 20, 15, k=4)
    assert len(colors) == 4
    assert all(c["color"].startswith("#") and len(c["color"]) == 7 for c in colors)
    probs = [c["probability"] for c in colors]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001
    assert len({c["color"] for c in colors}) == 4
    with pytest.raises(HintError, match="outside"):
        hint_colorizer.suggest(img, 99, 15)


# ----------------------------------------------------------------------------- the shipped hint model
def test_the_shipped_hint_model_turns_a_hinted_gray_region_red_and_leaves_far_regions():
    """examples/coffee.jpg: one red hint on the cup, which the automatic colors leave near gray."""
    from pathlib import Path

    from skimage.color import rgb2lab

    photo = Path(__file__).resolve().parents[1] / "examples" / "coffee.jpg"
    c = Colorizer("tinct-lite2-hints", render_size=384)
    prepared = c.prepare(photo)

    def ab_at(rgb, x, y):  # mean a, b of a 7x7 block
        return rgb2lab(rgb[y - 3:y + 4, x - 3:x + 4]).reshape(-1, 3)[:, 1:].mean(0)

    auto = c.colorize(prepared, dtype=np.uint8).rgb
    red = c.colorize(prepared, hints=[{"x": 300, "y": 235, "color": "#c01818"}], dtype=np.uint8).rgb
    before, after = ab_at(auto, 300, 235), ab_at(red, 300, 235)
    assert np.hypot(*before) < 15                    # the automatic cup is a low-chroma brown-gray
    assert after[0] > 25 and after[0] > after[1]     # red: a* high and above b*
    assert np.hypot(*(ab_at(red, 250, 180) - ab_at(auto, 250, 180))) > 10   # the hint spreads over the cup
    for x, y in ((560, 40), (40, 380)):              # the wooden table, far from the cup
        assert np.hypot(*(ab_at(red, x, y) - ab_at(auto, x, y))) < 2
