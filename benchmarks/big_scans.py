"""Archive-size scans: time and peak memory of ``tinct colorize`` on one huge photo, and where the time goes.

    python benchmarks/big_scans.py [--model default] [--keep DIR]

Two generated files (issue #24): an 8000x6000 gray JPEG (48 MP, noise upsampled so it compresses
like a scan) and an all-black 9500x9500 PNG (90 MP in an 88-KB file). Each is colorized by a
fresh ``tinct colorize`` process (model loading included); wall time and the child's peak RSS
(``getrusage``) are printed against the targets (48 MP: <= 8 s and <= 1.0 GB; the PNG: <= 15 s
and <= 1.2 GB). Then the stages of the same work in this process: reading, lightness, the network
at the render size, composition at full size (chroma upsampling, gamut fitting, Lab -> RGB), writing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

Image.MAX_IMAGE_PIXELS = None  # these files are made here; tinct's own pixel cap applies in the runs
TARGETS = {"scan-48mp.jpg": (8.0, 1.0), "black-9500.png": (15.0, 1.2)}  # seconds, GB


def make_files(folder: Path) -> list[Path]:
    rng = np.random.default_rng(0)
    noise = Image.fromarray((rng.random((600, 800)) * 255).astype(np.uint8))
    scan = folder / "scan-48mp.jpg"
    noise.resize((8000, 6000), Image.BILINEAR).save(scan, quality=90)
    black = folder / "black-9500.png"
    Image.new("L", (9500, 9500), 0).save(black)
    return [scan, black]


# A fresh parent per measurement: RUSAGE_CHILDREN's peak is the largest child the parent ever had.
MEASURE = """
import resource, subprocess, sys, time
t = time.perf_counter()
subprocess.run(sys.argv[1:], check=True)
print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def run_fresh(path: Path, out: Path, model: str) -> tuple[float, float]:
    """Seconds and peak RSS (GB) of a fresh ``tinct colorize`` process on ``path``."""
    cmd = [sys.executable, "-m", "tinct.cli", "colorize", str(path), "-o", str(out), "--model", model,
           "-q", "--overwrite"]
    res = subprocess.run([sys.executable, "-c", MEASURE, *cmd], check=True, capture_output=True, text=True)
    seconds, peak_kb = res.stdout.split()
    return float(seconds), float(peak_kb) / 1024 / 1024


def stages(path: Path, out: Path, model: str) -> dict[str, float]:
    import torch

    from tinct import imageio as tio
    from tinct.pipeline import Colorizer, lightness_of

    c = Colorizer(model)
    times = {}
    t = time.perf_counter()
    img = tio.read_image(path)
    times["read"] = time.perf_counter() - t
    with torch.inference_mode():
        t = time.perf_counter()
        L = lightness_of(img.pixels)
        times["lightness"] = time.perf_counter() - t
        t = time.perf_counter()
        small = c.predict_small(L)
        times["network at the render size"] = time.perf_counter() - t
        t = time.perf_counter()
        rgb = c.compose(L, small["ab"], np.uint8)
        times["compose (upsample, gamut fit, Lab->RGB)"] = time.perf_counter() - t
    t = time.perf_counter()
    tio.write_image(out / f"stages{path.suffix}", rgb, exif=img.exif, icc_profile=img.icc_profile, bit_depth=img.bit_depth)
    times["write"] = time.perf_counter() - t
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--keep", type=Path, default=None, help="keep the generated files and outputs here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        files = make_files(folder)
        print("| file | pixels | seconds | target | peak RSS | target |\n|---|---:|---:|---:|---:|---:|")
        for f in files:
            w, h = Image.open(f).size
            s, gb = run_fresh(f, folder / "out", args.model)
            ts, tg = TARGETS[f.name]
            print(f"| {f.name} | {w * h / 1e6:.0f} MP | {s:.1f} | <= {ts:.0f} | {gb:.2f} GB | <= {tg:.1f} GB |", flush=True)
        for f in files:
            print(f"\nstages of {f.name}, seconds:")
            for name, sec in stages(f, folder / "out", args.model).items():
                print(f"  {name}: {sec:.2f}")


if __name__ == "__main__":
    main()
