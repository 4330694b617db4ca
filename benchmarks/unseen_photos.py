"""Issue #23's targets on photos no model trained on: the diverse corpus's held-out validation split.

    python benchmarks/unseen_photos.py [--model default --model tinct-lite2-joint ...] [--limit N]
        [--corpus ~/data/corpus/manifest.jsonl] [--out eval/unseen]

Scores gray, truth and each model spec (``name[@decoder[:temperature]]``, as ``tinct evaluate``)
on the val split (every source, 256^2 center crops, ``tinct evaluate --pseudo-labels``), then
prints, per spec, what the targets ask: PSNR and AuC minus the gray input's, colorfulness, the
share of the gray-to-truth top-1 gap recovered, and the network's forward at 256^2 as a ratio
to the ECCV16-shaped reference forward timed in the same run. The per-source table is in
<out>/report.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

TARGETS = {"psnr_gain": 0.8, "auc_gain": 1.5, "colorfulness": 30.0, "top1_recovered": 15.0, "speed_ratio": 0.25}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", help="model spec (repeatable; default: default)")
    ap.add_argument("--corpus", type=Path, default=Path("~/data/corpus/manifest.jsonl").expanduser())
    ap.add_argument("--limit", type=int, default=None, help="evenly spaced subset (default: every val photo)")
    ap.add_argument("--out", type=Path, default=ROOT / "eval" / "unseen")
    args = ap.parse_args()
    if not args.corpus.is_file():
        sys.exit(f"unseen_photos: the corpus manifest {args.corpus} is absent (docs/data.md builds it)")

    from tinct import load_model
    from tinct.evaluate import evaluate, parse_spec

    from eccv16_reference import reference as eccv16_reference
    from speed import median_ms

    specs = args.model or ["default"]
    report = evaluate([args.corpus], ["gray", *specs, "truth"], size=256, out_dir=args.out, limit=args.limit,
                      pseudo_labels=True, metrics=("psnr", "auc", "colorfulness", "cf_gap"))
    proto = report["protocol"]
    ref = eccv16_reference()
    L = torch.rand(1, 1, 256, 256) * 100
    with torch.inference_mode():
        ref_ms = median_ms(lambda: ref(L))
        nets = {name: median_ms(lambda m=load_model(name): m.predict_ab(L))
                for name in {parse_spec(s)[0] for s in specs}}
    m = {s: r["metrics"] for s, r in report["models"].items()}
    gray, truth = m["gray"], m["truth"]
    print(f"{proto['images']} held-out photos of {len(proto['groups'])} sources ({args.corpus}); top-1 on "
          f"{proto['imagenet_labelled'] + proto['pseudo_labelled']} of them ({proto['imagenet_labelled']} ImageNet "
          f"labels, {proto['pseudo_labelled']} classifier labels of the truth); gray: PSNR {gray['psnr']:.2f}, "
          f"AuC {gray['auc']:.2f}, top-1 {gray['top1']:.1f}; truth: CF {truth['colorfulness']:.1f}, "
          f"top-1 {truth['top1']:.1f}; ECCV16 reference forward {ref_ms:.0f} ms\n")
    print("| model | PSNR - gray | AuC - gray | CF | top-1 gap recovered | network / ECCV16 |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| target | >= +{TARGETS['psnr_gain']} dB | >= +{TARGETS['auc_gain']} | >= {TARGETS['colorfulness']:.0f} | "
          f">= {TARGETS['top1_recovered']:.0f}% | <= {TARGETS['speed_ratio']} |")
    for s in specs:
        r = m[s]
        recovered = 100 * (r["top1"] - gray["top1"]) / (truth["top1"] - gray["top1"])
        ratio = nets[parse_spec(s)[0]] / ref_ms
        print(f"| {s} | {r['psnr'] - gray['psnr']:+.2f} | {r['auc'] - gray['auc']:+.2f} | {r['colorfulness']:.1f} | "
              f"{recovered:+.0f}% | {ratio:.2f} |")
    print(f"\nper source: {args.out / 'report.md'}")


if __name__ == "__main__":
    main()
