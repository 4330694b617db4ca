"""One trainer for every registered model: ``tinct train CONFIG``.

Reads a small YAML recipe (see configs/), builds the manifest, the model and the optimizer,
and runs a step-based loop through the model contract (``model(L)`` -> ``model.loss``). It
writes into the run directory:

    manifest.json              filtered, split image list (reused on resume)
    metrics.jsonl              one JSON object per logged step and per validation
    checkpoints/step_*.pt      atomic, the last ``keep_last`` kept; ``--resume`` continues exactly
    figures/step_*.png         fixed validation images: gray / truth / prediction rows (seed 003)
    loss.png                   training and validation loss curves
    final.safetensors          the trained weights with metadata (data, steps, metrics)

Under ``torchrun --nproc_per_node N`` the same command trains with DistributedDataParallel
(gloo on CPU, nccl on CUDA); rank 0 alone logs, draws and checkpoints.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import yaml
from tqdm import tqdm

from .atomic import atomic_path
from .color import lab_to_rgb
from .data import (
    CropDataset,
    EpochSampler,
    Manifest,
    ManifestEntry,
    build_manifest,
    check_crop_scale,
    check_train_fraction,
    subsample,
)
from .errors import MissingFileError, SetupError, TrainingDiverged, UsageError
from .feature_cache import CachedCrops, build_feature_cache, cache_photo_indices, collate_cached
from .models.base import ColorModel, build_model
from .weights import save_weights

__all__ = ["TrainConfig", "Trainer", "load_config", "train"]

log = logging.getLogger("tinct.train")


@dataclass
class TrainConfig:
    """A training recipe. Every field has a default; configs/*.yaml override what they need."""

    name: str = "run"
    description: str = ""
    model: dict[str, Any] = field(default_factory=lambda: {"arch": "hypercolumns"})
    data: dict[str, Any] = field(default_factory=dict)          # roots, labels_csv, fractions, train_fraction
    size: int = 224                 # training crop
    resize: int = 256               # short side before cropping
    crop_scale: list[float] | None = None  # [lo, hi]: share of the short side a training crop covers (scale augmentation)
    batch_size: int = 16
    max_steps: int = 1000
    optimizer: dict[str, Any] = field(default_factory=lambda: {"name": "adamw", "lr": 3e-4})
    schedule: dict[str, Any] = field(default_factory=lambda: {"name": "constant"})
    grad_clip: float | None = 1.0
    seed: int = 0
    workers: int = 2
    threads: int | None = None
    log_every: int = 10
    val_every: int = 500            # steps; a validation also runs at each epoch end
    val_images: int = 64            # how many validation crops to score
    figure_images: int = 6
    checkpoint_every: int = 200
    keep_last: int = 3
    init: str | None = None         # start from these weights (shipped name or .safetensors), see init_from

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise UsageError(f"unknown config keys: {', '.join(sorted(unknown))}")
        return cls(**d)


def load_config(path: str | Path) -> TrainConfig:
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"config not found: {p}")
    return TrainConfig.from_dict(yaml.safe_load(p.read_text()) or {})


# ----------------------------------------------------------------------------- pieces
def make_optimizer(params: list[torch.nn.Parameter] | list[dict[str, Any]], spec: dict[str, Any]) -> torch.optim.Optimizer:
    """Optimizer from config: adamw | adam | sgd | adadelta (Iizuka et al. use Adadelta).

    ``params`` is a list of parameters or of torch param groups (see ``parameter_groups``).
    """
    spec = dict(spec)
    spec.pop("backbone_lr_factor", None)  # consumed by parameter_groups
    name = spec.pop("name", "adamw").lower()
    classes = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD,
               "adadelta": torch.optim.Adadelta}
    if name not in classes:
        raise UsageError(f"unknown optimizer {name!r}; choose from {', '.join(classes)}")
    if "betas" in spec:
        spec["betas"] = tuple(spec["betas"])
    return classes[name](params, **spec)


def parameter_groups(model: torch.nn.Module, spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The model's trainable parameters as optimizer groups.

    One group, unless ``spec["backbone_lr_factor"]`` is set: then parameters under ``backbone.``
    form a second group whose learning rate is the optimizer's times that factor (fine-tuned
    pretrained layers usually want a smaller step than the freshly initialised head).
    """
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    factor = spec.get("backbone_lr_factor")
    if factor is None:
        return [{"params": [p for _, p in trainable]}]
    if not factor > 0:
        raise UsageError(f"backbone_lr_factor must be positive, got {factor}")
    if "lr" not in spec:
        raise UsageError("backbone_lr_factor needs the optimizer's lr in the recipe")
    head = [p for n, p in trainable if not n.startswith("backbone.")]
    body = [p for n, p in trainable if n.startswith("backbone.")]
    groups = [{"params": head}]
    if body:
        groups.append({"params": body, "lr": float(spec["lr"]) * float(factor)})
    return groups


def init_from(model: torch.nn.Module, weights: str) -> dict[str, Any]:
    """Load the tensors of ``weights`` (a shipped model name or a .safetensors file) into ``model``.

    The file must hold the same architecture with the same model config (``pretrained`` and the
    model's ``training_only_config`` keys aside), so that training continues the same network: a
    longer run split across sessions, or a shipped model fine-tuned on your photos. Optimizer state and schedule start afresh (the
    file has neither). Returns what the run's metadata records: the source's name, steps and
    total_steps (its own ``total_steps`` when it was itself continued).
    """
    from .weights import load_weights, resolve

    path = resolve(weights)
    source = load_weights(path)
    extends = source.arch != model.arch and source.arch in getattr(model, "init_archs", ())
    ignored = {"pretrained", *getattr(model, "training_only_config", ())}
    same = {k: v for k, v in source.config.items() if k not in ignored}
    want = {k: v for k, v in model.config.items() if k not in ignored and (k in same or not extends)}
    if (source.arch != model.arch and not extends) or same != want:
        diff = sorted(k for k in set(same) | set(want) if same.get(k) != want.get(k))
        raise UsageError(f"cannot start from {path}: it is {source.arch!r} with another model config "
                         f"({', '.join(diff) or 'arch'} differ); init needs the recipe's own model")
    missing, unexpected = model.load_state_dict(source.state_dict(), strict=not extends)
    if unexpected:
        raise UsageError(f"cannot start from {path}: {model.arch!r} has no {', '.join(unexpected[:3])}")
    if missing:  # a model that extends the source (e.g. a hint branch over the automatic model)
        log.info("init from %s: %d new tensors start at their own initialisation", path, len(missing))
    return init_origin(weights, source.metadata)


def init_origin(weights: str, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a run started from ``weights`` records: name, steps and total_steps of the source.

    ``meta`` is the source's metadata when already read (else its file header is read).
    """
    from .weights import read_metadata, resolve

    meta = meta if meta is not None else read_metadata(resolve(weights))
    steps = int(meta.get("steps", 0))
    return {"weights": str(weights), "name": meta.get("name"), "steps": steps,
            "total_steps": int(meta.get("total_steps", steps))}


def lr_factor(step: int, spec: dict[str, Any], max_steps: int, steps_per_epoch: int) -> float:
    """Multiplier of the base learning rate at ``step``: warmup, then constant | step | cosine.

    ``step`` decays by ``gamma`` every ``every`` steps (or epochs with ``unit: epochs``): seed
    004's "x0.5 every N epochs".
    """
    warmup = int(spec.get("warmup", 0))
    f = min(1.0, (step + 1) / warmup) if warmup else 1.0
    name = spec.get("name", "constant")
    if name == "constant":
        return f
    if name == "step":
        every = round(float(spec["every"]) * (steps_per_epoch if spec.get("unit") == "epochs" else 1))
        if every < 1:
            raise UsageError(f"schedule.every={spec['every']} {spec.get('unit', 'steps')} is less than one step")
        return f * float(spec.get("gamma", 0.5)) ** (step // every)
    if name == "cosine":
        t = min(step / max(max_steps, 1), 1.0)
        floor = float(spec.get("min_factor", 0.0))
        return f * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t)))
    raise UsageError(f"unknown schedule {name!r}; use constant, step or cosine")


def fit_batch(items: int, per_rank_batch: int, world: int = 1, what: str = "training photos",
              warn: bool = True) -> int:
    """The per-process batch size: ``per_rank_batch``, or smaller when an epoch has fewer items.

    Batches are full (``drop_last``), so a training set smaller than one batch would yield no
    batch at all and the step loop would never advance: then every process trains on batches
    of all its items (one step per epoch), and a one-line warning names the counts.
    """
    if items < 1:
        raise UsageError(f"no {what} to train on")
    per_rank_items = -(-items // world)  # EpochSampler pads the last round to ``world``
    if per_rank_items >= per_rank_batch:
        return per_rank_batch
    fitted = per_rank_items
    if warn:
        log.warning("only %d %s for batch_size %d: training on batches of %d (add photos or lower batch_size)",
                    items, what, per_rank_batch * world, fitted * world)
    return fitted


def _collate(samples: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.stack([s[k] for s in samples]) for k in samples[0]}


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


def threshold_hits(pred_ab: torch.Tensor, true_ab: torch.Tensor, max_threshold: int = 150) -> torch.Tensor:
    """How many pixels have an ab error <= t, for t = 0..max_threshold: (max_threshold + 1,) float.

    pred_ab, true_ab: (B,2,H,W). Streaming: one histogram of ceil(error) and a cumulative sum, so
    memory stays O(pixels), not O(pixels x thresholds) (error <= t  <=>  ceil(error) <= t for integer t).
    """
    err = (pred_ab - true_ab).norm(dim=1).flatten()
    cells = torch.ceil(err).clamp(max=max_threshold + 1).long()
    counts = torch.bincount(cells, minlength=max_threshold + 2)
    return counts.cumsum(0)[: max_threshold + 1].float()


@torch.no_grad()
def validate(model: ColorModel, dataset: CropDataset, count: int, batch_size: int) -> dict[str, float]:
    """Mean validation loss, ab PSNR-like error and AuC over the first ``count`` center crops,
    plus ``val_<name>`` for each number the model's loss logs (e.g. Iizuka's classification
    ``acc``), averaged over the crops."""
    model.eval()
    losses, sq_err, n_pix = [], 0.0, 0
    log_sums: dict[str, float] = {}
    n_crops = 0
    thresholds = torch.arange(0, 151, dtype=torch.float32)
    hits = torch.zeros_like(thresholds)
    for start in range(0, min(count, len(dataset)), batch_size):
        batch = _collate([dataset[i] for i in range(start, min(start + batch_size, count, len(dataset)))])
        pred = model(batch["L"])
        loss, logs = model.loss(pred, batch)
        losses.append(loss.item())
        size = batch["L"].shape[0]
        n_crops += size
        for key, value in logs.items():
            if key != "loss" and isinstance(value, (int, float)) and math.isfinite(value):
                log_sums[key] = log_sums.get(key, 0.0) + value * size
        ab = model.decode(pred)
        ab = torch.nn.functional.interpolate(ab, size=batch["ab"].shape[-2:], mode="bilinear", align_corners=False)
        rgb_p = lab_to_rgb(torch.cat([batch["L"], ab], 1))
        rgb_t = lab_to_rgb(torch.cat([batch["L"], batch["ab"]], 1))
        sq_err += ((rgb_p - rgb_t) ** 2).sum().item()
        n_pix += rgb_p.numel()
        hits += threshold_hits(ab, batch["ab"], len(thresholds) - 1)
    model.train()
    mse = sq_err / max(n_pix, 1)
    npx = n_pix / 3
    return {"val_loss": float(np.mean(losses)) if losses else float("nan"),
            "val_psnr": 10 * math.log10(1.0 / max(mse, 1e-12)),
            "val_auc": float((hits / max(npx, 1)).mean() * 100),
            **{f"val_{key}": total / n_crops for key, total in log_sums.items()}}


@torch.no_grad()
def figure(model: ColorModel, dataset: CropDataset, count: int, path: Path) -> None:
    """A PNG with rows gray input / ground truth / prediction for the first ``count`` val crops."""
    from PIL import Image

    model.eval()
    batch = _collate([dataset[i] for i in range(min(count, len(dataset)))])
    ab = model.decode(model(batch["L"]))
    ab = torch.nn.functional.interpolate(ab, size=batch["ab"].shape[-2:], mode="bilinear", align_corners=False)
    L = batch["L"]
    rows = [lab_to_rgb(torch.cat([L, torch.zeros_like(batch["ab"])], 1)),
            lab_to_rgb(torch.cat([L, batch["ab"]], 1)), lab_to_rgb(torch.cat([L, ab], 1))]
    grid = torch.cat([torch.cat(list(r), dim=2) for r in rows], dim=1)  # (3, 3*S, n*S)
    arr = (grid.permute(1, 2, 0).clamp(0, 1) * 255 + 0.5).byte().numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    model.train()


def plot_losses(records: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tr = [(r["step"], r["loss"]) for r in records if "loss" in r]
    va = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    if tr:
        ax.plot(*zip(*tr), label="train", lw=1)
    if va:
        ax.plot(*zip(*va), "o-", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def corpus_manifest(path: str | Path) -> tuple[Manifest, dict[str, float]]:
    """A corpus manifest (``tinct.corpus build``) as a training Manifest, and each photo's weight."""
    from .corpus import read_manifest

    photos = read_manifest(path)
    entries = [ManifestEntry(p.path, -1, p.split, p.width, p.height) for p in photos]
    return Manifest(entries, [], {}, [str(path)]), {p.path: p.weight for p in photos}


def model_for_cache(cfg: TrainConfig) -> ColorModel:
    """The recipe's model with its pretrained backbone, to compute the features a cache stores."""
    model_cfg = dict(cfg.model)
    model = build_model(model_cfg.pop("arch"), **model_cfg)
    if not hasattr(model, "from_features") or not getattr(model, "freeze_backbone", False) or getattr(model, "tune_levels", 0):
        raise UsageError("data.feature_cache needs a model with a fully frozen backbone and a "
                         "features/from_features split (the larsson models)")
    return model


def cached_training_set(model: ColorModel, entries: list[ManifestEntry], weights: list[float] | None,
                        cfg: TrainConfig, crop_scale, progress: bool,
                        keep: list[ManifestEntry] | None = None) -> CachedCrops:
    """Build (or finish) ``data.feature_cache`` for ``entries`` and open it as the training set.

    The cache always covers every training photo, so that ``keep`` (a ``data.train_fraction``
    subset) reads the crops of fewer photos from the same cache.
    """
    data = cfg.data
    build_feature_cache(model, entries, weights or [1.0] * len(entries), data["feature_cache"], cfg.size,
                        cfg.resize, crops_per_unit=float(data.get("crops_per_unit", 1.0)), crop_scale=crop_scale,
                        seed=cfg.seed, batch_size=32, workers=min(cfg.workers, 1), progress=progress)
    cached = json.loads((Path(data["feature_cache"]).expanduser() / "photos.json").read_text())
    wanted = [e.path for e in (keep if keep is not None else entries)]
    if wanted == cached:
        return CachedCrops(data["feature_cache"])
    return CachedCrops(data["feature_cache"], photos=cache_photo_indices(data["feature_cache"], wanted))


# ----------------------------------------------------------------------------- checkpoints
def _atomic_torch_save(obj: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def latest_checkpoint(run_dir: Path) -> Path | None:
    ckpts = sorted((run_dir / "checkpoints").glob("step_*.pt"))
    return ckpts[-1] if ckpts else None


def _one_line(exc: BaseException) -> str:
    """An exception's first sentence on one short line (torch and pickle errors run to paragraphs)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = text.split(". ", 1)[0].rstrip(".")
    return text if len(text) <= 120 else text[:117] + "..."


def resume_checkpoint(run_dir: Path, restore: Callable[[dict[str, Any]], None], device: str) -> tuple[Path, dict[str, Any]] | None:
    """Restore the newest checkpoint of ``run_dir`` that loads; None when there is none.

    ``restore(state)`` applies a loaded checkpoint (model, optimizer, scheduler...) and raises
    when it does not fit. A checkpoint that cannot be read or applied (truncated, not a
    checkpoint, another model) is skipped with a one-line warning naming it, and the previous
    one is tried; when none works the error is one line (ValueError) saying what to do.
    """
    ckpts = sorted((run_dir / "checkpoints").glob("step_*.pt"), reverse=True)
    problems: list[str] = []
    for path in ckpts:
        try:
            with warnings.catch_warnings():  # torch warns about the pickle protocol of odd files
                warnings.simplefilter("ignore")
                state = torch.load(path, map_location=device, weights_only=True)
            if not isinstance(state, dict) or not {"model", "optimizer", "step"} <= set(state):
                raise UsageError("not a tinct training checkpoint")
        except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint is skipped, by name
            problem = f"truncated or corrupt ({_one_line(exc)})"
        else:
            try:
                restore(state)
                return path, state
            except Exception as exc:  # noqa: BLE001 - e.g. the recipe's model changed since
                problem = f"does not fit this run ({_one_line(exc)})"
        problems.append(f"{path.name}: {problem}")
        log.warning("--resume: cannot load checkpoint %s: %s%s", path, problem,
                    "; trying the previous one" if path != ckpts[-1] else "")
    if not ckpts:
        return None
    raise UsageError(f"--resume: no checkpoint in {run_dir / 'checkpoints'} can be loaded ({problems[0]}"
                     f"{f'; {len(problems) - 1} older one(s) too' if len(problems) > 1 else ''}); move the "
                     "checkpoints folder away to start from scratch, or drop --resume")


def save_checkpoint(run_dir: Path, state: dict[str, Any], keep_last: int) -> Path:
    d = run_dir / "checkpoints"
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"step_{state['step']:08d}.pt"
    _atomic_torch_save(state, path)
    for old in sorted(d.glob("step_*.pt"))[:-keep_last]:
        old.unlink(missing_ok=True)
    return path


# ----------------------------------------------------------------------------- the loop
def _dist_env() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))


class Trainer:
    """One training run of ``cfg`` into ``run_dir``, in named steps that ``run`` calls in order:

        build_data   the manifest (or corpus), the training set (photos or the feature cache), val crops
        build_model  the model, optimizer and schedule; ``init`` weights; ``--resume`` state
        step         one optimizer step on one batch (the model contract: forward -> ``model.loss``)
        validate     scores and a figure on fixed validation crops (rank 0)
        checkpoint   the full state, atomically (rank 0)
        finish       final.safetensors with what the run was (rank 0)

    Under torchrun each process is one rank (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``).
    """

    def __init__(self, cfg: TrainConfig, run_dir: str | Path, resume: bool = False, max_steps: int | None = None,
                 device: str = "cpu", progress: bool = True):
        self.cfg = cfg
        self.rank, self.world, self.local_rank = _dist_env()
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if device == "cuda" else "gloo")
        if device == "cuda":
            if not torch.cuda.is_available():
                raise SetupError("--device cuda was asked for but no CUDA device is available")
            device = f"cuda:{self.local_rank}"
            torch.cuda.set_device(device)
        self.device = device
        self.is_main = self.rank == 0
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.resume = resume
        self.max_steps = max_steps or cfg.max_steps
        self.progress = progress
        self.step_count, self.epoch, self.pos, self.elapsed = 0, 0, 0, 0.0
        self.records: list[dict[str, Any]] = []
        self.origin: dict[str, Any] | None = None
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)

    # -- build --------------------------------------------------------------------------
    def build_data(self) -> None:
        """The photos: manifest, training set (crops, or cached features), validation crops."""
        cfg, data = self.cfg, self.cfg.data
        roots = data.get("roots") or []
        corpus = data.get("corpus")
        if not roots and not corpus:
            raise UsageError("no training data: set data.roots (or data.corpus) in the config or pass --data DIR")
        self.feature_cache = data.get("feature_cache")
        if self.feature_cache and self.world > 1:
            raise UsageError("data.feature_cache trains on one process; drop it to train under torchrun")
        # checked before the (possibly long) manifest scan
        train_fraction = check_train_fraction(float(data.get("train_fraction", 1.0)))
        crop_scale = check_crop_scale(cfg.crop_scale)
        if corpus:
            manifest, weight_of = corpus_manifest(corpus)
            roots = [corpus]
            log.info("data: %s", manifest.summary())
        elif self.is_main:
            manifest = build_manifest(roots, cache=self.run_dir / "manifest.json",
                                      fractions=tuple(data.get("fractions", (0.9, 0.05, 0.05))),
                                      labels_csv=data.get("labels_csv"), workers=cfg.workers, progress=self.progress)
            log.info("data: %s", manifest.summary())
        if self.world > 1:
            dist.barrier()
        if not self.is_main and not corpus:
            manifest = build_manifest(roots, cache=self.run_dir / "manifest.json", progress=False)
        all_train = manifest.split("train")
        train_entries = subsample(all_train, train_fraction)
        if not train_entries:
            raise UsageError("no training photos left after data.train_fraction")
        if self.is_main and len(train_entries) < len(all_train):
            log.info("data.train_fraction %s: training on %d of %d photos", train_fraction, len(train_entries),
                     len(all_train))
        if self.feature_cache:
            self.train_set = cached_training_set(model_for_cache(cfg), all_train,
                                                 [weight_of.get(e.path, 1.0) for e in all_train] if corpus else None,
                                                 cfg, crop_scale, self.progress and self.is_main, keep=train_entries)
        else:
            self.train_set = CropDataset(train_entries, cfg.size, cfg.resize, train=True, seed=cfg.seed,
                                         crop_scale=crop_scale)
        # A deterministic mix of every class (the manifest is sorted by folder) for scores and figures.
        val_entries = sorted(manifest.split("val") or manifest.split("train"),
                             key=lambda e: hashlib.sha1(e.path.encode()).hexdigest())
        self.val_set = CropDataset(val_entries, cfg.size, cfg.resize, train=False, seed=cfg.seed)
        self.manifest, self.roots, self.train_entries = manifest, roots, train_entries

    def build_model(self) -> None:
        """The model, optimizer and schedule; then the ``init`` weights or the ``--resume`` state."""
        cfg = self.cfg
        model_cfg = dict(cfg.model)
        arch = model_cfg.pop("arch")
        from .models.base import model_class

        if getattr(model_class(arch), "needs_labels", False):
            model_cfg.setdefault("num_classes", max(len(self.manifest.classes), 1))
        self.model = model = build_model(arch, **model_cfg).to(self.device)
        model.train()
        self.params = model.trainable_parameters()
        self.optimizer = make_optimizer(parameter_groups(model, cfg.optimizer), cfg.optimizer)
        self.batch = fit_batch(len(self.train_set), max(cfg.batch_size // self.world, 1), self.world,
                               "cached training crops" if self.feature_cache else "training photos", self.is_main)
        steps_per_epoch = max(len(self.train_set) // (self.batch * self.world), 1)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, cfg.schedule, self.max_steps, steps_per_epoch))
        resumed = resume_checkpoint(self.run_dir, self._restore, self.device) if self.resume else None
        if cfg.init:  # a resumed run's checkpoint already holds the weights it started from: only record them
            self.origin = init_origin(cfg.init) if resumed else init_from(model, cfg.init)
        if self.resume:
            if resumed is None:
                log.warning("--resume: no checkpoint in %s, starting from scratch", self.run_dir)
            else:
                ckpt_path, ckpt = resumed
                self.step_count, self.epoch, self.pos = ckpt["step"], ckpt["epoch"], ckpt["pos"]
                self.elapsed = ckpt.get("elapsed", 0.0)
                if self.is_main:
                    log.info("resumed from %s (step %d, epoch %d)", ckpt_path, self.step_count, self.epoch)
        self.net: torch.nn.Module = model
        if self.world > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[self.local_rank] if self.device.startswith("cuda") else None)

    def _restore(self, ckpt: dict[str, Any]) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        torch.set_rng_state(ckpt["rng_torch"])
        random.setstate(_to_py_state(ckpt["rng_python"]))

    # -- the steps ------------------------------------------------------------------------
    def step(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        """One optimizer step on ``batch`` ({"L", "ab"} or, from the cache, {"feats", "L", "ab"})."""
        batch = {k: [f.to(self.device) for f in v] if k == "feats" else v.to(self.device) for k, v in batch.items()}
        extra = self.model.train_inputs(batch)
        pred = (self.model.from_features(batch["feats"], batch["ab"].shape[-2:], **extra) if self.feature_cache
                else self.net(batch["L"], **extra))
        loss, logs = self.model.loss(pred, batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.step_count += 1
        self.pos += self.batch
        if not math.isfinite(loss.item()):
            raise TrainingDiverged(f"loss became {loss.item()} at step {self.step_count}; lower the learning rate")
        return loss, logs

    def validate(self, tag: str) -> dict[str, float]:
        """Scores on the validation crops, a figure and the loss plot (rank 0; {} elsewhere)."""
        if not self.is_main:
            return {}
        cfg = self.cfg
        vals = validate(self.model, self.val_set, cfg.val_images, self.batch)
        self.emit({"step": self.step_count, "epoch": self.epoch, **vals})
        figure(self.model, self.val_set, cfg.figure_images, self.run_dir / "figures" / f"{tag}.png")
        plot_losses(self.records, self.run_dir / "loss.png")
        return vals

    def checkpoint(self) -> None:
        """The full training state, atomically; the last ``keep_last`` kept (rank 0)."""
        if self.is_main:
            save_checkpoint(self.run_dir, {
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "step": self.step_count, "epoch": self.epoch,
                "pos": self.pos, "elapsed": self.elapsed, "rng_torch": torch.get_rng_state(),
                "rng_python": _from_py_state(random.getstate()), "config": json.dumps(self.cfg.__dict__),
            }, self.cfg.keep_last)

    def emit(self, rec: dict[str, Any]) -> None:
        """Append one record to metrics.jsonl (and to the records the loss plot reads)."""
        self.records.append(rec)
        with open(self.run_dir / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps(rec) + "\n")

    def _open_metrics(self) -> None:
        """metrics.jsonl: on resume, cut back to the resumed step; else started empty."""
        path = self.run_dir / "metrics.jsonl"
        if not self.is_main:
            return
        if path.exists() and self.resume:
            records = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
            self.records = [r for r in records if r.get("step", 0) <= self.step_count]
            path.write_text("".join(json.dumps(r) + "\n" for r in self.records))
        else:
            path.write_text("")

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> Path:
        """build_data, build_model, then steps (logging, checkpoints, validations) up to ``max_steps``."""
        self.build_data()
        self.build_model()
        self._open_metrics()
        cfg, main = self.cfg, self.is_main
        bar = tqdm(total=self.max_steps, initial=self.step_count, desc=f"train {cfg.name}", unit="step",
                   disable=not (self.progress and main), dynamic_ncols=True)
        last_vals: dict[str, float] = {}
        t_last, seen_last = time.perf_counter(), 0
        while self.step_count < self.max_steps:
            sampler = EpochSampler(len(self.train_set), cfg.seed, self.epoch, start=self.pos, rank=self.rank,
                                   world=self.world)
            loader = torch.utils.data.DataLoader(
                self.train_set, batch_size=self.batch, sampler=sampler, drop_last=True,
                collate_fn=collate_cached if self.feature_cache else _collate,
                num_workers=cfg.workers, worker_init_fn=_worker_init if cfg.workers else None,
                persistent_workers=False, prefetch_factor=4 if cfg.workers else None)
            for batch in loader:
                t0 = time.perf_counter()
                loss, logs = self.step(batch)
                self.elapsed += time.perf_counter() - t0
                seen_last += self.batch * self.world
                step = self.step_count
                if main and step % cfg.log_every == 0:
                    now = time.perf_counter()
                    ips = seen_last / max(now - t_last, 1e-9)
                    t_last, seen_last = now, 0
                    self.emit({"step": step, "epoch": self.epoch, "loss": loss.item(),
                               "lr": self.scheduler.get_last_lr()[0], "images_per_s": ips, **logs})
                    bar.set_postfix(loss=f"{loss.item():.4f}", img_s=f"{ips:.1f}")
                bar.update(1)
                if step % cfg.checkpoint_every == 0:
                    self.checkpoint()
                if step % cfg.val_every == 0:
                    last_vals = self.validate(f"step_{step:08d}") or last_vals
                if step >= self.max_steps:
                    break
            else:
                self.epoch, self.pos = self.epoch + 1, 0
                last_vals = self.validate(f"epoch_{self.epoch:03d}") or last_vals
                self.checkpoint()
                continue
            break
        bar.close()
        self.checkpoint()
        return self.finish(last_vals)

    def finish(self, last_vals: dict[str, float]) -> Path:
        """final.safetensors: the weights with the data, steps, time, scores and recipe (rank 0)."""
        cfg, step = self.cfg, self.step_count
        final = self.run_dir / "final.safetensors"
        if self.is_main:
            if not last_vals or self.records[-1].get("step") != step:
                last_vals = self.validate(f"step_{step:08d}")
            meta = {
                "name": cfg.name, "description": cfg.description,
                "data": {"roots": [str(r) for r in self.roots], "summary": self.manifest.summary(),
                         "train_photos": len(self.train_entries), "crop": cfg.size, "resize": cfg.resize},
                "steps": step, "images_seen": step * self.batch * self.world, "train_seconds": round(self.elapsed, 1),
                "world_size": self.world, "metrics": last_vals, "recipe": cfg.__dict__,
                **({"init": self.origin, "total_steps": self.origin["total_steps"] + step} if self.origin else {}),
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            save_weights(self.model, final, meta)
            log.info("wrote %s", final)
        if self.world > 1:
            dist.barrier()
        return final


def train(cfg: TrainConfig, run_dir: str | Path, resume: bool = False, max_steps: int | None = None,
          device: str = "cpu", progress: bool = True) -> Path:
    """Train ``cfg`` into ``run_dir`` (``Trainer``); returns the path of the exported final weights."""
    return Trainer(cfg, run_dir, resume, max_steps, device, progress).run()


def _from_py_state(state: tuple) -> list:
    return [state[0], list(state[1]), state[2]]


def _to_py_state(state: list) -> tuple:
    return (state[0], tuple(state[1]), state[2])
