"""Learning curve over data size: held-out quality against the number of training photos.

    python benchmarks/data_curve.py --model larsson-lab-joint \
        --model runs/larsson-lab-joint-data25/final.safetensors ...

Each model is one recipe trained on a different share of the photos (``data.train_fraction``,
see configs/experiments/); the script scores them on the zoo's protocol (test/kodak24 +
test/cbsd68, 92 photos, 256^2 center crops, each model's own decoder), fits
``measure = a + b log2(photos)`` by least squares, and prints the slope per doubling of the
photos and how many photos that line would need to reach issue #10's AuC and PSNR targets.
Runs on the same photos with different seeds give the noise to read the slope against.
An extrapolation, not a promise: it says whether more of *these* photos could plausibly get
there. Needs ../shared/data.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
TARGETS = {"auc": 92.0, "psnr": 24.0}


def train_photos(weights: Path, meta: dict) -> int:
    """How many photos a model was trained on, from its metadata (or its run folder's manifest)."""
    from tinct.data import Manifest, subsample

    data = meta.get("data", {})
    if "train_photos" in data:
        return int(data["train_photos"])
    fraction = float(meta.get("recipe", {}).get("data", {}).get("train_fraction", 1.0))
    if fraction == 1.0:
        found = re.search(r"(\d+) train", data.get("summary", ""))
        if found:
            return int(found.group(1))
    manifest = weights.parent / "manifest.json"
    if not manifest.is_file():
        raise SystemExit(f"data_curve: {weights} does not record its training photos and has no manifest.json beside it")
    return len(subsample(Manifest.load(manifest).split("train"), fraction))


def fit_log2(photos: list[int], values: list[float]) -> tuple[float, float]:
    """Least squares ``value = a + b log2(photos)`` -> (a, b)."""
    b, a = np.polyfit(np.log2(np.asarray(photos, dtype=float)), np.asarray(values, dtype=float), 1)
    return float(a), float(b)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", required=True, help="shipped name or .safetensors (two or more)")
    ap.add_argument("--out", type=Path, default=ROOT / "eval" / "data_curve")
    args = ap.parse_args()
    fidelity_sets = [DATA / "test" / "kodak24", DATA / "test" / "cbsd68"]
    if not all(d.is_dir() for d in fidelity_sets):
        sys.exit(f"data_curve: the evaluation photos are absent ({DATA}/test); nothing measured")

    from tinct.evaluate import evaluate
    from tinct.weights import read_metadata, resolve

    rows = []
    for spec in args.model:
        path = resolve(spec)
        meta = read_metadata(path)
        rows.append({"spec": spec, "name": meta.get("name", spec), "photos": train_photos(path, meta),
                     "steps": meta.get("steps"), "images_seen": meta.get("images_seen"),
                     "seed": meta.get("recipe", {}).get("seed")})
    if len({r["photos"] for r in rows}) < 2:
        sys.exit("data_curve: the models must cover at least two data sizes")
    report = evaluate(fidelity_sets, [r["spec"] for r in rows], size=256, out_dir=args.out)["models"]
    for r in rows:
        r.update(report[r["spec"]]["metrics"])
    rows.sort(key=lambda r: (r["photos"], r["name"]))

    lines = ["| model | seed | photos | epochs | AuC | AuC rebal. | PSNR | CF | CIEDE2000 |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        epochs = r["images_seen"] / r["photos"] if r["images_seen"] else float("nan")
        lines.append(f"| {r['name']} | {r['seed']} | {r['photos']:,} | {epochs:.1f} | {r['auc']:.2f} | "
                     f"{r['auc_rebal']:.2f} | {r['psnr']:.2f} | {r['colorfulness']:.1f} | {r['ciede2000']:.2f} |")
    print("\n".join(lines))
    print()
    photos = [r["photos"] for r in rows]
    for key, label in (("auc", "AuC"), ("psnr", "PSNR"), ("colorfulness", "CF"), ("ciede2000", "CIEDE2000")):
        a, b = fit_log2(photos, [r[key] for r in rows])
        line = f"{label}: {b:+.3f} per doubling of the photos"
        same = {}
        for r in rows:
            same.setdefault(r["photos"], []).append(r[key])
        spreads = [max(v) - min(v) for v in same.values() if len(v) > 1]
        if spreads:
            line += f" (seed spread at equal photos: {max(spreads):.3f})"
        if key in TARGETS:
            target = TARGETS[key]
            if b > 0:
                need = 2 ** ((target - a) / b)
                line += f"; the line reaches {target:g} at about {need:,.0f} photos ({need / max(photos):,.0f}x the most used here)"
            else:
                line += f"; it does not grow, so more of these photos would not reach {target:g}"
        print(line)
    print(f"\nMeasured {time.strftime('%Y-%m-%d')} by `python benchmarks/data_curve.py` on {torch.get_num_threads()} "
          "CPU threads: test/kodak24 + test/cbsd68 (92 photos, 256^2 center crops), each model's default decoder.")


if __name__ == "__main__":
    main()
