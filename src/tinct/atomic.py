"""Atomic file replacement: write a hidden temporary file beside the destination, fsync, rename.

A file under its final name is always complete: a crash leaves the old file (or none) and at
most a hidden temporary beside it. Every writer in tinct goes through here: images
(``tinct.imageio``), videos, weights, checkpoints, manifests, caches and ONNX exports.

* ``atomic_open(dest, "wb")``: a file object to write; renamed over ``dest`` when the block ends
  without an error, removed otherwise.
* ``atomic_path(dest)``: the temporary's path, for writers that take a path (``torch.save``,
  ``safetensors``, ``onnx.save``, PyAV).
* ``write_text`` / ``write_json``: the common one-liners.

The temporary is ``.NAME.tmp-XXXXXXXX`` (8 hex digits) unless a writer names it otherwise
(``temp_name``), so that a rerun can recognise and remove the leftovers of a killed run. A
replaced file keeps its permissions; a new one gets 0o666 minus the umask, like any new file.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from .errors import UsageError

__all__ = ["atomic_open", "atomic_path", "write_text", "write_json", "temporary_beside", "replace",
           "default_temp_name"]

TempName = Callable[[Path], str]


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_NEW_FILE_MODE = 0o666 & ~_read_umask()  # read once, at import: os.umask is process-wide


def default_temp_name(dest: Path) -> str:
    """``.NAME.tmp-XXXXXXXX``: hidden, beside ``dest``, random (``tinct.imageio.write.TEMPORARY_NAME`` matches it)."""
    return f".{dest.name[:200]}.tmp-{secrets.token_hex(4)}"


def temporary_beside(dest: Path, temp_name: TempName = default_temp_name) -> Path:
    """Create a new empty file beside ``dest`` (O_EXCL: never clobbers) and return its path."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        tmp = dest.parent / temp_name(dest)
        try:
            open(tmp, "xb").close()  # noqa: SIM115 - created empty, written by the caller
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file next to '{dest}'")


def replace(tmp: Path, dest: Path, durable: bool = True) -> None:
    """Rename ``tmp`` over ``dest`` (fsync first when ``durable``), keeping ``dest``'s permissions."""
    if durable:
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
    try:  # keep the permissions of a file we replace; a new file gets 0o666 minus the umask,
        mode = stat.S_IMODE(os.stat(dest).st_mode)  # even if the writer made its own 0600 file
    except OSError:
        mode = _NEW_FILE_MODE
    with contextlib.suppress(OSError):
        os.chmod(tmp, mode)
    os.replace(tmp, dest)
    if durable and os.name == "posix":  # make the rename itself durable
        with contextlib.suppress(OSError):
            dir_fd = os.open(dest.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike[str], temp_name: TempName = default_temp_name,
                durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; when the block succeeds it replaces ``dest``."""
    dest = Path(dest)
    tmp = temporary_beside(dest, temp_name)
    try:
        yield tmp
        replace(tmp, dest, durable)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def atomic_open(dest: str | os.PathLike[str], mode: str = "wb", temp_name: TempName = default_temp_name,
                durable: bool = True, **open_args: Any) -> Iterator[IO[Any]]:
    """``open(dest, mode)`` that only replaces ``dest`` once the block has written all of it."""
    if not mode.startswith("w"):
        raise UsageError(f"atomic_open writes a whole file: mode must start with 'w', got {mode!r}")
    with atomic_path(dest, temp_name, durable) as tmp, open(tmp, mode, **open_args) as fh:
        yield fh
        fh.flush()


def write_text(dest: str | os.PathLike[str], text: str, durable: bool = True) -> None:
    """Replace ``dest`` with ``text`` (UTF-8), atomically."""
    with atomic_open(dest, "w", durable=durable, encoding="utf-8") as fh:
        fh.write(text)


def write_json(dest: str | os.PathLike[str], obj: Any, durable: bool = True, **dumps_args: Any) -> None:
    """Replace ``dest`` with ``json.dumps(obj)``, atomically."""
    write_text(dest, json.dumps(obj, **dumps_args), durable)
