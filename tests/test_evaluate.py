"""`tinct evaluate`: protocol, baselines, reports."""

import json

import numpy as np
import pytest
from PIL import Image
from skimage import data

from tinct.cli import main
from tinct.evaluate import center_square, evaluate, parse_spec

from conftest import make_photo


@pytest.fixture(scope="module")
def photo_set(tmp_path_factory):
    """Four photos scikit-image ships, two of them in an ImageNet WordNet-id folder (tench: n01440764)."""
    root = tmp_path_factory.mktemp("eval")
    (root / "n01440764").mkdir()
    for name in ("astronaut", "coffee"):
        Image.fromarray(getattr(data, name)()).save(root / f"{name}.png")
    for name in ("chelsea", "rocket"):
        Image.fromarray(getattr(data, name)()).save(root / "n01440764" / f"{name}.png")
    return root


def test_center_square():
    img = np.zeros((10, 20, 3), np.uint8)
    img[:, 5:15] = 255
    out = center_square(img, 10)
    assert out.shape == (10, 10, 3) and out.min() == 255


def test_baselines_and_report_files(photo_set, tmp_path, tiny_model_path):
    out = tmp_path / "report"
    report = evaluate([photo_set], [str(tiny_model_path), "gray", "truth"], size=128, out_dir=out, progress=False)
    rows = {k: v["metrics"] for k, v in report["models"].items()}
    truth, gray = rows["truth"], rows["gray"]
    assert truth["auc"] == 100.0 and truth["auc_rebal"] == 100.0 and truth["ciede2000"] == 0.0
    assert truth["ssim"] == pytest.approx(1.0) and np.isinf(truth["psnr"]) and truth["cf_gap"] == 0.0
    for other in (gray, rows[str(tiny_model_path)]):
        assert other["auc"] < 100 and other["ssim"] < 1 and other["ciede2000"] > 0
    assert gray["colorfulness"] < 1.0  # a = b = 0 has (almost) no colorfulness
    # Zhang et al. report gray AuC ~89 on ImageNet. These four photos are more colorful than an
    # average ImageNet photo (coffee, astronaut): measured 81.6 at 128^2, pinned within +-2.5.
    assert 79 < gray["auc"] < 84
    assert "top1" in gray and "ms_per_image" in rows[str(tiny_model_path)] and "ms_per_image" not in gray
    saved = json.loads((out / "report.json").read_text())
    assert saved["protocol"]["size"] == 128 and saved["protocol"]["imagenet_labelled"] == 2
    md = (out / "report.md").read_text()
    assert "| gray |" in md and "AuC" in md and "Protocol:" in md
    with Image.open(out / "examples.png") as im:
        assert im.width == 5 * 160  # gray input, truth, three models


def test_cli_evaluate_and_decoder_spec(photo_set, tmp_path, tiny_model_path, capsys):
    out = tmp_path / "r"
    code = main(["evaluate", "--data", str(photo_set), "--model", f"{tiny_model_path}@mode", "--model", "gray",
                 "--size", "64", "--limit", "2", "--out", str(out), "-q"])
    assert code == 0
    assert "@mode" in (out / "report.md").read_text()
    assert main(["evaluate", "--data", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "not found" in capsys.readouterr().err


def test_spec_parsing():
    assert parse_spec("default") == ("default", None, {})
    assert parse_spec("m.safetensors@mode") == ("m.safetensors", "mode", {})
    assert parse_spec("larsson-lab-joint@annealed:0.6") == ("larsson-lab-joint", "annealed", {"temperature": 0.6})
    for bad, message in (("m@mode:0.5", "only the annealed"), ("m@annealed:hot", "must be a number"),
                         ("m@annealed:0", "positive")):
        with pytest.raises(ValueError, match=message):
            parse_spec(bad)


def test_annealed_temperature_in_a_spec_reaches_the_decoder(photo_set, tiny_model_path):
    """A cold annealed mean (near the mode) colors more than a hot one (flatter than the expectation)."""
    specs = [f"{tiny_model_path}@annealed:0.1", f"{tiny_model_path}@annealed:3"]
    report = evaluate([photo_set], specs, size=64, progress=False)
    cold, hot = (report["models"][s] for s in specs)
    assert cold["metrics"]["colorfulness"] > hot["metrics"]["colorfulness"]
    assert "T = 0.1" in cold["description"] and "T = 3" in hot["description"]


def test_report_table_columns_line_up_and_speed_is_timed_after_warm_up(tmp_path, tiny_model_path):
    from tinct.evaluate import WARMUP_CALLS, score_colorizer

    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(make_photo(40, 40, seed=i)).save(folder / f"{i}.png")
    report = evaluate([folder], [str(tiny_model_path), "gray"], size=32, progress=False, examples=1)
    table = [line for line in report["markdown"].splitlines() if line.startswith("|")]
    assert len({line.count("|") for line in table}) == 1  # no cell carries a stray "|"
    assert f"after {WARMUP_CALLS} warm-up calls" in report["markdown"]
    calls = []
    items = [{"name": str(i), "truth": make_photo(32, 32, seed=i), "label": -1} for i in range(3)]
    score_colorizer(items, lambda truth: calls.append(1) or truth)
    assert len(calls) == 3 + WARMUP_CALLS


def test_a_subset_of_metrics_is_computed_alone(photo_set, tmp_path):
    from tinct import metrics as M

    a, b = make_photo(32, 32, seed=1), make_photo(32, 32, seed=2)
    full = M.image_metrics(a, b)
    assert M.image_metrics(a, b, ("psnr", "colorfulness")) == {k: full[k] for k in ("psnr", "colorfulness")}
    with pytest.raises(ValueError, match="unknown metric"):
        M.image_metrics(a, b, ("sharpness",))
    assert main(["evaluate", "--data", str(photo_set), "--model", "gray", "--size", "32", "--metrics", "psnr,auc",
                 "--out", str(tmp_path / "r"), "-q"]) == 0
    row = json.loads((tmp_path / "r" / "report.json").read_text())["models"]["gray"]["metrics"]
    assert "psnr" in row and "ssim" not in row and "auc_rebal" in row  # pooled AuCs stay


def test_evenly_spaced_is_the_limit_subset():
    """``--limit N`` keeps N evenly spaced items (what scripts/fresh_manifest.py drops again)."""
    from tinct.evaluate import evenly_spaced

    assert evenly_spaced(list(range(10)), 4) == [0, 2, 5, 7]
    assert evenly_spaced(list(range(10)), None) == list(range(10))
    assert evenly_spaced(list(range(3)), 5) == [0, 1, 2]
