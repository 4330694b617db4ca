"""Load test for ``tinct serve``: N concurrent colorize requests on loopback.

Starts ``python -m tinct.serve`` as a child process on 127.0.0.1 (a free port), sends one
warm-up request (loads the model), then ``--requests`` colorize requests all at once (at most
``--concurrency`` in flight), and prints latency percentiles, failures, throughput and the
server process's memory: its resident size before the load and its peak (the kernel's VmHWM
high-water mark, cross-checked by sampling with psutil). Everything is bounded: the request
count is capped at 200, each request has a timeout and the whole run a deadline; the server is
stopped at the end. Traffic goes only to 127.0.0.1.

    .venv/bin/python benchmarks/serve_load.py                  # 20 requests, shipped default model
    .venv/bin/python benchmarks/serve_load.py --model my.safetensors --requests 40

Without shipped weights (and no --model), a model with the default recipe's architecture and
random weights is written to a temporary folder: the same computation, meaningless colors.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

HOST = "127.0.0.1"   # loopback only, by design
ROOT = Path(__file__).resolve().parents[1]


def test_photo(width: int, height: int) -> bytes:
    """A gray JPEG of a real photo (scikit-image's sample 'coffee'), resized; generated if unavailable."""
    try:
        from skimage import data

        im = Image.fromarray(data.coffee())
    except Exception:  # noqa: BLE001 - any problem with the sample: a smooth synthetic picture
        y, x = np.mgrid[0:height, 0:width]
        im = Image.fromarray((128 + 100 * np.sin(x / 23.0) * np.cos(y / 17.0)).astype(np.uint8))
    buf = io.BytesIO()
    im.convert("L").resize((width, height), Image.Resampling.LANCZOS).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def model_spec(arg: str | None, tmp: Path) -> tuple[str, str]:
    """(--model value for the server, a description)."""
    if arg:
        return arg, arg
    from tinct.weights import shipped_weights

    if "default" in shipped_weights():
        return "default", "shipped default"
    import torch
    import yaml

    from tinct.models import build_model
    from tinct.weights import save_weights

    recipe = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())["model"]
    arch = recipe.pop("arch")
    torch.manual_seed(0)
    model = build_model(arch, pretrained=False, **recipe)
    path = save_weights(model, tmp / "random-default-arch.safetensors", {"name": "random weights"})
    return f"bench={path}", f"random weights, default recipe's architecture ({arch})"


def rss_kb(pid: int, key: str = "VmRSS") -> int | None:
    """A memory line of /proc/PID/status in kB (VmRSS now, VmHWM the peak), None if unavailable."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = re.search(rf"^{key}:\s+(\d+) kB", text, re.MULTILINE)
    return int(found[1]) if found else None


class MemorySampler(threading.Thread):
    """Samples the server's RSS every ``interval`` seconds (psutil, else /proc)."""

    def __init__(self, pid: int, interval: float = 0.05):
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak = pid, interval, 0
        self.stop = threading.Event()
        try:
            import psutil

            self._proc = psutil.Process(pid)
        except Exception:  # noqa: BLE001 - psutil missing or process gone: fall back to /proc
            self._proc = None

    def rss(self) -> int:
        if self._proc is not None:
            try:
                return self._proc.memory_info().rss // 1024
            except Exception:  # noqa: BLE001
                return 0
        return rss_kb(self.pid) or 0

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, self.rss())
            self.stop.wait(self.interval)


def start_server(model: str, render_size: int, queue: int) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "tinct.serve", "--host", HOST, "--port", "0", "--model", model,
           "--render-size", str(render_size), "--queue", str(queue)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    assert proc.stderr is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if found:
            threading.Thread(target=proc.stderr.read, daemon=True).start()   # keep draining its log
            return proc, f"http://{HOST}:{found[1]}"
    proc.kill()
    raise SystemExit(f"serve_load: the server did not start ({line.strip() if line else 'no output'})")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


async def one(client: httpx.AsyncClient, url: str, photo: bytes, k: int) -> tuple[float, int | str, float | None]:
    t = time.perf_counter()
    try:
        r = await client.post(f"{url}/api/colorize", files={"image": (f"photo{k}.jpg", photo, "image/jpeg")},
                              data={"seed": str(k)})
        server_ms = r.json().get("elapsed_ms") if r.status_code == 200 else None
        return time.perf_counter() - t, r.status_code, server_ms
    except httpx.HTTPError as exc:
        return time.perf_counter() - t, type(exc).__name__, None


async def load(url: str, photo: bytes, requests: int, concurrency: int, timeout: float) -> list:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=timeout, limits=limits, trust_env=False) as client:
        return await asyncio.gather(*(one(client, url, photo, k) for k in range(requests)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="server --model value: shipped name, .safetensors file or NAME=FILE")
    ap.add_argument("--requests", type=int, default=20, help="requests to send (default 20, at most 200)")
    ap.add_argument("--concurrency", type=int, default=20, help="requests in flight at once (default 20)")
    ap.add_argument("--size", default="640x480", help="test photo WIDTHxHEIGHT (default 640x480)")
    ap.add_argument("--render-size", type=int, default=384, help="server's network size (default 384)")
    ap.add_argument("--timeout", type=float, default=180.0, help="per-request timeout, s (default 180)")
    ap.add_argument("--deadline", type=float, default=600.0, help="whole load phase, s (default 600)")
    args = ap.parse_args(argv)
    if not 1 <= args.requests <= 200 or not 1 <= args.concurrency <= 64:
        ap.error("--requests must be 1..200 and --concurrency 1..64")
    width, height = (int(v) for v in args.size.lower().split("x"))
    photo = test_photo(width, height)

    with tempfile.TemporaryDirectory(prefix="tinct-serve-load-") as tmp:
        model, described = model_spec(args.model, Path(tmp))
        proc, url = start_server(model, args.render_size, queue=max(args.requests, 32))
        sampler = MemorySampler(proc.pid)
        try:
            with httpx.Client(timeout=args.timeout, trust_env=False) as c:
                for _ in range(200):
                    try:
                        if c.get(f"{url}/api/health").status_code == 200:
                            break
                    except httpx.HTTPError:
                        time.sleep(0.1)
                t = time.perf_counter()
                warm = c.post(f"{url}/api/colorize", files={"image": ("warm.jpg", photo, "image/jpeg")})
                warm_s = time.perf_counter() - t
                if warm.status_code != 200:
                    raise SystemExit(f"serve_load: warm-up request failed: {warm.status_code} {warm.text[:200]}")
            idle_kb = rss_kb(proc.pid)
            sampler.start()
            t0 = time.perf_counter()
            results = asyncio.run(asyncio.wait_for(
                load(url, photo, args.requests, args.concurrency, args.timeout), args.deadline))
            wall = time.perf_counter() - t0
            sampler.stop.set()
            sampler.join(2)
            sampler.peak = max(sampler.peak, sampler.rss())
            hwm_kb = rss_kb(proc.pid, "VmHWM")
            health = httpx.get(f"{url}/api/health", trust_env=False).json()
        finally:
            stop_server(proc)

    latencies = np.array([r[0] for r in results])
    ok = [r for r in results if r[1] == 200]
    failures = Counter(str(r[1]) for r in results if r[1] != 200)
    server_ms = np.array([r[2] for r in ok if r[2] is not None])
    p50, p90, p99 = np.percentile(latencies, [50, 90, 99])
    mib = 1024.0
    print(f"tinct serve load test: {args.requests} POST /api/colorize, {args.concurrency} in flight, "
          f"{width}x{height} gray JPEG ({len(photo) / 1024:.0f} KB), render size {args.render_size}")
    print(f"model: {described}; server: 1 worker, {os.cpu_count()} CPU cores; warm-up request {warm_s:.2f} s")
    print(f"ok: {len(ok)}/{len(results)}   failures: {sum(failures.values())}"
          + (f" ({', '.join(f'{k} x{v}' for k, v in failures.items())})" if failures else ""))
    print(f"latency (client, s): p50 {p50:.2f}  p90 {p90:.2f}  p99 {p99:.2f}  "
          f"min {latencies.min():.2f}  max {latencies.max():.2f}")
    if server_ms.size:
        print(f"colorize time per request (server, s): median {np.median(server_ms) / 1000:.2f}  "
              f"max {server_ms.max() / 1000:.2f}")
    print(f"wall {wall:.2f} s   throughput {len(ok) / wall:.2f} photos/s   "
          f"server peak concurrency {health['peak_running']} (workers {health['workers']})")
    idle = f"{idle_kb / mib:.0f} MiB" if idle_kb else "n/a"
    hwm = f"{hwm_kb / mib:.0f} MiB" if hwm_kb else "n/a"
    print(f"server memory: RSS after warm-up {idle}; peak RSS during load {sampler.peak / mib:.0f} MiB (sampled), "
          f"{hwm} (VmHWM, whole life)")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
