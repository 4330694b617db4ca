"""Regenerate docs/default-examples.png: each example photo, gray input above its colorization.

    .venv/bin/python scripts/make_figures.py [--model default] [--out docs/default-examples.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

import tinct

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "default-examples.png")
    ap.add_argument("--height", type=int, default=220)
    args = ap.parse_args()
    colorizer = tinct.Colorizer(args.model)
    photos = sorted((ROOT / "examples").glob("*.jpg"))
    pairs = []
    for p in photos:
        gray = Image.open(p).convert("RGB")
        color = colorizer.colorize(p).to_pil()
        w = round(gray.width * args.height / gray.height)
        pairs.append((gray.resize((w, args.height)), color.resize((w, args.height))))
    width = sum(g.width for g, _ in pairs) + 8 * (len(pairs) - 1)
    canvas = Image.new("RGB", (width, 2 * args.height + 8 + 16), "white")
    draw = ImageDraw.Draw(canvas)
    x = 0
    for (g, c), p in zip(pairs, photos):
        canvas.paste(g, (x, 16))
        canvas.paste(c, (x, 16 + args.height + 8))
        draw.text((x + 2, 2), f"{p.name}: input (top), {args.model} (bottom)", fill="black")
        x += g.width + 8
    args.out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(args.out)
    print(args.out)


if __name__ == "__main__":
    main()
