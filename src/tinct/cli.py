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
import logging
import os
import re
import sys
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

from .engines.listing import Inputs, describe_kinds, expand_inputs, plan_outputs
from .engines.storage import is_url
from .errors import TinctError, UsageError

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_BUG = 0, 1, 2, 3


class UserError(UsageError):
    """A bad combination of command-line flags; printed as one line."""


# ----------------------------------------------------------------------------- colorize
# tinct.video writes a video into ".<stem>.<8 hex digits>.partial<ext>" next to it, then renames it.
VIDEO_TEMPORARY_NAME = re.compile(r"\..+\.[0-9a-f]{8}\.partial\.\w+")


def cmd_colorize(args: argparse.Namespace) -> int:
    from .imageio import SUPPORTED_EXTENSIONS

    started = time.time()
    if args.format and "." + args.format.lstrip(".").lower() not in SUPPORTED_EXTENSIONS:
        raise UserError(f"--format {args.format}: choose one of {', '.join(sorted(SUPPORTED_EXTENSIONS))}")
    if args.backend == "onnx" and args.device == "cuda":
        raise UserError("--backend onnx runs on the CPU; drop --device cuda")
    if args.engine == "ray":
        return colorize_with_ray(args, started)  # which never imports torch
    from .media import is_video_path

    urls = [i for i in [*args.inputs, args.output] if is_url(i)]
    if urls:
        raise UserError(f"{urls[0]}: URLs are read and written by the Ray engine: add --engine ray "
                        "(pip install 'tinct[cluster]')")
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
    choose_hint_model(args, len(plan))
    ahead = read_ahead(plan, args) if not videos else None
    from .pipeline import Colorizer  # imports PyTorch: about a second, while ``ahead`` decodes photos

    # auto: photos on PyTorch; videos on PyTorch too when it runs in bfloat16, else on onnxruntime
    # when installed: the faster runtime for each, measured end to end (benchmarks/speed.py,
    # benchmarks/video_speed.py: 640x480 frames/s, PyTorch bfloat16 18.2, onnxruntime 12.4,
    # PyTorch float32 10.6)
    photo_backend = "torch" if args.backend == "auto" or args.device == "cuda" else args.backend
    threads = apply_threads(args)
    colorizer = Colorizer(args.model, render_size=args.render_size, decode=args.decode, device=args.device,
                          name=args.model, backend=photo_backend, threads=threads, precision=args.precision, **options)
    from .weights import model_capabilities

    extra = photo_options(args, model_capabilities(colorizer.model))  # every check before anything is written
    extra["read_ahead"] = ahead
    if "style" in extra:
        colorizer.style_lightness(extra["style"])  # and the runtime must take one
    tally: Counter[str] = Counter()
    if out_dir.is_dir():
        tally["removed"] = remove_stale_temporaries(out_dir, started)
    if videos:
        video_colorizer = colorizer
        if args.backend == "auto" and args.device == "cpu" and colorizer.runtime.precision == "float32":
            video_colorizer = Colorizer(colorizer.runtime.model, render_size=args.render_size, decode=args.decode,
                                        name=args.model, backend="auto", threads=threads, precision=args.precision,
                                        **options)
        tally += colorize_videos(video_colorizer, videos, args)
    tally += colorize_photos(colorizer, plan, args, extra)
    if not args.quiet:
        print(summary(tally, inputs.unsupported, args.output, args.samples), file=sys.stderr)
    elif tally["exists"]:
        note_existing(tally["exists"])
    global _finished_cleanly
    _finished_cleanly = True  # every output is written and closed, no thread or child is left
    return EXIT_FAILED if tally["failed"] else EXIT_OK


def photo_options(args: argparse.Namespace, capabilities: dict) -> dict:
    """Check --samples, --confidence, --style and --hints against what the model offers
    (``tinct.shipped.capabilities``, read from its weights file without torch); the options for
    ``colorize_files``."""
    from .imageio import read_image

    if args.samples and not capabilities["samples"]:
        raise UserError(f"--samples needs a histogram model; {args.model} has no 'sample' decoder")
    if args.confidence and not capabilities["decoders"]:
        raise UserError(f"--confidence needs a histogram model; {args.model} predicts no distribution")
    if args.style and not capabilities["style"]:
        raise UserError(f"model {args.model!r} has no global features, so it cannot take a style reference")
    if args.hints and not capabilities["hints"]:
        raise UserError(f"--hints needs a hint model such as tinct-lite2-hints; {args.model} takes no hints")
    extra: dict = {"confidence": args.confidence, "samples": args.samples or 0, "max_pixels": args.max_pixels}
    if args.seed is not None:
        extra["seed"] = args.seed
    if args.style:
        extra["style"] = read_image(args.style)
    if args.hints:
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
            elif not needs_writing(dst, args):  # kept, and not a failure
                tally["skipped" if args.skip_existing else "exists"] += 1
                bar.update(1)
            else:
                jobs.append((src, dst))
        colorizer.colorize_files(jobs, done, **extra)
    finally:
        bar.close()
    return tally


def needs_writing(output: Path, args: argparse.Namespace) -> bool:
    """Is ``output`` to be written (it does not exist, or --overwrite)?"""
    return args.overwrite or not output.exists()


def read_ahead(plan: list[tuple[Path, Path, str | None]], args: argparse.Namespace):
    """A ``tinct.imageio.ReadAhead`` decoding the planned photos to colorize, first ones first,
    while PyTorch and the model load (None when there is none)."""
    from .imageio import ReadAhead

    pending = [src for src, dst, problem in plan if not problem and needs_writing(dst, args)]
    return ReadAhead(pending, args.max_pixels) if pending else None


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
        parts.append(f"{sum(unsupported.values())} skipped (not a supported image: {describe_kinds(unsupported)})")
    if tally["done earlier"]:
        parts.append(f"{tally['done earlier']} done by an earlier run (its manifest)")
    if tally["removed"]:
        parts.append(f"{tally['removed']} stale temporary file(s) of a killed run removed")
    return ", ".join([*parts, f"{tally['failed']} failed"])


def colorize_with_ray(args: argparse.Namespace, started: float) -> int:
    """``--engine ray``: list the sources, resume from the destination's manifest, colorize the rest on
    a Ray cluster (``tinct.engines.ray_data``), record each photo in the manifest, print a summary."""
    from tqdm import tqdm

    from .defaults import check_render_size
    from .engines import manifest
    from .engines.listing import expand_sources, plan_locations
    from .engines.ray_data import connect, require_ray, run_on_ray
    from .media import is_video_path
    from .shipped import capabilities, choose_decoder, read_metadata, resolve, shipped_weights

    require_ray()  # a one-line error before any work when Ray is not installed
    for flag, value in (("--workers", args.workers), ("--batch-size", args.batch_size), ("--threads", args.threads)):
        if value is not None and value < 1:
            raise UserError(f"{flag} {value}: give at least 1")
    if args.device != "cpu":
        raise UserError("--engine ray runs on the workers' CPUs; drop --device cuda")
    if any(not is_url(i) and is_video_path(i) and Path(i).is_file() for i in args.inputs):
        raise UserError("--engine ray colorizes photos; colorize videos with the local engine (drop --engine ray)")
    if args.hints == "auto" and any(is_url(i) for i in args.inputs):
        raise UserError("--hints auto reads <name>.hints.json beside local photos; URL sources take no hints")
    sources, unsupported = expand_sources(args.inputs, args.output)
    # Absolute local paths: a worker's current folder is not this one (and a rerun's may differ).
    sources = [(s if is_url(s) else os.path.abspath(s), rel) for s, rel in sources]
    output = args.output if is_url(args.output) else os.path.abspath(args.output)
    plan = plan_locations(sources, output, args.format)
    choose_hint_model(args, len(plan))
    threads = args.threads if args.threads is not None else 1  # per actor: the actors use the cores
    decode_options = {k: v for k, v in (("temperature", args.temperature), ("seed", args.seed)) if v is not None}
    # Every flag is checked against the weights file's header before any worker starts; the driver
    # never imports torch (a second off the start-up of every run).
    weights = resolve(args.model)
    caps = capabilities(read_metadata(weights))
    check_render_size(args.render_size)
    method = choose_decoder(caps["decoders"] or ("identity",), caps["default_decode"] or "identity", args.decode,
                            args.model)
    options = photo_options(args, caps)
    recorded = {"model": args.model, "decode": method, "render_size": args.render_size,
                "temperature": args.temperature, "seed": args.seed, "format": args.format,
                "samples": args.samples or 0, "confidence": args.confidence, "style": args.style,
                "hints": args.hints}
    resume = manifest.plan_resume(plan, output, recorded, overwrite=args.overwrite, skip_existing=args.skip_existing)
    tally: Counter[str] = Counter(resume.tally)
    if not is_url(output) and Path(output).is_dir():
        tally["removed"] = remove_stale_temporaries(Path(output), started)
    run = manifest.RunManifest(output)
    bar = tqdm(total=len(plan), initial=len(plan) - len(resume.jobs) - len(resume.problems), desc="colorizing",
               unit="img", disable=args.quiet, dynamic_ncols=True)

    def account(record: manifest.Record) -> None:
        run.record([record])
        tally["colorized" if record.status == "done" else "failed"] += 1
        if record.error:
            tqdm.write(f"tinct: error: {record.source}: {record.error}", file=sys.stderr)
        bar.update(1)

    began = time.monotonic()
    try:
        if resume.jobs:
            connect(args.address)  # before run.json: a destination is a run's only once a run could start
        if resume.jobs or resume.problems:
            run.start({**recorded, "engine": "ray", "tinct": _version().split()[-1], "photos": len(resume.jobs)})
        for record in resume.problems:
            account(record)
        if resume.jobs:
            # A shipped model is loaded by name on each node (tinct is installed there); another
            # weights file travels as its bytes, so the nodes need not see the driver's disk.
            model = args.model if args.model in shipped_weights() else weights.read_bytes()
            settings = {"model": model, "name": args.model, "render_size": args.render_size,
                        "decode": args.decode, "backend": "torch" if args.backend == "auto" else args.backend,
                        "precision": args.precision, "threads": threads,
                        "decode_options": decode_options, "options": options}
            for record in run_on_ray(resume.jobs, settings, workers=args.workers, batch_size=args.batch_size):
                account(record)
    finally:
        bar.close()
        run.close()
    seconds = time.monotonic() - began
    if not args.quiet:
        rate = f" ({tally['colorized'] / seconds:.2f} photos/s)" if tally["colorized"] and seconds > 0 else ""
        print(summary(tally, unsupported, args.output, args.samples) + rate, file=sys.stderr)
    elif tally["exists"]:
        note_existing(tally["exists"])
    return EXIT_FAILED if tally["failed"] else EXIT_OK


def choose_hint_model(args: argparse.Namespace, photos: int) -> None:
    """--hints FILE names one photo's hints; with --hints, the default model becomes the hint model."""
    from .defaults import HINT_MODEL

    if args.hints and args.hints != "auto" and photos != 1:
        raise UserError(f"--hints {args.hints} names the hints of one photo; {photos} photos were given "
                        "(use --hints auto for <name>.hints.json beside each photo)")
    if args.hints and args.model == "default":
        args.model = HINT_MODEL


def note_existing(count: int) -> None:
    print(f"tinct: note: {count} output(s) exist and were kept; pass --skip-existing or --overwrite", file=sys.stderr)


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
                      threads=apply_threads(args), precision=args.precision,
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
                   help="network runtime: auto (default) runs photos on PyTorch, and videos on PyTorch where it "
                        "runs in bfloat16 (--precision) and on onnxruntime otherwise, when it is installed (the "
                        "faster for each on 2 cores: benchmarks/speed.py, video_speed.py; models with hints or a "
                        "style stay on PyTorch); torch or onnx for all (onnx matches PyTorch float32 within "
                        "1/255; exported once, cached in ~/.cache/tinct/onnx)")
    c.add_argument("--smoothing", default="ema", choices=["ema", "none"],
                   help="videos: temporal smoothing of the predicted colors, reset at scene cuts (default ema)")
    c.add_argument("--allow-partial", action="store_true",
                   help="videos: keep the frames decoded before a truncated or corrupt part "
                        "(default: an error, nothing written)")
    c.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    add_threads_flag(c, "; with --engine ray: per actor, default 1")
    add_precision_flag(c)
    c.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    r = c.add_argument_group("cluster", "--engine ray: colorize on a Ray cluster, from and to local folders or "
                                        "fsspec URLs (s3://, gs://, file://); resumable through a run manifest "
                                        "in the output (docs/cluster.md). pip install 'tinct[cluster]'")
    r.add_argument("--engine", default="local", choices=["local", "ray"],
                   help="local (default): this process; ray: a Ray Data actor pool")
    r.add_argument("--address", default=None, metavar="ADDR",
                   help="Ray cluster to join: auto, HOST:PORT or ray://HOST:10001 (default: $RAY_ADDRESS, else a "
                        "local cluster on this machine)")
    r.add_argument("--workers", type=int, default=None, metavar="N",
                   help="actors, each holding the model once (default: the cluster's CPUs / --threads)")
    r.add_argument("--batch-size", type=int, default=8, metavar="N", help="photos per actor call (default 8)")
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
    add_precision_flag(e)
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


def add_threads_flag(parser: argparse.ArgumentParser, more: str = "") -> None:
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="threads of the network runtime (PyTorch intra-op and onnxruntime; "
                             f"default: one per core{more})")


def add_precision_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--precision", default="auto", choices=["auto", "float32", "bfloat16"],
                        help="of the PyTorch network: auto (default) is bfloat16 on CPUs that compute it natively "
                             "(AMX, AVX512-BF16: about twice as fast, colors within about 1 Lab unit), else float32")


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


# Set by a local ``tinct colorize`` that got to its end; ``run`` then skips the interpreter's teardown.
_finished_cleanly = False


def run() -> None:
    """The ``tinct`` command: ``main``, then exit with its code.

    After a local ``tinct colorize`` that got to its end (every output written and closed, no
    thread or child process left), the process ends with ``os._exit`` once stdout, stderr and the
    log handlers are flushed: the interpreter's teardown of PyTorch's modules takes about 0.2 s
    and does nothing such a run needs. Every other command, and every error, exits normally.
    """
    code = main()
    if _finished_cleanly:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            logging.shutdown()
        finally:
            os._exit(code)
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()
