"""Training throughput: the feature cache against photos (default recipe), and frozen vs trainable, 1 vs 2 processes.

    python benchmarks/train_speed.py [--steps 12] [--batch 16] [--only cache|processes]

The first table trains the shipped default's recipe (configs/default.yaml: frozen Lite2, 192^2
crops) once from decoded photos through the backbone, once from its feature cache, and times
the cache's build (crops/s), so the break-even number of passes can be read off. The second
is the first default's recipe (tinct-lite0-hc) at 224^2.

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

from tinct.feature_cache import build_feature_cache

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


def cache_vs_photos(tmp: Path, data: Path, steps: int, batch: int) -> None:
    """Default recipe: images/s from photos, crops/s of the cache build, images/s from the cache."""
    import time

    base = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())
    manifest = tmp / "corpus.jsonl"
    photos = sorted(data.rglob("*.jpg"))
    manifest.write_text("".join(json.dumps({"path": str(p), "source": "generated", "licence": "-", "split": "train",
                                            "weight": 1.0, "width": 320, "height": 256}) + "\n" for p in photos))
    common = {**base, "init": None, "batch_size": batch, "max_steps": steps, "log_every": 1, "val_every": 10_000,
              "checkpoint_every": 10_000, "val_images": 2, "figure_images": 1, "workers": 1, "threads": None}
    print(f"machine: {os.cpu_count()} cores; batch {batch} of {base['size']}^2 crops; the default's recipe "
          f"({base['name']}: frozen {base['model']['backbone']})\n")
    print("| training from | images/s |\n|---|---:|")
    direct = run({**common, "data": {"roots": [str(data)], "fractions": [1.0, 0.0, 0.0]}}, tmp / "direct", 1)
    print(f"| photos (decode + backbone + head) | {direct:.1f} |", flush=True)
    from tinct.train import TrainConfig, corpus_manifest, model_for_cache

    cache = tmp / "cache"
    cached_cfg = {**common, "data": {"corpus": str(manifest), "feature_cache": str(cache), "crops_per_unit": 2}}
    entries = corpus_manifest(manifest)[0].entries
    t0 = time.perf_counter()
    build_feature_cache(model_for_cache(TrainConfig.from_dict(cached_cfg)), entries, [2.0] * len(entries), cache,
                        base["size"], base["resize"], workers=1, progress=False)
    build_rate = 2 * len(entries) / (time.perf_counter() - t0)
    cached = run(cached_cfg, tmp / "cached", 1)
    print(f"| feature cache (head only) | {cached:.1f} |", flush=True)
    print(f"\ncache build: {build_rate:.1f} crops/s (decode + backbone forward, once); "
          f"each pass from the cache after it: {cached / direct:.1f}x the photos' speed\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--only", choices=["cache", "processes"], default=None)
    args = ap.parse_args()
    base = yaml.safe_load((ROOT / "configs" / "tinct-lite0-hc.yaml").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "photos"
        make_photos(data)
        if args.only != "processes":
            cache_vs_photos(Path(tmp), data, args.steps, args.batch)
        if args.only == "cache":
            return
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
