"""Sweep the annealed-mean temperature of histogram models: fidelity against colorfulness.

    python benchmarks/temperature.py --model tinct-lite2-joint [--temperature 1 0.7 0.5 0.38]
                                     [--top1-images 300]

Zhang et al.'s annealed mean, softmax(log p / T) then the expectation, moves from the
expectation (T = 1: the fidelity-optimal decoder of Lab histograms) to the mode (T -> 0: vivid,
committed colors). Picking T is picking a point on the trade between AuC/PSNR and colorfulness;
this prints the curve on the zoo's protocol (test/kodak24 + test/cbsd68, 92 photos, 256^2
center crops) and, with ``--top1-images``, the classifier's top-1 on imagenette/val with the gap
recovered between gray and truth. Needs ../shared/data.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", required=True, help="histogram model(s) to sweep")
    ap.add_argument("--temperature", type=float, nargs="+", default=[1.0, 0.8, 0.6, 0.5, 0.38])
    ap.add_argument("--top1-images", type=int, default=0, help="also score top-1 on this many imagenette/val photos")
    ap.add_argument("--out", type=Path, default=ROOT / "eval" / "temperature")
    args = ap.parse_args()
    fidelity_sets = [DATA / "test" / "kodak24", DATA / "test" / "cbsd68"]
    if not all(d.is_dir() for d in fidelity_sets):
        sys.exit(f"temperature: the evaluation photos are absent ({DATA}/test); nothing measured")
    if any(t <= 0 for t in args.temperature):
        sys.exit("temperature: temperatures must be positive")

    from tinct.evaluate import evaluate

    specs = [f"{m}@annealed:{t:g}" for m in args.model for t in args.temperature]
    fid = evaluate(fidelity_sets, specs, size=256, out_dir=args.out / "kodak_cbsd68")["models"]
    top1 = None
    if args.top1_images:
        val = DATA / "imagenette" / "val"
        top1 = evaluate([val], ["gray", *specs, "truth"], size=256, out_dir=args.out / "imagenette_val",
                        limit=args.top1_images)["models"]
    head = "| model | T | AuC | AuC rebal. | PSNR | CF | CIEDE2000 |" + (" top-1 % | gap recovered |" if top1 else "")
    rows = [head, "|---|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if top1 else "")]
    for spec in specs:
        name, _, t = spec.partition("@annealed:")
        m = fid[spec]["metrics"]
        row = (f"| {name} | {t} | {m['auc']:.2f} | {m['auc_rebal']:.2f} | {m['psnr']:.2f} | "
               f"{m['colorfulness']:.1f} | {m['ciede2000']:.2f} |")
        if top1:
            gray, truth, t1 = (top1[s]["metrics"]["top1"] for s in ("gray", "truth", spec))
            row += f" {t1:.1f} | {100 * (t1 - gray) / (truth - gray):.0f}% |" if truth != gray else f" {t1:.1f} | - |"
        rows.append(row)
    note = (f"\n\nMeasured {time.strftime('%Y-%m-%d')} by `python benchmarks/temperature.py` on "
            f"{torch.get_num_threads()} CPU threads: test/kodak24 + test/cbsd68 (92 photos, 256^2 center crops)")
    if top1:
        gray, truth = top1["gray"]["metrics"]["top1"], top1["truth"]["metrics"]["top1"]
        note += f"; top-1 of EfficientNet-Lite1 on {args.top1_images} imagenette/val photos (gray {gray:.1f}, truth {truth:.1f})"
    print("\n".join(rows) + note + ".")


if __name__ == "__main__":
    main()
