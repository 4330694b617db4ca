"""The feature cache: crops per weight, exact resume, cached features equal the backbone's, training from it."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from tinct.data import ManifestEntry
from tinct.feature_cache import CachedCrops, build_feature_cache, collate_cached, crops_for_weight, plan_crops
from tinct.models import build_model

from conftest import make_photo


def tiny_larsson():
    torch.manual_seed(0)
    return build_model("larsson", space="lab-joint", backbone="efficientnet_lite0", pretrained=False,
                       hidden=8, points=16, joint_bins=8)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[ManifestEntry]:
    d = tmp_path_factory.mktemp("photos")
    entries = []
    for i in range(5):
        p = d / f"{i}.jpg"
        Image.fromarray(make_photo(48 + 4 * i, 56, seed=i)).save(p, quality=95)
        entries.append(ManifestEntry(str(p), -1, "train", 56, 48 + 4 * i))
    return entries


def test_crops_follow_the_weights_on_average_and_are_machine_independent():
    counts = [crops_for_weight(f"p{i}", 2.5, 1.0) for i in range(2000)]
    assert set(counts) == {2, 3} and abs(np.mean(counts) - 2.5) < 0.05
    assert counts == [crops_for_weight(f"p{i}", 2.5, 1.0) for i in range(2000)]
    plan = plan_crops(["a", "b"], [3.0, 1.0], 1.0, seed=0)
    assert sorted(plan) == [0, 0, 0, 1] and plan == plan_crops(["a", "b"], [3.0, 1.0], 1.0, seed=0)


def test_cache_holds_the_backbone_features_of_each_crop(photos, tmp_path):
    model = tiny_larsson()
    d = build_feature_cache(model, photos, [1.0, 2.0, 1.0, 1.0, 1.0], tmp_path / "c", size=32, resize=40,
                            batch_size=4, workers=0, progress=False)
    cache = CachedCrops(d)
    assert len(cache) == 6 and cache.size == (32, 32)
    batch = collate_cached([cache[i] for i in range(len(cache))])
    with torch.no_grad():
        fresh = model.features(batch["L"])
    for cached, f in zip(batch["feats"], fresh):
        assert cached.shape == f.shape
        # float16 storage and L quantised to 1/2.55: close, not bit-equal
        assert torch.allclose(cached, f, atol=0.05 * f.abs().max().item() + 1e-3)
    model.eval()
    dense_cached = model.from_features(batch["feats"], (32, 32))["logits"]
    dense = model(batch["L"])["logits"]
    assert (dense_cached - dense).abs().max() < 0.05 * dense.abs().max() + 1e-3
    assert batch["ab"].abs().max() > 5  # real color targets, not zeros


def test_an_interrupted_build_resumes_to_the_same_cache(photos, tmp_path):
    model = tiny_larsson()
    full = build_feature_cache(model, photos, [1.0] * 5, tmp_path / "full", size=32, resize=40,
                               batch_size=2, workers=0, progress=False)
    part = build_feature_cache(model, photos, [1.0] * 5, tmp_path / "part", size=32, resize=40,
                               batch_size=2, workers=0, progress=False)
    # pretend the build stopped after 2 crops: the rest is rewritten on the next run
    (part / "progress.json").write_text(json.dumps({"done": 2}))
    arr = np.load(part / "ab.npy", mmap_mode="r+")
    arr[2:] = 0
    arr.flush()
    assert len(CachedCrops(part)) == 2
    build_feature_cache(model, photos, [1.0] * 5, part, size=32, resize=40, batch_size=2, workers=0, progress=False)
    for name in ("ab.npy", "L.npy", "level4.npy"):
        assert np.array_equal(np.load(full / name), np.load(part / name))


def test_a_cache_of_other_settings_is_refused(photos, tmp_path):
    model = tiny_larsson()
    build_feature_cache(model, photos, [1.0] * 5, tmp_path / "c", size=32, resize=40, workers=0, progress=False)
    with pytest.raises(ValueError, match="other settings.*size"):
        build_feature_cache(model, photos, [1.0] * 5, tmp_path / "c", size=48, resize=48, workers=0, progress=False)


def test_training_from_the_cache(photos, tmp_path):
    from tinct.train import TrainConfig, train
    from tinct.weights import load_weights

    manifest = tmp_path / "manifest.jsonl"
    lines = [{"path": e.path, "source": "s", "licence": "CC0", "split": "val" if i == 4 else "train",
              "weight": 1.0, "width": e.width, "height": e.height} for i, e in enumerate(photos)]
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines))
    cfg = TrainConfig.from_dict({
        "name": "cached", "model": {"arch": "larsson", "space": "lab-joint", "backbone": "efficientnet_lite0",
                                    "pretrained": False, "hidden": 8, "points": 16, "joint_bins": 8},
        "data": {"corpus": str(manifest), "feature_cache": str(tmp_path / "cache"), "crops_per_unit": 2},
        "size": 32, "resize": 40, "batch_size": 4, "max_steps": 5, "optimizer": {"name": "adam", "lr": 1e-3},
        "workers": 0, "threads": 1, "val_images": 2, "figure_images": 1, "checkpoint_every": 2, "keep_last": 1})
    final = train(cfg, tmp_path / "run", progress=False)
    model = load_weights(final)
    assert model.metadata["steps"] == 5 and model.metadata["data"]["train_photos"] == 4
    assert len(CachedCrops(tmp_path / "cache")) == 8
    assert np.isfinite(model.metadata["metrics"]["val_loss"])
    # a share of the photos trains from the same cache (a learning curve over corpus size)
    half = TrainConfig.from_dict({**cfg.__dict__, "data": {**cfg.data, "train_fraction": 0.9}, "max_steps": 2})
    kept = load_weights(train(half, tmp_path / "half", progress=False)).metadata["data"]["train_photos"]
    from tinct.data import subsample

    assert kept == len(subsample(photos[:4], 0.9)) > 0
    assert json.loads((tmp_path / "cache" / "meta.json").read_text())["photos"] == 4  # not rebuilt


def test_a_subset_of_photos_reads_only_their_crops(photos, tmp_path):
    model = tiny_larsson()
    d = build_feature_cache(model, photos, [1.0, 2.0, 1.0, 1.0, 1.0], tmp_path / "c", size=32, resize=40,
                            workers=0, progress=False)
    plan = np.load(d / "plan.npy")
    assert sorted(plan.tolist()) == [0, 1, 1, 2, 3, 4]
    every = CachedCrops(d)
    some = CachedCrops(d, photos={1, 3})
    assert len(some) == 3
    wanted = [i for i, p in enumerate(plan) if p in (1, 3)]
    for k, i in enumerate(wanted):
        assert torch.equal(some[k]["ab"], every[i]["ab"])
    with pytest.raises(ValueError, match="no crops of these photos"):
        CachedCrops(d, photos={99})


def test_a_cache_of_more_photos_serves_a_smaller_list_without_rebuilding(photos, tmp_path):
    from tinct.feature_cache import cache_photo_indices

    model = tiny_larsson()
    d = build_feature_cache(model, photos, [1.0] * 5, tmp_path / "c", size=32, resize=40, workers=0, progress=False)
    stamp = (d / "ab.npy").stat().st_mtime_ns
    fewer = [photos[0], photos[2], photos[4]]  # e.g. photos a corpus recipe now leaves out
    assert build_feature_cache(model, fewer, [1.0] * 3, d, size=32, resize=40, workers=0, progress=False) == d
    assert (d / "ab.npy").stat().st_mtime_ns == stamp
    crops = CachedCrops(d, photos=cache_photo_indices(d, [e.path for e in fewer]))
    assert len(crops) == 3
    with pytest.raises(ValueError, match="no crops of 1 photo"):
        cache_photo_indices(d, [photos[0].path, "/elsewhere/new.jpg"])
    other = ManifestEntry(str(tmp_path / "new.jpg"), -1, "train", 56, 48)
    Image.fromarray(make_photo(48, 56, seed=9)).save(other.path)
    with pytest.raises(ValueError, match="other settings"):  # a photo the cache lacks: not a superset
        build_feature_cache(model, [*fewer, other], [1.0] * 4, d, size=32, resize=40, workers=0, progress=False)
