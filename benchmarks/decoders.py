"""Score every decoder of the histogram models on one protocol and rewrite the README's decoder table.

    python benchmarks/decoders.py [--model larsson-lab-marginal ...] [--no-readme]

Larsson et al. (seed 001) report that the expectation decodes Lab best and the median decodes
chroma best; this table tests that claim on test/kodak24 + test/cbsd68 (92 photos, 256^2 center
crops), with the same metrics as the zoo table. The sample decoder is seeded (one generator per
model, seed 0), so the table is reproducible.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "benchmarks"))

DEFAULT_MODELS = ("larsson-lab-marginal", "larsson-lab-joint", "larsson-hue-chroma")


def _cells(metrics: dict, best: dict):
    """-> cell(key, fmt): the formatted metric, bold when it is the best of its model."""

    def cell(key: str, fmt: str) -> str:
        text = format(metrics[key], fmt)
        return f"**{text}**" if key in best and metrics[key] == best[key] else text

    return cell


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", help=f"histogram models (default: {', '.join(DEFAULT_MODELS)})")
    ap.add_argument("--out", type=Path, default=ROOT / "eval" / "decoders")
    ap.add_argument("--no-readme", action="store_true", help="print the table without rewriting README.md")
    args = ap.parse_args()
    sets = [DATA / "test" / "kodak24", DATA / "test" / "cbsd68"]
    if not all(d.is_dir() for d in sets):
        sys.exit(f"decoders: the evaluation photos are absent ({DATA}/test); nothing measured")

    from readme_block import rewrite_block

    from tinct import load_model
    from tinct.evaluate import evaluate

    rows = ["| model | decoder | AuC | AuC rebal. | PSNR | SSIM | CF | CIEDE2000 |",
            "|---|---|---:|---:|---:|---:|---:|---:|"]
    n_images = 0
    for name in args.model or DEFAULT_MODELS:
        model = load_model(name)
        methods = list(getattr(model, "decode_methods", ()))
        if not methods:
            sys.exit(f"decoders: {name} has a single output (no histogram to decode)")
        specs = [f"{name}@{m}" for m in methods]
        report = evaluate(sets, specs, size=256, out_dir=args.out / name)
        n_images = report["protocol"]["images"]
        best = {k: max(report["models"][s]["metrics"][k] for s in specs) for k in ("auc", "auc_rebal", "psnr")}
        for spec, method in zip(specs, methods):
            m = report["models"][spec]["metrics"]
            cell = _cells(m, best)
            default = " (default)" if method == model.default_decode else ""
            rows.append(f"| {name} | {method}{default} | {cell('auc', '.2f')} | {cell('auc_rebal', '.2f')} | "
                        f"{cell('psnr', '.2f')} | {m['ssim']:.3f} | {m['colorfulness']:.1f} | {m['ciede2000']:.2f} |")
    table = "\n".join(rows) + (
        f"\n\nMeasured {time.strftime('%Y-%m-%d')} by `python benchmarks/decoders.py` on "
        f"{torch.get_num_threads()} CPU threads: test/kodak24 + test/cbsd68 ({n_images} photos, 256^2 center "
        "crops); bold: the best decoder of each model on AuC, rebalanced AuC and PSNR.")
    print(table)
    if not args.no_readme:
        rewrite_block("decoders", table)


if __name__ == "__main__":
    main()
