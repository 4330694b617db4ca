"""Training data: image folders -> a filtered, split manifest -> (L, ab, label) crops.

* ``build_manifest(roots)`` walks folders recursively, labels each image by its sub-folder
  (or by a CSV with ``path,label[,split]`` columns, e.g. flowers102/labels.csv), drops
  unreadable files, already-gray images and low-color-variance images once, and assigns a
  deterministic train/val/test split from a hash of each path. The result is cached as JSON,
  and each file's inspection is cached by (path, size, mtime) under ``~/.cache/tinct/inspect``
  so that a new run over the same folders starts in seconds rather than minutes.
* ``CropDataset`` turns manifest entries into training samples: short side resized to
  ``resize``, a random ``size`` crop (or, with ``crop_scale``, a random share of the short side
  resized to ``size``) and horizontal flip (train), or a center crop (eval).
  Randomness is a pure function of (seed, key), where the sampler's key encodes the epoch, so a
  resumed run sees exactly the crops an uninterrupted run would have seen.
* ``subsample(entries, fraction)`` keeps a nested, machine-independent share of the photos
  (config ``data.train_fraction``), for measuring how quality grows with data.
* ``EpochSampler`` yields those keys, shards them across DDP ranks and can start mid-epoch.

Filters (thresholds measured on 64-px thumbnails in CIE Lab):
  gray: mean chroma < ``GRAY_CHROMA`` (3 ab units): effectively black-and-white photos;
  low color variance: sqrt(var a + var b) < ``MIN_AB_STD`` (6 ab units): near-monochrome, sepia
  or single-tint images (Iizuka et al. drop these too).
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from .atomic import write_json
from .cache import cache_dir
from .color import rgb_to_lab
from .errors import MissingFileError, UsageError

__all__ = [
    "ManifestEntry",
    "Manifest",
    "build_manifest",
    "CropDataset",
    "EpochSampler",
    "GRAY_CHROMA",
    "MIN_AB_STD",
    "IMAGE_EXTENSIONS",
]

log = logging.getLogger("tinct.data")
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp"})
GRAY_CHROMA = 3.0
MIN_AB_STD = 6.0
MANIFEST_VERSION = 1


@dataclass
class ManifestEntry:
    path: str           # absolute path
    label: int          # class index, -1 when unknown
    split: str          # "train" | "val" | "test"
    width: int
    height: int


@dataclass
class Manifest:
    entries: list[ManifestEntry]
    classes: list[str]
    dropped: dict[str, list[str]]   # reason -> paths
    roots: list[str]

    def split(self, name: str) -> list[ManifestEntry]:
        return [e for e in self.entries if e.split == name]

    def summary(self) -> str:
        counts = {s: len(self.split(s)) for s in ("train", "val", "test")}
        drops = ", ".join(f"{len(v)} {k}" for k, v in self.dropped.items()) or "none"
        return (f"{len(self.entries)} images ({counts['train']} train / {counts['val']} val / "
                f"{counts['test']} test), {len(self.classes)} classes; dropped: {drops}")

    def save(self, path: Path) -> None:
        data = {"version": MANIFEST_VERSION, "roots": self.roots, "classes": self.classes,
                "dropped": self.dropped, "entries": [asdict(e) for e in self.entries]}
        write_json(path, data)

    @classmethod
    def load(cls, path: Path) -> Manifest:
        data = json.loads(path.read_text())
        if data.get("version") != MANIFEST_VERSION:
            raise UsageError(f"{path}: manifest version {data.get('version')} is not {MANIFEST_VERSION}")
        return cls([ManifestEntry(**e) for e in data["entries"]], data["classes"], data["dropped"], data["roots"])


def _iter_images(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for f in sorted(filenames):
            if Path(f).suffix.lower() in IMAGE_EXTENSIONS:
                yield Path(dirpath) / f


def _split_for(key: str, fractions: tuple[float, float, float]) -> str:
    h = int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    if h < fractions[0]:
        return "train"
    return "val" if h < fractions[0] + fractions[1] else "test"


def check_train_fraction(fraction: float) -> float:
    """``fraction`` if it is a valid ``data.train_fraction`` (in (0, 1]), else a clear ValueError."""
    if not 0.0 < fraction <= 1.0:
        raise UsageError(f"data.train_fraction must be in (0, 1], got {fraction}")
    return fraction


def check_crop_scale(crop_scale) -> tuple[float, float] | None:
    """A ``crop_scale`` [lo, hi] as a tuple (None stays None), else a clear ValueError."""
    if crop_scale is None:
        return None
    try:
        lo, hi = (float(x) for x in crop_scale)
    except (TypeError, ValueError):
        raise UsageError(f"crop_scale must be [lo, hi] with 0 < lo <= hi <= 1, got {crop_scale!r}") from None
    if not 0.0 < lo <= hi <= 1.0:
        raise UsageError(f"crop_scale must be [lo, hi] with 0 < lo <= hi <= 1, got {[lo, hi]}")
    return lo, hi


def subsample(entries: list[ManifestEntry], fraction: float) -> list[ManifestEntry]:
    """Keep a deterministic ``fraction`` of ``entries`` (for learning curves over data size).

    Each photo is kept when a hash of its class folder and file name falls below ``fraction``,
    so the subset is the same on every machine and a smaller subset is contained in a larger
    one. ``fraction`` 1 returns the entries unchanged.
    """
    check_train_fraction(fraction)
    if fraction == 1.0:
        return list(entries)
    kept = []
    for e in entries:
        p = Path(e.path)
        h = int(hashlib.sha1(f"subset:{p.parent.name}/{p.name}".encode()).hexdigest()[:8], 16)
        if h / 0xFFFFFFFF < fraction:
            kept.append(e)
    return kept


def inspect_image(path: str) -> tuple[str, int, int]:
    """-> (status, width, height); status is "ok", "gray", "low_variance" or "unreadable: why"."""
    try:
        with Image.open(path) as im:
            im.draft("RGB", (128, 128))
            w, h = im.size
            im = ImageOps.exif_transpose(im)
            w, h = im.size
            thumb = im.convert("RGB")
            thumb.thumbnail((64, 64))
            arr = np.asarray(thumb, dtype=np.float32) / 255.0
    except Exception as exc:  # noqa: BLE001 - any decoder failure means "unreadable"
        return f"unreadable: {type(exc).__name__}: {exc}", 0, 0
    lab = rgb_to_lab(torch.from_numpy(arr).permute(2, 0, 1)).numpy()
    a, b = lab[1], lab[2]
    if float(np.hypot(a, b).mean()) < GRAY_CHROMA:
        return "gray", w, h
    if float(np.sqrt(a.var() + b.var())) < MIN_AB_STD:
        return "low_variance", w, h
    return "ok", w, h


INSPECT_CACHE_VERSION = 1


def _file_key(path: str) -> str | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return f"{path}|{st.st_size}|{st.st_mtime_ns}"


def _inspect_cache_path() -> Path:
    # the thresholds are part of the name: changing a filter re-inspects everything
    return cache_dir("inspect") / f"v{INSPECT_CACHE_VERSION}-gray{GRAY_CHROMA:g}-std{MIN_AB_STD:g}.json"


def inspect_images(paths: list[str], workers: int = 2, progress: bool = True) -> list[tuple[str, int, int]]:
    """``inspect_image`` over ``paths``, reusing earlier results of unchanged files (same size and mtime).

    Unreadable results are never cached (the file may be fixed without changing its size).
    """
    cache_path = _inspect_cache_path()
    try:
        cached: dict[str, list] = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    except (OSError, ValueError):
        log.warning("ignoring unreadable inspection cache %s", cache_path)
        cached = {}
    keys = [_file_key(p) for p in paths]
    todo = [i for i, k in enumerate(keys) if k is None or k not in cached]
    todo_paths = [paths[i] for i in todo]
    if workers > 1 and len(todo_paths) > 64:
        with ProcessPoolExecutor(workers) as pool:
            fresh = list(_progress(pool.map(inspect_image, todo_paths, chunksize=32), len(todo_paths), progress))
    else:
        fresh = [inspect_image(p) for p in _progress(todo_paths, len(todo_paths), progress)]
    results: list[tuple[str, int, int]] = [tuple(cached[k]) if k in cached else ("", 0, 0) for k in keys]
    for i, res in zip(todo, fresh):
        results[i] = res
        if keys[i] is not None and not res[0].startswith("unreadable"):
            cached[keys[i]] = list(res)
    if fresh:
        try:
            write_json(cache_path, cached, durable=False)  # a cache: losing it costs a rescan only
        except OSError as exc:  # a read-only home must not stop training
            log.warning("could not write the inspection cache %s: %s", cache_path, exc)
    return results


def _read_label_csv(csv_path: Path) -> dict[str, tuple[str, str | None]]:
    out: dict[str, tuple[str, str | None]] = {}
    with open(csv_path, newline="") as fh:
        for row in csv.DictReader(fh):
            name = row.get("class_name") or row["label"]
            out[row["path"]] = (str(name), row.get("split") or None)
    return out


def build_manifest(roots: Iterable[str | Path], cache: str | Path | None = None,
                   fractions: tuple[float, float, float] = (0.9, 0.05, 0.05),
                   labels_csv: dict[str, str | Path] | None = None, workers: int = 2,
                   progress: bool = True) -> Manifest:
    """Scan ``roots`` into a Manifest (cached at ``cache`` when given and still valid).

    Labels are "<root name>/<first sub-folder>" so that several datasets never share a class by
    accident; images directly in a root get label -1. ``labels_csv`` maps a root to a CSV with
    ``path`` (relative to the root), ``label`` or ``class_name`` and optional ``split`` columns,
    whose split then overrides the hash split ("train" stays "train"; "val"/"test" kept).
    """
    roots = [Path(r).expanduser().resolve() for r in roots]
    for r in roots:
        if not r.is_dir():
            raise MissingFileError(f"data folder not found: {r}")
    cache_path = Path(cache) if cache else None
    key = [str(r) for r in roots]
    if cache_path and cache_path.is_file():
        try:
            m = Manifest.load(cache_path)
            if m.roots == key:
                return m
        except (ValueError, KeyError, json.JSONDecodeError):
            log.warning("ignoring unreadable manifest cache %s", cache_path)
    csv_maps = {Path(k).expanduser().resolve(): _read_label_csv(Path(v)) for k, v in (labels_csv or {}).items()}
    items: list[tuple[Path, Path]] = [(r, p) for r in roots for p in _iter_images(r)]
    paths = [str(p) for _, p in items]
    results = inspect_images(paths, workers, progress)
    classes: dict[str, int] = {}
    entries: list[ManifestEntry] = []
    dropped: dict[str, list[str]] = {"unreadable": [], "gray": [], "low_variance": []}
    for (root, path), (status, w, h) in zip(items, results):
        if status != "ok":
            reason = "unreadable" if status.startswith("unreadable") else status
            dropped[reason].append(str(path))
            if reason == "unreadable":
                log.warning("skipping unreadable image %s (%s)", path, status.split(": ", 1)[1])
            continue
        rel = path.relative_to(root)
        split = None
        if root in csv_maps and rel.as_posix() in csv_maps[root]:
            cname, split = csv_maps[root][rel.as_posix()]
            label_name = f"{root.name}/{cname}"
        elif len(rel.parts) > 1:
            label_name = f"{root.name}/{rel.parts[0]}"
        else:
            label_name = None
        label = classes.setdefault(label_name, len(classes)) if label_name else -1
        if split not in ("train", "val", "test"):
            split = _split_for(f"{root.name}/{rel.as_posix()}", fractions)
        entries.append(ManifestEntry(str(path), label, split, w, h))
    manifest = Manifest(entries, list(classes), dropped, key)
    for reason, files in dropped.items():
        if files:
            log.info("dropped %d %s image(s)", len(files), reason)
    if cache_path:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        manifest.save(cache_path)
    return manifest


def _progress(it, total: int, enabled: bool):
    if not enabled:
        return it
    from tqdm import tqdm

    return tqdm(it, total=total, desc="scanning images", unit="img", leave=False)


# ----------------------------------------------------------------------------- samples
def load_rgb(path: str, short_side: int) -> np.ndarray:
    """Decode ``path`` to RGB uint8 (H,W,3) with EXIF orientation, short side resized to ``short_side``."""
    with Image.open(path) as im:
        im.draft("RGB", (short_side * 2, short_side * 2))
        im = ImageOps.exif_transpose(im).convert("RGB")
        w, h = im.size
        s = short_side / min(w, h)
        if abs(s - 1) > 1e-3:
            im = im.resize((max(short_side, round(w * s)), max(short_side, round(h * s))), Image.BICUBIC,
                           reducing_gap=2.0)
        return np.asarray(im)


class CropDataset(torch.utils.data.Dataset):
    """Manifest entries -> {"L": (1,S,S), "ab": (2,S,S), "label": ()} float32/long samples.

    Index with integer keys ``epoch * len(self) + i`` (see EpochSampler): the crop position and
    flip are drawn from a generator seeded by (seed, key). With ``crop_scale = (lo, hi)`` a
    training crop covers a share of the resized short side drawn uniformly in [lo, hi] and is
    resized to ``size`` (scale augmentation: objects appear larger and smaller than at test
    time); without it, training crops are ``size`` pixels of the resized photo. Evaluation crops
    are always the center ``size`` square.
    """

    def __init__(self, entries: list[ManifestEntry], size: int = 224, resize: int = 256,
                 train: bool = True, seed: int = 0, crop_scale: tuple[float, float] | None = None):
        if not entries:
            raise UsageError("no images to train on: the data folders are empty or every image was filtered out")
        if resize < size:
            raise UsageError(f"resize ({resize}) must be >= crop size ({size})")
        self.entries = entries
        self.size, self.resize, self.train, self.seed = size, resize, train, seed
        self.crop_scale = check_crop_scale(crop_scale)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, key: int) -> dict[str, torch.Tensor]:
        entry = self.entries[key % len(self.entries)]
        rgb = load_rgb(entry.path, self.resize)
        h, w = rgb.shape[:2]
        s = self.size
        if self.train:
            g = np.random.default_rng([self.seed, key])
            if self.crop_scale is not None:
                s = max(1, round(g.uniform(*self.crop_scale) * min(h, w)))
            top, left = int(g.integers(0, h - s + 1)), int(g.integers(0, w - s + 1))
            flip = bool(g.integers(0, 2))
        else:
            top, left, flip = (h - s) // 2, (w - s) // 2, False
        crop = rgb[top:top + s, left:left + s]
        if s != self.size:
            crop = np.array(Image.fromarray(crop).resize((self.size, self.size), Image.BICUBIC))
        if flip:
            crop = crop[:, ::-1]
        t = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1).float() / 255.0
        lab = rgb_to_lab(t)
        return {"L": lab[:1], "ab": lab[1:], "label": torch.tensor(entry.label, dtype=torch.long)}


class EpochSampler(torch.utils.data.Sampler[int]):
    """Yields keys ``epoch * n + i`` over a seeded permutation of the n items, from ``start`` on.

    With ``world > 1`` the permutation is padded to a multiple of ``world`` and rank r takes
    every world-th item (DistributedSampler's scheme); ``start`` counts this rank's items.
    """

    def __init__(self, n: int, seed: int, epoch: int = 0, start: int = 0, shuffle: bool = True,
                 rank: int = 0, world: int = 1):
        self.n, self.seed, self.epoch, self.start = n, seed, epoch, start
        self.shuffle, self.rank, self.world = shuffle, rank, world

    def per_rank(self) -> int:
        return -(-self.n // self.world)

    def __len__(self) -> int:
        return max(self.per_rank() - self.start, 0)

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        total = self.per_rank() * self.world
        order += order[: total - len(order)]
        mine = order[self.rank:total:self.world]
        for i in mine[self.start:]:
            yield self.epoch * self.n + i
