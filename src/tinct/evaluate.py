"""``tinct evaluate``: score models on folders of color photos with one published protocol.

Protocol (stated in every report):
  1. each color photo is center-cropped to a square and resized to SIZE x SIZE (bicubic);
     that uint8 sRGB image is the ground truth;
  2. the model's input is the truth's CIE Lab L; the model colorizes it at render size SIZE
     (``--render-size`` to change) through the same pipeline as ``tinct colorize``;
  3. metrics compare the colorized uint8 image with the truth: PSNR, SSIM, QSSIM, CIEDE2000,
     colorfulness (and its gap to the truth's), and Zhang et al.'s AuC of ab errors over
     thresholds 0..150, pooled over every pixel of the set, raw and class-rebalanced;
  4. for photos in ImageNet WordNet-id folders (imagenette), the top-1 accuracy of an
     ImageNet EfficientNet-Lite1 classifier on the colorized images (resized to 240^2); with
     --pseudo-labels, other photos count too, labelled by that classifier's confident
     (p >= 0.5) class of the true-color photo;
  5. speed: median wall time per image of the in-memory colorization at SIZE (no file I/O,
     no metrics), after two untimed warm-up calls, on the threads the report names.

Built-in baselines: ``gray`` (a = b = 0) and ``truth`` (the ground truth itself).
A model spec may carry a decoder: ``default@expectation``, and the annealed mean its
temperature: ``larsson-lab-joint@annealed:0.6`` (``parse_spec``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import imageio as tio
from . import metrics as M
from .color import lab_to_rgb, rgb_to_lab
from .errors import MissingFileError, UsageError

__all__ = ["evaluate", "load_eval_set", "parse_spec", "IMAGENETTE_WNIDS", "BASELINES"]

BASELINES = ("gray", "truth")
# The ten imagenette classes: WordNet id -> ImageNet-1k class index.
IMAGENETTE_WNIDS = {
    "n01440764": 0, "n02102040": 217, "n02979186": 482, "n03000684": 491, "n03028079": 497,
    "n03394916": 566, "n03417042": 569, "n03425413": 571, "n03445777": 574, "n03888257": 701,
}
PSEUDO_LABEL_CONFIDENCE = 0.5
WARMUP_CALLS = 2
FIDELITY_KEYS = ("auc", "auc_rebal", "psnr", "ssim", "qssim", "ciede2000", "colorfulness", "cf_gap")


def center_square(rgb_u8: np.ndarray, size: int) -> np.ndarray:
    """(H,W,3) uint8 -> the central square resized to (size,size,3) uint8 (bicubic)."""
    h, w = rgb_u8.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    crop = Image.fromarray(rgb_u8[top:top + s, left:left + s])
    return np.array(crop.resize((size, size), Image.BICUBIC) if s != size else crop)


def evenly_spaced(items: list, limit: int | None) -> list:
    """The ``--limit`` subset of ``items``: ``limit`` evenly spaced ones (every class folder and
    every corpus source represented), or all of them when ``limit`` is None or not smaller."""
    if not limit or limit >= len(items):
        return list(items)
    return [items[int(i * len(items) / limit)] for i in range(limit)]


def load_eval_set(folders: list[str | Path], size: int, limit: int | None = None) -> list[dict[str, Any]]:
    """Every readable photo under ``folders`` as {"name", "truth" uint8 (S,S,3), "label" int|-1, "group"}.

    A ``.jsonl`` corpus manifest (``tinct.corpus build``) in ``folders`` stands for its held-out
    ``val`` photos, grouped by source; a folder's photos are grouped by the folder's name.
    """
    from .data import IMAGE_EXTENSIONS

    items = []
    for folder in folders:
        root = Path(folder).expanduser()
        if root.suffix == ".jsonl" and root.is_file():
            from .corpus import read_manifest

            for ph in read_manifest(root, split="val"):
                f = Path(ph.path)
                items.append((f, IMAGENETTE_WNIDS.get(f.parent.name, -1), f"{ph.source}/{f.name}", ph.source))
            continue
        if not root.is_dir():
            raise MissingFileError(f"evaluation folder not found: {root}")
        for f in sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS):
            wnid = f.parent.name
            items.append((f, IMAGENETTE_WNIDS.get(wnid, -1), f"{root.name}/{f.relative_to(root)}", root.name))
    items = evenly_spaced(items, limit)
    if not items:
        raise UsageError(f"no photos found in {', '.join(map(str, folders))}")
    return [{"name": name, "truth": square_photo(f, size), "label": label, "group": group}
            for f, label, name, group in items]


@torch.no_grad()
def pseudo_label(items: list[dict[str, Any]], classifier, min_confidence: float = PSEUDO_LABEL_CONFIDENCE) -> int:
    """Give each unlabelled item whose truth the classifier recognises with probability >=
    ``min_confidence`` that class as its label (``"pseudo": True``); -> how many were labelled.

    On photos without ImageNet labels, the semantic top-1 then asks: does the classifier see in
    the colorized photo what it sees in the true-color one? The truth scores 100% by definition.
    """
    todo = [it for it in items if it["label"] < 0]
    count = 0
    for start in range(0, len(todo), 16):
        chunk = todo[start:start + 16]
        probs = torch.softmax(classifier.classify(_classifier_batch([it["truth"] for it in chunk])), dim=1)
        conf, cls = probs.max(dim=1)
        for it, c, k in zip(chunk, conf.tolist(), cls.tolist()):
            if c >= min_confidence:
                it["label"], it["pseudo"] = int(k), True
                count += 1
    return count


def square_photo(path: str | Path, size: int) -> np.ndarray:
    """A photo file -> its central square resized to (size,size,3) uint8, as the evaluation sees it."""
    return center_square(_u8(tio.read_image(path).pixels), size)


def lab_of_u8(u8: np.ndarray) -> torch.Tensor:
    """(H,W,3) uint8 sRGB -> Lab (1,3,H,W)."""
    return rgb_to_lab(torch.from_numpy(u8).permute(2, 0, 1).float().div(255).unsqueeze(0))


def _u8(rgb: torch.Tensor | np.ndarray) -> np.ndarray:
    """RGB float in [0,1] (or already uint8) -> C-contiguous uint8."""
    a = rgb.numpy() if isinstance(rgb, torch.Tensor) else rgb
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    return (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)


def parse_spec(spec: str) -> tuple[str, str | None, dict[str, float]]:
    """``"name[@method[:temperature]]"`` -> (name, method or None, decode options).

    >>> parse_spec("larsson-lab-joint@annealed:0.6")
    ('larsson-lab-joint', 'annealed', {'temperature': 0.6})
    """
    name, _, method = spec.partition("@")
    method, _, value = method.partition(":")
    options: dict[str, float] = {}
    if value:
        if method != "annealed":
            raise UsageError(f"{spec!r}: only the annealed decoder takes a value (its temperature)")
        try:
            options["temperature"] = float(value)
        except ValueError:
            raise UsageError(f"{spec!r}: the temperature must be a number, got {value!r}") from None
        if not options["temperature"] > 0:
            raise UsageError(f"{spec!r}: the temperature must be positive")
    return name, method or None, options


class _Runner:
    """Wraps a model spec into ``run(truth_u8) -> colorized uint8``."""

    def __init__(self, spec: str, render_size: int, decode: str | None, backend: str = "torch",
                 threads: int | None = None, precision: str = "auto"):
        self.spec = spec
        name, method, options = parse_spec(spec)
        self.kind = name if name in BASELINES else "model"
        self.colorizer = None
        self.generator: torch.Generator | None = None
        if self.kind == "model":
            from .pipeline import Colorizer

            self.colorizer = Colorizer(name, render_size=render_size, decode=method or decode, backend=backend,
                                       threads=threads, precision=precision, **options)
            meta = getattr(self.colorizer.model, "metadata", {})
            temperature = f" (T = {options['temperature']:g})" if options else ""
            self.description = (f"{meta.get('arch', '?')} ({meta.get('name', name)}), "
                                f"decode={self.colorizer.method}{temperature}")
        else:
            self.description = "a = b = 0" if name == "gray" else "ground truth"

    def run(self, truth: np.ndarray) -> np.ndarray:
        if self.kind == "truth":
            return truth
        if self.kind == "gray":
            lab = lab_of_u8(truth)
            lab[:, 1:] = 0
            return _u8(lab_to_rgb(lab)[0].permute(1, 2, 0))
        options = {}
        if self.colorizer.method == "sample":  # seeded once per runner: the same report on every run
            if self.generator is None:
                self.generator = torch.Generator().manual_seed(0)
            options["generator"] = self.generator
        return _u8(self.colorizer.colorize_array(truth.astype(np.float32) / 255.0, **options))


def _classifier():
    from .backbones.efficientnet_lite import EfficientNetLite

    return EfficientNetLite("lite1", in_channels=3, classifier=True).eval()


def _classifier_batch(images: list[np.ndarray]) -> torch.Tensor:
    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
    return F.interpolate(batch, size=(240, 240), mode="bilinear", antialias=True, align_corners=False)


@torch.no_grad()
def _top1_hits(classifier, images: list[np.ndarray], labels: list[int]) -> list[bool]:
    hits: list[bool] = []
    for start in range(0, len(images), 16):
        pred = classifier.classify(_classifier_batch(images[start:start + 16])).argmax(1)
        hits += (pred == torch.tensor(labels[start:start + 16])).tolist()
    return hits


def _top1(classifier, images: list[np.ndarray], labels: list[int]) -> float:
    return 100.0 * float(np.mean(_top1_hits(classifier, images, labels)))


def score_colorizer(items: list[dict[str, Any]], colorize: Callable[[np.ndarray], np.ndarray],
                    truth_abs: list[np.ndarray] | None = None, desc: str = "evaluate",
                    progress: bool = False, metrics: Sequence[str] = M.METRIC_KEYS) -> tuple[dict[str, float], list[dict[str, Any]], list[np.ndarray], float]:
    """Score ``colorize`` (truth uint8 (S,S,3) -> colorized uint8 (S,S,3)) on ``load_eval_set`` items.

    -> (set metrics: per-image means plus the pooled ``auc`` and ``auc_rebal``; per-image
    metrics with names; the outputs for ImageNet-labelled items, in order; median ms per
    call, after ``WARMUP_CALLS`` untimed calls). ``truth_abs`` caches the truths' ab across calls.
    """
    from tqdm import tqdm

    if truth_abs is None:
        truth_abs = [M.ab_from_rgb_u8(it["truth"]) for it in items]
    for it in items[:WARMUP_CALLS]:  # first calls pay for lazy setup (oneDNN kernels, caches): not timed
        colorize(it["truth"])
    per_image, pairs, times, labelled_outputs = [], [], [], []
    for it, true_ab in tqdm(list(zip(items, truth_abs)), desc=desc, unit="img", disable=not progress, leave=False):
        t0 = time.perf_counter()
        out = colorize(it["truth"])
        times.append(time.perf_counter() - t0)
        per_image.append({"name": it["name"], **M.image_metrics(out, it["truth"], metrics)})
        pairs.append((M.ab_from_rgb_u8(out), true_ab))
        if it["label"] >= 0:
            labelled_outputs.append(out)
    row = M.aggregate([{k: v for k, v in p.items() if k != "name"} for p in per_image])
    row["auc"] = M.pooled_auc(pairs)
    row["auc_rebal"] = M.pooled_auc(pairs, rebalanced=True)
    ms = 1000 * float(np.median(times))
    return row, per_image, labelled_outputs, ms


def evaluate(data: list[str | Path], models: list[str], size: int = 256, out_dir: Path | None = None,
             limit: int | None = None, progress: bool = True, decode: str | None = None,
             render_size: int | None = None, examples: int = 6, backend: str = "torch",
             pseudo_labels: bool = False, metrics: Sequence[str] = M.METRIC_KEYS,
             threads: int | None = None, precision: str = "auto") -> dict[str, Any]:
    """Score ``models`` on the photos under ``data``; write report.json/.md and examples.png to ``out_dir``.

    With ``pseudo_labels``, photos without an ImageNet label get the classifier's confident
    label of their truth (``pseudo_label``), so the semantic top-1 covers any photo set. With
    more than one group (sources of a corpus manifest, or several folders), each model's report
    also has per-group metrics. ``metrics`` picks the per-image metrics (``METRIC_KEYS`` subset;
    psnr, auc, colorfulness and cf_gap cost a fifth of all eight); the pooled AuCs are always there.
    """
    items = load_eval_set(list(data), size, limit)
    runners = [_Runner(m, render_size or size, decode, backend, threads, precision) for m in models]
    classifier = _classifier() if pseudo_labels or any(it["label"] >= 0 for it in items) else None
    pseudo = pseudo_label(items, classifier) if pseudo_labels else 0
    labelled = [i for i, it in enumerate(items) if it["label"] >= 0]
    groups = sorted({it["group"] for it in items})
    results: dict[str, Any] = {}
    grid_rows: list[list[np.ndarray]] = [[it["truth"]] for it in items[:examples]]
    truth_abs = [M.ab_from_rgb_u8(it["truth"]) for it in items]
    for runner in runners:
        row, per_image, colorized, ms = score_colorizer(items, runner.run, truth_abs, f"evaluate {runner.spec}",
                                                        progress, metrics)
        if runner.kind == "model":
            row["ms_per_image"] = ms
        hits = _top1_hits(classifier, colorized, [items[i]["label"] for i in labelled]) if classifier and colorized else []
        if hits:
            row["top1"] = 100.0 * float(np.mean(hits))
        results[runner.spec] = {"description": runner.description, "metrics": row, "per_image": per_image}
        if len(groups) > 1:
            results[runner.spec]["groups"] = _group_metrics(items, per_image, labelled, hits, groups)
        for r, it in zip(grid_rows, items[:examples]):
            r.append(runner.run(it["truth"]) if runner.kind != "truth" else it["truth"])
    report = {
        "protocol": {"size": size, "render_size": render_size or size, "images": len(items), "backend": backend,
                     "precision": next((r.colorizer.runtime.precision for r in runners
                                        if r.colorizer is not None and r.colorizer.runtime.name == "torch"), None),
                     "data": [str(d) for d in data], "imagenet_labelled": len(labelled) - pseudo,
                     "pseudo_labelled": pseudo, "groups": {g: sum(it["group"] == g for it in items) for g in groups},
                     "text": __doc__.split("Protocol (stated in every report):")[1].split("Built-in")[0].strip()},
        "models": results,
        "machine": {"threads": torch.get_num_threads()},
    }
    report["markdown"] = to_markdown(report)
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "report.json").write_text(json.dumps({k: v for k, v in report.items() if k != "markdown"}, indent=1))
        (out_dir / "report.md").write_text(report["markdown"])
        _save_grid(grid_rows, ["truth"] + [r.spec for r in runners], out_dir / "examples.png")
    return report


def _group_metrics(items: list[dict[str, Any]], per_image: list[dict[str, Any]], labelled: list[int],
                   hits: list[bool], groups: list[str]) -> dict[str, dict[str, float]]:
    """Per-group means of the per-image metrics (on equal-size crops the pooled raw AuC is the
    mean of per-image AuCs) and the group's top-1 over its labelled photos."""
    out = {}
    hit_of = dict(zip(labelled, hits))
    for g in groups:
        idx = [i for i, it in enumerate(items) if it["group"] == g]
        row = M.aggregate([{k: v for k, v in per_image[i].items() if k != "name"} for i in idx])
        row["images"] = len(idx)
        group_hits = [hit_of[i] for i in idx if i in hit_of]
        if group_hits:
            row["top1"] = 100.0 * float(np.mean(group_hits))
        out[g] = row
    return out


def to_markdown(report: dict[str, Any]) -> str:
    proto = report["protocol"]
    keys = list(FIDELITY_KEYS)
    if any("top1" in r["metrics"] for r in report["models"].values()):
        keys.append("top1")
    keys.append("ms_per_image")
    heads = {"auc": "AuC", "auc_rebal": "AuC rebal.", "psnr": "PSNR", "ssim": "SSIM", "qssim": "QSSIM",
             "ciede2000": "CIEDE2000", "colorfulness": "CF", "cf_gap": "CF gap (abs)", "top1": "top-1 %",
             "ms_per_image": "ms/img"}
    lines = [f"Evaluated on {proto['images']} photos from {', '.join(proto['data'])} at {proto['size']}^2 "
             f"(render size {proto['render_size']}).", "",
             "| model | " + " | ".join(heads[k] for k in keys) + " |",
             "|---|" + "---:|" * len(keys)]
    for spec, r in report["models"].items():
        m = r["metrics"]
        cells = [f"{m[k]:.2f}" if k in m and np.isfinite(m[k]) else ("inf" if k in m else "-") for k in keys]
        lines.append(f"| {spec} | " + " | ".join(cells) + " |")
    grouped = [(spec, r["groups"]) for spec, r in report["models"].items() if "groups" in r]
    if grouped:
        lines += ["", "Per group (PSNR / AuC / CF" + (" / top-1 %" if "top1" in keys else "") + "):", "",
                  "| group | photos | " + " | ".join(spec for spec, _ in grouped) + " |",
                  "|---|---:|" + "---:|" * len(grouped)]
        for g, n in proto.get("groups", {}).items():
            cells = []
            for _, gm in grouped:
                m = gm[g]
                cell = f"{m['psnr']:.2f} / {m['auc']:.2f} / {m['colorfulness']:.1f}"
                cells.append(cell + (f" / {m['top1']:.1f}" if "top1" in m else ""))
            lines.append(f"| {g} | {n} | " + " | ".join(cells) + " |")
    if proto.get("pseudo_labelled"):
        lines += ["", f"top-1: {proto['pseudo_labelled']} photos without an ImageNet label carry the "
                  f"classifier's label of their truth (probability >= {PSEUDO_LABEL_CONFIDENCE:g}); "
                  f"{proto['imagenet_labelled']} carry their ImageNet label."]
    lines += ["", f"ms/img: median of {proto['images']} calls of the in-memory colorization after "
              f"{WARMUP_CALLS} warm-up calls, {report['machine']['threads']} torch thread(s)."]
    lines += ["", "Protocol: " + " ".join(proto["text"].split())]
    return "\n".join(lines) + "\n"


def _save_grid(rows: list[list[np.ndarray]], titles: list[str], path: Path, cell: int = 160) -> None:
    """Rows = photos; columns = gray input, truth, each model (labelled on top)."""
    from PIL import ImageDraw

    cols = len(rows[0]) + 1
    W, H = cols * cell, len(rows) * cell + 18
    canvas = Image.new("RGB", (W, H), "white")
    draw = ImageDraw.Draw(canvas)
    for j, title in enumerate(["gray input"] + titles):
        name, _, method = title.partition("@")
        short = Path(name).stem if name.endswith(".safetensors") else name
        draw.text((j * cell + 4, 3), (short + (f"@{method}" if method else ""))[-26:], fill="black")
    for i, row in enumerate(rows):
        gray = Image.fromarray(row[0]).convert("L").convert("RGB")
        for j, im in enumerate([np.asarray(gray)] + row):
            canvas.paste(Image.fromarray(im).resize((cell, cell)), (j * cell, 18 + i * cell))
    canvas.save(path)
