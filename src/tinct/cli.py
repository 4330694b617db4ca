"""The ``tinct`` command line: colorize | train | evaluate | models (and serve/export when installed).

Every user-caused error is one line on stderr (never a traceback); ``colorize`` goes on past a
bad file and exits 1 if any file failed. Run ``tinct COMMAND --help`` for each command's flags.
"""

from __future__ import annotations

import argparse
import glob
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UserError(Exception):
    """A problem the user can fix; printed as one line."""


# ----------------------------------------------------------------------------- colorize
def expand_inputs(items: Sequence[str]) -> list[tuple[Path, Path]]:
    """Files, folders (recursive) and globs -> sorted (file, root) pairs; root is where relative paths start."""
    from .io import is_image_path

    found: list[tuple[Path, Path]] = []
    for item in items:
        p = Path(item).expanduser()
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and is_image_path(f) and not _hidden(f, p))
            if not files:
                raise UserError(f"{item}: no images found in this folder")
            found += [(f, p) for f in files]
        elif p.exists():
            found.append((p, p.parent))
        elif any(ch in item for ch in "*?["):
            matches = sorted(Path(m) for m in glob.glob(os.path.expanduser(item), recursive=True))
            files = [m for m in matches if m.is_file()]
            if not files:
                raise UserError(f"{item}: the pattern matches no file")
            found += [(f, f.parent) for f in files]
        else:
            raise UserError(f"{item}: no such file or folder")
    return found


def _hidden(f: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in f.relative_to(root).parts)


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
    import torch
    from tqdm import tqdm

    from .export import load_backend
    from .io import SUPPORTED_EXTENSIONS, read_image
    from .pipeline import Colorizer
    from .video import is_video_path

    if args.format and "." + args.format.lstrip(".").lower() not in SUPPORTED_EXTENSIONS:
        raise UserError(f"--format {args.format}: choose one of {', '.join(sorted(SUPPORTED_EXTENSIONS))}")
    if args.backend == "onnx" and args.device == "cuda":
        raise UserError("--backend onnx runs on the CPU; drop --device cuda")
    videos = [Path(i) for i in args.inputs if is_video_path(i) and Path(i).is_file()]
    images = [i for i in args.inputs if Path(i) not in videos]
    if videos and (args.samples or args.confidence or args.style):
        raise UserError("--samples, --confidence and --style apply to photos, not to videos")
    plan = plan_outputs(expand_inputs(images), Path(args.output), args.format) if images else []
    options = {}
    if args.temperature is not None:
        options["temperature"] = args.temperature
    if args.seed is not None:
        options["seed"] = args.seed
    backend = "torch" if (args.device == "cuda" and args.backend == "auto") else args.backend
    model = load_backend(args.model, backend) if backend != "torch" else args.model
    colorizer = Colorizer(model, render_size=args.render_size, method=args.decode, device=args.device, **options)
    if videos:
        failed = colorize_videos(colorizer, videos, args)
        if not plan:
            return EXIT_FAILED if failed else EXIT_OK
    else:
        failed = 0
    if args.samples and "sample" not in colorizer.model.decode_methods:
        raise UserError(f"--samples needs a histogram model; {args.model} has no 'sample' decoder")
    if args.confidence:
        with torch.no_grad():
            probe = colorizer.model.confidence(colorizer.model(torch.zeros(1, 1, 32, 32)))
        if probe is None:
            raise UserError(f"--confidence needs a histogram model; {args.model} predicts no distribution")

    failures = failed
    skipped = 0
    jobs = []
    bar = tqdm(total=len(plan), desc="colorizing", unit="img", disable=args.quiet, dynamic_ncols=True)

    def fail(src: Path, msg: str) -> None:
        nonlocal failures
        failures += 1
        tqdm.write(f"tinct: error: {src}: {msg}", file=sys.stderr)

    for src, dst, problem in plan:
        if problem:
            fail(src, problem)
            bar.update(1)
        elif dst.exists() and not args.overwrite:
            if args.skip_existing:
                skipped += 1
                bar.update(1)
            else:
                fail(src, f"{dst} exists; pass --overwrite or --skip-existing")
                bar.update(1)
        else:
            jobs.append((src, dst))

    def done(src: Path, dst: Path | None, err: str | None) -> None:
        if err:
            fail(src, err)
        bar.update(1)

    extra = {"seed": args.seed} if args.seed is not None else {}
    if args.style:
        extra["style"] = read_image(args.style)
        colorizer.style_lightness(extra["style"])  # refuse a style the model cannot use, before the batch
    colorizer.colorize_files(jobs, done, confidence=args.confidence, samples=args.samples or 0,
                             max_pixels=args.max_pixels, **extra)
    bar.close()
    ok = len(plan) - (failures - failed) - skipped
    if not args.quiet:
        extra = f", {skipped} skipped (exist)" if skipped else ""
        print(f"{ok} colorized into {args.output}{extra}, {failures} failed", file=sys.stderr)
    return EXIT_FAILED if failures else EXIT_OK


def colorize_videos(colorizer, videos: list[Path], args: argparse.Namespace) -> int:
    """Colorize each video file (temporal smoothing per --smoothing); returns how many failed."""
    from .io import ImageError
    from .video import colorize_video_cli, video_output_path

    failed = 0
    for src in videos:
        dst = video_output_path(src, Path(args.output))
        try:
            if dst.exists() and not args.overwrite:
                if args.skip_existing:
                    continue
                raise ValueError(f"{dst} exists; pass --overwrite or --skip-existing")
            colorize_video_cli(colorizer, src, dst, args.smoothing, progress=not args.quiet)
        except (ImageError, ValueError, OSError) as exc:
            failed += 1
            print(f"tinct: error: {src}: {exc}", file=sys.stderr)
    return failed


# ----------------------------------------------------------------------------- others
def cmd_models(args: argparse.Namespace) -> int:
    from . import list_models
    from .weights import training_length, traits

    info = list_models()
    print("Shipped weights (use with --model NAME):")
    seen: dict[str, str] = {}
    for name, meta in info["weights"].items():
        key = meta.get("name", name)
        if key in seen and key != name:
            print(f"  {name:<30} alias of {seen[key]}")
            continue
        seen[key] = name
        m = meta.get("metrics", {})
        quality = ", ".join(f"{k}={v:.2f}" for k, v in m.items() if isinstance(v, (int, float)))
        print(f"  {name:<30} {traits(meta)} {training_length(meta)}; {quality}")
    print("Architectures (train with `tinct train configs/...yaml`):")
    for a in info["architectures"]:
        print(f"  {a}")
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    from .train import load_config, train

    cfg = load_config(args.config)
    if args.data:
        cfg.data = {**cfg.data, "roots": args.data, "labels_csv": None}
    if args.init:
        cfg.init = args.init
    run_dir = Path(args.out or Path("runs") / cfg.name)
    final = train(cfg, run_dir, resume=args.resume, max_steps=args.max_steps, device=args.device,
                  progress=not args.quiet)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"weights: {final}")
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate

    report = evaluate(args.data, args.model or ["default", "gray"], size=args.size, out_dir=Path(args.out),
                      limit=args.limit, progress=not args.quiet, decode=args.decode,
                      render_size=args.render_size, backend=args.backend, pseudo_labels=args.pseudo_labels)
    print(report["markdown"])
    print(f"report: {Path(args.out) / 'report.md'}")
    return EXIT_OK


# ----------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    from .pipeline import DEFAULT_RENDER_SIZE

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
    c.add_argument("--format", default=None, metavar="EXT", help="output format, e.g. png or jpg (default: as input)")
    g = c.add_mutually_exclusive_group()
    g.add_argument("--skip-existing", action="store_true", help="skip photos whose output exists")
    g.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    c.add_argument("--max-pixels", type=int, default=100_000_000, help="refuse larger images (default 100 MP)")
    c.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx"],
                   help="network runtime: auto (default) uses onnxruntime when installed, which is faster on "
                        "CPUs and matches PyTorch within 1/255 (exported once, cached in ~/.cache/tinct/onnx), "
                        "else PyTorch")
    c.add_argument("--smoothing", default="ema", choices=["ema", "none"],
                   help="videos: temporal smoothing of the predicted colors, reset at scene cuts (default ema)")
    c.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
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
    e.add_argument("--pseudo-labels", action="store_true",
                   help="semantic top-1 on any photo: label each by the classifier's confident class of its truth")
    e.add_argument("--out", default="eval", metavar="DIR", help="report folder (default: eval)")
    e.add_argument("-q", "--quiet", action="store_true")
    e.set_defaults(func=cmd_evaluate)

    m = sub.add_parser("models", help="list shipped models and architectures")
    m.set_defaults(func=cmd_models)

    from .export import add_parser as add_export_parser
    from .serve import add_parser as add_serve_parser

    add_serve_parser(sub)
    add_export_parser(sub)
    return p


def _version() -> str:
    from . import __version__

    return f"tinct {__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose or args.command == "train" else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from .io import ImageError

    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("tinct: interrupted", file=sys.stderr)
        return 130
    except (UserError, ImageError, ValueError, FileNotFoundError, KeyError, RuntimeError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"tinct: error: {msg}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
