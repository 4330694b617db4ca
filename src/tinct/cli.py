"""The ``tinct`` command line: colorize | suggest | train | evaluate | models | export | serve.

Every user-caused error (a ``tinct.errors.TinctError``, or the system refusing a file) and every
warning is one line on stderr, exit code 2; anything else is a bug and keeps its traceback, with
a line asking to report it (exit code 3). ``colorize`` goes on past a bad file, keeps outputs
that exist (counted in its summary, not failures) and exits 1 if any file failed. Imports are
lazy: ``tinct --help`` does not import torch. Run ``tinct COMMAND --help`` for each command's flags.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import itertools
import logging
import os
import re
import sys
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import TinctError, UsageError

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_BUG = 0, 1, 2, 3


class UserError(UsageError):
    """A bad combination of command-line flags; printed as one line."""


# ----------------------------------------------------------------------------- colorize
WILDCARDS = "*?["
# tinct.video writes a video into ".<stem>.<8 hex digits>.partial<ext>" next to it, then renames it.
VIDEO_TEMPORARY_NAME = re.compile(r"\..+\.[0-9a-f]{8}\.partial\.\w+")


@dataclass
class Inputs:
    """What INPUT arguments name: sorted (file, root) pairs, and the files of other kinds left out."""

    files: list[tuple[Path, Path]] = field(default_factory=list)
    unsupported: Counter[str] = field(default_factory=Counter)  # extension -> how many files


def expand_inputs(items: Sequence[str], output: Path | None = None) -> Inputs:
    """Files, folders (recursive) and globs -> (file, root) pairs; root is where relative paths start.

    A folder is its own root and a glob's root is its fixed prefix (``photos`` for
    ``photos/**/*.png``), so outputs keep the sub-folders; a named file's root is its folder.
    Folders and globs leave out the ``output`` folder when it lies inside them (an earlier run's
    outputs), folders also hidden files, and both count files that are not supported images in
    ``Inputs.unsupported`` instead of listing them.
    """
    found = Inputs()
    for item in items:
        p = Path(item).expanduser()
        if p.is_dir():
            skip = _inner_output(p, output)
            files = [f for f in p.rglob("*") if f.is_file() and not _hidden(f, p) and not _inside(f, p, skip)]
            _add_walked(found, item, p, files, "no images found in this folder")
        elif p.exists():
            found.files.append((p, p.parent))
        elif any(ch in item for ch in WILDCARDS):
            pattern = os.path.expanduser(item)
            root = glob_root(pattern)
            skip = _inner_output(root, output)
            matches = [Path(m) for m in glob.glob(pattern, recursive=True)]
            if not matches:
                raise UserError(f"{item}: the pattern matches no file")
            files = [f for f in matches if f.is_file() and not _inside(f, root, skip)]
            _add_walked(found, item, root, files, "the pattern matches no image file")
        else:
            raise UserError(f"{item}: no such file or folder")
    return found


def glob_root(pattern: str) -> Path:
    """The leading folders of a glob pattern without wildcards: ``photos`` for ``photos/**/*.png``, ``.`` for ``*.png``."""
    fixed = itertools.takewhile(lambda part: not any(ch in part for ch in WILDCARDS), Path(pattern).parts[:-1])
    return Path(*fixed)


def _add_walked(found: Inputs, item: str, root: Path, files: list[Path], nothing: str) -> None:
    """Add the images among the ``files`` a folder or glob ``item`` gave; count the others."""
    from .imageio import is_image_path

    images = sorted(f for f in files if is_image_path(f))
    others = Counter(f.suffix.lower() or "no extension" for f in files if not is_image_path(f))
    if not images:
        raise UserError(f"{item}: {nothing}" + (f" (only {_kinds(others)})" if others else ""))
    found.files += [(f, root) for f in images]
    found.unsupported += others


def _kinds(counts: Counter[str]) -> str:
    """{".gif": 2, ".txt": 1} -> "2 .gif, 1 .txt"."""
    return ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))


def _hidden(f: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in f.relative_to(root).parts)


def _inner_output(root: Path, output: Path | None) -> tuple[str, ...] | None:
    """The output folder's path below ``root`` when it lies strictly inside it, else None."""
    if output is None:
        return None
    try:
        parts = output.resolve().relative_to(root.resolve()).parts
    except ValueError:
        return None
    return parts or None  # the root itself: its files are inputs (and are never overwritten)


def _inside(f: Path, root: Path, skip: tuple[str, ...] | None) -> bool:
    """True when ``f`` lies in the folder ``skip`` (path parts below ``root``)."""
    return skip is not None and f.relative_to(root).parts[:len(skip)] == skip


def plan_outputs(inputs: list[tuple[Path, Path]], out_dir: Path, fmt: str | None) -> list[tuple[Path, Path, str | None]]:
    """(input, output, problem) for each input; inputs are never overwritten, names never collide."""
    plan: list[tuple[Path, Path, str | None]] = []
    taken: dict[Path, Path] = {}
    for src, root in inputs:
        rel = src.relative_to(root)
        dst = out_dir / rel
        if fmt:
            dst = dst.with_suffix("." + fmt.lstrip("."))
        problem = None
        key = dst.resolve()
        if key == src.resolve():
            problem = "the output would overwrite the input; choose another -o folder"
        elif key in taken:
            problem = f"output name collides with {taken[key]}; colorize them into separate folders"
        else:
            taken[key] = src
        plan.append((src, dst, problem))
    return plan


def cmd_colorize(args: argparse.Namespace) -> int:
    from .defaults import HINT_MODEL
    from .imageio import SUPPORTED_EXTENSIONS
    from .pipeline import Colorizer
    from .video import is_video_path

    started = time.time()
    if args.format and "." + args.format.lstrip(".").lower() not in SUPPORTED_EXTENSIONS:
        raise UserError(f"--format {args.format}: choose one of {', '.join(sorted(SUPPORTED_EXTENSIONS))}")
    if args.backend == "onnx" and args.device == "cuda":
        raise UserError("--backend onnx runs on the CPU; drop --device cuda")
    videos = [Path(i) for i in args.inputs if is_video_path(i) and Path(i).is_file()]
    images = [i for i in args.inputs if Path(i) not in videos]
    if videos and (args.samples or args.confidence or args.style):
        raise UserError("--samples, --confidence and --style apply to photos, not to videos")
    out_dir = Path(args.output)
    inputs = expand_inputs(images, out_dir) if images else Inputs()
    plan = plan_outputs(inputs.files, out_dir, args.format)
    options = {}
    if args.temperature is not None:
        options["temperature"] = args.temperature
    if args.seed is not None:
        options["seed"] = args.seed
    if args.hints and videos:
        raise UserError("--hints applies to photos, not to videos")
    if args.hints and args.hints != "auto" and len(plan) != 1:
        raise UserError(f"--hints {args.hints} names the hints of one photo; {len(plan)} photos were given "
                        "(use --hints auto for <name>.hints.json beside each photo)")
    if args.hints and args.model == "default":
        args.model = HINT_MODEL
    # auto: photos on PyTorch, videos on onnxruntime when installed: the faster runtime for each,
    # measured end to end (benchmarks/speed.py, benchmarks/video_speed.py)
    photo_backend = "torch" if args.backend == "auto" or args.device == "cuda" else args.backend
    threads = apply_threads(args)
    colorizer = Colorizer(args.model, render_size=args.render_size, decode=args.decode, device=args.device,
                          name=args.model, backend=photo_backend, threads=threads, **options)
    extra = photo_options(colorizer, args)  # every check before anything is written or drawn
    tally: Counter[str] = Counter()
    if out_dir.is_dir():
        tally["removed"] = remove_stale_temporaries(out_dir, started)
    if videos:
        video_colorizer = colorizer
        if args.backend == "auto" and args.device == "cpu":
            video_colorizer = Colorizer(colorizer.runtime.model, render_size=args.render_size, decode=args.decode,
                                        name=args.model, backend="auto", threads=threads, **options)
        tally += colorize_videos(video_colorizer, videos, args)
    tally += colorize_photos(colorizer, plan, args, extra)
    if not args.quiet:
        print(summary(tally, inputs.unsupported, args.output, args.samples), file=sys.stderr)
    elif tally["exists"]:
        print(f"tinct: note: {tally['exists']} output(s) exist and were kept; pass --skip-existing or --overwrite",
              file=sys.stderr)
    return EXIT_FAILED if tally["failed"] else EXIT_OK


def photo_options(colorizer, args: argparse.Namespace) -> dict:
    """Check --samples, --confidence and --style against the model; the options for ``colorize_files``."""
    import torch

    from .imageio import read_image

    if args.samples and "sample" not in colorizer.model.decode_methods:
        raise UserError(f"--samples needs a histogram model; {args.model} has no 'sample' decoder")
    if args.confidence:
        with torch.no_grad():
            probe = colorizer.model.confidence(colorizer.model(torch.zeros(1, 1, 32, 32)))
        if probe is None:
            raise UserError(f"--confidence needs a histogram model; {args.model} predicts no distribution")
    extra: dict = {"confidence": args.confidence, "samples": args.samples or 0, "max_pixels": args.max_pixels}
    if args.seed is not None:
        extra["seed"] = args.seed
    if args.style:
        extra["style"] = read_image(args.style)
        colorizer.style_lightness(extra["style"])  # refuse a style the model cannot use
    if args.hints:
        if "hints" not in colorizer.model.forward_options:
            raise UserError(f"--hints needs a hint model such as tinct-lite2-hints; {args.model} takes no hints")
        extra["hints"] = hints_source(args.hints)
    return extra


def hints_source(option: str):
    """--hints FILE or auto -> a function photo path -> its hints (decoded JSON, or None for none)."""
    import json

    from .hints import HintError

    def read(path: Path):  # a HintError fails the one photo, not the batch
        try:
            return json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise HintError(f"hints file {path}: {getattr(exc, 'strerror', None) or exc}") from None

    if option == "auto":
        def beside(src: Path):
            path = src.with_name(f"{src.stem}.hints.json")
            return read(path) if path.is_file() else None
        return beside
    fixed = read(Path(option))
    return lambda src: fixed


def remove_stale_temporaries(out_dir: Path, started: float) -> int:
    """Remove what an earlier run killed mid-write left in ``out_dir``: tinct's hidden temporary
    photo and video files older than this run's start; returns how many."""
    from .imageio import remove_stale_temporaries as remove
    from .imageio.write import TEMPORARY_NAME

    return remove(out_dir, started, (TEMPORARY_NAME, VIDEO_TEMPORARY_NAME))


def colorize_photos(colorizer, plan: list[tuple[Path, Path, str | None]], args: argparse.Namespace,
                    extra: dict) -> Counter[str]:
    """Colorize the planned photos behind a progress bar; counts colorized, failed, skipped and exists."""
    from tqdm import tqdm

    tally: Counter[str] = Counter()
    if not plan:
        return tally
    bar = tqdm(total=len(plan), desc="colorizing", unit="img", disable=args.quiet, dynamic_ncols=True)

    def done(src: Path, dst: Path | None, err: str | None) -> None:
        if err:
            tally["failed"] += 1
            tqdm.write(f"tinct: error: {src}: {err}", file=sys.stderr)
        else:
            tally["colorized"] += 1
        bar.update(1)

    jobs = []
    try:
        for src, dst, problem in plan:
            if problem:
                done(src, None, problem)
            elif dst.exists() and not args.overwrite:  # kept, and not a failure
                tally["skipped" if args.skip_existing else "exists"] += 1
                bar.update(1)
            else:
                jobs.append((src, dst))
        colorizer.colorize_files(jobs, done, **extra)
    finally:
        bar.close()
    return tally


def summary(tally: Counter[str], unsupported: Counter[str], output: str, samples: int) -> str:
    """The one line that ends ``tinct colorize``: what was colorized, kept, skipped, removed and failed."""
    each = f" (each with {samples} samples)" if samples and tally["colorized"] else ""
    parts = [f"{tally['colorized']} colorized into {output}{each}"]
    if tally["skipped"]:
        parts.append(f"{tally['skipped']} skipped (exist)")
    if tally["exists"]:
        parts.append(f"{tally['exists']} exist (kept; pass --skip-existing to skip them quietly or --overwrite "
                     "to replace them)")
    if unsupported:
        parts.append(f"{sum(unsupported.values())} skipped (not a supported image: {_kinds(unsupported)})")
    if tally["removed"]:
        parts.append(f"{tally['removed']} stale temporary file(s) of a killed run removed")
    return ", ".join([*parts, f"{tally['failed']} failed"])


def colorize_videos(colorizer, videos: list[Path], args: argparse.Namespace) -> Counter[str]:
    """Colorize each video file (temporal smoothing per --smoothing); counts as ``colorize_photos``."""
    from .imageio import ImageError
    from .video import colorize_video_cli, video_output_path

    tally: Counter[str] = Counter()
    for src in videos:
        dst = video_output_path(src, Path(args.output))
        if dst.exists() and not args.overwrite:
            tally["skipped" if args.skip_existing else "exists"] += 1
            continue
        try:
            colorize_video_cli(colorizer, src, dst, args.smoothing, progress=not args.quiet,
                               allow_partial=args.allow_partial)
            tally["colorized"] += 1
        except (ImageError, ValueError, OSError) as exc:
            tally["failed"] += 1
            print(f"tinct: error: {src}: {exc}", file=sys.stderr)
    return tally


# ----------------------------------------------------------------------------- others
def cmd_suggest(args: argparse.Namespace) -> int:
    import json

    from .pipeline import Colorizer

    try:
        x, y = (float(v) for v in args.at.split(","))
    except ValueError:
        raise UserError(f"--at {args.at}: expected X,Y such as 120,45") from None
    hints = hints_source(args.hints)(Path(args.photo)) if args.hints else None
    colorizer = Colorizer(args.model, render_size=args.render_size, name=args.model, threads=apply_threads(args))
    colors = colorizer.suggest(args.photo, x, y, k=args.k, hints=hints)
    if args.json:
        print(json.dumps(colors))
    else:
        for c in colors:
            print(f"{c['color']}  {c['probability']:.3f}")
    return EXIT_OK


def cmd_models(args: argparse.Namespace) -> int:
    from . import list_models
    from .shipped import capabilities, training_length, traits

    info = list_models()
    print("Shipped weights (use with --model NAME; [flags] are the colorize options the model takes):")
    seen: dict[str, str] = {}
    for name, meta in info["weights"].items():
        key = meta.get("name", name)
        if key in seen and key != name:
            print(f"  {name:<30} alias of {seen[key]}")
            continue
        seen[key] = name
        m = meta.get("metrics", {})
        quality = ", ".join(f"{k}={v:.2f}" for k, v in m.items() if isinstance(v, (int, float)))
        print(f"  {name:<30} {traits(meta)} {training_length(meta)} [{_capability_text(capabilities(meta))}]; {quality}")
    print("Architectures (train with `tinct train configs/...yaml`):")
    for a in info["architectures"]:
        print(f"  {a}")
    return EXIT_OK


def _capability_text(caps: dict) -> str:
    """``capabilities`` -> "--decode expectation|annealed|... (default expectation), --samples, --style"."""
    parts = []
    if caps["decoders"]:
        parts.append(f"--decode {'|'.join(caps['decoders'])} (default {caps['default_decode']})")
    if caps["samples"]:
        parts.append("--samples")
    if caps["style"]:
        parts.append("--style")
    if caps.get("hints"):
        parts.append("--hints")
    return ", ".join(parts) or "no decoder choice"


def cmd_train(args: argparse.Namespace) -> int:
    from .train import load_config, train

    cfg = load_config(args.config)
    if args.data:
        # --data replaces the recipe's photos, corpus and feature cache included
        kept = {k: v for k, v in cfg.data.items() if k not in ("corpus", "feature_cache", "crops_per_unit")}
        cfg.data = {**kept, "roots": args.data, "labels_csv": None}
    if args.init:
        cfg.init = args.init
    run_dir = Path(args.out or Path("runs") / cfg.name)
    final = train(cfg, run_dir, resume=args.resume, max_steps=args.max_steps, device=args.device,
                  progress=not args.quiet)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"weights: {final}")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    """``tinct export``: write a model's network to ONNX, checked against PyTorch."""
    import torch

    from . import load_model
    from .export import check_opset, export_onnx

    out = Path(args.out).expanduser()
    check_opset(args.opset)
    if out.suffix.lower() != ".onnx":
        raise UsageError(f"--out {args.out}: the file name must end in .onnx")
    if out.is_dir():
        raise UsageError(f"--out {args.out} is a folder; name the .onnx file")
    if out.exists() and not args.overwrite:
        raise UsageError(f"{out} exists; pass --overwrite to replace it")
    model = load_model(args.model)
    export_onnx(model, out, opset=args.opset)
    with torch.no_grad():
        m = model.pad_multiple
        shapes = {k: tuple(v.shape) for k, v in model(torch.zeros(1, 1, 2 * m, 3 * m)).items()}
    outs = ", ".join(f"{k} {s}" for k, s in shapes.items())
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, {model.arch}, opset {args.opset}): "
          f"input L (B,1,H,W) in [0,100], H and W multiples of {m}; for L (1,1,{2 * m},{3 * m}) -> {outs}")
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate

    report = evaluate(args.data, args.model or ["default", "gray"], size=args.size, out_dir=Path(args.out),
                      limit=args.limit, progress=not args.quiet, decode=args.decode,
                      render_size=args.render_size, backend=args.backend, pseudo_labels=args.pseudo_labels,
                      threads=apply_threads(args),
                      **({"metrics": [m.strip() for m in args.metrics.split(",")]} if args.metrics else {}))
    print(report["markdown"])
    print(f"report: {Path(args.out) / 'report.md'}")
    return EXIT_OK


# ----------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    from .defaults import DEFAULT_OPSET, DEFAULT_RENDER_SIZE, HINT_MODEL, MIN_OPSET

    p = argparse.ArgumentParser(prog="tinct", description="Automatic colorization of black-and-white photos.")
    p.add_argument("--version", action="version", version=_version())
    p.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("colorize", help="colorize photos (files, folders, globs) and videos",
                       description="Colorize photos and videos. Outputs keep size, EXIF, ICC and alpha (videos: "
                                   "frame rate and audio); inputs are never overwritten.")
    c.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="image files, folders (recursive), glob patterns, or video files (.mp4 .mov .mkv .avi .webm)")
    c.add_argument("-o", "--output", default="colorized", metavar="DIR", help="output folder (default: colorized)")
    c.add_argument("-m", "--model", default="default", help="shipped model name or .safetensors path (default: default)")
    c.add_argument("--render-size", type=int, default=DEFAULT_RENDER_SIZE, metavar="N",
                   help=f"longer side the network sees, in pixels (default: {DEFAULT_RENDER_SIZE})")
    c.add_argument("--decode", default=None, metavar="METHOD",
                   help="histogram decoder: annealed, expectation, mode, median, sample (model-dependent)")
    c.add_argument("--temperature", type=float, default=None, help="annealed-mean temperature (default 0.38)")
    c.add_argument("--samples", type=int, default=0, metavar="N", help="write N sampled colorizations per photo")
    c.add_argument("--seed", type=int, default=None, help="seed for --samples / --decode sample")
    c.add_argument("--confidence", action="store_true", help="also write <name>.confidence.png (1 - entropy)")
    c.add_argument("--style", default=None, metavar="IMAGE",
                   help="take global features (the colors' mood) from this reference photo (models with global features)")
    c.add_argument("--hints", default=None, metavar="FILE|auto",
                   help="colors to pin, as JSON [{\"x\": 120, \"y\": 45, \"color\": \"#3050c0\"}] (pixels of the photo; "
                        "docs/hints.md): a file for one photo, or `auto` for <name>.hints.json beside each photo "
                        f"(photos without one get none). Needs a hint model; with the default model, {HINT_MODEL} is used")
    c.add_argument("--format", default=None, metavar="EXT", help="output format, e.g. png or jpg (default: as input)")
    g = c.add_mutually_exclusive_group()
    g.add_argument("--skip-existing", action="store_true", help="skip photos whose output exists")
    g.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    c.add_argument("--max-pixels", type=int, default=100_000_000, help="refuse larger images (default 100 MP)")
    c.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx"],
                   help="network runtime: auto (default) runs photos on PyTorch and videos on onnxruntime when it is "
                        "installed (the faster for each on 2 cores: benchmarks/speed.py, video_speed.py; models "
                        "with hints or a style stay on PyTorch); torch or onnx for all (onnx matches PyTorch within "
                        "1/255; exported once, cached in ~/.cache/tinct/onnx)")
    c.add_argument("--smoothing", default="ema", choices=["ema", "none"],
                   help="videos: temporal smoothing of the predicted colors, reset at scene cuts (default ema)")
    c.add_argument("--allow-partial", action="store_true",
                   help="videos: keep the frames decoded before a truncated or corrupt part "
                        "(default: an error, nothing written)")
    c.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    add_threads_flag(c)
    c.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    c.set_defaults(func=cmd_colorize)

    t = sub.add_parser("train", help="train a model from a config on image folders",
                       description="Train any registered model from a YAML recipe (see configs/). "
                                   "Under torchrun it trains on several processes/machines.")
    t.add_argument("config", help="recipe file, e.g. configs/default.yaml")
    t.add_argument("--data", nargs="+", metavar="DIR", help="image folders to train on (replace the config's)")
    t.add_argument("--out", metavar="RUN_DIR", help="run folder (default: runs/<name>)")
    t.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    t.add_argument("--max-steps", type=int, help="stop after this many steps (overrides the config)")
    t.add_argument("--init", metavar="WEIGHTS", default=None,
                   help="start from these weights (shipped name or .safetensors of the same model) instead "
                        "of a fresh network: fine-tune a shipped model, or continue a finished run")
    t.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    t.add_argument("-q", "--quiet", action="store_true")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="score models on a folder of color photos",
                       description="Center-crop each photo to SIZE^2, colorize its L with each model and "
                                   "write report.json, report.md and examples.png.")
    e.add_argument("--data", nargs="+", required=True, metavar="DIR",
                   help="folders of color photos, or a corpus manifest.jsonl (its held-out val photos, per source)")
    e.add_argument("--model", action="append", metavar="NAME",
                   help="model to score (repeatable): shipped name, .safetensors path, gray or truth")
    e.add_argument("--size", type=int, default=256, help="evaluation size (default 256)")
    e.add_argument("--render-size", type=int, default=None, help="network size (default: --size)")
    e.add_argument("--decode", default=None, help="decode method for histogram models")
    e.add_argument("--limit", type=int, default=None, help="score an evenly spaced subset of N photos")
    e.add_argument("--backend", default="torch", choices=["auto", "torch", "onnx"], help="network runtime")
    add_threads_flag(e)
    e.add_argument("--pseudo-labels", action="store_true",
                   help="semantic top-1 on any photo: label each by the classifier's confident class of its truth")
    e.add_argument("--metrics", default=None, metavar="A,B,...",
                   help="per-image metrics to compute (default: all of psnr, ssim, qssim, auc, auc_rebal, "
                        "colorfulness, cf_gap, ciede2000; ssim, qssim and ciede2000 cost the most)")
    e.add_argument("--out", default="eval", metavar="DIR", help="report folder (default: eval)")
    e.add_argument("-q", "--quiet", action="store_true")
    e.set_defaults(func=cmd_evaluate)

    h = sub.add_parser("suggest", help="the most likely colors at a point of a photo (a palette for hints)",
                       description="Print the k most likely colors at pixel X,Y of a photo, from the model's predicted "
                                   "color distribution, most likely first: a palette to choose hints from.")
    h.add_argument("photo", metavar="PHOTO")
    h.add_argument("--at", required=True, metavar="X,Y",
                   help="the point, in pixels of the photo (or fractions of its width and height when both <= 1)")
    h.add_argument("--k", type=int, default=6, help="how many colors (default 6)")
    h.add_argument("--hints", default=None, metavar="FILE", help="hints JSON the distribution should follow")
    h.add_argument("-m", "--model", default=HINT_MODEL,
                   help=f"a model that predicts a color distribution (default: {HINT_MODEL})")
    h.add_argument("--render-size", type=int, default=DEFAULT_RENDER_SIZE, metavar="N",
                   help=f"longer side the network sees, in pixels (default: {DEFAULT_RENDER_SIZE})")
    h.add_argument("--json", action="store_true", help="print JSON instead of one color per line")
    add_threads_flag(h)
    h.set_defaults(func=cmd_suggest)

    m = sub.add_parser("models", help="list shipped models and architectures")
    m.set_defaults(func=cmd_models)

    from .serve import add_parser as add_serve_parser

    add_serve_parser(sub)
    x = sub.add_parser(
        "export", help="export a model's network to ONNX (for onnxruntime)",
        description="Export a model's network (L -> prediction, dynamic batch/height/width) to ONNX and "
                    "check it against PyTorch with onnxruntime. Decoding stays in tinct "
                    "(`tinct colorize --backend onnx` does all of this by itself and caches the file).")
    x.add_argument("-m", "--model", default="default", metavar="NAME_OR_PATH",
                   help="shipped model name or .safetensors path (default: default)")
    x.add_argument("-o", "--out", required=True, metavar="FILE.onnx", help="where to write the ONNX file")
    x.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                   help=f"ONNX opset, from {MIN_OPSET} to what the installed onnx supports (default: {DEFAULT_OPSET})")
    x.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    x.set_defaults(func=cmd_export)
    for command in sub.choices.values():
        command.set_defaults(parser=command)
    return p


def add_threads_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="threads of the network runtime (PyTorch intra-op and onnxruntime; "
                             "default: one per core)")


def apply_threads(args: argparse.Namespace) -> int | None:
    """--threads N -> PyTorch's intra-op threads (the runtime's are passed to the Colorizer); None: defaults."""
    n = getattr(args, "threads", None)
    if n is None:
        return None
    if n < 1:
        raise UserError(f"--threads {n}: give at least 1")
    import torch

    torch.set_num_threads(n)
    return n


def _version() -> str:
    from . import __version__

    return f"tinct {__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # argparse would blame the top-level parser: show the command's own usage instead
        args.parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    with one_line_messages(args):
        try:
            return args.func(args)
        except KeyboardInterrupt:
            print("tinct: interrupted", file=sys.stderr)
            return 130
        except TinctError as exc:  # the user's to fix: one line
            print(f"tinct: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except OSError as exc:  # the system refused (permissions, full disk, missing path): one line naming it
            where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
            print(f"tinct: error: {where}{exc.strerror or exc}", file=sys.stderr)
            return EXIT_USAGE
        except Exception:
            traceback.print_exc()
            print(f"tinct: internal error: this is a bug in {_version()}, not something you did; please report "
                  "it with the traceback above and the command you ran", file=sys.stderr)
            return EXIT_BUG


# ----------------------------------------------------------------------------- messages
NOTICE_LOGGER = "tinct.notice"  # one-line notes for the user (e.g. a first-run ONNX export); -q hides them


class OneLineFormatter(logging.Formatter):
    """Warnings and errors as one line ``tinct: warning: ...``, notices as ``tinct: ...``; other
    records (``-v``, ``train``) as ``INFO name: message``."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if record.levelno >= logging.WARNING:
            return f"tinct: {record.levelname.lower()}: {' '.join(record.getMessage().split())}"
        if record.name == NOTICE_LOGGER:
            return f"tinct: {' '.join(record.getMessage().split())}"
        return super().format(record)


class _BarSafeHandler(logging.Handler):
    """Writes to stderr between progress-bar redraws (``tqdm.write``)."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    """``warnings.showwarning`` for the command line: one line, no source line."""
    from tqdm import tqdm

    tqdm.write(f"tinct: warning: {' '.join(str(message).split())}", file=sys.stderr)


@contextlib.contextmanager
def one_line_messages(args: argparse.Namespace) -> Iterator[None]:
    """While a command runs, tinct's log records and Python warnings print as one line each on stderr.

    ``-v`` (and ``train``) shows INFO records; ``-q`` hides notices; warnings always show.
    """
    level = logging.INFO if args.verbose or args.command == "train" else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")  # other libraries
    tinct_log, notice = logging.getLogger("tinct"), logging.getLogger(NOTICE_LOGGER)
    saved = (tinct_log.level, tinct_log.propagate, notice.level, warnings.showwarning)
    handler = _BarSafeHandler()
    handler.setFormatter(OneLineFormatter())
    tinct_log.addHandler(handler)
    tinct_log.setLevel(level)
    tinct_log.propagate = False
    notice.setLevel(logging.WARNING if getattr(args, "quiet", False) else logging.INFO)
    warnings.showwarning = _show_warning
    try:
        yield
    finally:
        tinct_log.removeHandler(handler)
        tinct_log.level, tinct_log.propagate, notice.level, warnings.showwarning = saved


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
