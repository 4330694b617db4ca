"""Where photos are read from and written to: local paths, or fsspec URLs (``s3://``, ``gs://``, ``file://``).

A *location* is a string: a local path, or a URL with a scheme. Local writes are atomic
(``tinct.atomic``: a hidden temporary, then a rename); object-store writes are one put, which an
object store makes visible only when complete. So a file under its final name is never partial.

fsspec (and the package for the URL's scheme: s3fs for ``s3://``, gcsfs for ``gs://``) is only
imported when a URL is used; credentials come from the usual environment variables
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``, ...).
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

from .. import atomic
from ..errors import SetupError, UsageError

__all__ = ["is_url", "as_local_path", "url_filesystem", "join", "parent_and_name", "read_bytes", "write_bytes", "download",
           "upload", "existing_files"]

_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]+://")


def is_url(location: str) -> bool:
    """True for ``scheme://...`` (two or more letters: a Windows drive ``C:\\`` is a path)."""
    return _SCHEME.match(str(location)) is not None


def as_local_path(location: str) -> Path | None:
    """The local file a location names (a path, or a ``file://`` URL), else None (an object store)."""
    if not is_url(location):
        return Path(location)
    if location.startswith("file://"):
        from urllib.parse import unquote, urlparse

        return Path(unquote(urlparse(location).path))
    return None


def url_filesystem(url: str) -> tuple[Any, str]:
    """A URL -> (fsspec filesystem, path inside it); one-line errors for a missing package or bad URL."""
    try:
        import fsspec
    except ImportError:
        raise SetupError("URLs need fsspec: pip install 'tinct[cluster]'") from None
    try:
        return fsspec.core.url_to_fs(url)
    except ImportError as exc:  # fsspec names the package the scheme needs (s3fs, gcsfs, ...)
        raise SetupError(f"{url}: {exc}") from None
    except ValueError as exc:
        raise UsageError(f"{url}: {exc}") from None


def join(root: str, relative: str) -> str:
    """``root`` + a relative POSIX path: a URL joined with ``/``, a local path with the OS separator."""
    if is_url(root):
        return root.rstrip("/") + "/" + relative
    return str(Path(root) / PurePosixPath(relative))


def parent_and_name(location: str) -> tuple[str, str]:
    """``s3://b/a/x.jpg`` -> (``s3://b/a``, ``x.jpg``); the same for local paths."""
    if is_url(location):
        head, _, name = location.rstrip("/").rpartition("/")
        return head, name
    p = Path(location)
    return str(p.parent), p.name


def read_bytes(location: str) -> bytes:
    local = as_local_path(location)
    if local is None:
        fs, path = url_filesystem(location)
        return fs.cat_file(path)
    return local.read_bytes()


def write_bytes(location: str, data: bytes) -> None:
    """Write a whole file: atomically (local) or in one put (URL)."""
    local = as_local_path(location)
    if local is None:
        fs, path = url_filesystem(location)
        fs.pipe_file(path, data)
    else:
        with atomic.atomic_open(local, "wb") as fh:
            fh.write(data)


def download(url: str, local: Path) -> None:
    """Copy the object at ``url`` into the local file ``local``."""
    fs, path = url_filesystem(url)
    local.parent.mkdir(parents=True, exist_ok=True)
    fs.get_file(path, str(local))


def upload(local: Path, url: str) -> None:
    """Copy the local file to ``url`` (one put: the object appears complete or not at all)."""
    fs, path = url_filesystem(url)
    fs.put_file(str(local), path)


def existing_files(root: str) -> set[str]:
    """The locations of every file below ``root`` (empty when it does not exist), listed once.

    Locations are spelled as ``join(root, relative)`` spells them, so a planned output can be
    looked up directly. Names only: millions of keys cost memory for their names, not their data.
    """
    if is_url(root):
        fs, path = url_filesystem(root)
        base = path.rstrip("/")
        try:
            found = fs.find(base)
        except FileNotFoundError:
            return set()
        return {join(root, f[len(base) + 1:]) for f in found if f.startswith(base + "/")}
    p = Path(root)
    if not p.is_dir():
        return set()
    return {join(root, f.relative_to(p).as_posix()) for f in p.rglob("*") if f.is_file()}
