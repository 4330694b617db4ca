"""Accuracy of the joint classification head of Iizuka-style models on their validation split.

    python benchmarks/classification.py [--model iizuka --model iizuka-lite0] [--config configs/iizuka.yaml]

The trainer's own ``val_acc`` scores 96 crops; this scores every validation photo of the
recipe's data (the same manifest, the same deterministic split, the same label indices),
each photo's lightness resized whole to 224x224 as the global path sees it. Prints top-1 and
top-5 accuracy with the majority-class rate as the chance line.
"""

from __future__ import annotations

import argparse
import os
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]


def photo_L(path: str, side: int = 224) -> torch.Tensor:
    """A photo file -> its CIE L (1,1,side,side) in [0,100], the whole image resized."""
    from tinct.color import lightness

    rgb = Image.open(path).convert("RGB").resize((side, side), Image.BICUBIC)
    return lightness(torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0).permute(2, 0, 1)[None])


@torch.inference_mode()
def accuracy(model, entries, batch: int = 16) -> tuple[float, float]:
    """-> (top-1 %, top-5 %) of ``model``'s logits over labelled manifest entries."""
    top1 = top5 = 0
    for start in tqdm(range(0, len(entries), batch), desc=model.metadata.get("name", "model"), unit="batch"):
        chunk = entries[start:start + batch]
        logits = model(torch.cat([photo_L(e.path) for e in chunk]))["logits"]
        labels = torch.tensor([e.label for e in chunk])
        ranked = logits.topk(min(5, logits.shape[1]), dim=1).indices
        top1 += int((ranked[:, 0] == labels).sum())
        top5 += int((ranked == labels[:, None]).any(1).sum())
    return 100 * top1 / len(entries), 100 * top5 / len(entries)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", help="models with a classification head (default: iizuka, iizuka-lite0)")
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "iizuka.yaml",
                    help="the recipe whose data and split the models were trained on")
    args = ap.parse_args()
    from tinct import load_model
    from tinct.data import build_manifest
    from tinct.train import load_config

    cfg = load_config(args.config)
    os.chdir(args.config.resolve().parent.parent)  # data roots are relative to the project
    manifest = build_manifest(cfg.data["roots"], fractions=tuple(cfg.data["fractions"]),
                              labels_csv=cfg.data.get("labels_csv"), progress=False)
    val = [e for e in manifest.split("val") if e.label >= 0]
    majority = Counter(e.label for e in manifest.split("train") if e.label >= 0).most_common(1)[0][0]
    chance = 100 * sum(e.label == majority for e in val) / len(val)
    rows = ["| model | top-1 % | top-5 % |", "|---|---:|---:|", f"| majority class of train | {chance:.1f} | - |"]
    for name in args.model or ["iizuka", "iizuka-lite0"]:
        model = load_model(name).eval()
        if getattr(model, "num_classes", 0) != len(manifest.classes):
            raise SystemExit(f"{name}: {getattr(model, 'num_classes', 0)} classes, the recipe's data has "
                             f"{len(manifest.classes)}: not the data it was trained on")
        t1, t5 = accuracy(model, val)
        rows.append(f"| {name} | {t1:.1f} | {t5:.1f} |")
    print("\n".join(rows))
    print(f"\n{len(val)} validation photos of {args.config.name}'s data, {len(manifest.classes)} classes.")


if __name__ == "__main__":
    main()
