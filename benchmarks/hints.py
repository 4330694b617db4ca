"""Issue #27's figures: quality against the number of color hints, and the time of one hint update.

    python benchmarks/hints.py [--model tinct-lite2-hints] [--baseline default] [--limit 300]
        [--corpus ~/data/corpus/manifest.jsonl] [--counts 0 1 2 5 10 20 50] [--plot docs/hints-curve.png]

Photos: the diverse corpus's held-out val split (no model was trained or tuned on it), the same
256^2 center crops as ``tinct evaluate`` and ``benchmarks/unseen_photos.py`` (an evenly spaced
``--limit`` of them). For each photo and each hint count n, n hints are drawn from the photo's
true colors the way training draws them (``tinct.hints.simulate_hints``: half where the photo is
colorful, half at random, each the mean ab of a 1-9 px square; seeded per photo and count) and
the hint model colorizes the gray photo with them through the public door
(``Colorizer.prepare`` once, then ``predict_small(prepared, hints=map)`` and ``compose``).
PSNR and AuC (``tinct.metrics``) are averaged over the photos; the automatic ``--baseline`` is
scored on the same photos. Target (issue #27): +2 dB PSNR at 10 hints over no hint, and no
hint within 0.3 dB / 0.3 AuC of the automatic default.

Then the time of one hint update as the web page does it: a 1032x774 photo (0.8 MP) prepared
once at the default render size (384), then ``Colorizer.colorize(prepared, hints=[1-5 points])``
plus JPEG encoding, median of 7 runs after a warm-up; and the same through the HTTP API
(``POST /api/photos/{id}/colorize``, in-process client).
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
COUNTS = (0, 1, 2, 5, 10, 20, 50)


def score_counts(colorizer, items: list[dict], counts: tuple[int, ...]) -> dict[int, dict[str, float]]:
    """Mean PSNR and AuC of ``colorizer`` on ``items`` with n ground-truth hints, per n in ``counts``."""
    from tqdm import tqdm

    from tinct.color import rgb_to_lab
    from tinct.hints import simulate_hints
    from tinct.metrics import image_metrics

    sums = {n: {"psnr": 0.0, "auc": 0.0} for n in counts}
    for i, item in enumerate(tqdm(items, desc="photos", unit="photo")):
        truth = item["truth"]
        prepared = colorizer.prepare(truth.astype(np.float32) / 255)
        rgb = torch.from_numpy(truth).permute(2, 0, 1)[None].float() / 255
        if rgb.shape[-2:] != prepared.L_small.shape[-2:]:
            raise SystemExit("hints: --size must be the render size (the hints are drawn at the network's input)")
        ab = rgb_to_lab(rgb)[:, 1:]
        for n in counts:
            options = {}
            if n:
                g = torch.Generator().manual_seed(1000 * i + n)
                options["hints"] = simulate_hints(ab, g, count=n, no_hint_share=0.0)
            with torch.inference_mode():
                small = colorizer.predict_small(prepared, **options)
                pred = colorizer.compose(prepared.L, small["ab"], np.uint8)
            m = image_metrics(pred, truth, keys=("psnr", "auc"))
            for k in ("psnr", "auc"):
                sums[n][k] += m[k]
    return {n: {k: v / len(items) for k, v in s.items()} for n, s in sums.items()}


def score_automatic(colorizer, items: list[dict]) -> dict[str, float]:
    from tinct.metrics import image_metrics

    scores = [image_metrics(colorizer.colorize(it["truth"], dtype=np.uint8).rgb, it["truth"], keys=("psnr", "auc"))
              for it in items]
    return {k: float(np.mean([s[k] for s in scores])) for k in ("psnr", "auc")}


def time_update(model: str, repeats: int = 7) -> dict[str, float]:
    """Median ms of one hint update (head + compose + JPEG) on a 0.8-MP photo at the default render size."""
    from PIL import Image

    from tinct.defaults import DEFAULT_RENDER_SIZE
    from tinct.pipeline import Colorizer

    c = Colorizer(model, render_size=DEFAULT_RENDER_SIZE)
    photo = Image.open(ROOT / "examples" / "coffee.jpg").convert("L").resize((1032, 774), Image.BICUBIC)
    t0 = time.perf_counter()
    prepared = c.prepare(np.asarray(photo.convert("RGB"), np.float32) / 255)
    prepare_ms = 1000 * (time.perf_counter() - t0)
    hints = [{"x": 100 + 150 * k, "y": 200 + 60 * k, "color": "#3050c0"} for k in range(5)]
    times = []
    for r in range(repeats + 1):
        t0 = time.perf_counter()
        out = c.colorize(prepared, hints=hints[: 1 + r % 5], dtype=np.uint8).to_pil()
        out.save(io.BytesIO(), "JPEG", quality=90)
        if r:
            times.append(1000 * (time.perf_counter() - t0))
    return {"prepare_ms": prepare_ms, "update_ms": statistics.median(times), "photo": "1032x774",
            "render_size": DEFAULT_RENDER_SIZE, "http_ms": time_http_update(model, photo, hints, repeats)}


def time_http_update(model: str, photo, hints: list[dict], repeats: int) -> float | None:
    """Median ms of ``POST /api/photos/{id}/colorize`` with hints, as the web page sends it after an edit
    (in-process ASGI client: the HTTP framing and the JPEG response, no network); None without fastapi."""
    try:
        with warnings.catch_warnings():  # starlette's note about httpx versions
            warnings.simplefilter("ignore")
            from fastapi.testclient import TestClient
    except ImportError:
        return None
    from tinct.serve.app import create_app
    from tinct.weights import resolve

    buf = io.BytesIO()
    photo.save(buf, "PNG")
    with TestClient(create_app({model: resolve(model)}, default_model=model)) as client:
        up = client.post("/api/photos", files={"image": ("photo.png", buf.getvalue(), "image/png")})
        photo_id = up.json()["id"]
        times = []
        for r in range(repeats + 1):
            t0 = time.perf_counter()
            res = client.post(f"/api/photos/{photo_id}/colorize", json={"hints": hints[: 1 + r % 5], "format": "jpeg"})
            if r:
                times.append(1000 * (time.perf_counter() - t0))
            assert res.status_code == 200, res.text
    return statistics.median(times)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = sorted(int(n) for n in results["hints"])
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, key, label in ((axes[0], "psnr", "PSNR (dB)"), (axes[1], "auc", "AuC (%)")):
        xs = [max(n, 0.5) for n in counts]  # 0 hints drawn at 0.5 on the log axis
        ax.plot(xs, [results["hints"][n][key] for n in counts], "o-", label=results["model"])
        ax.axhline(results["automatic"][key], color="gray", ls="--", label=f"{results['baseline']} (automatic)")
        ax.set_xscale("log")
        ax.set_xticks(xs)
        ax.set_xticklabels([str(n) for n in counts])
        ax.set_xlabel("hints from the true colors")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{results['photos']} held-out photos (256x256), hints simulated as in training", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tinct-lite2-hints")
    ap.add_argument("--baseline", default="default", help="the automatic model to compare with")
    ap.add_argument("--corpus", type=Path, default=Path("~/data/corpus/manifest.jsonl").expanduser())
    ap.add_argument("--limit", type=int, default=300, help="evenly spaced val photos (default 300)")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--counts", type=int, nargs="+", default=list(COUNTS))
    ap.add_argument("--plot", type=Path, default=None, help="write the curve here (e.g. docs/hints-curve.png)")
    ap.add_argument("--out", type=Path, default=ROOT / "eval" / "hints.json")
    ap.add_argument("--no-timing", action="store_true", help="skip the hint-update timing")
    ap.add_argument("--only-timing", action="store_true", help="only the hint-update timing")
    args = ap.parse_args()
    if args.only_timing:
        print(json.dumps(time_update(args.model), indent=1))
        return
    if not args.corpus.is_file():
        sys.exit(f"hints: the corpus manifest {args.corpus} is absent (docs/data.md builds it)")

    from tinct.evaluate import load_eval_set
    from tinct.pipeline import Colorizer

    torch.set_num_threads(2)
    items = load_eval_set([args.corpus], args.size, args.limit)
    hinted = score_counts(Colorizer(args.model, render_size=args.size), items, tuple(args.counts))
    automatic = score_automatic(Colorizer(args.baseline, render_size=args.size), items)
    timing = time_update(args.model) if not args.no_timing else {"update_ms": float("nan"), "prepare_ms": float("nan"), "photo": "-", "render_size": 0}
    results = {"model": args.model, "baseline": args.baseline, "photos": len(items), "size": args.size,
               "hints": hinted, "automatic": automatic, "timing": timing}
    print(f"{len(items)} held-out photos of {args.corpus} ({args.size}x{args.size} center crops); "
          f"hints drawn from the true colors\n")
    print("| hints | PSNR (dB) | AuC (%) | PSNR vs 0 hints |\n|---:|---:|---:|---:|")
    for n in args.counts:
        r = hinted[n]
        print(f"| {n} | {r['psnr']:.2f} | {r['auc']:.2f} | {r['psnr'] - hinted[args.counts[0]]['psnr']:+.2f} |")
    print(f"| {args.baseline} (automatic) | {automatic['psnr']:.2f} | {automatic['auc']:.2f} | |")
    if 0 in hinted:
        print(f"\nno hint vs {args.baseline}: PSNR {hinted[0]['psnr'] - automatic['psnr']:+.2f} dB, "
              f"AuC {hinted[0]['auc'] - automatic['auc']:+.2f} (target: within 0.3)")
    if 0 in hinted and 10 in hinted:
        print(f"10 hints vs none: {hinted[10]['psnr'] - hinted[0]['psnr']:+.2f} dB (target: +2 dB)")
    print(f"one hint update on a {timing['photo']} photo at render size {timing['render_size']}: "
          f"{timing['update_ms']:.0f} ms (head + compose + JPEG; preparing the photo once: {timing['prepare_ms']:.0f} ms)")
    if timing.get("http_ms") is not None:
        print(f"the same update through the web page's API (POST /api/photos/ID/colorize): {timing['http_ms']:.0f} ms")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    if args.plot:
        plot(results, args.plot)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
