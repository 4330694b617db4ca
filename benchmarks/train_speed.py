"""Training throughput at 224^2, frozen vs trainable backbone, 1 vs 2 processes (first default's recipe).

    python benchmarks/train_speed.py [--steps 12] [--batch 16]

Runs real `tinct train` steps (data loading, forward, loss, backward, optimizer) on generated
photos, so that the figure does not depend on ../shared/data; prints images/s per case
(median over the steps after two warm-up steps) with the machine's core count.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def make_photos(root: Path, n: int = 64) -> None:
    rng = np.random.default_rng(0)
    for c in range(2):
        d = root / f"class{c}"
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n // 2):
            small = rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)
            Image.fromarray(small).resize((320, 256), Image.BICUBIC).save(d / f"{i}.jpg", quality=90)


def run(cfg: dict, out: Path, procs: int) -> float:
    cfg_path = out.with_suffix(".yaml")
    cfg_path.write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "tinct.cli", "train", str(cfg_path), "--out", str(out), "-q"]
    if procs > 1:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(procs),
               "--master_addr", "127.0.0.1", "--master_port", str(port), *cmd[1:]]
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 2) // procs))}
    subprocess.run(cmd, check=True, env=env, capture_output=True)
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    ips = [r["images_per_s"] for r in recs if "images_per_s" in r][2:]
    return float(np.median(ips))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--batch", type=int, default=16)
    args = ap.parse_args()
    base = yaml.safe_load((ROOT / "configs" / "tinct-lite0-hc.yaml").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "photos"
        make_photos(data)
        print(f"machine: {os.cpu_count()} cores; batch {args.batch} of 224^2 crops; "
              "the first default's model (tinct-lite0-hc)\n")
        print("| backbone | processes | images/s |\n|---|---:|---:|")
        for frozen in (True, False):
            for procs in (1, 2):
                cfg = {**base, "data": {"roots": [str(data)], "fractions": [1.0, 0.0, 0.0]}, "size": 224,
                       "resize": 256, "batch_size": args.batch, "max_steps": args.steps, "log_every": 1,
                       "val_every": 10_000, "checkpoint_every": 10_000, "val_images": 2, "figure_images": 1,
                       "workers": 1, "model": {**base["model"], "freeze_backbone": frozen}}
                ips = run(cfg, Path(tmp) / f"run_{frozen}_{procs}", procs)
                print(f"| {'frozen' if frozen else 'trainable'} | {procs} | {ips:.1f} |", flush=True)


if __name__ == "__main__":
    main()
