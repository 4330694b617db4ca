"""The corpus recipe: extract from a pinned git snapshot, filter, deduplicate, split, and evaluate per source."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from tinct.corpus import build, dhash, extract, load_recipe, near_duplicates, read_manifest

from conftest import make_photo


def git(*args, cwd=None):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                   capture_output=True)


@pytest.fixture()
def corpus_setup(tmp_path) -> tuple[Path, Path]:
    """A fetched snapshot (bare repo under mirror/) with photos at an old commit, and a local folder."""
    work = tmp_path / "src"
    (work / "pics" / "drawn").mkdir(parents=True)
    for i in range(8):
        Image.fromarray(make_photo(120, 140, seed=i)).save(work / "pics" / f"{i}.jpg", quality=92)
    Image.fromarray(make_photo(120, 140, seed=0)).save(work / "pics" / "copy.png")  # a duplicate of 0.jpg
    Image.fromarray(make_photo(120, 140, seed=9)).convert("L").convert("RGB").save(work / "pics" / "gray.jpg")
    Image.fromarray(make_photo(40, 50, seed=10)).save(work / "pics" / "tiny.jpg")
    Image.fromarray(make_photo(120, 140, seed=11)).save(work / "pics" / "drawn" / "cartoon.jpg")
    git("init", "-q", cwd=work)
    git("add", ".", cwd=work)
    git("commit", "-qm", "photos", cwd=work)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=work, capture_output=True, text=True).stdout.strip()
    git("rm", "-rq", "pics", cwd=work)
    git("commit", "-qm", "photos removed at HEAD", cwd=work)
    git("clone", "-q", "--bare", str(work), str(tmp_path / "mirror" / "someone+photos" / "repo"))
    local = tmp_path / "local" / "cls"
    local.mkdir(parents=True)
    for i in range(4):
        Image.fromarray(make_photo(100, 100, seed=50 + i)).save(local / f"{i}.png")
    recipe = {"mirror": str(tmp_path / "mirror"), "split": {"val": 0.5}, "sources": [
        {"name": "snap", "repo": "someone/photos", "commit": commit, "paths": ["pics"], "exclude": ["pics/drawn/*"],
         "licence": "CC0", "weight": 2.0},
        {"name": "here", "paths": [str(tmp_path / "local")], "licence": "MIT"}]}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path, tmp_path / "corpus"


def test_extract_build_filters_dedupes_and_records_provenance(corpus_setup):
    recipe_path, into = corpus_setup
    recipe = load_recipe(recipe_path)
    counts = extract(recipe, into, progress=False)
    assert counts == {"snap": 11}  # the drawn/ folder is excluded; the commit, not HEAD, holds the photos
    summary = build(recipe, into, workers=1, progress=False)
    assert summary["dropped"] == {"near_duplicate": 1, "gray": 1, "small": 1}
    photos = read_manifest(into / "manifest.jsonl")
    assert len(photos) == summary["photos"] == 8 + 4
    names = {Path(p.path).name for p in photos if p.source == "snap"}
    assert "0.jpg" in names and "copy.png" not in names  # the first of a near-duplicate pair is kept
    snap = [p for p in photos if p.source == "snap"]
    assert {p.licence for p in snap} == {"CC0"} and {p.weight for p in snap} == {2.0}
    assert {p.split for p in photos} <= {"train", "val"}
    # splits are a pure function of source and path: a rebuild gives the same manifest
    first = (into / "manifest.jsonl").read_text()
    build(recipe, into, workers=1, progress=False)
    assert (into / "manifest.jsonl").read_text() == first
    assert read_manifest(into / "manifest.jsonl", split="val") == [p for p in photos if p.split == "val"]


def test_missing_snapshot_names_the_fetch(corpus_setup, tmp_path):
    recipe_path, into = corpus_setup
    raw = yaml.safe_load(recipe_path.read_text())
    raw["mirror"] = str(tmp_path / "nowhere")
    recipe_path.write_text(yaml.safe_dump(raw))
    with pytest.raises(FileNotFoundError, match="fetch github:someone/photos"):
        extract(load_recipe(recipe_path), into, progress=False)


@pytest.mark.parametrize("source, message", [
    ({"name": "a", "paths": ["x"]}, "needs paths and licence"),
    ({"name": "a", "paths": ["x"], "licence": "MIT", "repo": "o/n"}, "pinned commit"),
    ({"name": "a", "paths": ["x"], "licence": "MIT", "weight": 0}, "weight must be positive"),
    ({"name": "a", "paths": ["x"], "licence": "MIT", "colour": 1}, "unknown keys colour"),
])
def test_bad_recipe_is_a_clear_error(tmp_path, source, message):
    p = tmp_path / "r.yaml"
    p.write_text(yaml.safe_dump({"sources": [source]}))
    with pytest.raises(ValueError, match=message):
        load_recipe(p)


def test_near_duplicates_by_hamming_distance():
    rng = np.random.default_rng(0)
    base = [int(x) for x in rng.integers(0, 2**63, 50)]
    close = base[7] ^ 0b1011  # 3 bits away
    far = base[7] ^ ((1 << 40) - 1)
    assert near_duplicates(base + [close, far], max_bits=4) == {50}
    img = make_photo(64, 64, seed=3)[..., 0]
    assert dhash(img) == dhash(img.copy()) and (dhash(img) ^ dhash(255 - img)).bit_count() > 40


def test_evaluate_a_corpus_manifest_per_source_with_pseudo_labels(corpus_setup, tiny_model_path):
    from tinct.evaluate import evaluate

    recipe_path, into = corpus_setup
    recipe = load_recipe(recipe_path)
    extract(recipe, into, progress=False)
    build(recipe, into, workers=1, progress=False)
    val = read_manifest(into / "manifest.jsonl", split="val")
    report = evaluate([into / "manifest.jsonl"], [str(tiny_model_path), "gray"], size=32, progress=False,
                      examples=1, pseudo_labels=True)
    assert report["protocol"]["images"] == len(val)
    groups = report["protocol"]["groups"]
    assert groups == {s: sum(p.source == s for p in val) for s in ("here", "snap")}  # both sources hold out photos
    for r in report["models"].values():
        assert set(r["groups"]) == {"here", "snap"}
        assert r["groups"]["snap"]["images"] == groups["snap"]
    assert "| snap |" in report["markdown"]
    json.dumps(report)  # the report stays serialisable
