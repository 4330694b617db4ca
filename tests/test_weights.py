"""Weights files: safetensors + JSON metadata, fp16 storage, no unpickling, clear errors."""

import json

import pytest
import torch
from safetensors import safe_open

import tinct
from tinct.models import build_model
from tinct.weights import load_weights, read_metadata, resolve, save_weights


def test_round_trip_keeps_predictions(tmp_path):
    torch.manual_seed(1)
    model = build_model("hypercolumns", pretrained=False, hidden=16).eval()
    path = save_weights(model, tmp_path / "m.safetensors", {"name": "m", "steps": 12, "metrics": {"auc": 90.0}})
    loaded = load_weights(path)
    L = torch.rand(1, 1, 64, 96) * 100
    with torch.no_grad():
        a, b = model.predict_ab(L), loaded.predict_ab(L)
    # fp16 storage: predictions agree to well under one ab unit (measured max 0.05)
    assert (a - b).abs().max() < 0.5
    meta = read_metadata(path)
    assert meta["arch"] == "hypercolumns" and meta["steps"] == 12 and meta["config"]["hidden"] == 16
    with safe_open(str(path), framework="pt") as f:
        assert all(f.get_tensor(k).dtype in (torch.float16, torch.int64) for k in f.keys())
        assert json.loads(f.metadata()["tinct"])["name"] == "m"


def test_full_precision_round_trip_is_exact(tmp_path):
    model = build_model("hypercolumns", pretrained=False, hidden=16).eval()
    loaded = load_weights(save_weights(model, tmp_path / "m.safetensors", half=False))
    for (k, v), (k2, v2) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)


def test_no_pickle_on_the_load_path(tmp_path, monkeypatch):
    model = build_model("hypercolumns", pretrained=False, hidden=16)
    path = save_weights(model, tmp_path / "m.safetensors")
    import pickle

    def forbidden(*a, **k):
        raise AssertionError("unpickling on the load path")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    loaded = tinct.load_model(path)
    saved = model.state_dict()
    assert loaded.arch == "hypercolumns" and set(loaded.state_dict()) == set(saved)
    assert all(torch.allclose(v.float(), saved[k].float(), atol=1e-2) for k, v in loaded.state_dict().items())


def test_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        resolve(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="not a safetensors"):
        load_weights(junk)
    with pytest.raises(ValueError, match="unknown model"):
        resolve("no-such-model")
    with pytest.raises(ValueError, match="no shipped weights"):
        resolve("hypercolumns")


def test_atomic_save_leaves_no_partial_file(tmp_path, monkeypatch):
    import tinct.weights as w

    model = build_model("hypercolumns", pretrained=False, hidden=16)

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(w, "save_file", boom)
    with pytest.raises(OSError):
        save_weights(model, tmp_path / "m.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_frozen_packaged_backbone_is_not_stored(tmp_path):
    torch.manual_seed(2)
    model = build_model("larsson", hidden=16, points=32).eval()  # frozen ImageNet Lite0 by default
    path = save_weights(model, tmp_path / "m.safetensors")
    meta = read_metadata(path)
    assert list(meta["packaged"]) == ["backbone"] and meta["packaged"]["backbone"]["variant"] == "lite0"
    with safe_open(str(path), framework="pt") as f:
        keys = list(f.keys())
    assert keys and not any(k.startswith("backbone.") for k in keys)
    assert path.stat().st_size < 1_000_000  # the Lite0 alone is 6.7 MB in fp16
    loaded = load_weights(path)
    for k, v in model.backbone.state_dict().items():
        assert torch.equal(v, loaded.backbone.state_dict()[k]), k  # from the package, not a fp16 copy
    L = torch.rand(1, 1, 64, 80) * 100
    with torch.no_grad():
        assert (model.predict_ab(L) - loaded.predict_ab(L)).abs().max() < 0.5


def test_moved_backbone_is_stored(tmp_path):
    model = build_model("larsson", hidden=16, points=32, freeze_backbone=False)
    with torch.no_grad():
        model.backbone._conv_stem.weight.add_(0.01)  # fine-tuned: no longer the package's weights
    path = save_weights(model, tmp_path / "m.safetensors")
    assert "packaged" not in read_metadata(path)
    loaded = load_weights(path)
    assert torch.allclose(loaded.backbone._conv_stem.weight, model.backbone._conv_stem.weight, rtol=1e-3, atol=1e-3)  # fp16


def test_packaged_backbone_checksum_is_checked(tmp_path):
    from safetensors.torch import load_file, save_file

    path = save_weights(build_model("larsson", hidden=16, points=32), tmp_path / "m.safetensors")
    meta = read_metadata(path)
    recorded = meta["packaged"]["backbone"]["checksum"]
    assert recorded.startswith("sha256:") and len(recorded) == 7 + 64
    meta["packaged"]["backbone"]["checksum"] = "sha256:" + "0" * 64  # as if trained over other package weights
    save_file(load_file(str(path)), str(path), metadata={"tinct": json.dumps(meta)})
    with pytest.raises(ValueError, match="another version"):
        load_weights(path)


def test_files_with_the_older_sum_checksum_still_load_and_are_checked(tmp_path):
    from safetensors.torch import load_file, save_file

    from tinct.weights import _legacy_checksum

    model = build_model("larsson", hidden=16, points=32)
    path = save_weights(model, tmp_path / "m.safetensors")
    meta = read_metadata(path)
    meta["packaged"]["backbone"]["checksum"] = _legacy_checksum(model.backbone)
    save_file(load_file(str(path)), str(path), metadata={"tinct": json.dumps(meta)})
    assert load_weights(path).arch == "larsson"
    meta["packaged"]["backbone"]["checksum"][1] += 1.0
    save_file(load_file(str(path)), str(path), metadata={"tinct": json.dumps(meta)})
    with pytest.raises(ValueError, match="another version"):
        load_weights(path)


def test_headers_are_read_without_torch_and_capabilities_are_saved(tmp_path):
    """tinct.shipped reads the JSON header itself; save_weights records what the model offers."""
    from tinct.models import build_model
    from tinct.models.base import registered_models
    from tinct.shipped import architecture_names, capabilities, shipped_weights
    from tinct.shipped import read_metadata as header

    path = save_weights(build_model("larsson-hints", space="lab-joint", pretrained=False, hidden=16, key_width=4),
                        tmp_path / "h.safetensors", {"name": "h"})
    meta = header(path)
    assert meta["name"] == "h" and meta["capabilities"]["hints"] is True and meta == read_metadata(path)
    assert capabilities(meta)["decoders"] == ["expectation", "annealed", "mode", "sample"]
    assert architecture_names() == registered_models()
    assert all("capabilities" in header(p) for p in shipped_weights().values())  # tinct models stays torch-free
    (tmp_path / "junk.safetensors").write_bytes(b"\xff" * 16)
    with pytest.raises(ValueError, match="not a safetensors weights file"):
        header(tmp_path / "junk.safetensors")
