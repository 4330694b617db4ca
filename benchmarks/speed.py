"""Speed and memory of tinct on this machine; prints tables (README numbers come from here).

    python benchmarks/speed.py [--model default] [--photos DIR] [--count 24] [--repeats 3]

1. Network forward at 256^2 for the shipped models and for a reference network with Zhang
   et al.'s ECCV16 generator shapes (random weights), in the same run, as a ratio.
2. End to end: ``tinct colorize`` on a folder of ~0.8-MP JPEG photos (decode, color, network,
   encode; model loading amortised over the folder), ms per photo and its ratio to the ECCV16
   forward (DESIGN.md's goal: <= 0.25), per backend and ``--threads``, the combinations
   alternated ``--repeats`` times (median).
3. Peak memory (max RSS of a fresh process) colorizing one 12-MP photo.

Photos: ../shared/data/test/sun_hays80 when present (mostly 1024x768), else generated ones.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eccv16_reference import reference as eccv16_reference  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "test" / "sun_hays80"


def median_ms(fn, repeat: int = 7, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))


def make_photos(folder: Path, count: int, src: Path | None) -> list[Path]:
    """~0.8-MP gray JPEGs in ``folder``: copies of ``src`` photos, or generated ones."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    sources = sorted(src.glob("*.jpg"))[:count] if src and src.is_dir() else []
    for i in range(count):
        if sources:
            im = Image.open(sources[i % len(sources)]).convert("L")
        else:
            rng = np.random.default_rng(i)
            base = rng.integers(0, 255, (24, 32), dtype=np.uint8)
            im = Image.fromarray(base).resize((1024, 768), Image.BICUBIC)
        p = folder / f"photo_{i:03d}.jpg"
        im.save(p, quality=90)
        paths.append(p)
    return paths


def peak_rss_12mp(model: str, render_size: int) -> float:
    """MiB of max RSS of a child process that colorizes one 4000x3000 photo."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "big.jpg"
        y, x = np.mgrid[0:3000, 0:4000]
        Image.fromarray(((np.sin(x / 97) * np.cos(y / 59) + 1) * 120).astype(np.uint8)).save(src, quality=90)
        code = ("import sys, resource; from tinct.cli import main; "
                f"rc = main(['colorize', {str(src)!r}, '-o', {str(Path(tmp) / 'out')!r}, '--model', {model!r}, "
                f"'--render-size', '{render_size}', '-q']); "
                "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        return int(out.stdout.strip().splitlines()[-1]) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", help="shipped model names or weights paths (default: all shipped)")
    ap.add_argument("--photos", type=Path, default=DATA, help="folder of JPEG photos for the end-to-end run")
    ap.add_argument("--count", type=int, default=24)
    ap.add_argument("--render-size", type=int, default=None)
    ap.add_argument("--backends", nargs="+", default=["torch", "onnx"], help="network runtimes to time")
    ap.add_argument("--repeats", type=int, default=3,
                    help="end-to-end runs per (backend, threads), alternated so load changes hit all alike")
    args = ap.parse_args()

    import tinct
    from tinct.cli import main as cli_main
    from tinct.pipeline import DEFAULT_RENDER_SIZE
    from tinct.weights import shipped_weights

    render = args.render_size or DEFAULT_RENDER_SIZE
    names = args.model or sorted({p.stem for p in shipped_weights().values()})
    print(f"machine: {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads")

    ref = eccv16_reference()
    L256 = torch.rand(1, 1, 256, 256) * 100
    with torch.inference_mode():
        ref_ms = median_ms(lambda: ref(L256))
    print("\nNetwork forward at 256^2 (median of 7)\n| network | ms | ratio to ECCV16 |\n|---|---:|---:|")
    print(f"| ECCV16 reference (32.2 M params) | {ref_ms:.1f} | 1.00 |")
    for name in names:
        model = tinct.load_model(name)
        with torch.inference_mode():
            ms = median_ms(lambda m=model: m.predict_ab(L256))
        print(f"| {name} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f} M params) | {ms:.1f} | {ms / ref_ms:.2f} |")

    print(f"\nEnd to end: tinct colorize on a folder of JPEGs (render size {render})")
    print(f"(median of {args.repeats} alternated runs per row; --threads sets PyTorch's and onnxruntime's threads)")
    print("| model | backend | threads | photos | mean size | ms / photo | ratio to ECCV16 forward |")
    print("|---|---|---:|---:|---:|---:|---:|")
    threads0 = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:
        photos = make_photos(Path(tmp) / "in", args.count, args.photos)
        mp = np.mean([np.prod(Image.open(p).size) for p in photos]) / 1e6
        for name in names:
            combos = [(b, t) for b in args.backends for t in sorted({1, threads0})]
            for backend, threads in combos:  # warm-up: export/cache the ONNX file, as a user's second run would
                cli_main(["colorize", str(photos[0]), "-o", str(Path(tmp) / "warm"), "--model", name,
                          "--backend", backend, "--threads", str(threads), "-q", "--overwrite"])
            times: dict[tuple[str, int], list[float]] = {c: [] for c in combos}
            for _ in range(args.repeats):  # the combinations alternate within each round
                for backend, threads in combos:
                    out = Path(tmp) / f"out_{name}_{backend}_{threads}"
                    t = time.perf_counter()
                    rc = cli_main(["colorize", str(Path(tmp) / "in"), "-o", str(out), "--model", name,
                                   "--render-size", str(render), "--backend", backend, "--threads", str(threads),
                                   "-q", "--overwrite"])
                    times[(backend, threads)].append(1000 * (time.perf_counter() - t) / len(photos))
                    assert rc == 0
            for (backend, threads), ts in times.items():
                per = float(np.median(ts))
                print(f"| {name} | {backend} | {threads} | {len(photos)} | {mp:.2f} MP | {per:.0f} | "
                      f"{per / ref_ms:.2f} |", flush=True)
        torch.set_num_threads(threads0)
        print("\nPeak memory colorizing one 12-MP photo (4000x3000, max RSS of a fresh process)")
        print("| model | peak RSS |\n|---|---:|")
        for name in names:
            print(f"| {name} | {peak_rss_12mp(name, render):.0f} MiB |", flush=True)
    src = "sun_hays80" if args.photos.is_dir() else "generated"
    print(f"\n(photos: {src}; the end-to-end time includes model loading once per folder)")


if __name__ == "__main__":
    main()
