"""The Ray Data engine: ``tinct colorize SRC... -o DST --engine ray``.

    listing (source, output) rows -> map_batches(PhotoWorker, actor pool) -> records -> manifest

Each actor of the pool holds one ``Colorizer`` (the model is loaded once per actor: a shipped
model by name from the node's tinct, another weights file from the bytes the driver sends, which
reads only its header and never imports torch) and colorizes its batches through
``Colorizer.colorize_files``: the local engine's own code, so the outputs are the same files.
Sources and outputs may be local paths or ``file://`` URLs (on a file system every node sees), or
object-store URLs: such a source is downloaded to a temporary folder on the worker, and such an
output is colorized there and uploaded in one put. Only names travel through Ray: the listing holds no image.

A photo that cannot be read, colorized or written becomes a ``failed`` record with its error,
never a failed job. The driver writes the records into the run manifest
(``tinct.engines.manifest``) as they stream back, so a rerun after a crash does only the rest.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..errors import SetupError, UsageError
from .manifest import Record
from .storage import as_local_path, download, parent_and_name, upload

__all__ = ["PhotoWorker", "colorize_rows", "connect", "require_ray", "run_on_ray"]

log = logging.getLogger(__name__)
NEEDS_RAY = "--engine ray needs Ray Data: pip install 'tinct[cluster]'"


def require_ray() -> None:
    """A one-line error, before any work, when Ray Data is not installed (without importing it)."""
    import importlib.util

    if importlib.util.find_spec("ray") is None or importlib.util.find_spec("pyarrow") is None:
        raise SetupError(NEEDS_RAY)


def import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise SetupError(NEEDS_RAY) from None
    return ray


def connect(address: str | None) -> Any:
    """Join the Ray cluster at ``address`` (``auto``, ``HOST:PORT``, ``ray://HOST:10001``), or start a
    local one on this machine when ``address`` is None and ``RAY_ADDRESS`` is unset. Returns ``ray``."""
    require_ray()
    if address not in (None, "auto") and "RAY_AUTH_MODE" not in os.environ and _has_auth_token():
        # Ray reads its token file by itself for `auto` only; a cluster named by host:port needs the
        # mode set, and before Ray is imported (it reads its settings once).
        os.environ["RAY_AUTH_MODE"] = "token"
    # Ray's own notices (token authentication, actor restart caveats, disabled progress bars) are
    # not the user's business on a normal run; a failure still reaches tinct as an exception.
    # Set RAY_BACKEND_LOG_LEVEL (e.g. to info) to see Ray's C++ logs again.
    quiet = "RAY_BACKEND_LOG_LEVEL" not in os.environ
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    ray = import_ray()
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if not ray.is_initialized():
        try:
            with _silenced_stderr(quiet):  # Ray's core says on stderr that it read the variable above
                ray.init(address=address, include_dashboard=False, log_to_driver=False,
                         logging_level=logging.ERROR, configure_logging=True, runtime_env=_forwarded_environment())
        except (ConnectionError, ValueError) as exc:  # no cluster there; a bad address; Ray Client missing
            raise SetupError(f"--address {address}: {str(exc).strip().splitlines()[0]}") from None
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # tinct draws its own bar, fed by the streamed records
    context.print_on_execution_start = False
    context.enable_auto_log_stats = False
    return ray


@contextlib.contextmanager
def _silenced_stderr(silence: bool = True) -> Iterator[None]:
    """File descriptor 2 pointed at /dev/null inside the block (what C++ code writes there is
    dropped; Python's exceptions still propagate), restored after."""
    if not silence:
        yield
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


# Object-store settings and credentials the workers need as much as the driver: passed on to them
# (Ray's runtime_env), so that `AWS_...=... tinct colorize s3://...` works on any cluster.
FORWARDED_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION",
                       "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE",
                       "GOOGLE_APPLICATION_CREDENTIALS", "AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT_KEY",
                       "AZURE_STORAGE_CONNECTION_STRING")


def _forwarded_environment() -> dict[str, Any] | None:
    env = {k: os.environ[k] for k in FORWARDED_VARIABLES if k in os.environ}
    return {"env_vars": env} if env else None


def _has_auth_token() -> bool:
    """Whether Ray token authentication has a token here: ``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or ~/.ray/auth_token."""
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or str(Path.home() / ".ray" / "auth_token")
    return bool(os.environ.get("RAY_AUTH_TOKEN")) or Path(path).is_file()


class PhotoWorker:
    """A Ray actor: one ``Colorizer`` built once from ``settings``; colorizes batches of rows.

    ``settings``: ``model`` (a shipped name, a weights file's bytes, or a ``ColorModel``), ``render_size``, ``decode``,
    ``backend``, ``threads`` (per actor), ``decode_options`` (Colorizer keywords) and
    ``options`` (``colorize_files`` keywords: confidence, samples, max_pixels, seed, style, hints).
    """

    def __init__(self, settings: dict[str, Any]):
        import torch

        from ..pipeline import Colorizer

        torch.set_num_threads(settings["threads"])
        model = settings["model"]
        with tempfile.TemporaryDirectory(prefix="tinct-weights-") as tmp:
            if isinstance(model, bytes):  # a weights file's bytes, sent by the driver: loaded from a copy here
                path = Path(tmp) / "weights.safetensors"
                path.write_bytes(model)
                model = path
            self.colorizer = Colorizer(model, render_size=settings["render_size"], decode=settings["decode"],
                                       name=settings["name"], backend=settings["backend"],
                                       threads=settings["threads"], precision=settings["precision"],
                                       **settings["decode_options"])
        self.options = settings["options"]

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        rows = list(zip((str(s) for s in batch["source"]), (str(d) for d in batch["output"])))
        records = colorize_rows(self.colorizer.colorize_files, rows, self.options)
        return {"source": [r.source for r in records], "output": [r.output for r in records],
                "status": [r.status for r in records], "error": [r.error or "" for r in records],
                "seconds": [r.seconds for r in records]}


def colorize_rows(colorize_files: Callable[..., None], rows: list[tuple[str, str]],
                  options: dict[str, Any]) -> list[Record]:
    """Colorize (source, output) locations with ``colorize_files`` (``Colorizer.colorize_files``); one record each.

    Object-store sources are downloaded into a temporary folder first; object-store outputs are written there
    (with their ``.confidence.png`` / ``.sampleN`` siblings) and uploaded one put each. A photo
    that fails, at any step, is a ``failed`` record with a one-line error.
    """
    from ..imageio.errors import one_line

    records: dict[int, Record] = {}
    with tempfile.TemporaryDirectory(prefix="tinct-ray-") as tmp:
        jobs: list[tuple[int, Path, Path]] = []  # (row, local source, local output)
        for i, (src, dst) in enumerate(rows):
            local_src = as_local_path(src) or Path(tmp, "in", str(i), parent_and_name(src)[1])
            local_dst = as_local_path(dst) or Path(tmp, "out", str(i), parent_and_name(dst)[1])
            started = time.monotonic()
            try:
                if as_local_path(src) is None:
                    download(src, local_src)
            except Exception as exc:  # any store error (missing key, denied, network) fails this photo only
                records[i] = Record(src, dst, "failed", f"cannot read: {one_line(exc)}", time.monotonic() - started)
                continue
            jobs.append((i, local_src, local_dst))

        results = _colorize_isolated(colorize_files, jobs, options)
        for i, _, local_dst in jobs:
            src, dst = rows[i]
            error, seconds = results.get(i, ("no result (a bug in tinct; please report it)", 0.0))
            if error is None and as_local_path(dst) is None:
                started = time.monotonic()
                try:
                    _upload_outputs(local_dst, dst)
                except Exception as exc:  # as above: the photo fails, the batch goes on
                    error = f"cannot write: {one_line(exc)}"
                seconds += time.monotonic() - started
            records[i] = Record(src, dst, "failed" if error else "done", error, seconds)
    return [records[i] for i in range(len(rows))]


def _colorize_isolated(colorize_files: Callable[..., None], jobs: list[tuple[int, Path, Path]],
                       options: dict[str, Any]) -> dict[int, tuple[str | None, float]]:
    """row -> (error or None, seconds) for the ``jobs``, run together; when an unexpected exception
    (a bug) escapes, the photos without a result run again one at a time, so only the culprit fails."""
    results: dict[int, tuple[str | None, float]] = {}
    row_of = {str(local_src): i for i, local_src, _ in jobs}
    clock = [time.monotonic()]

    def done(src: Path, _out: Path | None, error: str | None) -> None:
        now = time.monotonic()
        results[row_of[str(src)]] = (error, now - clock[0])
        clock[0] = now

    try:
        colorize_files([(s, d) for _, s, d in jobs], done, **options)
    except Exception:
        for i, local_src, local_dst in jobs:
            if i in results:
                continue
            clock[0] = time.monotonic()
            try:
                colorize_files([(local_src, local_dst)], done, **options)
            except Exception as exc:
                results[i] = (f"{type(exc).__name__}: {exc} (a bug in tinct; please report it)",
                              time.monotonic() - clock[0])
    return results


def _upload_outputs(local_dst: Path, dst: str) -> None:
    """Upload the output and the siblings colorize_files wrote beside it (confidence map, samples);
    the output itself last, so that its presence means the photo is complete."""
    folder, _ = parent_and_name(dst)
    siblings = sorted(p for p in local_dst.parent.iterdir() if p.is_file() and p != local_dst)
    for path in [*siblings, local_dst]:
        upload(path, f"{folder}/{path.name}")


def run_on_ray(jobs: list[tuple[str, str]], settings: dict[str, Any], *, workers: int | None = None,
               batch_size: int = 8) -> Iterator[Record]:
    """Colorize ``jobs`` on the connected Ray cluster; yields one record per job as results stream back.

    ``workers``: actors in the pool (default: the cluster's CPUs / ``settings["threads"]``).
    """
    ray = import_ray()
    if not jobs:
        return
    if batch_size < 1 or (workers is not None and workers < 1):
        raise UsageError(f"batch_size {batch_size} and workers {workers}: give at least 1")
    threads = settings["threads"]
    if workers is None:
        workers = max(1, int(ray.cluster_resources().get("CPU", 1) // threads))
    rows = [{"source": s, "output": d} for s, d in jobs]
    # Blocks of a few batches: results (and the manifest) stream back block by block.
    blocks = min(len(rows), max(workers, math.ceil(len(rows) / batch_size)), 20_000)
    workers = min(workers, blocks)  # an actor with no block to work on would only load the model
    dataset = ray.data.from_items(rows, override_num_blocks=blocks)
    colorized = dataset.map_batches(
        PhotoWorker, fn_constructor_kwargs={"settings": settings}, batch_size=batch_size, batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=threads)
    for batch in colorized.iter_batches(batch_size=None, batch_format="numpy"):
        for src, dst, status, error, seconds in zip(batch["source"], batch["output"], batch["status"],
                                                    batch["error"], batch["seconds"]):
            yield Record(str(src), str(dst), str(status), str(error) or None, float(seconds))

