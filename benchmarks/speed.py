"""Speed and memory of tinct on this machine; prints tables (README numbers come from here).

    python benchmarks/speed.py [--model default] [--photos DIR] [--count 80] [--repeats 3]

1. Network forward at 256^2 for the shipped models (float32 and bfloat16, through the runtime
   ``tinct colorize`` uses: norms folded) and for a reference network with Zhang et al.'s
   ECCV16 generator shapes (random weights, float32), in the same run, as a ratio.
2. End to end, as a user runs it: ``tinct colorize DIR -o OUT -q`` as a fresh process on a
   folder of ``--count`` ~0.8-MP gray JPEGs (process start, imports and model loading
   included), ms per photo and its ratio to the ECCV16 forward (issue #24's goal: <= 0.25), per
   backend, precision and ``--threads``, the combinations alternated ``--repeats`` times
   (median). The same command on one photo gives the fixed cost, and (T_N - T_1) / (N - 1) the
   cost of each further photo.
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


def _auto_precision() -> str:
    from tinct.runtime import native_bfloat16

    return "bfloat16" if native_bfloat16() else "float32"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", help="shipped model names or weights paths (default: all shipped)")
    ap.add_argument("--photos", type=Path, default=DATA, help="folder of JPEG photos for the end-to-end run")
    ap.add_argument("--count", type=int, default=80)
    ap.add_argument("--render-size", type=int, default=None)
    ap.add_argument("--backends", nargs="+", default=["torch", "onnx"], help="network runtimes to time")
    ap.add_argument("--repeats", type=int, default=3,
                    help="end-to-end runs per (backend, threads), alternated so load changes hit all alike")
    args = ap.parse_args()

    import tinct
    from tinct.pipeline import DEFAULT_RENDER_SIZE
    from tinct.runtime import TorchRuntime
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
        for precision in ("float32", "bfloat16"):
            runtime = TorchRuntime(model, precision)
            with torch.inference_mode():
                ms = median_ms(lambda r=runtime, m=model: m.predict_ab(L256, network=r.forward))
            print(f"| {name} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f} M params), {precision} | "
                  f"{ms:.1f} | {ms / ref_ms:.2f} |")

    print(f"\nEnd to end: `tinct colorize DIR -o OUT -q` in a fresh process (render size {render})")
    print(f"(median of {args.repeats} alternated runs per row; process start and model loading included)")
    print("| model | backend | precision | threads | ms / photo, 1 photo | ms / photo, "
          f"{args.count} photos | ratio to ECCV16 forward | each further photo | its ratio |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    threads0 = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:
        photos = make_photos(Path(tmp) / "in", args.count, args.photos)
        one = Path(tmp) / "one"
        one.mkdir()
        (one / photos[0].name).write_bytes(photos[0].read_bytes())
        for name in names:
            combos = [(b, p, t) for b in args.backends for p in (["auto", "float32"] if b == "torch" else ["-"])
                      for t in sorted({1, threads0})]

            def run(folder: Path, backend: str, precision: str, threads: int, name: str = name) -> float:
                cmd = [sys.executable, "-m", "tinct.cli", "colorize", str(folder), "-o", str(Path(tmp) / "out"),
                       "--model", name, "--render-size", str(render), "--backend", backend,
                       "--threads", str(threads), "-q", "--overwrite"]
                if precision != "-":
                    cmd += ["--precision", precision]
                t = time.perf_counter()
                subprocess.run(cmd, check=True)
                return time.perf_counter() - t

            for combo in combos:  # warm-up: export/cache the ONNX file and the disk cache, as a user's second run
                run(one, *combo)
            times: dict[tuple, list[tuple[float, float]]] = {c: [] for c in combos}
            for _ in range(args.repeats):  # the combinations alternate within each round
                for combo in combos:
                    times[combo].append((run(one, *combo), run(Path(tmp) / "in", *combo)))
            for (backend, precision, threads), ts in times.items():
                t1 = float(np.median([a for a, _ in ts]))
                tn = float(np.median([b for _, b in ts]))
                per = 1000 * tn / len(photos)
                further = 1000 * (tn - t1) / (len(photos) - 1)
                shown = precision if precision != "auto" else f"auto ({_auto_precision()})"
                print(f"| {name} | {backend} | {shown} | {threads} | {1000 * t1:.0f} | {per:.0f} | "
                      f"{per / ref_ms:.2f} | {further:.0f} | {further / ref_ms:.2f} |", flush=True)
        mp = np.mean([np.prod(Image.open(p).size) for p in photos]) / 1e6
        print(f"({len(photos)} gray JPEGs, {mp:.2f} MP on average)")
        torch.set_num_threads(threads0)
        print("\nPeak memory colorizing one 12-MP photo (4000x3000, max RSS of a fresh process)")
        print("| model | peak RSS |\n|---|---:|")
        for name in names:
            print(f"| {name} | {peak_rss_12mp(name, render):.0f} MiB |", flush=True)
    src = "sun_hays80" if args.photos.is_dir() else "generated"
    print(f"\n(photos: {src}; end to end includes process start, imports and model loading)")


if __name__ == "__main__":
    main()
