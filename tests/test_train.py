"""The trainer: data filtering and manifest, exact resume after SIGKILL, 2-process DDP, outputs."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file

from tinct.data import CropDataset, EpochSampler, Manifest, ManifestEntry, build_manifest, subsample
from tinct.train import TrainConfig, lr_factor, make_optimizer, parameter_groups

from conftest import make_photo

ROOT = Path(__file__).resolve().parent.parent


def make_dataset(root: Path, per_class: int = 12) -> Path:
    """Two class folders of small color photos, plus one corrupt JPEG and one gray photo."""
    for c, cls in enumerate(["cats", "dogs"]):
        d = root / cls
        d.mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(make_photo(40 + i % 3, 44, seed=100 * c + i)).save(d / f"{i:02d}.jpg", quality=90)
    good = (root / "cats" / "00.jpg").read_bytes()
    (root / "cats" / "corrupt.jpg").write_bytes(good[:200])
    Image.fromarray(make_photo(40, 44, seed=7)).convert("L").convert("RGB").save(root / "dogs" / "gray.jpg")
    return root


def tiny_config(data: Path, **over) -> dict:
    cfg = {
        "name": "tiny", "model": {"arch": "hypercolumns", "pretrained": False, "hidden": 8},
        "data": {"roots": [str(data)], "fractions": [0.8, 0.2, 0.0]}, "size": 32, "resize": 36,
        "batch_size": 4, "max_steps": 12, "optimizer": {"name": "adam", "lr": 1e-3},
        "schedule": {"name": "cosine", "warmup": 2}, "workers": 0, "threads": 1, "log_every": 1,
        "val_every": 1000, "val_images": 4, "figure_images": 2, "checkpoint_every": 3, "keep_last": 2, "seed": 3,
    }
    cfg.update(over)
    return cfg


def tinct_train(cfg_path: Path, out: Path, *extra: str, env=None, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tinct.cli", "train", str(cfg_path), "--out", str(out), "-q", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, **kw)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data") / "images")


def test_manifest_filters_and_splits(dataset, tmp_path, caplog):
    m = build_manifest([dataset], cache=tmp_path / "manifest.json", fractions=(0.8, 0.2, 0.0), progress=False)
    assert [Path(p).name for p in m.dropped["unreadable"]] == ["corrupt.jpg"]
    assert [Path(p).name for p in m.dropped["gray"]] == ["gray.jpg"]
    assert len(m.entries) == 24 and set(m.classes) == {"images/cats", "images/dogs"}
    assert {e.split for e in m.entries} <= {"train", "val"} and len(m.split("train")) > len(m.split("val"))
    assert "corrupt.jpg" in caplog.text
    again = build_manifest([dataset], cache=tmp_path / "manifest.json", progress=False)  # from the cache
    assert [e.path for e in again.entries] == [e.path for e in m.entries]


def test_inspection_is_cached_per_file(dataset, tmp_path, monkeypatch):
    import tinct.data as data

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    seen: list[str] = []

    def counting(path: str):
        seen.append(Path(path).name)
        return real(path)

    real = data.inspect_image
    monkeypatch.setattr(data, "inspect_image", counting)
    first = build_manifest([dataset], progress=False, workers=1)
    assert len(seen) == 26
    seen.clear()
    again = build_manifest([dataset], progress=False, workers=1)  # no manifest cache: per-file cache only
    assert seen == ["corrupt.jpg"]  # unreadable results are never cached
    assert [e.path for e in again.entries] == [e.path for e in first.entries]
    seen.clear()
    photo = dataset / "cats" / "03.jpg"  # replaced by a gray photo: new size and mtime, inspected again
    Image.fromarray(make_photo(40, 44, seed=3)).convert("L").convert("RGB").save(photo, quality=70)
    os.utime(photo, ns=(time.time_ns(), time.time_ns() + 10**9))
    third = build_manifest([dataset], progress=False, workers=1)
    assert sorted(seen) == ["03.jpg", "corrupt.jpg"]
    assert str(photo) in third.dropped["gray"] and len(third.entries) == len(first.entries) - 1


def test_crops_are_deterministic_per_key(dataset):
    m = build_manifest([dataset], fractions=(1.0, 0.0, 0.0), progress=False, workers=1)
    ds = CropDataset(m.entries, size=32, resize=36, train=True, seed=1)
    a, b, c = ds[5], ds[5], ds[5 + len(ds)]  # same key twice; same image, next epoch
    assert torch.equal(a["L"], b["L"]) and a["L"].shape == (1, 32, 32) and a["ab"].shape == (2, 32, 32)
    assert not torch.equal(a["L"], c["L"]) or not torch.equal(a["ab"], c["ab"])


def test_crop_scale_zooms_training_crops_and_is_checked(dataset):
    m = build_manifest([dataset], fractions=(1.0, 0.0, 0.0), progress=False, workers=1)
    ds = CropDataset(m.entries, size=32, resize=36, train=True, seed=1, crop_scale=(0.5, 1.0))
    a, b = ds[5], ds[5]
    assert torch.equal(a["L"], b["L"]) and a["L"].shape == (1, 32, 32) and a["ab"].shape == (2, 32, 32)
    # a crop of half the short side, upsampled, is smoother than a native-resolution crop
    plain = CropDataset(m.entries, size=32, resize=36, train=True, seed=1)
    zoomed = CropDataset(m.entries, size=32, resize=36, train=True, seed=1, crop_scale=(0.5, 0.5))
    roughness = [float(np.mean([d[k]["L"].diff(dim=-1).abs().mean() for k in range(len(d))])) for d in (plain, zoomed)]
    assert roughness[1] < 0.8 * roughness[0]
    evaluation = CropDataset(m.entries, size=32, resize=36, train=False, crop_scale=(0.5, 0.5))
    assert torch.equal(evaluation[3]["L"], CropDataset(m.entries, size=32, resize=36, train=False)[3]["L"])
    for bad in ((0.0, 1.0), (0.8, 0.5), (0.5, 1.2), (0.5,)):
        with pytest.raises(ValueError, match="crop_scale"):
            CropDataset(m.entries, size=32, resize=36, crop_scale=bad)


def test_subsample_is_nested_machine_independent_and_checked():
    entries = [ManifestEntry(f"/data/root/class{i % 7}/{i:05d}.jpg", i % 7, "train", 64, 64) for i in range(4000)]
    quarter, half = subsample(entries, 0.25), subsample(entries, 0.5)
    assert 850 < len(quarter) < 1150 and 1800 < len(half) < 2200
    assert {e.path for e in quarter} <= {e.path for e in half}
    moved = [ManifestEntry(e.path.replace("/data/root/", "/elsewhere/photos/"), e.label, e.split, 64, 64)
             for e in entries]
    assert [e.path.split("/", 3)[-1] for e in subsample(moved, 0.25)] == [e.path.split("/", 3)[-1] for e in quarter]
    assert subsample(entries, 1.0) == entries
    for bad in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match="train_fraction"):
            subsample(entries, bad)


def test_epoch_sampler_shards_and_resumes():
    s = EpochSampler(10, seed=0, epoch=2)
    full = list(s)
    assert sorted(k - 20 for k in full) == list(range(10))
    assert list(EpochSampler(10, seed=0, epoch=2, start=4)) == full[4:]
    r0, r1 = list(EpochSampler(10, 0, 2, rank=0, world=2)), list(EpochSampler(10, 0, 2, rank=1, world=2))
    assert len(r0) == len(r1) == 5 and sorted(r0 + r1) == sorted(full)


def test_optimizers_and_schedules():
    p = [torch.nn.Parameter(torch.zeros(2))]
    assert isinstance(make_optimizer(p, {"name": "adadelta"}), torch.optim.Adadelta)
    sgd = make_optimizer(p, {"name": "sgd", "lr": 8e-2, "weight_decay": 8e-7, "momentum": 0.9})
    assert sgd.defaults["lr"] == 8e-2 and sgd.defaults["weight_decay"] == 8e-7
    step = {"name": "step", "every": 3, "unit": "epochs", "gamma": 0.5}
    assert [lr_factor(s, step, 100, 10) for s in (0, 29, 30, 60)] == [1.0, 1.0, 0.5, 0.25]
    assert lr_factor(0, {"name": "cosine"}, 100, 10) == 1.0 and lr_factor(100, {"name": "cosine"}, 100, 10) == pytest.approx(0)
    with pytest.raises(ValueError):
        make_optimizer(p, {"name": "lion"})


def test_backbone_learning_rate_factor():
    model = torch.nn.Module()
    model.backbone = torch.nn.Linear(2, 2)
    model.head = torch.nn.Linear(2, 2)
    model.backbone.bias.requires_grad_(False)
    spec = {"name": "adamw", "lr": 1e-3, "backbone_lr_factor": 0.1}
    opt = make_optimizer(parameter_groups(model, spec), spec)
    head, body = opt.param_groups
    assert head["lr"] == 1e-3 and body["lr"] == pytest.approx(1e-4)
    assert {id(p) for p in head["params"]} == {id(p) for p in model.head.parameters()}
    assert [id(p) for p in body["params"]] == [id(model.backbone.weight)]  # frozen tensors stay out
    assert len(parameter_groups(model, {"lr": 1e-3})) == 1
    with pytest.raises(ValueError):
        parameter_groups(model, {"lr": 1e-3, "backbone_lr_factor": 0})
    with pytest.raises(ValueError, match="lr"):
        parameter_groups(model, {"name": "adadelta", "backbone_lr_factor": 0.1})


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "final.safetensors"))


def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(dataset, tmp_path):
    # 19 train images, batch 4 -> 4 steps an epoch; checkpoints every 3 steps land mid-epoch.
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(dataset, max_steps=40)))
    straight = tmp_path / "straight"
    p = tinct_train(cfg, straight)
    assert p.wait(timeout=240) == 0, p.stdout.read()

    killed = tmp_path / "killed"
    p = tinct_train(cfg, killed)
    deadline = time.time() + 120
    while time.time() < deadline and not list((killed / "checkpoints").glob("step_*.pt")):
        time.sleep(0.02)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    ckpts = sorted((killed / "checkpoints").glob("step_*.pt"))
    assert ckpts and not (killed / "final.safetensors").exists(), "the run finished before it could be killed"
    assert not list((killed / "checkpoints").glob(".*.tmp"))  # no half-written checkpoint under a real name
    step = int(ckpts[-1].stem.split("_")[1])
    assert 0 < step < 40 and step % 4 != 0  # killed after a mid-epoch checkpoint

    p = tinct_train(cfg, killed, "--resume")
    assert p.wait(timeout=240) == 0, p.stdout.read()
    a, b = _weights(straight), _weights(killed)
    assert a.keys() == b.keys()
    # Tolerance: fp16 storage of identical fp32 weights; measured difference is exactly 0.
    for k in a:
        assert torch.equal(a[k], b[k]), k
    meta_a = json.loads((straight / "metrics.jsonl").read_text().splitlines()[-1])
    assert meta_a["step"] == 40


def test_two_processes_with_torchrun(dataset, tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(dataset, max_steps=6, batch_size=4)))
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with socket.socket() as s:  # a free loopback port for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                        "--master_addr", "127.0.0.1", "--master_port", str(port),
                        "-m", "tinct.cli", "train", str(cfg), "--out", str(out), "-q"],
                       capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    from tinct.weights import read_metadata

    meta = read_metadata(out / "final.safetensors")
    assert meta["world_size"] == 2 and meta["steps"] == 6 and meta["images_seen"] == 24


def test_training_writes_figures_curves_and_weights(dataset, tmp_path):
    from tinct.train import train
    from tinct.weights import load_weights

    final = train(TrainConfig.from_dict(tiny_config(dataset, max_steps=9, val_every=5)), tmp_path / "run", progress=False)
    run = tmp_path / "run"
    assert (run / "loss.png").is_file() and (run / "manifest.json").is_file()
    figs = sorted((run / "figures").glob("*.png"))
    assert figs
    with Image.open(figs[0]) as im:
        assert im.size == (2 * 32, 3 * 32)  # two images; rows gray / truth / prediction
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("val_auc" in r for r in records) and any("images_per_s" in r for r in records)
    model = load_weights(final)
    assert model.metadata["steps"] == 9 and "1 unreadable" in model.metadata["data"]["summary"]
    assert np.isfinite(model.metadata["metrics"]["val_loss"])
    train_photos = len(Manifest.load(run / "manifest.json").split("train"))
    assert model.metadata["data"]["train_photos"] == train_photos


def test_train_fraction_trains_on_the_subsample_and_says_so(dataset, tmp_path, caplog):
    from tinct.train import train
    from tinct.weights import read_metadata

    cfg = tiny_config(dataset, max_steps=2, val_every=1000)
    cfg["data"]["train_fraction"] = 0.5
    with caplog.at_level("INFO", logger="tinct.train"):
        final = train(TrainConfig.from_dict(cfg), tmp_path / "run", progress=False)
    full = Manifest.load(tmp_path / "run" / "manifest.json").split("train")
    assert read_metadata(final)["data"]["train_photos"] == len(subsample(full, 0.5)) < len(full)
    assert "data.train_fraction 0.5" in caplog.text


@pytest.mark.parametrize("over, message", [({"crop_scale": [0.9, 0.5]}, "crop_scale"),
                                           ({"crop_scale": "big"}, "crop_scale"),
                                           ({"data_train_fraction": 1.5}, "train_fraction")])
def test_bad_augmentation_or_fraction_fails_before_the_scan(dataset, tmp_path, monkeypatch, over, message):
    from tinct import train as train_module

    cfg = tiny_config(dataset)
    if "data_train_fraction" in over:
        cfg["data"]["train_fraction"] = over.pop("data_train_fraction")
    cfg.update(over)
    monkeypatch.setattr(train_module, "build_manifest", lambda *a, **k: pytest.fail("scanned the photos"))
    with pytest.raises(ValueError, match=message):
        train_module.train(TrainConfig.from_dict(cfg), tmp_path / "run", progress=False)


def test_init_continues_from_weights_and_refuses_another_model(dataset, tmp_path):
    from safetensors.torch import load_file

    from tinct.train import train
    from tinct.weights import load_weights

    first = train(TrainConfig.from_dict(tiny_config(dataset, max_steps=4)), tmp_path / "a", progress=False)
    # zero steps of the continuation (max_steps=0 is not allowed): one step at lr 0 keeps the weights
    cont = tiny_config(dataset, max_steps=1, init=str(first), optimizer={"name": "sgd", "lr": 0.0})
    second = train(TrainConfig.from_dict(cont), tmp_path / "b", progress=False)
    a, b = load_file(str(first)), load_file(str(second))
    learned = [k for k in a if "prior" not in k and "running" not in k and "num_batches" not in k]
    assert learned and all(torch.equal(a[k], b[k]) for k in learned)
    meta = load_weights(second).metadata
    assert meta["init"]["steps"] == 4 and meta["total_steps"] == 5
    third = train(TrainConfig.from_dict(tiny_config(dataset, max_steps=2, init=str(second))), tmp_path / "c",
                  progress=False)
    assert load_weights(third).metadata["total_steps"] == 7  # counts across every continuation
    other = tiny_config(dataset, init=str(first), model={"arch": "hypercolumns", "pretrained": False, "hidden": 16})
    with pytest.raises(ValueError, match="hidden"):
        train(TrainConfig.from_dict(other), tmp_path / "d", progress=False)


def test_init_may_change_what_only_training_reads(dataset, tmp_path):
    """Larsson's ``points`` (pixels sampled per crop) is training-only: a run may start from
    weights trained with another count; its weights record the new one. Its ``hidden`` is not."""
    from tinct.train import train
    from tinct.weights import load_weights

    larsson = {"arch": "larsson", "pretrained": False, "hidden": 8, "points": 8}
    first = train(TrainConfig.from_dict(tiny_config(dataset, max_steps=1, model=larsson)), tmp_path / "a",
                  progress=False)
    denser = tiny_config(dataset, max_steps=1, init=str(first), model={**larsson, "points": 32})
    second = train(TrainConfig.from_dict(denser), tmp_path / "b", progress=False)
    assert load_weights(second).config["points"] == 32
    wider = tiny_config(dataset, max_steps=1, init=str(first), model={**larsson, "hidden": 16})
    with pytest.raises(ValueError, match="hidden"):
        train(TrainConfig.from_dict(wider), tmp_path / "c", progress=False)


def test_bad_config_is_a_clear_error(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("nmae: x\n")
    r = subprocess.run([sys.executable, "-m", "tinct.cli", "train", str(cfg)], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown config keys: nmae" in r.stderr and "Traceback" not in r.stderr


def test_fewer_photos_than_one_batch_still_trains_and_says_so(dataset, tmp_path, caplog, monkeypatch):
    from tinct import train as train_module
    from tinct.weights import read_metadata

    epochs: list[int] = []
    real_sampler = train_module.EpochSampler

    def counting_sampler(*args, **kwargs):  # an epoch that yields no batch never advances the step
        epochs.append(1)
        if len(epochs) > 20:
            pytest.fail("20 epochs without a training step: the epochs yield no batch")
        return real_sampler(*args, **kwargs)

    monkeypatch.setattr(train_module, "EpochSampler", counting_sampler)
    cfg = tiny_config(dataset, batch_size=24, max_steps=2)
    with caplog.at_level("WARNING", logger="tinct.train"):
        final = train_module.train(TrainConfig.from_dict(cfg), tmp_path / "run", progress=False)
    n = len(Manifest.load(tmp_path / "run" / "manifest.json").split("train"))
    meta = read_metadata(final)
    assert n < 24 and meta["steps"] == 2 and meta["images_seen"] == 2 * n
    assert f"only {n} training photos for batch_size 24: training on batches of {n}" in caplog.text


def test_fit_batch_keeps_full_batches_and_shrinks_an_empty_epoch():
    from tinct.train import fit_batch

    assert fit_batch(100, 16) == 16 and fit_batch(16, 16) == 16
    assert fit_batch(21, 24, warn=False) == 21
    assert fit_batch(21, 12, world=2, warn=False) == 11  # each of 2 processes gets 11 (padded) items
    with pytest.raises(ValueError, match="no cached training crops"):
        fit_batch(0, 8, what="cached training crops")


def _corrupt(path: Path, how: str) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if how == "truncate" else b"\x80\x04not a checkpoint" * 40)


def test_resume_falls_back_to_the_newest_checkpoint_that_loads(dataset, tmp_path, caplog):
    from tinct.train import train
    from tinct.weights import read_metadata

    run = tmp_path / "run"
    # 17 photos, batch 4: checkpoints at steps 3, 4 (epoch end) and 6; keep_last 2 leaves 4 and 6
    train(TrainConfig.from_dict(tiny_config(dataset, max_steps=6)), run, progress=False)
    ckpts = sorted((run / "checkpoints").glob("step_*.pt"))
    assert [p.name for p in ckpts] == ["step_00000004.pt", "step_00000006.pt"]
    _corrupt(ckpts[-1], "truncate")
    with caplog.at_level("INFO", logger="tinct.train"):
        final = train(TrainConfig.from_dict(tiny_config(dataset, max_steps=7)), run, resume=True, progress=False)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and r.name == "tinct.train"]
    assert len(warnings) == 1 and "step_00000006.pt" in warnings[0] and "\n" not in warnings[0]
    assert "resumed from" in caplog.text and "step_00000004.pt (step 4" in caplog.text
    assert read_metadata(final)["steps"] == 7


@pytest.mark.parametrize("how", ["truncate", "garbage"])
def test_resume_without_a_loadable_checkpoint_is_one_line_naming_it(dataset, tmp_path, how):
    from tinct.train import train

    run = tmp_path / "run"
    train(TrainConfig.from_dict(tiny_config(dataset, max_steps=3)), run, progress=False)
    for path in (run / "checkpoints").glob("step_*.pt"):
        _corrupt(path, how)
    with pytest.raises(ValueError) as err:
        train(TrainConfig.from_dict(tiny_config(dataset, max_steps=5)), run, resume=True, progress=False)
    msg = str(err.value)
    assert "step_00000003.pt" in msg and "drop --resume" in msg and "\n" not in msg


@pytest.mark.parametrize("name, content", [("vgg16.pth", b"\x80\x04not a state dict" * 40),
                                           ("vgg16.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{not json"),
                                           ("vgg16-half.pth", None)])
def test_unreadable_vgg_weights_are_one_line_naming_the_file(tmp_path, name, content):
    from tinct.backbones.vgg import VGG16Features

    path = tmp_path / name
    if content is None:  # a real state dict, cut in half
        torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, path)
        content = path.read_bytes()[:400]
    path.write_bytes(content)
    with pytest.raises(ValueError) as err:
        VGG16Features(path)
    msg = str(err.value)
    assert str(path) in msg and "\n" not in msg and "weights_only" not in msg and "vgg16-397923af.pth" in msg


def test_data_flag_replaces_the_recipe_s_corpus_and_feature_cache(dataset, tmp_path):
    """`tinct train configs/default.yaml --data my_photos/` fine-tunes on my photos, not on the recipe's corpus."""
    from tinct.cli import main

    cfg = tiny_config(dataset, max_steps=2)
    cfg["data"] = {"corpus": str(tmp_path / "absent" / "manifest.jsonl"), "feature_cache": str(tmp_path / "cache"),
                   "crops_per_unit": 2, "fractions": [0.8, 0.2, 0.0]}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", str(path), "--data", str(dataset), "--out", str(tmp_path / "run"), "-q"]) == 0
    assert (tmp_path / "run" / "manifest.json").is_file() and not (tmp_path / "cache").exists()


def test_threshold_hits_streams_the_auc_counts():
    from tinct.train import threshold_hits

    g = torch.Generator().manual_seed(0)
    pred, true = torch.randn(2, 2, 9, 7, generator=g) * 40, torch.randn(2, 2, 9, 7, generator=g) * 40
    err = (pred - true).norm(dim=1).flatten()
    direct = (err[None, :] <= torch.arange(0, 151, dtype=torch.float32)[:, None]).float().sum(dim=1)
    assert torch.equal(threshold_hits(pred, true), direct)
    exact = torch.zeros(1, 2, 1, 2)
    exact[0, 0, 0, 1] = 3.0  # errors 0 and exactly 3
    assert threshold_hits(exact, torch.zeros_like(exact), 4).tolist() == [1, 1, 1, 2, 2]
