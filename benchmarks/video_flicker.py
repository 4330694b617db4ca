"""How much does temporal smoothing reduce flicker, what does it cost, and are cuts respected?

Two generated clips (no data files: scikit-image's sample photos, converted to gray):

* **still**: a fixed 320x240 window of ``astronaut()`` with per-frame grain (Gaussian, sigma
  2 gray levels) and exposure flicker (brightness x N(1, 0.03)), as in old film;
* **pan**: the window sliding 2 px per frame across ``astronaut()``, with the same grain;
* **cut**: the same pan for half the frames, then a pan over ``coffee()``: one hard cut.

The model colorizes every frame once (render size = frame size, so ab maps sit on the frame's
pixel grid); the smoothers are then applied to those predictions:

* ``none``: the per-frame prediction;
* ``ema-global``: a plain EMA (``motion=None``), reset at cuts;
* ``ema``: tinct's default, the motion-adaptive EMA, reset at cuts.

Printed, in Lab units (ab spans about -110..110), averaged over pixels and frame pairs:

* ``flicker``: mean |ab_t - ab_(t-1)| (frame to frame);
* ``flicker-mc``: the same after undoing the known pan (ab_t[x] vs ab_(t-1)[x + 2]): the change
  that is not explained by motion, i.e. the flicker one sees;
* ``lag``: mean |smoothed - per-frame prediction|: how far smoothing moves the colors (in a
  still scene that is the flicker removed; in motion it includes trails);
* for the cut clip: the ab change across the cut (it should stay close to ``none``'s: a reset)
  and the carry-over of the first scene into the next 4 frames: mean |smoothed - the same
  smoother started at the cut| / mean |prediction - last frame of scene 1| (0 = none). The
  row ``ema, no cuts`` (cut detection off) shows what a missed cut would do.

Usage: ``python benchmarks/video_flicker.py [--model NAME_OR_PATH] [--frames 48] [--out DIR]``.
The default model is the shipped ``default`` when present, else a freshly built
``hypercolumns`` (ImageNet backbone, random head: flicker is still measured, colors are not
meaningful). ``--out DIR`` also writes the clips and their colorizations (none / ema) as MP4.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from skimage import data

from tinct import Colorizer
from tinct.pipeline import lightness_of
from tinct.video import TemporalSmoother, colorize_frames

W, H, STEP = 320, 240, 2


def _gray(img: np.ndarray) -> np.ndarray:
    """(H,W,3) uint8 RGB -> (H,W) float32 gray levels (Rec. 601 luma)."""
    return img[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def pan_frames(photo: np.ndarray, n: int, seed: int, grain: float, start: int = 0, step: int = STEP,
               exposure: float = 0.0) -> list[np.ndarray]:
    """n gray RGB uint8 frames (H,W,3): a W x H window moving ``step`` px right per frame, plus
    grain (sigma in gray levels) and exposure flicker (relative sigma of a per-frame gain)."""
    g = _gray(photo)
    need = W + step * (start + n)
    if g.shape[1] < need or g.shape[0] < H:
        scale = max(need / g.shape[1], H / g.shape[0])
        t = torch.from_numpy(g)[None, None]
        g = torch.nn.functional.interpolate(t, scale_factor=scale, mode="bilinear", antialias=True,
                                            align_corners=False)[0, 0].numpy()
    top = (g.shape[0] - H) // 2
    rng = np.random.default_rng(seed)
    out = []
    for i in range(start, start + n):
        gain = 1.0 + (rng.normal(0, exposure) if exposure else 0.0)
        f = g[top:top + H, step * i:step * i + W] * gain + rng.normal(0, grain, (H, W))
        f = np.clip(f + 0.5, 0, 255).astype(np.uint8)
        out.append(np.repeat(f[..., None], 3, axis=2))
    return out


def load_colorizer(name: str | None, render_size: int) -> tuple[Colorizer, str]:
    from tinct.models import build_model
    from tinct.weights import load_weights, resolve, shipped_weights

    if name:
        return Colorizer(load_weights(resolve(name)), render_size=render_size), name
    if "default" in shipped_weights():
        return Colorizer("default", render_size=render_size), "shipped default"
    torch.manual_seed(0)
    return Colorizer(build_model("hypercolumns").eval(), render_size=render_size), \
        "hypercolumns (ImageNet backbone, random head)"


def predict(colorizer: Colorizer, frames: list[np.ndarray]) -> tuple[list[torch.Tensor], list[torch.Tensor], float]:
    """Per-frame L and ab at the render size (no smoothing), and seconds per frame."""
    t0 = time.perf_counter()
    abs_ = [r.raw_ab for r in colorize_frames(colorizer, frames, smoothing="none")]
    per_frame = (time.perf_counter() - t0) / len(frames)
    Ls = [colorizer.render_lightness(lightness_of(f.astype(np.float32) / 255)) for f in frames]
    return Ls, abs_, per_frame


def smooth(Ls: list[torch.Tensor], abs_: list[torch.Tensor], variant: str) -> tuple[list[torch.Tensor], list[int]]:
    """Apply a smoother variant to per-frame predictions -> (smoothed ab maps, cut indices)."""
    sm = {"none": lambda: TemporalSmoother(enabled=False), "ema-global": lambda: TemporalSmoother(motion=None),
          "ema": TemporalSmoother, "ema, no cuts": lambda: TemporalSmoother(cut_threshold=None)}[variant]()
    out, cuts = [], []
    for i, (L, ab) in enumerate(zip(Ls, abs_)):
        s, cut = sm(L, ab)
        out.append(s)
        if cut:
            cuts.append(i)
    return out, cuts


def flicker(seq: list[torch.Tensor], skip: set[int], shift: int = 0) -> float:
    vals = []
    for t in range(1, len(seq)):
        if t in skip:
            continue
        a, b = seq[t - 1], seq[t]
        if shift:
            a, b = a[..., shift:], b[..., :-shift]
        vals.append(float((b - a).abs().mean()))
    return float(np.mean(vals))


def lag(seq: list[torch.Tensor], ref: list[torch.Tensor]) -> float:
    return float(np.mean([float((a - b).abs().mean()) for a, b in zip(seq, ref)]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="shipped name or .safetensors (default: see module doc)")
    p.add_argument("--frames", type=int, default=48, help="frames per clip (default 48)")
    p.add_argument("--grain", type=float, default=2.0, help="per-frame grain sigma in gray levels (default 2)")
    p.add_argument("--exposure", type=float, default=0.03, help="exposure flicker of the still clip (default 0.03)")
    p.add_argument("--out", default=None, metavar="DIR", help="also write the clips and colorizations as MP4")
    args = p.parse_args(argv)

    colorizer, desc = load_colorizer(args.model, render_size=W)
    n = args.frames
    half = n // 2
    astronaut, coffee = data.astronaut(), data.coffee()
    clips = {
        "still": pan_frames(astronaut, n, seed=0, grain=args.grain, step=0, exposure=args.exposure),
        "pan": pan_frames(astronaut, n, seed=1, grain=args.grain),
        "cut": pan_frames(astronaut, half, seed=2, grain=args.grain)
        + pan_frames(coffee, n - half, seed=3, grain=args.grain),
    }
    print(f"model: {desc}; frames {W}x{H}, render size {W}, {n} frames per clip, pan {STEP} px/frame, "
          f"grain sigma {args.grain}, exposure flicker {args.exposure}; torch threads {torch.get_num_threads()}")
    variants = ("none", "ema-global", "ema")
    head = f"  {'smoothing':<13} {'flicker':>8} {'flicker-mc':>11} {'lag':>6} {'cuts at':>8}"
    for name in ("still", "pan"):
        Ls, raw, spf = predict(colorizer, clips[name])
        shift = 0 if name == "still" else STEP
        print(f"\n{name} clip ({spf * 1000:.0f} ms/frame to colorize):\n{head}")
        for v in variants:
            seq, cuts = smooth(Ls, raw, v)
            print(f"  {v:<13} {flicker(seq, set()):8.2f} {flicker(seq, set(), shift):11.2f} {lag(seq, raw):6.2f} "
                  f"{','.join(map(str, cuts)) or '-':>8}")

    Ls, raw, _ = predict(colorizer, clips["cut"])
    print(f"\ncut clip (astronaut -> coffee at frame {half}):\n{head} {'change@cut':>11} {'carry-over':>11}")
    base_change = float((raw[half] - raw[half - 1]).abs().mean())
    changes = {}
    for v in (*variants, "ema, no cuts"):
        seq, cuts = smooth(Ls, raw, v)
        fresh, _ = smooth(Ls[half:], raw[half:], v)  # the same smoother started at the cut
        change = changes[v] = float((seq[half] - seq[half - 1]).abs().mean())
        carry = np.mean([float((seq[half + k] - fresh[k]).abs().mean())
                         / max(1e-6, float((raw[half + k] - raw[half - 1]).abs().mean()))
                         for k in range(min(4, n - half))])
        print(f"  {v:<13} {flicker(seq, {half}):8.2f} {flicker(seq, {half}, STEP):11.2f} {lag(seq, raw):6.2f} "
              f"{','.join(map(str, cuts)) or '-':>8} {change:11.2f} {carry:11.3f}")
    print(f"  cut respected by ema: ab change across the cut {changes['ema']:.2f} vs {base_change:.2f} unsmoothed "
          f"({100 * changes['ema'] / max(base_change, 1e-6):.0f}%)")

    if args.out:
        _write_clips(Path(args.out), colorizer, clips)
    return 0


def _write_clips(out: Path, colorizer: Colorizer, clips: dict[str, list[np.ndarray]]) -> None:
    import av

    from tinct.video import colorize_video

    out.mkdir(parents=True, exist_ok=True)
    for name, frames in clips.items():
        src = out / f"{name}.mp4"
        with av.open(str(src), "w") as c:
            s = c.add_stream("libx264", rate=24, options={"crf": "12"})
            s.width, s.height, s.pix_fmt = W, H, "yuv420p"
            for f in frames:
                c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
            c.mux(s.encode(None))
        for mode in ("none", "ema"):
            res = colorize_video(colorizer, src, out / f"{name}.{mode}.mp4", smoothing=mode, progress=False)
            print(f"wrote {res.path} ({res.frames} frames, {res.frames / res.seconds:.1f} frames/s end to end, "
                  f"cuts at {res.cuts})", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
