"""Regenerate docs/style-transfer.png: photos colorized with their own global features, then with
the global features of other scenes (``--style``), for a model with global features.

    .venv/bin/python scripts/make_style_figure.py [--model iizuka] [--out docs/style-transfer.png]

Rows: each photo of examples/; columns: the gray input, its own colorization, then one column
per style reference (the other example photos, a different scene each).
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
    ap.add_argument("--model", default="iizuka")
    ap.add_argument("--photos", nargs="+", default=["chelsea", "coffee", "astronaut"])
    ap.add_argument("--styles", nargs="+", default=["rocket", "chelsea", "coffee"])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "style-transfer.png")
    ap.add_argument("--height", type=int, default=180)
    args = ap.parse_args()
    colorizer = tinct.Colorizer(args.model)
    rows, captions = [], []
    for name in args.photos:
        photo = ROOT / "examples" / f"{name}.jpg"
        row = [Image.open(photo), colorizer.colorize(photo).to_pil()]
        text = [f"{name} (input)", f"{args.model}, own features"]
        for style in args.styles:
            if style != name:
                row.append(colorizer.colorize(photo, style=ROOT / "examples" / f"{style}.jpg").to_pil())
                text.append(f"--style {style}.jpg")
        rows.append(row)
        captions.append(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    grid(rows, captions, args.height).save(args.out)
    print(args.out)


if __name__ == "__main__":
    main()
