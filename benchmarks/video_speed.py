"""Frames per second of ``tinct colorize film.mp4`` on this machine, and where the time goes.

    python benchmarks/video_speed.py [--model default] [--size 640x480] [--frames 96] [--repeats 2]

The clip is generated (no data file): a window sliding across scikit-image's ``astronaut()``
and ``coffee()`` in gray, H.264 at 24 fps, ``--size`` pixels. Timed end to end through the CLI
path (``tinct.video.colorize_video``: decoding, lightness, the network on batches of frames,
temporal smoothing, full-resolution composition, H.264 encoding), median of ``--repeats``
runs after a warm-up, at the default render size and at the frame's own size when smaller.
Then the stages of one batch of 4 frames, timed apart. Target (issue #25): >= 8 frames/s at
640x480 on two cores.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def make_clip(path: Path, width: int, height: int, frames: int) -> None:
    """A gray clip panning across two photos (H.264, 24 fps)."""
    import av
    from skimage import data, transform

    sources = [transform.resize(np.asarray(data.astronaut(), np.float32) / 255, (height * 2, width * 2)),
               transform.resize(np.asarray(data.coffee(), np.float32) / 255, (height * 2, width * 2))]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            src = sources[0] if i < frames // 2 else sources[1]
            x = (i * 4) % width
            rgb = src[height // 2: height // 2 + height, x: x + width]
            gray = (rgb @ np.array([0.299, 0.587, 0.114], np.float32))
            frame = (np.repeat(gray[..., None], 3, axis=2) * 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def stages(colorizer, width: int, height: int) -> dict[str, float]:
    """Milliseconds per frame of each stage, on a batch of 4 frames (median of 5)."""
    from tinct.pipeline import lightness_of

    frames = [np.random.default_rng(i).random((height, width, 3), dtype=np.float32) for i in range(4)]

    def timed(fn) -> float:
        fn()
        runs = []
        for _ in range(5):
            t = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - t)
        return 1000 * statistics.median(runs) / len(frames)

    with torch.inference_mode():
        L = [lightness_of(f) for f in frames]
        Ls = [colorizer.render_lightness(x) for x in L]
        ab = colorizer.predict_rendered(torch.cat(Ls))
        return {"lightness": timed(lambda: [lightness_of(f) for f in frames]),
                "resize to render size": timed(lambda: [colorizer.render_lightness(x) for x in L]),
                "network + decoding (batch of 4)": timed(lambda: colorizer.predict_rendered(torch.cat(Ls))),
                "compose at full size": timed(lambda: [colorizer.compose(x, a[None], np.uint8)
                                                       for x, a in zip(L, ab)])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--frames", type=int, default=96)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--backend", nargs="+", default=["torch", "onnx"], help="network runtimes to time")
    args = ap.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))

    from tinct.defaults import DEFAULT_RENDER_SIZE
    from tinct.pipeline import Colorizer
    from tinct.video import colorize_video

    print(f"{args.frames} frames of {width}x{height}, model {args.model}, {torch.get_num_threads()} torch threads")
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.mp4"
        make_clip(clip, width, height, args.frames)
        print("| backend | render size | frames/s | ms / frame |\n|---|---:|---:|---:|")
        for backend, render in [(b, r) for b in args.backend
                                for r in sorted({min(DEFAULT_RENDER_SIZE, max(width, height)), DEFAULT_RENDER_SIZE})]:
            colorizer = Colorizer(args.model, render_size=render, backend=backend)
            colorize_video(colorizer, clip, Path(tmp) / "warm.mp4", progress=False)
            runs = []
            for r in range(args.repeats):
                t = time.perf_counter()
                colorize_video(colorizer, clip, Path(tmp) / f"out{r}.mp4", progress=False)
                runs.append(time.perf_counter() - t)
            sec = statistics.median(runs)
            print(f"| {backend} | {render} | {args.frames / sec:.1f} | {1000 * sec / args.frames:.0f} |", flush=True)
        for backend in args.backend:
            print(f"\nStages at render size {DEFAULT_RENDER_SIZE}, {backend}, ms per frame:")
            for name, ms in stages(Colorizer(args.model, backend=backend), width, height).items():
                print(f"  {name}: {ms:.1f}")


if __name__ == "__main__":
    sys.exit(main())
