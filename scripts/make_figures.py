"""Regenerate docs/default-examples.png: each example photo, gray input above its colorizations.

    .venv/bin/python scripts/make_figures.py [--model default ...] [--photos FILE ...] [--truth]
                                             [--out docs/default-examples.png]

One row per model (``--model`` repeats), so that two models compare side by side. ``--photos``
replaces examples/*.jpg (e.g. Kodak photos, which have their true colors); ``--truth`` adds a
last row with the photos as given, for color originals.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from figure_grid import grid
from PIL import Image

import tinct

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", help="model(s), one row each (default: default)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "default-examples.png")
    ap.add_argument("--photos", nargs="+", type=Path, help="photos to show (default: examples/*.jpg)")
    ap.add_argument("--truth", action="store_true", help="add a row with the photos in their own colors")
    ap.add_argument("--height", type=int, default=220)
    args = ap.parse_args()
    models = args.model or ["default"]
    photos = args.photos or sorted((ROOT / "examples").glob("*.jpg"))
    rows = [[Image.open(p).convert("L") for p in photos]]
    captions = [[f"{p.name}: input" for p in photos]]
    for model in models:
        colorizer = tinct.Colorizer(model)
        rows.append([colorizer.colorize(p).to_pil() for p in photos])
        captions.append([f"{p.name}: {model}" for p in photos])
    if args.truth:
        rows.append([Image.open(p) for p in photos])
        captions.append([f"{p.name}: true colors" for p in photos])
    canvas = grid(rows, captions, args.height)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(args.out)
    print(args.out)


if __name__ == "__main__":
    main()
