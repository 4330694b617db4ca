"""Photos/s of ``tinct colorize`` on this machine: the local engine against ``--engine ray`` (issue #28).

    python benchmarks/ray_engine.py [--count 200] [--model default] [--runs local,ray1,ray2,ray2-onnx]

The same ``--count`` gray JPEGs of about 0.8 MP (../shared/data/test/sun_hays80, mostly
1024x768, cycled and re-encoded as gray; generated photos when it is absent) are colorized by:

* ``local``: ``tinct colorize DIR -o OUT`` (PyTorch, one process, both cores);
* ``ray1``: ``--engine ray --workers 1 --threads 2`` (one actor using both cores);
* ``ray2``: ``--engine ray --workers 2 --threads 1`` (two actors, one core each; ``--backend auto``,
  so PyTorch in the actors, as in the local engine);
* ``ray2-onnx``: as ``ray2`` with ``--backend onnx``.

The Ray runs join one local cluster of 2 CPUs started here (``ray start --head``), as on a real
cluster whose nodes are up before the job. Each run is a fresh ``tinct`` process, timed from start
to exit (wall: model loading, actor start-up and all I/O included); ``steady`` is the rate between
the first and the last output written (their modification times), which leaves out model loading
and actor start-up. ``actor busy`` is the per-photo time the actors recorded in the run manifest. ``overhead/photo`` is a Ray run's wall time minus the local engine's, per
photo. Each timed run follows an untimed one on 4 photos with the same flags, which fills the
ONNX export cache (~/.cache/tinct/onnx: once per machine, as on each node of a cluster) and the
page cache. Let the machine be otherwise idle: two cores are all there is.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "test" / "sun_hays80"
BIN = Path(sys.executable).parent
RUNS = {
    "local": [],
    "ray1": ["--engine", "ray", "--workers", "1", "--threads", "2"],
    "ray2": ["--engine", "ray", "--workers", "2", "--threads", "1"],
    "ray2-onnx": ["--engine", "ray", "--workers", "2", "--threads", "1", "--backend", "onnx"],
}


def make_photos(folder: Path, count: int) -> None:
    """``count`` gray JPEGs (q90) of ~0.8 MP: sun_hays80 cycled, or smooth generated ones."""
    sources = sorted(DATA.glob("*.jpg")) if DATA.is_dir() else []
    rng = np.random.default_rng(0)
    for i in range(count):
        if sources:
            with Image.open(sources[i % len(sources)]) as im:
                gray = im.convert("L")
        else:
            y, x = np.mgrid[0:768, 0:1024]
            gray = Image.fromarray((127 + 60 * np.sin(x / rng.uniform(20, 90)) * np.cos(y / rng.uniform(20, 90)))
                                   .astype(np.uint8))
        gray.save(folder / f"photo{i:04d}.jpg", quality=90)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed_run(photos: Path, out: Path, model: str, extra: list[str]) -> float:
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    done = subprocess.run([str(BIN / "tinct"), "colorize", str(photos), "-o", str(out), "-m", model, "-q", *extra],
                          capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"run failed ({' '.join(extra) or 'local'}): {done.stderr[-1500:]}")
    return wall


def steady_rate(out: Path) -> float | None:
    """Photos/s between the first and last photo finished, from the outputs' modification times."""
    times = sorted(p.stat().st_mtime for p in out.glob("*.jpg"))
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 2 and times[-1] > times[0] else None


def actor_seconds(out: Path) -> float:
    """The sum of the per-photo seconds the actors recorded in the run manifest."""
    return sum(json.loads(line)["seconds"] for part in out.glob(".tinct-runs/*/part-*.jsonl")
               for line in part.read_text().splitlines())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--model", default="default")
    ap.add_argument("--runs", default=",".join(RUNS), help=f"comma-separated, of: {', '.join(RUNS)}")
    args = ap.parse_args()
    runs = args.runs.split(",")
    env_ray = {**os.environ, "RAY_BACKEND_LOG_LEVEL": "error"}
    with tempfile.TemporaryDirectory(prefix="tinct-ray-bench-") as tmp:
        photos = Path(tmp, "photos")
        photos.mkdir()
        make_photos(photos, args.count)
        mp = np.mean([np.prod(Image.open(p).size) for p in sorted(photos.glob("*.jpg"))[:20]]) / 1e6
        print(f"{args.count} gray JPEGs of {mp:.2f} MP ({'sun_hays80' if DATA.is_dir() else 'generated'}), "
              f"model {args.model}, {os.cpu_count()} cores")
        address = None
        if any(r != "local" for r in runs):
            port = free_port()
            subprocess.run([str(BIN / "ray"), "start", "--head", f"--port={port}", "--num-cpus=2",
                            "--include-dashboard=false", "--disable-usage-stats"], check=True, env=env_ray,
                           capture_output=True)
            address = f"127.0.0.1:{port}"
        rows = []
        try:
            warmup = Path(tmp, "warmup")
            warmup.mkdir()
            for p in sorted(photos.glob("*.jpg"))[:4]:
                shutil.copy(p, warmup / p.name)
            for name in runs:
                extra = RUNS[name] + (["--address", address] if name != "local" else [])
                timed_run(warmup, Path(tmp, "warmup-out"), args.model, extra)  # fills the ONNX cache, page cache
                out = Path(tmp, name)
                wall = timed_run(photos, out, args.model, extra)
                busy = actor_seconds(out) if name != "local" else None
                rows.append((name, wall, steady_rate(out), busy))
                print(f"  {name}: {wall:.1f} s", flush=True)
        finally:
            if address:
                subprocess.run([str(BIN / "ray"), "stop", "--force"], env=env_ray, capture_output=True)
    local_wall = next((w for n, w, _, _ in rows if n == "local"), None)
    print()
    print("| run | flags | wall s | photos/s (wall) | photos/s (steady) | x local (wall) | overhead/photo | "
          "actor busy s/photo |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, wall, steady, busy in rows:
        ratio = f"{local_wall / wall:.2f}" if local_wall else "-"
        overhead = f"{(wall - local_wall) / args.count * 1000:+.0f} ms" if local_wall and name != "local" else "-"
        per = f"{busy / args.count * 1000:.0f} ms" if busy else "-"
        rate = f"{steady:.2f}" if steady else "-"
        print(f"| {name} | {' '.join(RUNS[name]) or '(default)'} | {wall:.1f} | {args.count / wall:.2f} | {rate} | "
              f"{ratio} | {overhead} | {per} |")

if __name__ == "__main__":
    main()
