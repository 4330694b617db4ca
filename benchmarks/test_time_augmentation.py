"""Test-time augmentation for a model: what averaging the chroma of several views buys.

    python benchmarks/test_time_augmentation.py [--model default]

Scores, on the zoo's protocol (test/kodak24 + test/cbsd68, 92 photos, 256^2 center crops, the
model's default decoder), the plain prediction against the mean ab of (1) the photo and its
mirror image, (2) the photo at render size 256 and at 320, (3) all four. Every view costs one
more network forward, so the time per photo doubles or quadruples. A probe for issue #10: it
measures how far inference alone can move the fidelity targets. Needs ../shared/data.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def averaged_views(colorizer, L: torch.Tensor, flips: bool, sizes: tuple[int, ...]) -> torch.Tensor:
    """Mean ab (1,2,h,w) at the first size's render shape over mirror images and render sizes."""
    import torch.nn.functional as F

    base, views = None, []
    for size in sizes:
        colorizer.render_size = size
        for flip in ((False, True) if flips else (False,)):
            ab = colorizer.predict_ab_small(L.flip(-1) if flip else L)
            ab = ab.flip(-1) if flip else ab
            if base is None:
                base = ab.shape[-2:]
            views.append(ab if ab.shape[-2:] == base else F.interpolate(ab, size=base, mode="bilinear",
                                                                       align_corners=False))
    colorizer.render_size = sizes[0]
    return torch.stack(views).mean(0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    args = ap.parse_args()
    sets = [DATA / "test" / "kodak24", DATA / "test" / "cbsd68"]
    if not all(d.is_dir() for d in sets):
        sys.exit(f"test_time_augmentation: the evaluation photos are absent ({DATA}/test); nothing measured")

    from tinct.evaluate import _u8, lab_of_u8, load_eval_set, score_colorizer
    from tinct.pipeline import Colorizer

    items = load_eval_set(sets, 256)
    colorizer = Colorizer(args.model, render_size=256)
    variants = {"plain": (False, (256,)), "mirror": (True, (256,)), "256 + 320": (False, (256, 320)),
                "mirror, 256 + 320": (True, (256, 320))}
    lines = ["| views | forwards | AuC | AuC rebal. | PSNR | CF | CIEDE2000 | ms / photo |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for label, (flips, sizes) in variants.items():
        def colorize(truth: np.ndarray, flips=flips, sizes=sizes) -> np.ndarray:
            with torch.inference_mode():
                L = lab_of_u8(truth)[:, :1]
                return _u8(colorizer.compose(L, averaged_views(colorizer, L, flips, sizes)))

        m, _, _, ms = score_colorizer(items, colorize)
        lines.append(f"| {label} | {len(sizes) * (2 if flips else 1)} | {m['auc']:.2f} | {m['auc_rebal']:.2f} | "
                     f"{m['psnr']:.2f} | {m['colorfulness']:.1f} | {m['ciede2000']:.2f} | {ms:.0f} |")
    print("\n".join(lines))
    print(f"\nMeasured {time.strftime('%Y-%m-%d')} by `python benchmarks/test_time_augmentation.py --model "
          f"{args.model}` on {torch.get_num_threads()} CPU threads: test/kodak24 + test/cbsd68 (92 photos, 256^2 "
          f"center crops), decoder {colorizer.method}.")


if __name__ == "__main__":
    main()
