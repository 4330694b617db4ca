"""Rewrite the "every shipped model" table of src/tinct/weights/MODEL_CARD.md from the weights' own metadata.

    python benchmarks/model_cards.py [--print]

Each weights file records its recipe, data summary, steps, images seen, compute time, process
count and final validation numbers; this table shows them, so the card cannot drift from the
files. (Quality on held-out photos is the README's zoo table.)
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
CARD = ROOT / "src" / "tinct" / "weights" / "MODEL_CARD.md"


def table() -> str:
    import yaml
    from safetensors import safe_open

    from tinct.weights import read_metadata, shipped_weights, started_from

    rows = ["| model | recipe | budget (steps x batch x crop^2) | images seen | compute | processes | "
            "val loss | val AuC | val PSNR | other val | stored params | file |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    files = shipped_weights()
    config_of = {yaml.safe_load(c.read_text()).get("name"): c.name for c in sorted((ROOT / "configs").glob("*.yaml"))}
    for name in sorted({p.stem for p in files.values()}):
        path = files[name]
        meta = read_metadata(path)
        recipe, metrics = meta.get("recipe", {}), meta.get("metrics", {})
        other = ", ".join(f"{k[4:]} {v:.3g}" for k, v in metrics.items()
                          if k not in ("val_loss", "val_auc", "val_psnr") and isinstance(v, (int, float)))
        with safe_open(str(path), "pt") as f:
            stored = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
        budget = f"{recipe.get('max_steps', meta.get('steps'))} x {recipe.get('batch_size', '?')} x {recipe.get('size', '?')}"
        if source := started_from(meta):  # continued from other weights: say which; the budget is this run's own
            budget = f"`{source}` + {budget}"
        rows.append(
            f"| `{name}` | `configs/{config_of.get(recipe.get('name', name), '?')}` | {budget} | {meta.get('images_seen', 0):,} | "
            f"{meta.get('train_seconds', 0) / 60:.0f} min | {meta.get('world_size', 1)} | "
            f"{metrics.get('val_loss', float('nan')):.3f} | {metrics.get('val_auc', float('nan')):.2f} | "
            f"{metrics.get('val_psnr', float('nan')):.2f} | {other or '-'} | {stored / 1e6:.2f} M | "
            f"{path.stat().st_size / 1e6:.2f} MB |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--print", action="store_true", help="print the table without rewriting the card")
    args = ap.parse_args()
    body = table()
    print(body)
    if not args.print:
        from readme_block import rewrite_block

        rewrite_block("models", body, CARD)


if __name__ == "__main__":
    main()
