"""Channels-first (NCHW) against channels-last (NHWC) weights: forward time and training step.

    python benchmarks/memory_format.py [--model default --model tinct-lite0-hc] [--repeats 9]
                                       [--train-config configs/default.yaml]

``tinct.models.base.build_model`` stores every model's 4-D weights channels-last, because
oneDNN's convolutions, bilinear resizes and 1x1 heads run faster that way on a CPU. This prints
the evidence on this machine:

1. ``predict_ab`` at 256^2 (network + decoding) for each model in both layouts, interleaved
   (NCHW, NHWC, NCHW, ...) so that a slow moment of the machine hits both, with the largest
   |ab| difference between them (Lab units), and the ECCV16 speed yardstick the same way;
2. one training step (forward, loss, backward, AdamW) of ``--train-config``'s model on a random
   batch of its recipe's shape, in both layouts, one process.

Times are medians in milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from eccv16_reference import reference as eccv16_reference  # noqa: E402

LAYOUTS = {"NCHW": torch.contiguous_format, "NHWC": torch.channels_last}


def alternating_ms(runs: dict[str, tuple[Callable[[], object], Callable[[], object]]], repeats: int) -> dict[str, float]:
    """Median ms of each run's timed call, the runs alternating every round.

    ``runs`` maps a name to (prepare, timed): ``prepare`` (untimed) runs before each ``timed``
    call, e.g. to put a shared module into that run's layout. The first round only warms up.
    """
    times: dict[str, list[float]] = {k: [] for k in runs}
    for i in range(repeats + 1):
        for name, (prepare, timed) in runs.items():
            prepare()
            t = time.perf_counter()
            timed()
            if i:
                times[name].append(time.perf_counter() - t)
    return {k: 1000 * statistics.median(v) for k, v in times.items()}


def layouts_ms(module: torch.nn.Module, fn: Callable[[], object], repeats: int) -> dict[str, float]:
    """``alternating_ms`` of ``fn`` with ``module`` switched between the layouts; left NHWC."""
    ms = alternating_ms({name: (lambda fmt=fmt: module.to(memory_format=fmt), fn) for name, fmt in LAYOUTS.items()},
                        repeats)
    module.to(memory_format=torch.channels_last)
    return ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", help="shipped model(s) (default: default, tinct-lite0-hc)")
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--train-config", type=Path, default=ROOT / "configs" / "default.yaml")
    args = ap.parse_args()

    import tinct
    from tinct.models.base import build_model

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    L = torch.rand(1, 1, 256, 256) * 100
    print("| network at 256^2 | NCHW ms | NHWC ms | NHWC / NCHW | max ab diff |\n|---|---:|---:|---:|---:|")
    with torch.inference_mode():
        ref = eccv16_reference()
        ms = layouts_ms(ref, lambda: ref(L), args.repeats)
        print(f"| ECCV16 reference | {ms['NCHW']:.0f} | {ms['NHWC']:.0f} | {ms['NHWC'] / ms['NCHW']:.2f} | - |")
        for name in args.model or ["default", "tinct-lite0-hc"]:
            model = tinct.load_model(name)
            model.to(memory_format=torch.contiguous_format)
            nchw = model.predict_ab(L)
            model.to(memory_format=torch.channels_last)
            diff = (model.predict_ab(L) - nchw).abs().max().item()
            ms = layouts_ms(model, lambda m=model: m.predict_ab(L), args.repeats)
            print(f"| {name} | {ms['NCHW']:.0f} | {ms['NHWC']:.0f} | {ms['NHWC'] / ms['NCHW']:.2f} | {diff:.1e} |")

    cfg = yaml.safe_load(args.train_config.read_text())
    model_cfg = dict(cfg["model"])
    arch = model_cfg.pop("arch")
    size, batch = int(cfg.get("size", 192)), int(cfg.get("batch_size", 16))
    data = {"L": torch.rand(batch, 1, size, size) * 100, "ab": torch.randn(batch, 2, size, size) * 20}
    runs: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {}
    for name, fmt in LAYOUTS.items():
        # one model and optimizer per layout, so that Adam's moments share their weights' layout
        model = build_model(arch, **model_cfg).to(memory_format=fmt).train()
        opt = torch.optim.AdamW(model.trainable_parameters(), lr=1e-4)

        def step(model: torch.nn.Module = model, opt: torch.optim.Optimizer = opt) -> None:
            loss, _ = model.loss(model(data["L"]), data)
            opt.zero_grad()
            loss.backward()
            opt.step()

        runs[name] = (lambda: None, step)
    ms = alternating_ms(runs, max(3, args.repeats // 2))
    print(f"\n| training step, {args.train_config.name}, batch {batch} of {size}^2, one process | NCHW ms | NHWC ms | "
          f"NHWC / NCHW |\n|---|---:|---:|---:|\n| {cfg.get('name', '?')} | {ms['NCHW']:.0f} | {ms['NHWC']:.0f} | "
          f"{ms['NHWC'] / ms['NCHW']:.2f} |")


if __name__ == "__main__":
    main()
