"""PyTorch eager vs onnxruntime: time per image for one model at render sizes 256 and 384.

For each render size the input is ``astronaut()`` in gray, resized to that longer side at a
4:3 aspect (256x192, 384x288), and timed as

* ``network``: ``model(L)``, the part ONNX replaces;
* ``predict``: ``model.predict_ab(L)``, network + decoding (decoding is PyTorch in both).

Times are the median of ``--repeats`` runs after one warm-up, in milliseconds per image
(batch 1). The ONNX file is exported into a temporary folder first (not timed). The last
column is the largest |ab| difference between the backends (Lab units).

Usage: ``python benchmarks/speed_backends.py [--model NAME_OR_PATH] [--sizes 256 384] [--repeats 7]
[--threads N]``. On a machine that is busy with something else, compare ``--threads 1`` too:
PyTorch's OpenMP threads slow down badly when a core they wait for is taken.
Default model: the shipped ``default`` when present, else a freshly built ``hypercolumns``
(same architecture and cost; random head).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from skimage import data

from tinct.color import rgb_to_lab
from tinct.models.base import ColorModel
from tinct.runtime import load_runtime


def load(name: str | None) -> tuple[ColorModel, str]:
    from tinct.models import build_model
    from tinct.weights import load_weights, resolve, shipped_weights

    if name:
        return load_weights(resolve(name)), name
    if "default" in shipped_weights():
        return load_weights(shipped_weights()["default"]), "shipped default"
    torch.manual_seed(0)
    return build_model("hypercolumns").eval(), "hypercolumns (freshly built: ImageNet backbone, random head)"


def lightness(size: int) -> torch.Tensor:
    """astronaut() as L (1,1,3/4*size,size) in [0,100]."""
    rgb = torch.from_numpy(data.astronaut()).permute(2, 0, 1)[None].float() / 255
    rgb = F.interpolate(rgb, size=(size * 3 // 4, size), mode="bilinear", antialias=True, align_corners=False)
    return rgb_to_lab(rgb.clamp(0, 1))[:, :1]


def median_ms(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median milliseconds of each callable; runs are interleaved so that load changes hit all alike."""
    for fn in fns.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: 1000 * statistics.median(v) for k, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="shipped name or .safetensors path")
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 384], help="render sizes (default 256 384)")
    p.add_argument("--repeats", type=int, default=7, help="timed runs per cell (default 7)")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for both backends (default: PyTorch's default, one per core)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    model, desc = load(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        onnx = load_runtime(model, "onnx", threads=args.threads, cache_dir=tmp)
        export_s = time.perf_counter() - t0
    intra = onnx.session.get_session_options().intra_op_num_threads
    print(f"model: {desc}")
    print(f"cores: {os.cpu_count()} logical; torch threads {torch.get_num_threads()}, onnxruntime intra-op "
          f"threads {intra}; torch {torch.__version__}, onnxruntime {_ort_version()}; export took {export_s:.1f} s")
    print("\n| render size | input | torch network | onnx network | torch predict | onnx predict | speed-up "
          "(predict) | max ab diff |\n|---|---|---|---|---|---|---|---|")
    with torch.inference_mode():
        for size in args.sizes:
            L = lightness(size)
            m = model.pad_multiple
            Lp = F.pad(L, [0, (-L.shape[-1]) % m, 0, (-L.shape[-2]) % m], mode="replicate")
            t = median_ms({"tn": partial(model, Lp), "on": partial(onnx.forward, Lp),
                           "tp": partial(model.predict_ab, L),
                           "op": partial(model.predict_ab, L, network=onnx.forward)}, args.repeats)
            tn, on, tp, op = t["tn"], t["on"], t["tp"], t["op"]
            diff = float((model.predict_ab(L) - model.predict_ab(L, network=onnx.forward)).abs().max())
            print(f"| {size} | {L.shape[-1]}x{L.shape[-2]} | {tn:.0f} ms | {on:.0f} ms | {tp:.0f} ms | {op:.0f} ms "
                  f"| {tp / op:.2f}x | {diff:.4f} |")
    return 0


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


if __name__ == "__main__":
    sys.exit(main())
