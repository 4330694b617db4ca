"""What ``tinct colorize`` is asked to do, before any engine runs: inputs -> (input, output) pairs.

Local files, folders and globs (``expand_inputs``), their outputs under ``-o`` (``plan_outputs``),
and the same for fsspec URLs (``s3://bucket/prefix``, ``gs://``, ``file://``: ``expand_urls``,
``output_url``). Shared by the local engine and the Ray engine, so both see the same photos and
write the same names.
"""

from __future__ import annotations

import glob
import itertools
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..errors import UsageError
from .storage import is_url, join, url_filesystem

__all__ = ["Inputs", "describe_kinds", "expand_inputs", "expand_sources", "glob_root", "plan_locations", "plan_outputs"]

WILDCARDS = "*?["


@dataclass
class Inputs:
    """What INPUT arguments name: sorted (file, root) pairs, and the files of other kinds left out."""

    files: list[tuple[Path, Path]] = field(default_factory=list)
    unsupported: Counter[str] = field(default_factory=Counter)  # extension -> how many files


def expand_inputs(items: Sequence[str], output: Path | None = None) -> Inputs:
    """Files, folders (recursive) and globs -> (file, root) pairs; root is where relative paths start.

    A folder is its own root and a glob's root is its fixed prefix (``photos`` for
    ``photos/**/*.png``), so outputs keep the sub-folders; a named file's root is its folder.
    Folders and globs leave out the ``output`` folder when it lies inside them (an earlier run's
    outputs), folders also hidden files, and both count files that are not supported images in
    ``Inputs.unsupported`` instead of listing them.
    """
    found = Inputs()
    for item in items:
        p = Path(item).expanduser()
        if p.is_dir():
            skip = _inner_output(p, output)
            files = [f for f in p.rglob("*") if f.is_file() and not _hidden(f, p) and not _inside(f, p, skip)]
            _add_walked(found, item, p, files, "no images found in this folder")
        elif p.exists():
            found.files.append((p, p.parent))
        elif any(ch in item for ch in WILDCARDS):
            pattern = os.path.expanduser(item)
            root = glob_root(pattern)
            skip = _inner_output(root, output)
            matches = [Path(m) for m in glob.glob(pattern, recursive=True)]
            if not matches:
                raise UsageError(f"{item}: the pattern matches no file")
            files = [f for f in matches if f.is_file() and not _inside(f, root, skip)]
            _add_walked(found, item, root, files, "the pattern matches no image file")
        else:
            raise UsageError(f"{item}: no such file or folder")
    return found


def glob_root(pattern: str) -> Path:
    """The leading folders of a glob pattern without wildcards: ``photos`` for ``photos/**/*.png``, ``.`` for ``*.png``."""
    fixed = itertools.takewhile(lambda part: not any(ch in part for ch in WILDCARDS), Path(pattern).parts[:-1])
    return Path(*fixed)


def _add_walked(found: Inputs, item: str, root: Path, files: list[Path], nothing: str) -> None:
    """Add the images among the ``files`` a folder or glob ``item`` gave; count the others."""
    images, others = _images_and_others(files, item, nothing)
    found.files += [(f, root) for f in images]
    found.unsupported += others


def _images_and_others(files: Sequence[str | Path], item: str, nothing: str) -> tuple[list, Counter[str]]:
    """The supported images among ``files`` (sorted) and the other files' kinds by extension;
    a one-line error naming ``item`` when there is no image."""
    from ..imageio import is_image_path

    images = sorted(f for f in files if is_image_path(f))
    others = Counter(PurePosixPath(f).suffix.lower() or "no extension" for f in files if not is_image_path(f))
    if not images:
        raise UsageError(f"{item}: {nothing}" + (f" (only {describe_kinds(others)})" if others else ""))
    return images, others


def describe_kinds(counts: Counter[str]) -> str:
    """{".gif": 2, ".txt": 1} -> "2 .gif, 1 .txt"."""
    return ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))


def _hidden(f: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in f.relative_to(root).parts)


def _inner_output(root: Path, output: Path | None) -> tuple[str, ...] | None:
    """The output folder's path below ``root`` when it lies strictly inside it, else None."""
    if output is None:
        return None
    try:
        parts = output.resolve().relative_to(root.resolve()).parts
    except ValueError:
        return None
    return parts or None  # the root itself: its files are inputs (and are never overwritten)


def _inside(f: Path, root: Path, skip: tuple[str, ...] | None) -> bool:
    """True when ``f`` lies in the folder ``skip`` (path parts below ``root``)."""
    return skip is not None and f.relative_to(root).parts[:len(skip)] == skip


def plan_outputs(inputs: list[tuple[Path, Path]], out_dir: Path, fmt: str | None) -> list[tuple[Path, Path, str | None]]:
    """(input, output, problem) for each local (file, root) pair; see ``plan_locations``."""
    pairs = [(str(src), src.relative_to(root).as_posix()) for src, root in inputs]
    return [(Path(src), Path(dst), problem) for src, dst, problem in plan_locations(pairs, str(out_dir), fmt)]


def plan_locations(sources: list[tuple[str, str]], output: str, fmt: str | None) -> list[tuple[str, str, str | None]]:
    """(source, relative path) pairs -> (source, output, problem) under the ``output`` folder or URL.

    The output keeps the relative path (with the extension ``fmt`` when given). Inputs are never
    overwritten and names never collide: such a pair gets a ``problem`` instead of being planned.
    """
    plan: list[tuple[str, str, str | None]] = []
    taken: dict[str, str] = {}
    for src, rel in sources:
        if fmt:
            rel = PurePosixPath(rel).with_suffix("." + fmt.lstrip(".")).as_posix()
        dst = join(output, rel)
        problem = None
        key = _identity(dst)
        if key == _identity(src):
            problem = "the output would overwrite the input; choose another -o folder"
        elif key in taken:
            problem = f"output name collides with {taken[key]}; colorize them into separate folders"
        else:
            taken[key] = src
        plan.append((src, dst, problem))
    return plan


def _identity(location: str) -> str:
    """What makes two locations the same file: the resolved path, or the URL itself."""
    return location if is_url(location) else str(Path(location).resolve())


def expand_sources(items: Sequence[str], output: str | None = None) -> tuple[list[tuple[str, str]], Counter[str]]:
    """Local paths/globs and fsspec URLs -> (source, relative path) pairs and the unsupported files' kinds.

    Local items follow ``expand_inputs``. A URL names an object, a prefix (every image below it,
    hidden names left out) or a glob (``s3://bucket/scans/**/*.tif``, relative to its fixed prefix).
    """
    local = [i for i in items if not is_url(i)]
    found = expand_inputs(local, None if output is None or is_url(output) else Path(output)) if local else Inputs()
    pairs = [(str(src), src.relative_to(root).as_posix()) for src, root in found.files]
    unsupported = found.unsupported
    for item in items:
        if is_url(item):
            more, others = _expand_url(item)
            pairs += more
            unsupported += others
    return pairs, unsupported


def _expand_url(item: str) -> tuple[list[tuple[str, str]], Counter[str]]:
    fs, path = url_filesystem(item)
    if any(ch in path for ch in WILDCARDS):
        root = glob_root(path).as_posix()
        files = [f for f in fs.glob(path) if fs.isfile(f)]
        nothing = "the pattern matches no image file"
    elif fs.isdir(path):
        root = path.rstrip("/")
        files = fs.find(root)
        nothing = "no images found under this prefix"
    elif fs.isfile(path):
        root = path.rpartition("/")[0]
        files = [path]
        nothing = "not a supported image"
    else:
        raise UsageError(f"{item}: no such object or prefix")
    prefix = len(root) + 1 if root and root != "." else 0
    visible = [f for f in files if not any(part.startswith(".") for part in f[prefix:].split("/"))]
    images, others = _images_and_others(visible, item, nothing)
    return [(fs.unstrip_protocol(f), f[prefix:]) for f in images], others
