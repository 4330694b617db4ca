"""How the render size (the network's input size) trades quality for speed on real photos.

    python benchmarks/render_size.py [--model default] [--sizes 256 384 512] [--photos DIR]

Evaluates the model on 768^2 center crops of ../shared/data/test/sun_hays80 (mostly 1024x768
photos) at several render sizes, with `tinct evaluate`'s protocol and metrics, and prints one
row per size. This is how the pipeline's default render size was chosen.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "test" / "sun_hays80"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 384, 512])
    ap.add_argument("--photos", type=Path, default=DATA)
    ap.add_argument("--crop", type=int, default=768)
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args()
    if not args.photos.is_dir():
        sys.exit(f"render_size: {args.photos} is absent; nothing measured")
    from tinct.evaluate import evaluate

    print(f"model {args.model}, {args.crop}^2 center crops of {args.photos.name}\n")
    print("| render size | AuC | AuC rebal. | PSNR | CF | abs(CF gap) | CIEDE2000 | ms/img |\n|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        r = evaluate([args.photos], [args.model], size=args.crop, render_size=size, limit=args.limit, progress=False)
        m = r["models"][args.model]["metrics"]
        print(f"| {size} | {m['auc']:.2f} | {m['auc_rebal']:.2f} | {m['psnr']:.2f} | {m['colorfulness']:.1f} | "
              f"{m['cf_gap']:.1f} | {m['ciede2000']:.2f} | {m['ms_per_image']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
