"""Measure how far ``--style`` moves colors, and whether toward the reference, for models with global features.

    python benchmarks/style_transfer.py [--model iizuka-lite0 ...] [--no-docs]

Every photo of test/kodak24 (256^2 center crops) is colorized with its own global features and
then with those of each style reference: one photo per scene class of sun8 (the first file of
each class folder, a different scene from every Kodak photo). Per (photo, reference) pair:

* **shift**: the mean over pixels of |ab_styled - ab_own|, the CIE76 color difference (the
  lightness is the photo's in both). A just-noticeable difference is about 2.3.
* **toward**: the cosine between the photo's mean color change, mean(ab_styled - ab_own), and
  the direction from the photo's own mean color to the reference's true mean color (what a user
  sees in the reference). +1: the whole photo moved straight toward the reference's colors;
  0: sideways; -1: away.

Prints one row per reference (averaged over the photos) and the overall figures, and rewrites
the ``style`` block of docs/style-transfer.md unless ``--no-docs``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "benchmarks"))

JND = 2.3  # CIE76 just-noticeable difference (Sharma 2003)


def pair_stats(ab_own: torch.Tensor, ab_styled: torch.Tensor, ref_ab_mean: torch.Tensor) -> tuple[float, float]:
    """ab_own, ab_styled (1,2,H,W); ref_ab_mean (2,) -> (mean CIE76 shift, cosine toward the reference)."""
    diff = ab_styled - ab_own
    shift = diff.norm(dim=1).mean().item()
    move = diff.mean(dim=(0, 2, 3))
    goal = ref_ab_mean - ab_own.mean(dim=(0, 2, 3))
    toward = torch.nn.functional.cosine_similarity(move, goal, dim=0).item()
    return shift, toward


def references(folder: Path) -> list[Path]:
    """The first photo (sorted) of each class folder."""
    from tinct.data import IMAGE_EXTENSIONS

    out = []
    for cls in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = sorted(p for p in cls.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if files:
            out.append(files[0])
    return out


def measure(model_name: str, photos: list[dict], refs: list[tuple[str, torch.Tensor]]) -> list[dict]:
    """-> one dict per reference: name, shift (mean), max (of the per-pair shifts), visible (%), toward."""
    import tinct
    from tinct.evaluate import lab_of_u8

    model = tinct.load_model(model_name)
    if "style_L" not in model.forward_options:
        raise SystemExit(f"{model_name} has no global features to borrow")
    rows = []
    with torch.no_grad():
        owns = [(lab[:, :1], model.predict_ab(lab[:, :1])) for lab in (lab_of_u8(p["truth"]) for p in photos)]
        for name, ref_lab in refs:
            ref_mean = ref_lab[0, 1:].mean(dim=(1, 2))
            stats = [pair_stats(ab, model.predict_ab(L, style_L=ref_lab[:, :1]), ref_mean) for L, ab in owns]
            shifts = torch.tensor([s for s, _ in stats])
            rows.append({"name": name, "shift": shifts.mean().item(),
                         "max": shifts.max().item(),
                         "visible": 100.0 * (shifts > JND).float().mean().item(),
                         "toward": sum(t for _, t in stats) / len(stats)})
    return rows


def table(model_name: str, rows: list[dict], n_photos: int) -> str:
    lines = [f"**{model_name}** ({n_photos} Kodak photos per reference)", "",
             "| style reference | mean shift (CIE76) | largest shift | photos shifted > 2.3 | toward the reference |",
             "|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['shift']:.2f} | {r['max']:.2f} | {r['visible']:.0f}% | {r['toward']:+.2f} |")
    n = len(rows)
    lines.append(f"| **all** | **{sum(r['shift'] for r in rows) / n:.2f}** | {max(r['max'] for r in rows):.2f} | "
                 f"**{sum(r['visible'] for r in rows) / n:.0f}%** | **{sum(r['toward'] for r in rows) / n:+.2f}** |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", help="models with global features (default: iizuka, iizuka-lite0)")
    ap.add_argument("--photos", type=Path, default=DATA / "test" / "kodak24")
    ap.add_argument("--references", type=Path, default=DATA / "sun8")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--no-docs", action="store_true", help="print only; leave docs/style-transfer.md alone")
    args = ap.parse_args()
    for folder in (args.photos, args.references):
        if not folder.is_dir():
            sys.exit(f"{folder} not found: this benchmark needs the shared data (see ../shared/data/README.md)")
    torch.set_num_threads(2)
    from tinct.evaluate import lab_of_u8, load_eval_set, square_photo

    photos = load_eval_set([args.photos], args.size)
    refs = [(f"{f.parent.name}/{f.name}", lab_of_u8(square_photo(f, args.size))) for f in references(args.references)]
    blocks = []
    for name in args.model or ["iizuka", "iizuka-lite0"]:
        text = table(name, measure(name, photos, refs), len(photos))
        print(text + "\n")
        blocks.append(text)
    if not args.no_docs:
        from readme_block import rewrite_block

        body = ("Measured by `python benchmarks/style_transfer.py` (kodak24 photos, one sun8 reference per "
                "scene class, 256^2 center crops):\n\n" + "\n\n".join(blocks))
        rewrite_block("style", body, ROOT / "docs" / "style-transfer.md")


if __name__ == "__main__":
    main()
