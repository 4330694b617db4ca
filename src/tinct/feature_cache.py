"""Frozen-backbone features on disk: run the backbone once per crop, train the head for many epochs.

With a frozen backbone, a training step spends most of its time in the backbone's forward and
in decoding the photo. ``build_feature_cache`` runs both once for a fixed list of crops and
stores, per crop, every pyramid level in float16 and the crop's Lab target, in one memory-mapped
``.npy`` file per array (``np.lib.format.open_memmap``)::

    DIR/meta.json      what the cache was made of and by (backbone, crop size, crops, photos)
    DIR/level{i}.npy   (N, C_i, h_i, w_i) float16: the backbone's level i for each crop
    DIR/L.npy          (N, 1, S, S) uint8: lightness, round(L * 2.55)
    DIR/ab.npy         (N, 2, S, S) int8: round(a), round(b), clamped to [-127, 127]
    DIR/plan.npy       (N,) int32: the photo (index in the build's photo list) each crop comes from
    DIR/photos.json    the build's photo list (paths)
    DIR/progress.json  how many crops are written (the build resumes from there)

The crops are listed (and shuffled, seeded) before any is written, so every prefix of the cache
is a balanced sample of the corpus, and a build killed at any point resumes where it stopped.
Photos with a larger sampling ``weight`` get proportionally more crops (``crops_for_weight``).
``CachedCrops`` reads crop i back as ``{"feats": [level tensors], "L": ..., "ab": ...}``.

One crop of 192^2 over EfficientNet-Lite2 is about 0.6 MB (0.52 MB of features).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .atomic import atomic_open, write_json
from .errors import MissingFileError, UsageError

__all__ = ["crops_for_weight", "plan_crops", "build_feature_cache", "CachedCrops", "cache_is_complete",
           "cache_photo_indices"]

log = logging.getLogger("tinct.feature_cache")
CACHE_VERSION = 1


def crops_for_weight(key: str, weight: float, crops_per_unit: float) -> int:
    """How many crops a photo of sampling ``weight`` gets: ``weight * crops_per_unit`` on average.

    The fractional part is resolved by a hash of ``key``, so the count is machine-independent.
    """
    expected = weight * crops_per_unit
    whole = int(expected)
    frac = expected - whole
    u = int(hashlib.sha1(f"crops:{key}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return whole + (1 if u < frac else 0)


def plan_crops(paths: list[str], weights: list[float], crops_per_unit: float, seed: int) -> list[int]:
    """The crop list: photo index per crop, ``crops_for_weight`` copies each, in a seeded shuffle."""
    plan = [i for i, (p, w) in enumerate(zip(paths, weights)) for _ in range(crops_for_weight(p, w, crops_per_unit))]
    order = np.random.default_rng(seed).permutation(len(plan))
    return [plan[j] for j in order]


def _meta_key(model: Any, size: int, resize: int, crop_scale) -> dict[str, Any]:
    cfg = model.config
    # The features are the frozen backbone's alone: any model over the same backbone reads them.
    return {"version": CACHE_VERSION, "backbone": cfg.get("backbone"),
            "backbone_weights": cfg.get("backbone_weights"), "pretrained": cfg.get("pretrained", True),
            "size": size, "resize": resize, "crop_scale": list(crop_scale) if crop_scale else None}


def cache_is_complete(cache_dir: str | Path) -> bool:
    d = Path(cache_dir)
    try:
        meta = json.loads((d / "meta.json").read_text())
        done = json.loads((d / "progress.json").read_text())["done"]
    except (OSError, ValueError, KeyError):
        return False
    return done >= meta["crops"]


def build_feature_cache(model: Any, entries: list, weights: list[float], cache_dir: str | Path, size: int,
                        resize: int, crops_per_unit: float = 1.0, crop_scale=None, seed: int = 0,
                        batch_size: int = 32, workers: int = 1, progress: bool = True) -> Path:
    """Write (or finish) the feature cache of ``model``'s frozen backbone over ``entries``' crops.

    ``entries`` are ``tinct.data.ManifestEntry``; ``weights`` their sampling weights. Crops are
    those of ``tinct.data.CropDataset`` (random position, flip, optional ``crop_scale``). A
    cache made with another backbone or crop size is an error, not silently reused. A finished
    cache of a larger photo list that holds every one of ``entries`` is used as it is (read its
    crops with ``CachedCrops(DIR, photos=cache_photo_indices(DIR, paths))``): leaving photos out
    of a corpus does not rebuild the cache.
    """
    from tqdm import tqdm

    from .data import CropDataset

    d = Path(cache_dir).expanduser()
    d.mkdir(parents=True, exist_ok=True)
    plan = plan_crops([e.path for e in entries], weights, crops_per_unit, seed)
    photos_digest = hashlib.sha1("\n".join(e.path for e in entries).encode()).hexdigest()[:16]
    key = {**_meta_key(model, size, resize, crop_scale), "crops_per_unit": crops_per_unit, "seed": seed,
           "photos": len(entries), "photos_digest": photos_digest, "crops": len(plan)}
    meta_path = d / "meta.json"
    was = json.loads(meta_path.read_text()) if meta_path.is_file() else None
    if was is not None and {k: was.get(k) for k in key} != key:
        if _is_superset(d, was, key, [e.path for e in entries]):
            return d
        diff = sorted(k for k in key if was.get(k) != key[k])
        raise UsageError(f"feature cache {d} was made with other settings ({', '.join(diff)} differ); "
                         "remove it or name another feature_cache folder")
    model.eval()
    with torch.no_grad():
        probe = model.features(torch.zeros(1, 1, size, size))
    shapes = [tuple(f.shape[1:]) for f in probe]
    n = len(plan)
    specs = [(f"level{i}.npy", np.float16, (n, *sh)) for i, sh in enumerate(shapes)]
    specs += [("L.npy", np.uint8, (n, 1, size, size)), ("ab.npy", np.int8, (n, 2, size, size))]
    if was is None:
        for name, dtype, shape in specs:  # sparse files of the final size, headers written once
            np.lib.format.open_memmap(d / name, mode="w+", dtype=dtype, shape=shape).flush()
        write_json(meta_path, {**key, "shapes": [list(sh) for sh in shapes]})
    if not (d / "plan.npy").is_file():
        with atomic_open(d / "plan.npy", "wb") as fh:
            np.save(fh, np.asarray(plan, dtype=np.int32))
    if not (d / "photos.json").is_file():
        write_json(d / "photos.json", [e.path for e in entries])
    progress_path = d / "progress.json"
    done = json.loads(progress_path.read_text())["done"] if progress_path.is_file() else 0
    if done >= n:
        return d
    # Crops are appended with positioned writes, not through a memory map: msync of a map of tens
    # of GB costs far more than the bytes written.
    writers = [_RowWriter(d / name) for name, _, _ in specs]
    # Dataset key i -> crop i of the plan: the crop's randomness comes from key = plan position.
    dataset = CropDataset([entries[j] for j in plan], size, resize, train=True, seed=seed, crop_scale=crop_scale)
    loader = torch.utils.data.DataLoader(
        _Slice(dataset, done, n), batch_size=batch_size, shuffle=False, num_workers=workers,
        collate_fn=lambda s: {k: torch.stack([x[k] for x in s]) for k in ("L", "ab")},
        worker_init_fn=lambda _: torch.set_num_threads(1), prefetch_factor=4 if workers else None)
    bar = tqdm(total=n, initial=done, desc="caching features", unit="crop", disable=not progress, dynamic_ncols=True)
    pos = done
    try:
        with torch.no_grad():
            for batches, batch in enumerate(loader, 1):
                L = batch["L"].contiguous(memory_format=torch.channels_last)
                feats = model.features(L)
                rows = [f.to(torch.float16).contiguous().numpy() for f in feats]
                rows.append((batch["L"] * 2.55).round().clamp(0, 255).to(torch.uint8).numpy())
                rows.append(batch["ab"].round().clamp(-127, 127).to(torch.int8).numpy())
                for w, r in zip(writers, rows):
                    w.write(pos, r)
                pos += L.shape[0]
                if batches % 16 == 0 or pos >= n:  # data on disk first: progress never runs ahead of it
                    for w in writers:
                        w.sync()
                    write_json(progress_path, {"done": pos})
                bar.update(L.shape[0])
    finally:
        for w in writers:
            w.close()
        bar.close()
    return d


class _RowWriter:
    """Positioned writes of rows into a ``.npy`` file made by ``open_memmap``."""

    def __init__(self, path: Path):
        arr = np.load(path, mmap_mode="r")
        self.offset, self.row_bytes = arr.offset, arr[0].nbytes if len(arr) else 0
        del arr
        self.fd = os.open(path, os.O_WRONLY)

    def write(self, row: int, data: np.ndarray) -> None:
        os.pwrite(self.fd, np.ascontiguousarray(data).tobytes(), self.offset + row * self.row_bytes)

    def sync(self) -> None:
        os.fdatasync(self.fd)

    def close(self) -> None:
        os.close(self.fd)


_PHOTO_KEYS = ("photos", "photos_digest", "crops")


def _is_superset(d: Path, was: dict[str, Any], key: dict[str, Any], paths: list[str]) -> bool:
    """Is the finished cache in ``d`` (made with the same settings) one of a larger photo list
    that holds all of ``paths``?"""
    same = all(was.get(k) == v for k, v in key.items() if k not in _PHOTO_KEYS)
    if not (same and cache_is_complete(d) and (d / "photos.json").is_file()):
        return False
    cached = set(json.loads((d / "photos.json").read_text()))
    return all(p in cached for p in paths)


def cache_photo_indices(cache_dir: str | Path, paths: list[str]) -> set[int]:
    """Indices, in the cache's photo list, of ``paths`` (each must be in the cache)."""
    listed = json.loads((Path(cache_dir).expanduser() / "photos.json").read_text())
    index = {p: i for i, p in enumerate(listed)}
    missing = [p for p in paths if p not in index]
    if missing:
        raise UsageError(f"feature cache {cache_dir} has no crops of {len(missing)} photo(s), e.g. {missing[0]}")
    return {index[p] for p in paths}


class _Slice(torch.utils.data.Dataset):
    def __init__(self, dataset, start: int, stop: int):
        self.dataset, self.start, self.stop = dataset, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, i: int):
        return self.dataset[self.start + i]


class CachedCrops(torch.utils.data.Dataset):
    """A finished (or partly written) feature cache as a dataset of training samples.

    ``dataset[key]`` (any integer; crop ``key % len``) -> {"feats": [(C_i,h_i,w_i) float32],
    "L": (1,S,S) float32 in [0,100], "ab": (2,S,S) float32}. Only the crops written so far count;
    with ``photos`` (indices into the build's photo list), only the crops of those photos.
    """

    def __init__(self, cache_dir: str | Path, photos: set[int] | None = None):
        d = Path(cache_dir).expanduser()
        try:
            self.meta = json.loads((d / "meta.json").read_text())
            done = json.loads((d / "progress.json").read_text())["done"]
        except (OSError, ValueError, KeyError) as exc:
            raise MissingFileError(f"no feature cache in {d} ({exc})") from None
        written = min(done, self.meta["crops"])
        if photos is None:
            self.index = np.arange(written)
        else:
            plan = np.load(d / "plan.npy")[:written]
            self.index = np.flatnonzero(np.isin(plan, np.fromiter(photos, dtype=np.int64)))
        self.n = len(self.index)
        if self.n < 1:
            raise UsageError(f"feature cache {d} holds no crops " + ("yet" if photos is None else "of these photos"))
        self.levels = [np.load(d / f"level{i}.npy", mmap_mode="r") for i in range(len(self.meta["shapes"]))]
        self.L = np.load(d / "L.npy", mmap_mode="r")
        self.ab = np.load(d / "ab.npy", mmap_mode="r")

    def __len__(self) -> int:
        return self.n

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.L.shape[-2:])

    def __getitem__(self, key: int) -> dict[str, Any]:
        i = int(self.index[key % self.n])
        return {"feats": [torch.from_numpy(np.array(a[i], dtype=np.float32)) for a in self.levels],
                "L": torch.from_numpy(self.L[i].astype(np.float32) / 2.55),
                "ab": torch.from_numpy(self.ab[i].astype(np.float32))}


def collate_cached(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack ``CachedCrops`` samples: "feats" becomes a list of (B,C_i,h_i,w_i) tensors."""
    return {"feats": [torch.stack([s["feats"][i] for s in samples]) for i in range(len(samples[0]["feats"]))],
            "L": torch.stack([s["L"] for s in samples]), "ab": torch.stack([s["ab"] for s in samples])}
