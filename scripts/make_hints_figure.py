"""docs/hints.jpg: examples/coffee.jpg gray, colorized automatically, and with two sets of hints.

    python scripts/make_hints_figure.py [--model tinct-lite2-hints] [--out docs/hints.jpg]

Each hinted panel draws its hints as rings in the hint's color. The hints are also written as
JSON beside the figure's panels in docs/ (coffee.red.hints.json, coffee.blue.hints.json), so that
`tinct colorize examples/coffee.jpg --hints docs/coffee.red.hints.json` reproduces a panel.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "examples" / "coffee.jpg"
# points on the cup's outer wall, its handle and the saucer, in pixels of the 600x400 photo
POINTS = [(230, 215), (300, 235), (345, 222), (120, 300), (420, 330), (280, 370)]
SETS = {"red": "#b81f24", "blue": "#2a5bb8"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tinct-lite2-hints")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "hints.jpg")
    args = ap.parse_args()

    from tinct.pipeline import Colorizer

    c = Colorizer(args.model)
    prepared = c.prepare(PHOTO)
    panels = [("gray input", Image.open(PHOTO).convert("RGB")), ("no hint (automatic)", c.colorize(prepared).to_pil())]
    for name, color in SETS.items():
        hints = [{"x": x, "y": y, "color": color} for x, y in POINTS]
        (args.out.parent / f"coffee.{name}.hints.json").write_text(json.dumps(hints, indent=1) + "\n")
        img = c.colorize(prepared, hints=hints).to_pil()
        draw = ImageDraw.Draw(img)
        for x, y in POINTS:
            draw.ellipse([x - 7, y - 7, x + 7, y + 7], outline="white", width=3)
            draw.ellipse([x - 5, y - 5, x + 5, y + 5], fill=color)
        panels.append((f"{len(POINTS)} {name} hints", img))
    w, h = panels[0][1].size
    sheet = Image.new("RGB", (w * len(panels), h + 24), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (title, img) in enumerate(panels):
        sheet.paste(img, (i * w, 24))
        draw.text((i * w + 6, 6), title, fill="black")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet = sheet.resize((sheet.width * 3 // 5, sheet.height * 3 // 5), Image.LANCZOS)
    sheet.save(args.out, quality=88, optimize=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
