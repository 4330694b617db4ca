"""Evaluate every shipped model and rewrite the README's model zoo table.

    python benchmarks/zoo.py [--corpus ~/data/corpus/manifest.jsonl] [--limit 500] [--out eval/zoo] [--fresh]

Quality: an evenly spaced subset of ``--limit`` photos of the diverse corpus's held-out
validation split (docs/data.md: every source, never trained on), at 256^2: fidelity and
colorfulness, and the semantic top-1 of EfficientNet-Lite1 (ImageNet labels where known, else
the classifier's confident label of the true-color photo, ``tinct evaluate --pseudo-labels``).
Speed: the network forward and the end-to-end colorization of a 256^2 image, each as a ratio to
the forward of the ECCV16-shaped reference network, same run.
Needs the corpus (it says so and stops when it is absent).

Metrics are cached per model in <out>/metrics-cache.json, keyed by the weights file's SHA-256 and
the protocol, so that re-running after training one more model only evaluates that model (after
changing tinct's own code, pass --fresh); the speed columns are always measured afresh, every
model in the same run as the reference.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", help="models to evaluate (default: every shipped model)")
    ap.add_argument("--corpus", type=Path, default=Path("~/data/corpus/manifest.jsonl").expanduser(),
                    help="corpus manifest whose val split is scored (docs/data.md)")
    ap.add_argument("--limit", type=int, default=500, help="evenly spaced subset of the val split")
    ap.add_argument("--out", type=Path, default=ROOT / "eval" / "zoo")
    ap.add_argument("--fresh", action="store_true",
                    help="ignore the metrics cache (its key is the weights file, not tinct's code)")
    ap.add_argument("--no-readme", action="store_true", help="print the table without rewriting README.md")
    args = ap.parse_args()
    if not args.corpus.is_file():
        sys.exit(f"zoo: the corpus manifest {args.corpus} is absent (docs/data.md builds it); nothing measured")

    from readme_block import rewrite_block

    from tinct import Colorizer, load_model
    from tinct.weights import read_metadata, shipped_weights, training_length, traits

    from eccv16_reference import reference as eccv16_reference
    from speed import median_ms

    files = shipped_weights()
    names = args.model or sorted({p.stem for p in files.values()}, key=lambda n: (n != "default", n))
    specs = ["gray", *names, "truth"]
    fid, top1 = cached_metrics(specs, files, args)
    ref = eccv16_reference()
    L = torch.rand(1, 1, 256, 256) * 100
    with torch.inference_mode():
        ref_ms = median_ms(lambda: ref(L))
        speed = {n: median_ms(lambda m=load_model(n): m.predict_ab(L)) for n in names}
        rgb = np.random.default_rng(0).random((256, 256, 3), dtype=np.float32)
        end_to_end = {n: median_ms(lambda c=Colorizer(n, render_size=256): c.colorize_array(rgb)) for n in names}

    aliases = {n: p.stem for n, p in files.items() if n != p.stem}
    rows = ["| model | what it is | AuC | AuC rebal. | PSNR | SSIM | QSSIM | CF | abs(CF gap) | CIEDE2000 | top-1 % | "
            "top-1 gap recovered | forward ms @256 (/ ECCV16) | end to end ms @256 (/ ECCV16) |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    t_gray, t_true = top1.get("gray"), top1.get("truth")
    for spec in specs:
        m = fid[spec]
        label = spec + "".join(f" (= {a})" for a, target in aliases.items() if target == spec)
        what = {"gray": "baseline: a = b = 0", "truth": "ground truth"}.get(spec)
        if what is None:
            meta = read_metadata(files[spec])
            what = f"{traits(meta)}, {training_length(meta)}"
        t1 = top1.get(spec)
        rec = (100 * (t1 - t_gray) / (t_true - t_gray)) if t1 is not None and t_true != t_gray else None
        ms = speed.get(spec)
        cells = [f"{m['auc']:.1f}", f"{m['auc_rebal']:.1f}", f"{m['psnr']:.2f}" if m["psnr"] != float("inf") else "inf",
                 f"{m['ssim']:.3f}", f"{m['qssim']:.3f}", f"{m['colorfulness']:.1f}", f"{m['cf_gap']:.1f}", f"{m['ciede2000']:.2f}",
                 f"{t1:.1f}" if t1 is not None else "-", f"{rec:.0f}%" if rec is not None and spec not in ("gray", "truth") else "-",
                 f"{ms:.0f} ({ms / ref_ms:.2f})" if ms else "-",
                 f"{end_to_end[spec]:.0f} ({end_to_end[spec] / ref_ms:.2f})" if spec in end_to_end else "-"]
        rows.append(f"| {label} | {what} | " + " | ".join(cells) + " |")
    stamp = time.strftime("%Y-%m-%d")
    table = "\n".join(rows) + (
        f"\n\nMeasured {stamp} by `python benchmarks/zoo.py` on {torch.get_num_threads()} CPU threads: "
        f"{fid['gray']['images']} photos of the diverse corpus's held-out validation split (every source, "
        f"256^2 center crops; docs/data.md); top-1 of EfficientNet-Lite1 on the {fid['gray'].get('top1_images', 0)} "
        f"of them with an ImageNet label or a confident classifier label of the truth (gap recovered = "
        f"(model - gray) / (truth - gray)); ECCV16 reference forward {ref_ms:.0f} ms at 256^2 in the same run; end to end = "
        f"`Colorizer.colorize_array` on a 256^2 RGB array (lightness, network, decoding, chroma fitting, "
        f"Lab->RGB; PyTorch backend).")
    print(table)
    if not args.no_readme:
        rewrite_block("zoo", table)


def cached_metrics(specs: list[str], files: dict[str, Path], args) -> tuple[dict, dict]:
    """-> ({spec: fidelity metrics}, {spec: top-1 %}), evaluating only the specs not in the cache."""
    from tinct.evaluate import evaluate

    cache_file = args.out / "metrics-cache.json"
    cache = json.loads(cache_file.read_text()) if cache_file.is_file() and not args.fresh else {}
    manifest_digest = hashlib.sha256(args.corpus.read_bytes()).hexdigest()[:12]
    protocol = f"corpus-val={manifest_digest}|size=256|limit={args.limit}|pseudo"

    def key(spec: str) -> str:
        path = files.get(spec)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path else spec
        return f"{spec}|{digest}|{protocol}"

    missing = [s for s in specs if key(s) not in cache]
    if missing:
        print(f"zoo: evaluating {', '.join(missing)} (cached: {len(specs) - len(missing)})", flush=True)
        report = evaluate([args.corpus], missing, size=256, out_dir=args.out / "corpus_val", limit=args.limit,
                          pseudo_labels=True)
        proto = report["protocol"]
        for s in missing:
            cache[key(s)] = {**report["models"][s]["metrics"], "images": proto["images"],
                             "top1_images": proto["imagenet_labelled"] + proto["pseudo_labelled"]}
        args.out.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(cache, indent=1))
        tmp.replace(cache_file)
    fid = {s: cache[key(s)] for s in specs}
    top1 = {s: fid[s]["top1"] for s in specs if fid[s].get("top1") is not None}
    return fid, top1


if __name__ == "__main__":
    main()
