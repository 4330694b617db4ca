"""The training corpus recipe: a list of photo sources -> one filtered, deduplicated manifest.

A recipe (``configs/corpus/*.yaml``) names each source: a pinned commit of a public git
snapshot (brought to this machine by the search tool's ``fetch``; tinct itself never downloads)
or a local folder, the paths inside it that hold photos, its licence, what it shows, and a
per-photo sampling ``weight``. Two steps turn it into training data (docs/data.md):

    python -m tinct.corpus extract RECIPE --into DIR   # copy each snapshot's photos to DIR/<source>/
    python -m tinct.corpus build RECIPE --into DIR     # -> DIR/manifest.jsonl and DIR/summary.json

``build`` keeps a photo when it decodes, its short side is at least ``MIN_SIDE`` pixels and it
has color (the gray, sepia and low-chroma filters of ``tinct.data.inspect_image``); it then drops
near-duplicates across every source (64-bit difference hashes within ``NEAR_DUPLICATE_BITS``
bits; the first photo in recipe order is kept) and holds out a hash-chosen share of each source
for validation. Each manifest line is one photo:

    {"path", "source", "licence", "split", "weight", "width", "height"}
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import logging
import os
import subprocess
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image, ImageOps

from .atomic import atomic_open, write_json
from .data import inspect_images
from .errors import MissingFileError, SetupError, UsageError

__all__ = ["CorpusSource", "CorpusRecipe", "CorpusPhoto", "load_recipe", "extract", "build",
           "read_manifest", "dhash", "near_duplicates", "MIN_SIDE", "NEAR_DUPLICATE_BITS"]

log = logging.getLogger("tinct.corpus")
MIN_SIDE = 96
NEAR_DUPLICATE_BITS = 4


@dataclass
class CorpusSource:
    name: str
    paths: list[str]
    licence: str
    weight: float = 1.0
    repo: str | None = None          # owner/name of a fetched git snapshot; None: local folders
    commit: str | None = None
    include: str | None = None       # glob on file names, e.g. "*_HR.png"
    exclude: list[str] = field(default_factory=list)  # globs on paths inside the source, e.g. "cats/drawn/*"
    subjects: str = ""


@dataclass
class CorpusRecipe:
    sources: list[CorpusSource]
    mirror: Path
    val_share: float = 0.04
    base: Path = field(default_factory=Path.cwd)  # relative local paths are relative to this


@dataclass
class CorpusPhoto:
    path: str
    source: str
    licence: str
    split: str
    weight: float
    width: int
    height: int


def load_recipe(path: str | Path) -> CorpusRecipe:
    """Read and check a corpus recipe; a mistake is a ValueError naming the source."""
    p = Path(path)
    raw = yaml.safe_load(p.read_text()) or {}
    sources, seen = [], set()
    for i, s in enumerate(raw.get("sources") or []):
        name = s.get("name") or f"#{i}"
        unknown = set(s) - set(CorpusSource.__dataclass_fields__)
        if unknown:
            raise UsageError(f"corpus source {name}: unknown keys {', '.join(sorted(unknown))}")
        if not s.get("paths") or not s.get("licence"):
            raise UsageError(f"corpus source {name}: needs paths and licence")
        if bool(s.get("repo")) != bool(s.get("commit")):
            raise UsageError(f"corpus source {name}: a repo needs its pinned commit (and a commit its repo)")
        if name in seen:
            raise UsageError(f"corpus source {name} is listed twice")
        if not float(s.get("weight", 1.0)) > 0:
            raise UsageError(f"corpus source {name}: weight must be positive")
        seen.add(name)
        sources.append(CorpusSource(**{**s, "paths": [str(x) for x in s["paths"]],
                                       "exclude": [str(x) for x in s.get("exclude") or []]}))
    if not sources:
        raise UsageError(f"{p}: the recipe lists no sources")
    val = float((raw.get("split") or {}).get("val", 0.04))
    if not 0.0 <= val < 1.0:
        raise UsageError(f"{p}: split.val must be in [0, 1), got {val}")
    mirror = Path(os.path.expanduser(str(raw.get("mirror", "/work/.mirror"))))
    return CorpusRecipe(sources, mirror, val, base=Path.cwd())


# ----------------------------------------------------------------------------- extract
def _git_dir(recipe: CorpusRecipe, source: CorpusSource) -> Path:
    repo = recipe.mirror / source.repo.replace("/", "+") / "repo"
    return repo / ".git" if (repo / ".git").is_dir() else repo  # some snapshots keep a work tree


def extract(recipe: CorpusRecipe, into: Path, progress: bool = True) -> dict[str, int]:
    """Copy each git source's photos at its pinned commit into ``into/<name>/``; -> files per source.

    A finished source leaves ``into/<name>/.extracted`` (holding the commit) and is skipped next
    time; a missing snapshot is an error that says which ``fetch`` brings it.
    """
    counts: dict[str, int] = {}
    for s in recipe.sources:
        if not s.repo:
            continue
        dest = into / s.name
        marker = dest / ".extracted"
        if marker.is_file() and marker.read_text().strip() == s.commit:
            counts[s.name] = sum(1 for _ in _photos_of(recipe, s, into))
            continue
        git = _git_dir(recipe, s)
        if not git.is_dir():
            raise MissingFileError(f"source {s.name}: no snapshot at {git}; bring it with the search tool's "
                                    f"fetch github:{s.repo}")
        dest.mkdir(parents=True, exist_ok=True)
        if progress:
            print(f"extracting {s.name} ({s.repo} @ {s.commit[:8]}: {', '.join(s.paths)})", file=sys.stderr)
        archive = subprocess.Popen(["git", f"--git-dir={git}", "archive", s.commit, "--", *s.paths],
                                   stdout=subprocess.PIPE)
        untar = subprocess.run(["tar", "-x", "-C", str(dest)], stdin=archive.stdout, capture_output=True)
        archive.stdout.close()
        if archive.wait() != 0 or untar.returncode != 0:
            raise SetupError(f"source {s.name}: git archive of {s.commit} failed "
                               f"({untar.stderr.decode(errors='replace').strip()[:200]})")
        marker.write_text(s.commit)
        counts[s.name] = sum(1 for _ in _photos_of(recipe, s, into))
    return counts


# ----------------------------------------------------------------------------- build
def _photos_of(recipe: CorpusRecipe, source: CorpusSource, into: Path):
    from .data import IMAGE_EXTENSIONS

    base = into / source.name
    for rel in source.paths:
        root = (base / rel) if source.repo else (recipe.base / os.path.expanduser(rel))
        if not root.is_dir():
            raise MissingFileError(f"source {source.name}: folder not found: {root}"
                                    + (" (run extract first)" if source.repo else ""))
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for f in sorted(filenames):
                if Path(f).suffix.lower() not in IMAGE_EXTENSIONS or (source.include and not fnmatch.fnmatch(f, source.include)):
                    continue
                path = Path(dirpath) / f
                inner = path.relative_to(base if source.repo else root).as_posix()
                if not any(fnmatch.fnmatch(inner, pattern) for pattern in source.exclude):
                    yield path


def dhash(gray: np.ndarray) -> int:
    """64-bit difference hash of a gray image (H,W) uint8/float: sign of horizontal gradients of a 9x8 thumbnail."""
    thumb = np.asarray(Image.fromarray(np.asarray(gray, dtype=np.uint8)).resize((9, 8), Image.BILINEAR), dtype=np.int16)
    bits = (thumb[:, 1:] > thumb[:, :-1]).flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


def _gray_hash(path: str) -> int:
    """The ``dhash`` of a photo's (EXIF-oriented) gray thumbnail; 0 when it cannot be read."""
    try:
        with Image.open(path) as im:
            im.draft("L", (64, 64))
            return dhash(np.asarray(ImageOps.exif_transpose(im).convert("L")))
    except Exception:  # noqa: BLE001 - a photo that passed inspect_image and then fails is rare; it is kept unhashed
        return 0


def near_duplicates(hashes: list[int], max_bits: int = NEAR_DUPLICATE_BITS) -> set[int]:
    """Indices of ``hashes`` within ``max_bits`` Hamming bits of an earlier one (the earlier is kept).

    Pigeonhole search: two 64-bit hashes that differ in at most ``max_bits`` bits agree exactly on
    at least one of ``max_bits + 1`` bands, so only photos sharing a band are compared.
    """
    bands = max_bits + 1
    width = 64 // bands
    tables: list[dict[int, list[int]]] = [{} for _ in range(bands)]
    dup: set[int] = set()
    for i, h in enumerate(hashes):
        keys = [(h >> (b * width)) & ((1 << width) - 1) if b < bands - 1 else h >> (b * width) for b in range(bands)]
        candidates = {j for b, k in enumerate(keys) for j in tables[b].get(k, ())}
        if any((hashes[j] ^ h).bit_count() <= max_bits for j in candidates):
            dup.add(i)
            continue
        for b, k in enumerate(keys):
            tables[b].setdefault(k, []).append(i)
    return dup


def _split(key: str, val_share: float) -> str:
    h = int(hashlib.sha1(f"corpus-split:{key}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "val" if h < val_share else "train"


def build(recipe: CorpusRecipe, into: Path, workers: int = 2, progress: bool = True,
          manifest_name: str = "manifest.jsonl") -> dict[str, Any]:
    """Filter, deduplicate and split every source into ``into/manifest_name``; -> the summary.

    The split of a photo depends only on its source name and path inside the source, so it is the
    same on every machine and does not move when other sources are added.
    """
    listed: list[tuple[CorpusSource, Path, str]] = []
    for s in recipe.sources:
        base = (into / s.name) if s.repo else None
        for p in _photos_of(recipe, s, into):
            rel = p.relative_to(base).as_posix() if base else f"{p.parent.name}/{p.name}"
            listed.append((s, p, rel))
    paths = [str(p) for _, p, _ in listed]
    # the trainer's own filters, cached per file by tinct.data; then "small", then hashes of the rest
    results = [(s if s != "ok" or min(w, h) >= MIN_SIDE else "small", w, h)
               for s, w, h in inspect_images(paths, workers, progress)]
    ok = [i for i, r in enumerate(results) if r[0] == "ok"]
    ok_paths = [paths[i] for i in ok]
    if workers > 1 and len(ok_paths) > 64:
        with ProcessPoolExecutor(workers) as pool:
            hashes = list(_bar(pool.map(_gray_hash, ok_paths, chunksize=64), len(ok_paths), progress))
    else:
        hashes = [_gray_hash(p) for p in _bar(ok_paths, len(ok_paths), progress)]
    dups = {ok[j] for j in near_duplicates(hashes)}
    photos: list[CorpusPhoto] = []
    dropped: Counter = Counter()
    per_source: dict[str, Counter] = {s.name: Counter() for s in recipe.sources}
    for i, ((s, p, rel), (status, w, h)) in enumerate(zip(listed, results)):
        reason = "unreadable" if status.startswith("unreadable") else status
        if reason == "ok" and i in dups:
            reason = "near_duplicate"
        per_source[s.name]["listed"] += 1
        if reason != "ok":
            dropped[reason] += 1
            per_source[s.name][reason] += 1
            continue
        split = _split(f"{s.name}/{rel}", recipe.val_share)
        per_source[s.name][split] += 1
        photos.append(CorpusPhoto(str(p), s.name, s.licence, split, s.weight, w, h))
    into.mkdir(parents=True, exist_ok=True)
    with atomic_open(into / manifest_name, "w") as fh:
        for ph in photos:
            fh.write(json.dumps(asdict(ph)) + "\n")
    summary = {"photos": len(photos), "train": sum(p.split == "train" for p in photos),
               "val": sum(p.split == "val" for p in photos), "dropped": dict(dropped),
               "sources": {s.name: {"repo": s.repo, "commit": s.commit, "licence": s.licence, "weight": s.weight,
                                    "subjects": s.subjects, **per_source[s.name]} for s in recipe.sources}}
    write_json(into / f"{Path(manifest_name).stem}.summary.json" if manifest_name != "manifest.jsonl"
               else into / "summary.json", summary, indent=1)
    return summary


def read_manifest(path: str | Path, split: str | None = None) -> list[CorpusPhoto]:
    """The photos of a corpus manifest (``build``'s output), optionally only one split."""
    p = Path(os.path.expanduser(str(path)))
    if not p.is_file():
        raise MissingFileError(f"corpus manifest not found: {p} (build it with python -m tinct.corpus build)")
    photos = [CorpusPhoto(**json.loads(line)) for line in p.read_text().splitlines() if line.strip()]
    return [ph for ph in photos if split is None or ph.split == split]


def _bar(it, total: int, enabled: bool):
    if not enabled:
        return it
    from tqdm import tqdm

    return tqdm(it, total=total, desc="hashing photos", unit="img", dynamic_ncols=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tinct.corpus", description=__doc__.split("\n\n")[0])
    ap.add_argument("step", choices=["extract", "build"])
    ap.add_argument("recipe", help="corpus recipe, e.g. configs/corpus/diverse.yaml")
    ap.add_argument("--into", required=True, help="where the photos and the manifest go (outside the project)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--manifest", default="manifest.jsonl", help="build: the manifest's file name in --into")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        recipe = load_recipe(args.recipe)
        into = Path(os.path.expanduser(args.into))
        if args.step == "extract":
            for name, n in extract(recipe, into).items():
                print(f"{name}: {n} photos")
        else:
            summary = build(recipe, into, args.workers, manifest_name=args.manifest)
            for name, c in summary["sources"].items():
                rest = ", ".join(f"{v} {k}" for k, v in c.items() if k not in ("repo", "commit", "licence", "weight", "subjects", "listed", "train", "val"))
                print(f"{name:22s} {c.get('listed', 0):6d} listed {c.get('train', 0):6d} train {c.get('val', 0):5d} val"
                      + (f"  dropped: {rest}" if rest else ""))
            print(f"{summary['photos']} photos ({summary['train']} train / {summary['val']} val) -> {into / args.manifest}")
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
