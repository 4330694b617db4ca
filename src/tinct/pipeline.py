"""The colorization pipeline: full-resolution photo in, full-resolution color photo out.

    file --io--> RGB (H,W,3) --> L (full res)
                                  | resized to the render size (aspect kept; the model pads
                                  | to a multiple of 32)
                                  v
                            model(L) -> prediction --decode--> ab at render size
                                  | bilinear to full res, chroma fitted into the sRGB gamut
                                  | + the ORIGINAL full-res L
                                  v
                            Lab --> RGB --io--> file (EXIF/ICC/alpha kept, atomic write)

The network never sees full resolution; the output always has it, and its L channel is the
input's. Full-resolution work is done in horizontal strips so that peak memory stays bounded
on 12-MP photos. ``Colorizer.colorize_files`` colorizes several photos at once (one per core)
and encodes outputs on writer threads. No training code here.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import warnings
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import imageio as tio
from .color import (
    columns_to_rgb_in_gamut,
    gray8_to_lightness,
    lab_to_rgb_in_gamut,
    lightness_of_linear,
    srgb8_to_linear,
    srgb_to_linear,
    start_max_chroma_table,
)
from .defaults import DEFAULT_RENDER_SIZE, check_render_size
from .errors import UsageError
from .hints import Hint, color_hex, parse_hints, render_hints
from .models.base import ColorModel
from .runtime import Runtime, load_runtime

__all__ = ["Colorizer", "Prepared", "Result", "palette", "render_shape", "model_name", "lightness_of", "DEFAULT_RENDER_SIZE"]

log = logging.getLogger("tinct.pipeline")
STRIP_PIXELS = 1 << 18  # full-resolution rows go a quarter megapixel at a time (less memory than 1 MP, and faster)
LANE_PIXELS = 32_000_000  # pixels colorized at once by colorize_files' lanes (two 16-MP photos; larger ones alone)


def render_shape(height: int, width: int, render_size: int) -> tuple[int, int]:
    """The (h, w) the network runs at: longer side ``render_size``, aspect ratio kept, >= 1 px."""
    scale = render_size / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


@dataclass
class Prepared:
    """A photo ready for many predictions (``Colorizer.prepare``): L (1,1,H,W) at full resolution,
    L (1,1,h,w) at the render size, and the backbone's features of the latter (or None)."""

    image: tio.LoadedImage
    L: torch.Tensor
    L_small: torch.Tensor
    features: list[torch.Tensor] | None = None


@dataclass
class Result:
    """One colorized image: RGB (H,W,3) float in [0,1] (or uint8 for 8-bit file output), plus what the input carried."""

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    confidence: np.ndarray | None = None   # (H,W) in [0,1] when asked for
    source: tio.LoadedImage | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_pil(self) -> Image.Image:
        arr = self.rgb if self.rgb.dtype == np.uint8 else (np.clip(self.rgb, 0, 1) * 255 + 0.5).astype(np.uint8)
        if self.alpha is not None:
            a = (np.clip(self.alpha, 0, 1) * 255 + 0.5).astype(np.uint8)
            return Image.fromarray(np.dstack([arr, a]), "RGBA")
        return Image.fromarray(arr, "RGB")


class Colorizer:
    """Colorizes images with one model. Reuse one instance for many images.

    Args:
        model: a ColorModel, a ``tinct.runtime.Runtime``, or a shipped model name / weights path
            for ``load_model``.
        render_size: longer side of the network input in pixels.
        decode: decode method (histogram models; ``tinct colorize --decode``), None for the
            model's default. ``method=`` is the old name of this argument (deprecated).
        device: "cpu" or "cuda".
        name: how error messages name the model (default: the name or path given, else the
            weights' name, else the architecture).
        backend: where the network runs: "torch", "onnx" or "auto" (``tinct.runtime.load_runtime``;
            ``tinct colorize --backend``); a Runtime given as ``model`` is kept when it is that backend.
        threads: onnxruntime intra-op threads (default: torch's).
        precision: of the PyTorch network: "auto" (bfloat16 on CPUs that compute it natively, else
            float32), "float32" or "bfloat16" (``tinct.runtime.TorchRuntime``; ``--precision``).
        decode_options: extra keyword options for ``model.decode`` (temperature, ...).
    """

    def __init__(self, model: ColorModel | Runtime | str | Path = "default", render_size: int = DEFAULT_RENDER_SIZE,
                 decode: str | None = None, device: str = "cpu", *, name: str | None = None, backend: str = "torch",
                 threads: int | None = None, method: str | None = None, precision: str = "auto", **decode_options: Any):
        decode = decode_argument(decode, method)
        self.name = name or model_name(model.model if isinstance(model, Runtime) else model)
        check_render_size(render_size)
        if device != "cpu" and backend == "onnx":
            raise UsageError("the onnx backend runs on the CPU; use the torch backend for another device")
        if isinstance(model, (str, Path)) and device != "cpu":
            from . import load_model

            model = load_model(model, device=device)
        start_max_chroma_table()  # the gamut table (0.1 s) is built on the other core meanwhile
        self.runtime = load_runtime(model, "torch" if device != "cpu" else backend, threads, precision=precision)
        self.model = self.runtime.model.eval().to(device)
        self.render_size = render_size
        self.method = self.model.check_method(decode, self.name)
        self.device = device
        self.decode_options = decode_options

    # -- core -----------------------------------------------------------------------------
    def render_lightness(self, L_full: torch.Tensor) -> torch.Tensor:
        """L (B,1,H,W) full resolution -> L (B,1,h,w) at the render size (``render_shape``; antialiased)."""
        H, W = L_full.shape[-2:]
        h, w = render_shape(H, W, self.render_size)
        if (h, w) == (H, W):
            return L_full
        return F.interpolate(L_full, size=(h, w), mode="bilinear", antialias=True, align_corners=False)

    def prepare(self, image: Any, features: bool = True) -> Prepared:
        """A photo (anything ``colorize`` takes) -> ``Prepared``: its L at full and render size and,
        for models that reuse them (``ColorModel.reuses_features``), the backbone's features, so
        that colorizing it again with other hints or options reruns only the head."""
        if isinstance(image, Prepared):
            return image
        img = image if isinstance(image, tio.LoadedImage) else tio.read_image(image)
        with torch.inference_mode():
            L = lightness_of(img.pixels)
            L_small = self.render_lightness(L)
            feats = None
            if features and self.runtime.name == "torch" and self.model.reuses_features:
                feats = self.runtime.features(self.model.pad_input(L_small.to(self.device)))
        return Prepared(img, L, L_small, feats)

    def hint_map(self, hints: Any, prepared: Prepared) -> torch.Tensor | None:
        """User hints (JSON text, a list of {"x","y","color"} or ``Hint``s; see ``tinct.hints``) -> the
        hint map (1,3,h,w) at the render size, or None for no hint. A model without a hint input
        given hints is a one-line error."""
        if hints is None:
            return None
        H, W = prepared.L.shape[-2:]
        parsed = hints if (isinstance(hints, list) and all(isinstance(h, Hint) for h in hints)) else parse_hints(hints, W, H)
        if not parsed:
            return None
        if "hints" not in self.model.forward_options:
            raise UsageError(f"model {self.name!r} takes no color hints; use a hint model such as tinct-lite2-hints")
        if "hints" not in self.runtime.forward_options:
            raise UsageError(f"the {self.runtime.name} runtime cannot take color hints; use the torch backend")
        return render_hints(parsed, tuple(prepared.L_small.shape[-2:]), (H, W)).to(self.device)

    def predict_small(self, L_full: torch.Tensor | Prepared, with_confidence: bool = False, with_pred: bool = False,
                      decode: str | None = None, **options: Any) -> dict[str, Any]:
        """L (1,1,H,W) full resolution (or a ``Prepared`` photo) -> {"ab": (1,2,h,w)[, "confidence":
        (1,1,h,w)][, "pred": the raw prediction]} at the render size. ``decode``: this call's decode
        method (default: the colorizer's). ``options``: decode options and the model's forward
        options (``hints`` as a hint map, ``style_L``)."""
        prepared = L_full if isinstance(L_full, Prepared) else None
        L_small = prepared.L_small if prepared is not None else self.render_lightness(L_full)
        opts = {**self.decode_options, **options}
        network = self.runtime.forward
        if prepared is not None and prepared.features is not None:  # only the head runs again
            feats = prepared.features
            network = lambda x, **fwd: self.runtime.from_features(feats, x.shape[-2:], **fwd)  # noqa: E731
        if with_pred:
            opts["with_pred"] = True
        method = self.method if decode is None else self.model.check_method(decode, self.name)
        out = self.model.predict(L_small.to(self.device), method, with_confidence=with_confidence,
                                 network=network, **opts)
        return {k: v if k == "pred" else v.float().cpu() for k, v in out.items()}

    def predict_rendered(self, L_small: torch.Tensor, **options: Any) -> torch.Tensor:
        """L (B,1,h,w) already at the render size (``render_lightness``) -> ab (B,2,h,w), on this
        colorizer's runtime and decoder: for callers that batch several photos or frames."""
        opts = {**self.decode_options, **options}
        return self.model.predict(L_small.to(self.device), self.method, network=self.runtime.forward, **opts)["ab"]

    def predict_ab_small(self, L_full: torch.Tensor, **options: Any) -> torch.Tensor:
        """L (1,1,H,W) full resolution -> ab (1,2,h,w) at the render size."""
        return self.predict_small(L_full, **options)["ab"]

    def compose(self, L_full: torch.Tensor, ab_small: torch.Tensor, dtype: Any = np.float32) -> np.ndarray:
        """Original L (1,1,H,W) + ab (1,2,h,w) -> RGB (H,W,3), strip by strip.

        ``dtype`` float32 gives [0,1]; uint8 gives 0..255 directly, so that no full-resolution
        float copy of the output ever exists (what keeps a 12-MP photo within 1 GB).
        """
        H, W = L_full.shape[-2:]
        out = np.empty((H, W, 3), dtype=dtype)
        rows = max(1, STRIP_PIXELS // max(W, 1))
        ab_wide = F.interpolate(ab_small.float(), size=(ab_small.shape[-2], W), mode="bilinear", align_corners=False)
        # one set of strip buffers, reused: Lab in, sRGB out, the conversion's working memory
        buffers = torch.empty((4, 3 * min(H, rows) * W), dtype=torch.float32)
        for top in range(0, H, rows):
            bottom = min(H, top + rows)
            lab, rgb, *work = (b[:3 * (bottom - top) * W].view(3, bottom - top, W) for b in buffers)
            lab[0].copy_(L_full[0, 0, top:bottom])
            _resize_rows(ab_wide, H, top, bottom, out=lab[1:], scratch=work[0][:2])
            columns_to_rgb_in_gamut(lab.view(3, -1), rgb.view(3, -1), [w.view(3, -1) for w in work])
            if out.dtype == np.uint8:
                rgb.mul_(255).add_(0.5)  # copied into uint8 below: truncation, so rounding
            torch.from_numpy(out[top:bottom]).copy_(rgb.permute(1, 2, 0))
        return out

    def colorize_array(self, rgb: np.ndarray, **options: Any) -> np.ndarray:
        """RGB (H,W,3) float in [0,1] (color or gray) -> colorized RGB (H,W,3) float32."""
        return self.colorize_loaded(tio.read_image(rgb), **options).rgb

    def colorize_loaded(self, img: tio.LoadedImage | Prepared, confidence: bool = False, dtype: Any = np.float32,
                        hints: Any = None, **options: Any) -> Result:
        """An already decoded image (``tinct.imageio.read_image``) or a ``Prepared`` photo -> Result:
        for callers that read the file themselves (the web page keeps the upload's metadata).
        ``hints`` and ``options`` as ``colorize``."""
        if options.get("style") is not None:
            options["style_L"] = self.style_lightness(options.pop("style"))
        options.pop("style", None)
        prepared = img if isinstance(img, Prepared) else self.prepare(img, features=False)
        hint_map = self.hint_map(hints, prepared)
        if hint_map is not None:
            options["hints"] = hint_map
        with torch.inference_mode():
            L = prepared.L
            small = self.predict_small(prepared, with_confidence=confidence, **options)
            rgb = self.compose(L, small["ab"], dtype)
            conf = None
            if confidence:
                H, W = L.shape[-2:]
                conf = F.interpolate(small["confidence"], size=(H, W), mode="bilinear", align_corners=False)[0, 0].numpy()
        return Result(rgb=rgb, alpha=prepared.image.alpha, confidence=conf, source=prepared.image)

    def suggest(self, image: Any, x: float, y: float, k: int = 6, hints: Any = None,
                min_distance: float = 8.0) -> list[dict[str, Any]]:
        """The ``k`` most likely colors at pixel (x, y) of the photo, from the predicted distribution.

        -> [{"color": "#rrggbb", "probability": p}, ...], most likely first: each color is a
        histogram bin's ab with the photo's own L at that pixel, fitted into the sRGB gamut; bins
        within ``min_distance`` (Lab units of ab) of a listed one are merged into it, so that the
        palette offers distinct colors. ``x``, ``y`` as in hints (pixels, or fractions when both
        are <= 1). With ``hints`` the distribution is the one that follows them.
        """
        if k < 1:
            raise UsageError(f"k must be at least 1, got {k}")
        prepared = self.prepare(image)
        H, W = prepared.L.shape[-2:]
        (point,) = parse_hints([{"x": x, "y": y, "color": "#000000"}], W, H)
        options: dict[str, Any] = {}
        hint_map = self.hint_map(hints, prepared)
        if hint_map is not None:
            options["hints"] = hint_map
        with torch.inference_mode():
            pred = self.predict_small(prepared, with_pred=True, **options)["pred"]
            dist = self.model.color_distribution(pred)
            if dist is None:
                raise UsageError(f"model {self.name!r} predicts colors directly, so it has no palette to suggest")
            probs, centers = dist
            gh, gw = probs.shape[-2:]
            h, w = prepared.L_small.shape[-2:]
            padded = self.model.pad_input(prepared.L_small).shape[-2:]  # the prediction covers the padded input
            gy = min(gh - 1, int((point.y + 0.5) / H * h / padded[0] * gh))
            gx = min(gw - 1, int((point.x + 0.5) / W * w / padded[1] * gw))
            p = probs[0, :, gy, gx].float().cpu()
            L_here = float(prepared.L[0, 0, int(point.y), int(point.x)])
            return palette(p, centers.float().cpu(), L_here, k, min_distance)

    def style_lightness(self, style: Any) -> torch.Tensor:
        """A style reference (path, PIL, array) -> its L (1,1,h,w) at the render size.

        Models that take global features from another image (Iizuka et al.'s style transfer)
        declare ``style_L`` in ``forward_options``; others refuse a style.
        """
        if "style_L" not in self.model.forward_options:
            raise UsageError(f"model {self.name!r} has no global features, so it cannot take a style reference")
        if "style_L" not in self.runtime.forward_options:
            raise UsageError(f"the {self.runtime.name} runtime cannot take a style reference; use the torch backend")
        ref = style if isinstance(style, tio.LoadedImage) else tio.read_image(style)
        L = lightness_of(ref.pixels)
        h, w = render_shape(*L.shape[-2:], self.render_size)
        return F.interpolate(L, size=(h, w), mode="bilinear", antialias=True, align_corners=False).to(self.device)

    def colorize(self, image: Any, hints: Any = None, **options: Any) -> Result:
        """A path, bytes, PIL image, numpy array or ``Prepared`` photo -> Result (see ``Result.to_pil``).

        ``hints``: colors the user pins, for models with a hint input (``tinct-lite2-hints``):
        JSON text or a list of {"x", "y", "color"} (``tinct.hints``). ``options``: decode options
        (temperature, generator), ``style``, ``confidence``, ``dtype``.
        """
        img = image if isinstance(image, Prepared) else tio.read_image(image)
        return self.colorize_loaded(img, hints=hints, **options)

    # -- many files ----------------------------------------------------------------------
    def colorize_files(self, jobs: Iterable[tuple[Path, Path]], on_done: Callable[[Path, Path | None, str | None], None],
                       confidence: bool = False, samples: int = 0, max_pixels: int = tio.DEFAULT_MAX_PIXELS,
                       lanes: int | None = None, read_ahead: tio.ReadAhead | None = None,
                       **options: Any) -> None:
        """Colorize (input, output) pairs, several photos at a time.

        ``lanes`` photos (default ``default_lanes``) are decoded, colorized and composed at once,
        each lane with an equal share of PyTorch's threads: on two cores, two photos on one
        thread each finish sooner than one photo on two threads (``benchmarks/speed.py``).
        Photos being colorized hold at most ``LANE_PIXELS`` pixels together; a photo too big for
        its share (``LANE_PIXELS / lanes``) runs by itself on every thread, so a folder of big
        scans needs the memory of one. Outputs are encoded on writer threads while the lanes go on.

        ``on_done(input, output_or_None, error_or_None)`` is called once per job, in order.
        ``options["hints"]`` may be a function of the input path giving that photo's hints.
        Each job writes its output, decoded with ``self.method``; ``samples`` > 0 (histogram
        models) adds N sampled variants ``<stem>.sample<i><ext>`` beside it (seeds ``seed``,
        ``seed + 1``, ...), and ``confidence`` a ``<stem>.confidence.png``. Photos ``read_ahead``
        decoded while the model loaded are taken from it (it is stopped here); the lanes read
        the others.
        """
        jobs = list(jobs)
        if read_ahead is not None:
            read_ahead.stop()
        lanes = self.default_lanes(len(jobs)) if lanes is None else max(1, lanes)
        budget = PixelBudget(LANE_PIXELS)
        threads = torch.get_num_threads()
        per_lane = max(1, threads // lanes)
        with intra_op_threads(per_lane), ThreadPoolExecutor(lanes) as lane_pool, \
                ThreadPoolExecutor(max(2, lanes)) as writers:
            def run(src: Path, dst: Path) -> list[Future]:
                try:
                    img = read_ahead.take(src) if read_ahead is not None else None
                    img = img if img is not None else tio.read_image(src, max_pixels)
                    meta = (img.exif, img.icc_profile, img.bit_depth)
                    job_options = options
                    if callable(options.get("hints")):  # hints per photo (``tinct colorize --hints auto``)
                        job_options = {**options, "hints": options["hints"](src)}
                    pixels = img.pixels.shape[0] * img.pixels.shape[1]
                    # A photo too big to share the budget with the other lanes runs by itself, on
                    # every thread (the other lanes wait outside, where no PyTorch work is done).
                    alone = lanes > 1 and pixels * lanes > LANE_PIXELS
                    with budget.hold(LANE_PIXELS if alone else pixels), \
                            intra_op_threads(threads if alone else per_lane):
                        outs = self._run_job(img, dst, confidence, samples, job_options)
                    del img  # the decoded input is not needed while the outputs are encoded
                    return [writers.submit(_write, path, res, meta) for path, res in outs]
                except (tio.ImageError, ValueError, OSError) as exc:
                    return [_failed(exc)]

            # At most one photo waits for a lane, and finished ones are reported (in order) as
            # soon as they are written: few full-resolution buffers alive at any time.
            window: deque[tuple[Path, Path, Future]] = deque()
            for src, dst in jobs:
                while len(window) > lanes:
                    _report(_finish(window.popleft()), on_done)
                window.append((src, dst, lane_pool.submit(run, src, dst)))
                while window and window[0][2].done() and all(f.done() for f in window[0][2].result()):
                    _report(_finish(window.popleft()), on_done)
            while window:
                _report(_finish(window.popleft()), on_done)

    def default_lanes(self, jobs: int) -> int:
        """Photos colorized at once by ``colorize_files``: one per PyTorch thread (at most one per
        job) for the PyTorch runtime on the CPU; one for onnxruntime (it has its own threads) and
        other devices."""
        if self.runtime.name != "torch" or self.device != "cpu":
            return 1
        return max(1, min(torch.get_num_threads(), jobs))

    def _run_job(self, img: tio.LoadedImage, dst: Path, confidence: bool, samples: int,
                 options: dict[str, Any]) -> list[tuple[Path, Any]]:
        """The (path, result) outputs of one photo: the decoded photo, its confidence map, its samples."""
        options = dict(options)
        options["dtype"] = np.uint8 if img.bit_depth == 8 else np.float32
        seed = int(options.pop("seed", 0))
        if self.method == "sample":
            options["generator"] = torch.Generator().manual_seed(seed)
        res = self.colorize_loaded(img, confidence=confidence, **options)
        res.source = None
        outs: list[tuple[Path, Any]] = [(dst, res)]
        if confidence:  # the distribution, hence its confidence map, is the same for every sample
            outs.append((dst.with_name(f"{dst.stem}.confidence.png"), res.confidence))
        options.pop("generator", None)
        for k in range(samples):
            outs.append((dst.with_name(f"{dst.stem}.sample{k + 1}{dst.suffix}"),
                         self._sample(img, seed + k, options)))
        return outs

    def _sample(self, img: tio.LoadedImage, seed: int, options: dict[str, Any]) -> Result:
        """One colorization of ``img`` drawn from the predicted distribution (decoder "sample")."""
        # The decoder is this call's, not the colorizer's: lanes colorize other photos meanwhile.
        res = self.colorize_loaded(img, generator=torch.Generator().manual_seed(seed), decode="sample", **options)
        res.source = None
        return res


def palette(probs: torch.Tensor, centers: torch.Tensor, L: float, k: int, min_distance: float) -> list[dict[str, Any]]:
    """probs (K,) over colors ``centers`` (K,2) ab -> the ``k`` most likely distinct colors at lightness ``L``.

    Bins are taken most likely first; one within ``min_distance`` of a taken color adds its
    probability to that color instead of being listed.
    """
    taken: list[list[Any]] = []  # [ab (2,), probability]
    for i in torch.argsort(probs, descending=True).tolist():
        ab = centers[i]
        near = next((t for t in taken if float((t[0] - ab).norm()) < min_distance), None)
        if near is not None:
            near[1] += float(probs[i])
        elif len(taken) < k:
            taken.append([ab, float(probs[i])])
    out = []
    for ab, prob in sorted(taken, key=lambda t: -t[1]):
        lab = torch.tensor([L, float(ab[0]), float(ab[1])]).view(1, 3, 1, 1)
        rgb = lab_to_rgb_in_gamut(lab)[0, :, 0, 0].tolist()
        out.append({"color": color_hex(rgb), "probability": round(prob, 4)})
    return out


def model_name(model: Any) -> str:
    """How messages name a model: the name or path it was asked for, else its weights' name, else its architecture."""
    if isinstance(model, (str, Path)):
        return str(model)
    return (getattr(model, "metadata", None) or {}).get("name") or getattr(model, "arch", "?")


def decode_argument(decode: str | None, method: str | None, stacklevel: int = 2) -> str | None:
    """``decode=``, or the deprecated ``method=`` (with a DeprecationWarning); both at once must agree."""
    if method is None:
        return decode
    warnings.warn("method= is deprecated; pass decode= (the word `tinct colorize --decode` uses)",
                  DeprecationWarning, stacklevel=stacklevel + 1)
    if decode is not None and decode != method:
        raise TypeError(f"decode={decode!r} and method={method!r} name the same setting; pass decode= only")
    return method


def lightness_of(rgb: np.ndarray) -> torch.Tensor:
    """(H,W,3) sRGB, uint8 or float in [0,1] (``LoadedImage.pixels``) -> CIE L (1,1,H,W) in [0,100],
    strip by strip to bound memory. uint8 gives the L of ``rgb / 255`` (to float32 rounding); a
    gray uint8 photo (one plane seen three times, as ``tinct.imageio`` reads it) is one table lookup."""
    H, W = rgb.shape[:2]
    out = torch.empty((1, 1, H, W), dtype=torch.float32)
    rows = max(1, STRIP_PIXELS // max(W, 1))
    gray = rgb.dtype == np.uint8 and rgb.strides[2] == 0
    for top in range(0, H, rows):
        if gray:  # np.take turns its indices into int64: a strip at a time keeps that small
            out[0, 0, top:top + rows].numpy()[:] = np.take(gray8_to_lightness().numpy(), rgb[top:top + rows, :, 0])
        else:
            out[..., top:top + rows, :] = lightness_of_linear(_linear_strip(rgb[top:top + rows]))
    return out


def _linear_strip(rgb: np.ndarray) -> torch.Tensor:
    """(h,W,3) sRGB, uint8 (a table lookup) or float in [0,1] -> linear light (1,3,h,W), a view of (h,W,3)."""
    if rgb.dtype == np.uint8:
        lin = torch.from_numpy(np.take(srgb8_to_linear().numpy(), rgb))
    else:
        lin = srgb_to_linear(torch.from_numpy(rgb))
    return lin.permute(2, 0, 1).unsqueeze(0)


def _resize_rows(ab_wide: torch.Tensor, H: int, top: int, bottom: int, out: torch.Tensor,
                 scratch: torch.Tensor) -> torch.Tensor:
    """Rows [top, bottom) of ab_wide (1,2,h,W) bilinearly resized to H rows (align_corners=False),
    written into ``out`` (2,bottom-top,W) and returned; ``scratch``, of the same shape, is its
    working memory.

    With ``ab_wide`` the small ab map already resized to the full width (``F.interpolate`` to
    (h, W)), the strips together equal a full bilinear resize to (H, W): bilinear sampling is
    separable, and the rows use the same sampling positions as ``F.interpolate``.
    """
    h = ab_wide.shape[-2]
    ys = ((torch.arange(top, bottom, dtype=torch.float32) + 0.5) * (h / H) - 0.5).clamp_(0, h - 1)
    lower = ys.floor().long()
    upper = (lower + 1).clamp_(max=h - 1)
    weight = (ys - lower.float()).view(-1, 1)
    torch.index_select(ab_wide[0], -2, lower, out=scratch)
    torch.index_select(ab_wide[0], -2, upper, out=out)
    return torch.lerp(scratch, out, weight, out=out)


def _write(path: Path, result: Any, meta: tuple[bytes | None, bytes | None, int]) -> Path:
    """Encode one output; ``meta`` is the source's (EXIF, ICC profile, bit depth)."""
    if isinstance(result, np.ndarray):  # a confidence map
        gray = (np.clip(result, 0, 1) * 255 + 0.5).astype(np.uint8)
        return tio.write_image(path, np.repeat(gray[..., None], 3, axis=2))
    exif, icc, bit_depth = meta
    return tio.write_image(path, result.rgb, result.alpha, exif=exif, icc_profile=icc, bit_depth=bit_depth)


class PixelBudget:
    """Pixels of the photos being colorized at once: ``hold(n)`` waits until ``n`` more fit within
    ``limit``, or until nothing else is held (a photo larger than the limit runs by itself)."""

    def __init__(self, limit: int):
        self.limit, self.held = limit, 0
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def hold(self, pixels: int):
        with self._changed:
            self._changed.wait_for(lambda: self.held == 0 or self.held + pixels <= self.limit)
            self.held += pixels
        try:
            yield
        finally:
            with self._changed:
                self.held -= pixels
                self._changed.notify_all()


@contextlib.contextmanager
def intra_op_threads(n: int):
    """PyTorch's intra-op threads set to ``n`` inside the block (process-wide), restored after."""
    before = torch.get_num_threads()
    if n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _finish(item: tuple[Path, Path, Future]) -> tuple[Path, Path, list[Future]]:
    src, dst, lane = item
    return src, dst, lane.result()


def _failed(exc: Exception) -> Future:
    f: Future = Future()
    f.set_exception(exc)
    return f


def _report(item: tuple[Path, Path, list[Future]], on_done: Callable[[Path, Path | None, str | None], None]) -> None:
    src, dst, futs = item
    for f in futs:
        exc = f.exception()
        if exc is not None:
            on_done(src, None, str(exc) if isinstance(exc, (tio.ImageError, ValueError)) else f"{type(exc).__name__}: {exc}")
            return
    on_done(src, dst, None)

