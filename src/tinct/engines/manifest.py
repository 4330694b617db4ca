"""The run manifest: JSON lines in the destination saying what each run did, so a rerun resumes.

Layout, below the destination folder or URL::

    .tinct-runs/<run id>/run.json          the run's settings (model, decoding, ...), written first
    .tinct-runs/<run id>/part-00001.jsonl  {"source", "output", "status", "error", "seconds"} per photo

``status`` is ``done`` or ``failed`` (``error`` says why). Parts are whole files, written
atomically (local) or in one put (object store), every ``flush_lines`` (100) photos or
``flush_seconds`` (2) seconds and at the end, so a killed run loses at most its last unwritten part: those photos are
redone by the rerun, their outputs replaced whole. Object stores cannot append, hence parts
instead of one growing file; ``cat DST/.tinct-runs/*/part-*.jsonl`` reads them all.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError
from .storage import is_url, join, read_bytes, url_filesystem, write_bytes

__all__ = ["RUNS_FOLDER", "RunManifest", "Record", "read_records", "read_settings"]

RUNS_FOLDER = ".tinct-runs"


@dataclass
class Record:
    """One photo's line in the manifest."""

    source: str
    output: str
    status: str  # "done" | "failed"
    error: str | None = None
    seconds: float = 0.0

    def to_json(self) -> str:
        return json.dumps({"source": self.source, "output": self.output, "status": self.status,
                           "error": self.error, "seconds": round(self.seconds, 4)})


def _list(destination: str, pattern: str) -> list[str]:
    """Locations of ``.tinct-runs/<pattern>`` in the destination, sorted."""
    base = join(destination, RUNS_FOLDER)
    if is_url(base):
        fs, path = url_filesystem(base)
        return sorted(fs.unstrip_protocol(p) for p in fs.glob(f"{path}/{pattern}"))
    import glob

    return sorted(glob.glob(join(base, pattern)))


def read_records(destination: str) -> list[Record]:
    """Every record of every earlier run in ``destination``, oldest part first (run ids sort by time).

    A line that does not parse (a part written by something else) is an error naming the file.
    """
    records = []
    for part in _list(destination, "*/part-*.jsonl"):
        for n, line in enumerate(read_bytes(part).decode("utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                records.append(Record(d["source"], d["output"], d["status"], d.get("error"), d.get("seconds", 0.0)))
            except (ValueError, KeyError, TypeError):
                raise UsageError(f"{part}:{n}: not a tinct manifest line; remove the file or choose another -o") from None
    return records


def read_settings(destination: str) -> list[dict[str, Any]]:
    """The settings of every earlier run in ``destination`` (``run.json``), oldest first."""
    out = []
    for path in _list(destination, "*/run.json"):
        try:
            out.append(json.loads(read_bytes(path)))
        except ValueError:
            raise UsageError(f"{path}: not a tinct run file; remove it or choose another -o") from None
    return out


@dataclass
class RunManifest:
    """This run's manifest: ``start(settings)``, then ``record`` each photo, then ``close``."""

    destination: str
    flush_lines: int = 100
    flush_seconds: float = 2.0
    run_id: str = field(default_factory=lambda: time.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3))
    _pending: list[Record] = field(default_factory=list)
    _parts: int = 0
    _last_flush: float = field(default_factory=time.monotonic)

    @property
    def folder(self) -> str:
        return join(join(self.destination, RUNS_FOLDER), self.run_id)

    def start(self, settings: dict[str, Any]) -> None:
        """Write ``run.json`` before any photo: the destination now belongs to a tinct run."""
        write_bytes(join(self.folder, "run.json"), (json.dumps(settings, indent=1) + "\n").encode())

    def record(self, records: Iterable[Record]) -> None:
        self._pending.extend(records)
        if len(self._pending) >= self.flush_lines or time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        self._last_flush = time.monotonic()
        if not self._pending:
            return
        self._parts += 1
        data = "".join(r.to_json() + "\n" for r in self._pending).encode("utf-8")
        write_bytes(join(self.folder, f"part-{self._parts:05d}.jsonl"), data)
        self._pending = []

    def close(self) -> None:
        self.flush()


# Settings that change what a photo's output looks like: a rerun with others would mix two looks.
OUTPUT_SETTINGS = ("model", "decode", "render_size", "temperature", "seed", "format", "samples", "confidence",
                   "style", "hints")


@dataclass
class Resume:
    """What a run in ``destination`` has to do: ``jobs``, and the counts and failures of the rest."""

    jobs: list[tuple[str, str]] = field(default_factory=list)
    tally: dict[str, int] = field(default_factory=dict)
    problems: list[Record] = field(default_factory=list)


def plan_resume(plan: list[tuple[str, str, str | None]], destination: str, settings: dict[str, Any], *,
                overwrite: bool = False, skip_existing: bool = False) -> Resume:
    """Split a plan of (source, output, problem) into the photos to colorize now and the rest.

    * a photo whose last record is ``done``, with its output present, is done (``done earlier``);
    * an output present without such a record is redone when the destination holds an earlier
      tinct run (an interrupted run writes outputs before it records them), else kept as the
      local engine keeps it (``exists``, or ``skipped`` with ``skip_existing``);
    * ``overwrite`` redoes everything; a ``problem`` (name collision) is a failure.

    An earlier run with other ``OUTPUT_SETTINGS`` is an error unless ``overwrite``: its outputs
    and this run's would not match.
    """
    from .storage import existing_files

    earlier = read_settings(destination)
    if earlier and not overwrite:
        last = earlier[-1]
        changed = [k for k in OUTPUT_SETTINGS if last.get(k) != settings.get(k)]
        if changed:
            was = ", ".join(f"{k} {last.get(k)!r}" for k in changed)
            raise UsageError(f"{destination} holds a run made with other settings ({was}); "
                             "pass --overwrite to redo its photos, or choose another -o")
    last_status: dict[str, Record] = {}
    if not overwrite:
        for r in read_records(destination):
            last_status[r.source] = r
    existing = existing_files(destination)
    out = Resume(tally={"done earlier": 0, "skipped": 0, "exists": 0})
    for src, dst, problem in plan:
        record = last_status.get(src)
        if problem:
            out.problems.append(Record(src, dst, "failed", problem))
        elif dst in existing and record is not None and record.status == "done" and record.output == dst:
            out.tally["done earlier"] += 1
        elif dst in existing and not overwrite and (skip_existing or not earlier):
            out.tally["skipped" if skip_existing else "exists"] += 1
        else:
            out.jobs.append((src, dst))
    return out
