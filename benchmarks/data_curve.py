"""Learning curve over data size: held-out quality against the number of training photos.

    python benchmarks/data_curve.py --model larsson-lab-joint \
        --model runs/larsson-lab-joint-data25/final.safetensors ...
    python benchmarks/data_curve.py --corpus ~/data/corpus/manifest.jsonl --limit 600 \
        --model runs/diverse-curve-5k/final.safetensors ... --plot docs/diverse-curve.png

With ``--corpus``, the photos are that corpus's held-out val split (``--limit``: an evenly spaced
subset) instead of Kodak/BSDS, scored with PSNR, AuC and colorfulness only, and the table adds
the gains over the gray input and the share of the gray-to-truth top-1 gap recovered
(``tinct evaluate --pseudo-labels``); ``--plot`` draws AuC, PSNR and top-1 recovery against
log2(photos).

Each model is one recipe trained on a different share of the photos (``data.train_fraction``,
see configs/experiments/); the script scores them on the zoo's protocol (test/kodak24 +
test/cbsd68, 92 photos, 256^2 center crops, each model's own decoder), fits
``measure = a + b log2(photos)`` by least squares, and prints the slope per doubling of the
photos and how many photos that line would need to reach issue #10's AuC and PSNR targets.
Runs on the same photos with different seeds give the noise to read the slope against.
An extrapolation, not a promise: it says whether more of *these* photos could plausibly get
there. Needs ../shared/data.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
TARGETS = {"auc": 92.0, "psnr": 24.0}


def train_photos(weights: Path, meta: dict) -> int:
    """How many photos a model was trained on, from its metadata (or its run folder's manifest)."""
    from tinct.data import Manifest, subsample

    data = meta.get("data", {})
    if "train_photos" in data:
        return int(data["train_photos"])
    fraction = float(meta.get("recipe", {}).get("data", {}).get("train_fraction", 1.0))
    if fraction == 1.0:
        found = re.search(r"(\d+) train", data.get("summary", ""))
        if found:
            return int(found.group(1))
    manifest = weights.parent / "manifest.json"
    if not manifest.is_file():
        raise SystemExit(f"data_curve: {weights} does not record its training photos and has no manifest.json beside it")
    return len(subsample(Manifest.load(manifest).split("train"), fraction))


def model_rows(specs: list[str]) -> list[dict]:
    """One row per model spec: its name, training photos, steps, images seen and seed, from its weights."""
    from tinct.weights import read_metadata, resolve

    rows = []
    for spec in specs:
        path = resolve(spec)
        meta = read_metadata(path)
        rows.append({"spec": spec, "name": meta.get("name", spec), "photos": train_photos(path, meta),
                     "steps": meta.get("steps"), "images_seen": meta.get("images_seen"),
                     "seed": meta.get("recipe", {}).get("seed")})
    return rows


def fit_log2(photos: list[int], values: list[float]) -> tuple[float, float]:
    """Least squares ``value = a + b log2(photos)`` -> (a, b)."""
    b, a = np.polyfit(np.log2(np.asarray(photos, dtype=float)), np.asarray(values, dtype=float), 1)
    return float(a), float(b)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", required=True, help="shipped name or .safetensors (two or more)")
    ap.add_argument("--out", type=Path, default=ROOT / "eval" / "data_curve")
    ap.add_argument("--corpus", type=Path, default=None, help="score on this corpus manifest's val split")
    ap.add_argument("--limit", type=int, default=None, help="with --corpus: an evenly spaced subset of N photos")
    ap.add_argument("--plot", type=Path, default=None, help="with --corpus: write the curve as a PNG")
    args = ap.parse_args()
    if args.corpus is not None:
        corpus_curve(args)
        return
    fidelity_sets = [DATA / "test" / "kodak24", DATA / "test" / "cbsd68"]
    if not all(d.is_dir() for d in fidelity_sets):
        sys.exit(f"data_curve: the evaluation photos are absent ({DATA}/test); nothing measured")

    from tinct.evaluate import evaluate

    rows = model_rows(args.model)
    if len({r["photos"] for r in rows}) < 2:
        sys.exit("data_curve: the models must cover at least two data sizes")
    report = evaluate(fidelity_sets, [r["spec"] for r in rows], size=256, out_dir=args.out)["models"]
    for r in rows:
        r.update(report[r["spec"]]["metrics"])
    rows.sort(key=lambda r: (r["photos"], r["name"]))

    lines = ["| model | seed | photos | epochs | AuC | AuC rebal. | PSNR | CF | CIEDE2000 |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        epochs = r["images_seen"] / r["photos"] if r["images_seen"] else float("nan")
        lines.append(f"| {r['name']} | {r['seed']} | {r['photos']:,} | {epochs:.1f} | {r['auc']:.2f} | "
                     f"{r['auc_rebal']:.2f} | {r['psnr']:.2f} | {r['colorfulness']:.1f} | {r['ciede2000']:.2f} |")
    print("\n".join(lines))
    print()
    photos = [r["photos"] for r in rows]
    for key, label in (("auc", "AuC"), ("psnr", "PSNR"), ("colorfulness", "CF"), ("ciede2000", "CIEDE2000")):
        a, b = fit_log2(photos, [r[key] for r in rows])
        line = f"{label}: {b:+.3f} per doubling of the photos"
        same = {}
        for r in rows:
            same.setdefault(r["photos"], []).append(r[key])
        spreads = [max(v) - min(v) for v in same.values() if len(v) > 1]
        if spreads:
            line += f" (seed spread at equal photos: {max(spreads):.3f})"
        if key in TARGETS:
            target = TARGETS[key]
            if b > 0:
                need = 2 ** ((target - a) / b)
                line += f"; the line reaches {target:g} at about {need:,.0f} photos ({need / max(photos):,.0f}x the most used here)"
            else:
                line += f"; it does not grow, so more of these photos would not reach {target:g}"
        print(line)
    print(f"\nMeasured {time.strftime('%Y-%m-%d')} by `python benchmarks/data_curve.py` on {torch.get_num_threads()} "
          "CPU threads: test/kodak24 + test/cbsd68 (92 photos, 256^2 center crops), each model's default decoder.")


def corpus_curve(args) -> None:
    """The learning curve on a corpus's held-out val split, with gains over gray and top-1 recovery."""
    from tinct.evaluate import evaluate

    corpus = args.corpus.expanduser()
    if not corpus.is_file():
        sys.exit(f"data_curve: the corpus manifest {corpus} is absent (docs/data.md builds it)")
    rows = model_rows(args.model)
    report = evaluate([corpus], ["gray", *[r["spec"] for r in rows], "truth"], size=256, out_dir=args.out,
                      limit=args.limit, pseudo_labels=True, metrics=("psnr", "auc", "colorfulness", "cf_gap"))
    m = {s: r["metrics"] for s, r in report["models"].items()}
    gray, truth = m["gray"], m["truth"]
    for r in rows:
        x = m[r["spec"]]
        r.update(psnr_gain=x["psnr"] - gray["psnr"], auc_gain=x["auc"] - gray["auc"], colorfulness=x["colorfulness"],
                 recovered=100 * (x["top1"] - gray["top1"]) / (truth["top1"] - gray["top1"]))
    rows.sort(key=lambda r: r["photos"])
    print("| model | photos | steps | PSNR - gray | AuC - gray | CF | top-1 gap recovered |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['name']} | {r['photos']:,} | {r['steps']} | {r['psnr_gain']:+.2f} | {r['auc_gain']:+.2f} | "
              f"{r['colorfulness']:.1f} | {r['recovered']:+.0f}% |")
    photos = [r["photos"] for r in rows]
    if len(set(photos)) > 1:
        for key, label in (("psnr_gain", "PSNR - gray"), ("auc_gain", "AuC - gray"), ("recovered", "top-1 recovered %")):
            _, b = fit_log2(photos, [r[key] for r in rows])
            print(f"{label}: {b:+.3f} per doubling of the photos")
    proto = report["protocol"]
    print(f"\nMeasured {time.strftime('%Y-%m-%d')} by `python benchmarks/data_curve.py --corpus ...` on "
          f"{torch.get_num_threads()} CPU threads: {proto['images']} held-out photos of {corpus} (256^2 center "
          f"crops; gray PSNR {gray['psnr']:.2f}, AuC {gray['auc']:.2f}, top-1 {gray['top1']:.1f}; truth top-1 "
          f"{truth['top1']:.1f} on {proto['imagenet_labelled'] + proto['pseudo_labelled']} labelled photos).")
    if args.plot:
        plot_curve(rows, args.plot, proto["images"])


def plot_curve(rows: list[dict], path: Path, images: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2), dpi=100)
    for ax, (key, label) in zip(axes, (("auc_gain", "AuC - gray AuC"), ("psnr_gain", "PSNR - gray PSNR (dB)"),
                                       ("recovered", "top-1 gap recovered (%)"))):
        ax.plot([r["photos"] for r in rows], [r[key] for r in rows], "o-")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("training photos")
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
        ax.axhline(0, color="gray", lw=0.8)
    fig.suptitle(f"Learning curve over corpus size ({images} held-out photos of every source)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
