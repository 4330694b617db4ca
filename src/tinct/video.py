"""Video colorization: decode with PyAV, colorize frame by frame, keep the chroma steady over time.

    video file --PyAV--> RGB frames --> full-res L --> L at the render size --model--> ab
                                                                                    |
          temporal smoothing (per-pixel EMA of ab at the render size, reset at cuts)
                                                                                    |
    video file <--x264-- RGB <-- original full-res L + smoothed ab (``Colorizer.compose``)

Why smoothing: a colorization network sees each frame on its own, so small changes (grain,
compression noise, a slight move) can flip an ambiguous region between two plausible colors
from one frame to the next: flicker. ``TemporalSmoother`` keeps an exponential moving average
(EMA) of the predicted ab map at the render size:

* per pixel, the new frame's weight is ``alpha`` where the (blurred) lightness did not change,
  rising to 1 where it changed by ``motion`` L units or more: static regions are smoothed
  strongly, moving edges follow the current frame instead of leaving a colored trail (no
  motion compensation is needed for that);
* a global brightness change (exposure flicker of old film) counts neither as motion nor as
  a cut: both measures remove the frame's mean change first;
* at a scene cut the average is reset. The cut score is the mean absolute difference of a
  small (64-pixel) thumbnail of L between consecutive frames, in L units: a frame is a cut
  when its score is above ``cut_threshold`` (15), or above 4 and 3 times the scene's recent
  mean score (a jump in a slow scene; fast motion raises the bar by itself).

The output keeps the input's size (rounded up to even for 4:2:0 chroma), frame timing
(presentation timestamps are copied, so variable frame rates survive), display rotation and
sample aspect ratio. Video is H.264 (libx264, yuv420p, BT.709 tags) except in ``.webm``,
which only allows VP9/AV1: there it is VP9. Audio is copied packet for packet when the output
container accepts the codec, else re-encoded to AAC (Opus in ``.webm``). Writes are atomic.

A file whose decoding stops early (cut short, or corrupt data the decoder refuses) is an error
naming the frame where it stopped, unless ``allow_partial``: then the frames before it are
written and ``VideoResult.partial`` says what was lost. "Early" is measured against the length
the file declares (the stream's duration, a Matroska ``DURATION`` tag, or its frame count).
"""

from __future__ import annotations

import collections
import secrets
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .atomic import replace, temporary_beside
from .errors import UsageError
from .imageio import ImageError
from .media import VIDEO_EXTENSIONS, is_video_path
from .pipeline import Colorizer, lightness_of, render_shape

__all__ = [
    "VIDEO_EXTENSIONS",
    "SMOOTHING",
    "FrameResult",
    "PartialVideo",
    "TemporalSmoother",
    "VideoResult",
    "colorize_frames",
    "colorize_video",
    "colorize_video_cli",
    "is_video_path",
    "video_output_path",
]

SMOOTHING: tuple[str, ...] = ("none", "ema")
DEFAULT_ALPHA = 0.25          # weight of the new frame in static regions
DEFAULT_MOTION = 6.0          # blurred |dL| (L units) at which a pixel is not smoothed at all
DEFAULT_CUT_THRESHOLD = 15.0  # mean |dL| of the 64-px thumbnail that is always a scene cut
_CUT_RATIO, _CUT_MIN = 3.0, 4.0  # ...and so is a jump 3x the recent mean |dL|, if above 4
_THUMB = 64

# Output container (PyAV format name) and codecs per extension.
_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi"}
# Audio codecs copied as they are into each container (anything else is re-encoded).
_AUDIO_COPY = {
    "mp4": {"aac", "mp3", "alac", "ac3", "eac3", "opus"},
    "mov": {"aac", "mp3", "alac", "ac3", "eac3", "pcm_s16le", "pcm_s16be", "pcm_s24le", "pcm_s24be", "pcm_f32le"},
    "matroska": None,  # None: whatever the muxer supports
    "webm": {"opus", "vorbis"},
    "avi": {"mp3", "aac", "ac3", "pcm_s16le", "pcm_u8"},
}


def video_output_path(src: Path, output: Path) -> Path:
    """Where ``tinct colorize VIDEO -o OUTPUT`` writes: OUTPUT itself when it names a video file,
    else ``OUTPUT/<src name>`` (OUTPUT is a folder)."""
    return output if is_video_path(output) else output / src.name


# ----------------------------------------------------------------------------- smoothing
class TemporalSmoother:
    """Motion-adaptive EMA of ab maps over consecutive frames, reset at scene cuts.

    Args:
        alpha: weight of the new frame's ab where nothing moved, in (0, 1]; 1 = no smoothing.
        motion: blurred absolute L change (L units, 0..100) at which a pixel takes the new
            frame's ab unsmoothed; None for a plain (global) EMA.
        cut_threshold: mean absolute L difference of 64-pixel thumbnails above which a frame
            starts a new scene (the average restarts from it); a smaller jump also counts when
            it is above 4 and 3x the recent mean. None never cuts.
        enabled: False passes ab through untouched (cuts are still detected and reported).
    """

    def __init__(self, alpha: float = DEFAULT_ALPHA, motion: float | None = DEFAULT_MOTION,
                 cut_threshold: float | None = DEFAULT_CUT_THRESHOLD, enabled: bool = True):
        if not 0.0 < alpha <= 1.0:
            raise UsageError(f"alpha must be in (0, 1], got {alpha}")
        if motion is not None and motion <= 0:
            raise UsageError(f"motion must be positive, got {motion}")
        self.alpha = float(alpha)
        self.motion = motion
        self.cut_threshold = cut_threshold
        self.enabled = enabled
        self.reset()

    def reset(self) -> None:
        """Forget the past: the next frame starts a new average."""
        self._ab: torch.Tensor | None = None
        self._L: torch.Tensor | None = None
        self._thumb: torch.Tensor | None = None
        self._recent: float | None = None  # running mean cut score since the last cut
        self.last_score = 0.0

    def is_cut(self, L: torch.Tensor) -> bool:
        """Does L (1,1,h,w) start a new scene? Updates the stored thumbnail.

        Thumbnails are compared after removing their mean, so that a global brightness change
        (exposure flicker of old film, a light switched on) is not a cut; a cut to or from a
        (nearly) uniform frame such as black still is one, through its spatial structure.
        """
        h, w = L.shape[-2:]
        th, tw = render_shape(h, w, min(_THUMB, max(h, w)))
        thumb = F.interpolate(L, size=(th, tw), mode="bilinear", antialias=True, align_corners=False)
        thumb = thumb - thumb.mean()
        prev, self._thumb = self._thumb, thumb
        if prev is None or prev.shape != thumb.shape:
            self.last_score = 0.0
            self._recent = None
            return prev is not None
        score = self.last_score = float((thumb - prev).abs().mean())
        recent = self._recent
        cut = self.cut_threshold is not None and (
            score > self.cut_threshold or (recent is not None and score > max(_CUT_MIN, _CUT_RATIO * recent)))
        self._recent = None if cut else score if recent is None else 0.7 * recent + 0.3 * score
        return cut

    def weight(self, L: torch.Tensor, L_prev: torch.Tensor) -> torch.Tensor | float:
        """Per-pixel weight (1,1,h,w) of the new frame: ``alpha`` where L is still, 1 where it moved."""
        if self.motion is None:
            return self.alpha
        # Blur the signed difference: grain and noise cancel, coherent motion edges remain; a
        # global brightness change (exposure flicker) is not motion.
        d = L - L_prev
        d = F.avg_pool2d(d - d.mean(), 5, stride=1, padding=2, count_include_pad=False).abs()
        return self.alpha + (1.0 - self.alpha) * (d / self.motion).clamp(0.0, 1.0)

    def __call__(self, L: torch.Tensor, ab: torch.Tensor) -> tuple[torch.Tensor, bool]:
        """L (1,1,h,w) and predicted ab (1,2,h,w) at the render size -> (smoothed ab (1,2,h,w), cut?)."""
        cut = self.is_cut(L)
        if not self.enabled or cut or self._ab is None or self._ab.shape != ab.shape:
            out = ab
        else:
            assert self._L is not None
            a = self.weight(L, self._L)
            out = self._ab + a * (ab - self._ab)
        self._ab, self._L = out, L
        return out, cut


# ----------------------------------------------------------------------------- frames
@dataclass
class FrameResult:
    """One colorized frame.

    ``rgb``: (H,W,3) uint8; ``ab``: smoothed ab (1,2,h,w) at the render size (what was used);
    ``raw_ab``: the model's ab (1,2,h,w) for this frame alone; ``cut``: a scene starts here;
    ``cut_score``: the thumbnail's mean |dL| to the previous frame.
    """

    rgb: np.ndarray
    ab: torch.Tensor
    raw_ab: torch.Tensor
    cut: bool
    cut_score: float


def _as_float_rgb(frame: np.ndarray) -> np.ndarray:
    """(H,W,3) or (H,W) uint8/uint16/float frame -> (H,W,3) float32 in [0,1]."""
    a = np.asarray(frame)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise UsageError(f"a frame must be (H,W,3) RGB, got shape {a.shape}")
    a = a[..., :3]
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    if a.dtype == np.uint16:
        return a.astype(np.float32) / 65535.0
    return np.clip(a.astype(np.float32), 0.0, 1.0)


def colorize_frames(colorizer: Colorizer, frames: Iterable[np.ndarray], smoothing: str = "ema",
                    alpha: float = DEFAULT_ALPHA, motion: float | None = DEFAULT_MOTION,
                    cut_threshold: float | None = DEFAULT_CUT_THRESHOLD, batch_size: int = 4,
                    **options: Any) -> Iterator[FrameResult]:
    """Colorize a sequence of frames (each (H,W,3) uint8 RGB or float in [0,1]), in order.

    Frames are read lazily ``batch_size`` at a time and go through the network together;
    ``smoothing`` is "ema" (``TemporalSmoother``) or "none". Extra ``options`` go to the
    model's decode (e.g. ``temperature``). Frames may change size; the smoother then restarts.
    """
    if smoothing not in SMOOTHING:
        raise UsageError(f"smoothing must be one of {', '.join(SMOOTHING)}; got {smoothing!r}")
    if batch_size < 1:
        raise UsageError(f"batch_size must be at least 1, got {batch_size}")
    smoother = TemporalSmoother(alpha, motion, cut_threshold, enabled=smoothing == "ema")
    opts = {**colorizer.decode_options, **options}
    it = iter(frames)
    while True:
        batch = [_as_float_rgb(f) for _, f in zip(range(batch_size), it)]
        if not batch:
            return
        # Grad mode is set around the work only, never across a ``yield`` (the caller's code).
        with torch.no_grad():
            results = _colorize_batch(colorizer, smoother, batch, opts)
        yield from results


def _colorize_batch(colorizer: Colorizer, smoother: TemporalSmoother, batch: list[np.ndarray],
                    opts: dict[str, Any]) -> list[FrameResult]:
    """Consecutive RGB frames (H,W,3) float -> FrameResults; frames of one size share network calls."""
    L_full = [lightness_of(rgb) for rgb in batch]
    L_small = [colorizer.render_lightness(L) for L in L_full]
    abs_: list[torch.Tensor] = []
    start = 0
    while start < len(L_small):
        end = start + 1
        while end < len(L_small) and L_small[end].shape == L_small[start].shape:
            end += 1
        x = torch.cat(L_small[start:end]).to(colorizer.device)
        abs_ += list(colorizer.predict_rendered(x, **opts).float().cpu().split(1))
        start = end
    results = []
    for L, Ls, ab in zip(L_full, L_small, abs_):
        smooth, cut = smoother(Ls, ab)
        rgb = colorizer.compose(L, smooth)
        results.append(FrameResult(rgb=(np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8), ab=smooth, raw_ab=ab,
                                   cut=cut, cut_score=smoother.last_score))
    return results


# ----------------------------------------------------------------------------- files
@dataclass
class VideoResult:
    """What ``colorize_video`` wrote."""

    path: Path
    frames: int
    width: int
    height: int
    fps: float
    audio: str | None                     # "copy", "aac", "opus" or None (no audio)
    cuts: list[int] = field(default_factory=list)   # frame indices where a scene starts
    seconds: float = 0.0                  # wall time
    partial: str | None = None            # why decoding stopped early (``allow_partial``), else None


class PartialVideo(ImageError):
    """Decoding stopped before the end the file declares (truncated or corrupt input).

    ``frames`` frames were decoded before ``reason``; nothing was written (``allow_partial``
    keeps them).
    """

    def __init__(self, src: Path, frames: int, reason: str):
        super().__init__(f"{src}: {reason}; the {frames} frame(s) before it were not kept (allow partial output "
                         "to keep them)")
        self.src, self.frames, self.reason = src, frames, reason


def _one_line(exc: BaseException) -> str:
    """One line about ``exc``; FFmpeg's own text without the file name it appends (the caller names the file)."""
    text = getattr(exc, "strerror", None)
    return " ".join(str(text or exc).split()) or type(exc).__name__


def _open_input(src: Path) -> Any:
    import av

    if not src.exists():
        raise ImageError(f"{src}: no such file")
    if not src.is_file():
        raise ImageError(f"{src}: not a file")
    if src.stat().st_size == 0:
        raise ImageError(f"{src}: the file is empty")
    try:
        container = av.open(str(src), "r")
    except av.FFmpegError as exc:
        raise ImageError(f"{src}: cannot read this video ({_one_line(exc)})") from exc
    if not container.streams.video:
        container.close()
        raise ImageError(f"{src}: the file has no video stream")
    return container


def _declared_seconds(container: Any, vin: Any) -> float | None:
    """How long the file says its video stream lasts: the stream's duration, else its Matroska
    ``DURATION`` tag, else the file's duration when the video is its only stream; None if unknown."""
    if vin.duration and vin.time_base:
        return float(vin.duration * vin.time_base)
    tag = (vin.metadata or {}).get("DURATION") or (vin.metadata or {}).get("duration")
    if tag:
        try:
            h, m, sec = str(tag).split(":")
            return int(h) * 3600 + int(m) * 60 + float(sec)
        except ValueError:
            pass
    if container.duration and len(container.streams) == 1:
        return container.duration / 1_000_000
    return None


def _frame_rate(stream: Any) -> Fraction:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and rate > 0:
            return Fraction(rate)
    return Fraction(25)


def _audio_plan(out_format: str, in_audio: Any, supported: set[str]) -> str:
    """"copy" when ``out_format`` takes ``in_audio``'s codec as is, else the codec to encode to."""
    name = in_audio.codec_context.codec.canonical_name  # "mp3", not the decoder's "mp3float"
    allowed = _AUDIO_COPY[out_format]
    if name in supported and (allowed is None or name in allowed):
        return "copy"
    return "opus" if out_format == "webm" else "aac"


def partial_name(dest: Path) -> str:
    """``.STEM.XXXXXXXX.partial.EXT``: the same extension as ``dest``, so that the muxer is found."""
    return f".{dest.stem[:200]}.{secrets.token_hex(4)}.partial{dest.suffix}"


def _rgb_frame(rgb: np.ndarray) -> Any:
    """(H,W,3) uint8 -> an av.VideoFrame, padded to even sides by repeating the last row/column."""
    import av

    h, w = rgb.shape[:2]
    if h % 2 or w % 2:
        rgb = np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")


def colorize_video(colorizer: Colorizer, src: str | Path, dst: str | Path, smoothing: str = "ema",
                   alpha: float = DEFAULT_ALPHA, motion: float | None = DEFAULT_MOTION,
                   cut_threshold: float | None = DEFAULT_CUT_THRESHOLD, progress: bool = True,
                   batch_size: int = 4, crf: int = 18, preset: str = "medium", max_frames: int | None = None,
                   allow_partial: bool = False, **options: Any) -> VideoResult:
    """Colorize the video ``src`` into ``dst`` (container from ``dst``'s extension; atomic write).

    Args:
        colorizer: the ``Colorizer`` (model, render size, decode method) used for every frame.
        smoothing: "ema" (temporal smoothing, reset at cuts; default) or "none".
        alpha, motion, cut_threshold: see ``TemporalSmoother``.
        progress: show a tqdm bar (frames/s) on stderr.
        batch_size: frames per network call.
        crf, preset: libx264 quality (lower crf = better) and speed.
        max_frames: stop after this many frames (the audio read so far is kept: it ends near the video).
        allow_partial: when decoding stops early (a truncated or corrupt file), write the frames
            decoded before it (``VideoResult.partial`` says where it stopped) instead of raising
            ``PartialVideo``.
        options: extra decode options (e.g. ``temperature``).

    Raises ``ImageError`` for an unreadable input (missing, not a video, no video stream, no
    frame), ``PartialVideo`` (an ``ImageError``) when decoding stops early, and ``ValueError``
    for bad arguments (output type, smoothing, same file).
    """
    import av
    from tqdm import tqdm

    src, dst = Path(src), Path(dst)
    if smoothing not in SMOOTHING:
        raise UsageError(f"smoothing must be one of {', '.join(SMOOTHING)}; got {smoothing!r}")
    if dst.suffix.lower() not in _FORMATS:
        raise UsageError(f"{dst}: a colorized video is written as {', '.join(sorted(_FORMATS))}")
    if dst.exists() and src.exists() and dst.resolve() == src.resolve():
        raise UsageError(f"{dst}: the output would overwrite the input")
    if dst.is_dir():
        raise UsageError(f"{dst} is a folder; name the output video file")
    t0 = time.perf_counter()
    out_format = _FORMATS[dst.suffix.lower()]
    container = _open_input(src)
    try:
        tmp = temporary_beside(dst, partial_name)
    except BaseException:
        container.close()
        raise
    try:
        with container:
            result = _transcode(container, tmp, out_format, colorizer, src, smoothing, alpha, motion,
                                cut_threshold, progress, batch_size, crf, preset, max_frames, allow_partial,
                                options, av, tqdm)
        replace(tmp, dst)
    except av.FFmpegError as exc:
        raise ImageError(f"{src}: video processing failed ({_one_line(exc)})") from exc
    finally:
        if tmp.exists():
            tmp.unlink()
    result.path = dst
    result.seconds = time.perf_counter() - t0
    return result


def _transcode(container: Any, tmp: Path, out_format: str, colorizer: Colorizer, src: Path, smoothing: str,
               alpha: float, motion: float | None, cut_threshold: float | None, progress: bool, batch_size: int,
               crf: int, preset: str, max_frames: int | None, allow_partial: bool, options: dict[str, Any],
               av: Any, tqdm: Any) -> VideoResult:
    """Decode ``container``, colorize, and write ``tmp`` (format ``out_format``)."""
    with av.open(str(tmp), "w", format=out_format,
                 options={"movflags": "+faststart"} if out_format in ("mp4", "mov") else {}) as out:
        job = _Transcoder(container, out, out_format, crf, preset, max_frames, av)
        total = job.vin.frames or None
        if total and max_frames is not None:
            total = min(total, max_frames)
        bar = tqdm(total=total, desc=f"colorizing {src.name}", unit="frame", disable=not progress,
                   dynamic_ncols=True, file=sys.stderr)
        cuts: list[int] = []
        try:
            for res in colorize_frames(colorizer, job.frames(), smoothing, alpha, motion, cut_threshold, batch_size,
                                       **options):
                if res.cut:
                    cuts.append(job.written)
                job.write(res.rgb)
                bar.update(1)
        finally:
            bar.close()
        partial = job.stopped_early()
        if job.written == 0:
            raise ImageError(f"{src}: the video has no decodable frame" + (f" ({job.error})" if job.error else ""))
        if partial and not allow_partial:
            raise PartialVideo(src, job.written, partial)
        job.finish()
    return VideoResult(path=tmp, frames=job.written, width=job.vout.width, height=job.vout.height,
                       fps=float(job.rate), audio=job.audio_mode, cuts=cuts, partial=partial)


class _Transcoder:
    """The streams of one video job: decoding (``frames``), encoding (``write``), audio passthrough.

    The video encoder is configured from the first decoded frame (size, rotation), and nothing
    is muxed before that (the container header is written on the first mux): audio packets
    read earlier wait in ``pending``.
    """

    def __init__(self, container: Any, out: Any, out_format: str, crf: int, preset: str,
                 max_frames: int | None, av: Any):
        self.container, self.out, self.max_frames, self.av = container, out, max_frames, av
        self.vin = vin = container.streams.video[0]
        vin.thread_type = "AUTO"
        self.ain = ain = container.streams.audio[0] if container.streams.audio else None
        self.rate = _frame_rate(vin)
        if out_format == "webm":  # WebM allows VP8/VP9/AV1 only
            self.vout = out.add_stream("libvpx-vp9", rate=self.rate, options={
                "crf": str(min(63, crf + 14)), "b": "0", "row-mt": "1", "deadline": "good", "cpu-used": "4"})
        else:
            self.vout = out.add_stream("libx264", rate=self.rate, options={"crf": str(crf), "preset": preset})
        self.vout.pix_fmt = "yuv420p"
        # Timestamps are copied in the input's time base (variable frame rates survive), except
        # in AVI, which stores a constant rate: there one tick is one frame.
        self.tb = Fraction(vin.time_base) if vin.time_base and out_format != "avi" else 1 / self.rate
        self.vout.time_base = self.tb
        cc = self.vout.codec_context
        cc.time_base = self.tb
        cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range = 1, 1, 1, 1  # BT.709, limited range
        if vin.sample_aspect_ratio:
            cc.sample_aspect_ratio = vin.sample_aspect_ratio
        self.audio_mode: str | None = None
        self.aout = None
        if ain is not None:
            self.audio_mode = _audio_plan(out_format, ain, set(out.supported_codecs))
            if self.audio_mode == "copy":
                self.aout = out.add_stream_from_template(ain)
            else:
                # Opus takes 48 kHz; PyAV resamples decoded audio to the encoder's rate and format.
                rate = 48000 if self.audio_mode == "opus" or not ain.rate else ain.rate
                self.aout = out.add_stream(self.audio_mode, rate=rate)
                try:
                    self.aout.layout = ain.layout.name
                except (ValueError, AttributeError, av.FFmpegError):
                    self.aout.layout = "stereo"
        self.size: tuple[int, int] | None = None
        self.stamps: collections.deque[tuple[int | None, Any]] = collections.deque()
        self.pending: list[Any] | None = []  # None once the header is written
        self.last_pts: int | None = None
        self.decoded = 0
        self.written = 0
        self.capped = False                   # stopped at max_frames
        self.error: str | None = None         # why the decoder gave up, if it did
        self.span: tuple[float, float] | None = None  # times (s) of the first and last decoded frames

    def _mux(self, packets: list[Any]) -> None:
        if self.pending is None:
            self.out.mux(packets)
        else:
            self.pending += packets

    def _audio(self, packet: Any, decoded: list[Any] | None) -> None:
        """Pass an audio packet on: copied as is, or its ``decoded`` frames re-encoded."""
        if self.aout is None:
            return
        if self.audio_mode == "copy":
            if packet.dts is None and packet.pts is None:  # the demuxer's final empty packet
                return
            packet.stream = self.aout
            self._mux([packet])
        else:
            self._mux([p for f in decoded or () for p in self.aout.encode(f)])

    def _decoded(self) -> Iterator[Any]:
        """The video stream's decoded frames; audio packets are passed on meanwhile.

        An FFmpeg error while reading or decoding (truncated or corrupt data) ends the stream:
        it is kept in ``error``, and the frames the decoder still holds are flushed out.
        """
        streams = [self.vin] + ([self.ain] if self.ain is not None else [])
        packets = self.container.demux(*streams)
        while True:
            try:
                packet = next(packets)
                if packet.stream.type == "audio":
                    audio = self.ain.decode(packet) if self.aout is not None and self.audio_mode != "copy" else None
                else:
                    frames = packet.decode()
            except StopIteration:
                return
            except self.av.FFmpegError as exc:
                self.error = _one_line(exc)
                break
            if packet.stream.type == "audio":
                self._audio(packet, audio)
            else:
                yield from frames
        try:
            yield from self.vin.codec_context.decode(None)
        except self.av.FFmpegError:
            pass

    def stopped_early(self) -> str | None:
        """Why decoding ended before the end the file declares (with the frame), or None."""
        if self.capped:
            return None
        at = f"decoding stopped at frame {self.decoded + 1}"
        if self.error:
            return f"{at} ({self.error})"
        declared = _declared_seconds(self.container, self.vin)
        if declared is not None and self.span is not None:  # timestamps: right for variable frame rates too
            step = 1 / float(self.rate)
            got = self.span[1] - self.span[0] + step
            if declared - got > 2 * step + 0.25:
                return f"{at}, {got:.1f} s into {declared:.1f} s: the file ends early (truncated?)"
            return None
        if self.vin.frames and self.decoded < self.vin.frames - 2:
            return f"{at} of {self.vin.frames}: the file ends early (truncated?)"
        return None

    def frames(self) -> Iterator[np.ndarray]:
        """Decoded video frames as (H,W,3) uint8 RGB, in presentation order; audio is passed on meanwhile."""
        for frame in self._decoded():
            if self.decoded == self.max_frames:
                self.capped = True
                return  # the audio read so far is kept: it ends about where the video does
            self.decoded += 1
            if frame.time is not None:
                self.span = (min(self.span[0], frame.time), max(self.span[1], frame.time)) if self.span \
                    else (frame.time, frame.time)
            if self.size is None:
                self.size = (frame.width, frame.height)
                self.vout.width, self.vout.height = frame.width + frame.width % 2, frame.height + frame.height % 2
                rotation = getattr(frame, "rotation", 0) or 0
                if rotation:
                    self.vout.set_display_rotation(rotation)
            w, h = self.size  # a stream that changes size mid-way is scaled to its first size
            color_range = frame.color_range if frame.color_range in (1, 2) else None
            self.stamps.append((frame.pts, frame.time_base))
            yield frame.reformat(width=w, height=h, format="rgb24", src_color_range=color_range).to_ndarray()

    def write(self, rgb: np.ndarray) -> None:
        """Encode the next colorized frame (H,W,3) uint8 with the timestamp of its source frame."""
        pts, ptb = self.stamps.popleft()
        if pts is None or ptb is None:
            pts = round(self.written / (self.rate * self.tb))
        elif ptb != self.tb:
            pts = round(pts * ptb / self.tb)
        if self.last_pts is not None and pts <= self.last_pts:
            pts = self.last_pts + 1  # encoders need strictly increasing timestamps
        self.last_pts = pts
        frame = _rgb_frame(rgb).reformat(format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG")
        frame.pts, frame.time_base = pts, self.tb
        packets = self.vout.encode(frame)
        if self.pending is not None:  # the video stream is configured: the header can be written
            pending, self.pending = self.pending, None
            self.out.mux(pending)
        self.out.mux(packets)
        self.written += 1

    def finish(self) -> None:
        """Flush the encoders."""
        self.out.mux(self.vout.encode(None))
        if self.aout is not None and self.audio_mode != "copy":
            self.out.mux(self.aout.encode(None))


def colorize_video_cli(colorizer: Colorizer, src: Path, dst: Path, smoothing: str, progress: bool,
                       allow_partial: bool = False) -> VideoResult:
    """``tinct colorize VIDEO -o OUT``: colorize one video, print a one-line summary to stderr.

    A video whose decoding stops early (truncated or corrupt) is an error naming the frame
    where it stopped, unless ``allow_partial`` (``--allow-partial``): then the frames before
    it are written and a one-line warning says where it stopped.

    Raises ``ImageError`` (unreadable input) or ``ValueError`` (bad arguments) with one-line
    messages that do not repeat ``src`` (the command line prefixes it); never overwrites ``src``.
    """
    src, dst = Path(src), Path(dst)
    if not is_video_path(dst):
        raise UsageError(f"{dst}: write a video as one of {', '.join(sorted(VIDEO_EXTENSIONS))}")
    try:
        res = colorize_video(colorizer, src, dst, smoothing=smoothing, progress=progress, allow_partial=allow_partial)
    except PartialVideo as exc:
        raise ImageError(f"{exc.reason}; nothing written: pass --allow-partial to keep the {exc.frames} frame(s) "
                         "before it") from None
    except (ImageError, ValueError) as exc:
        raise type(exc)(_without_name(str(exc), src)) from None
    if res.partial:
        print(f"tinct: warning: {src}: {res.partial}; kept the {res.frames} frame(s) before it", file=sys.stderr)
    if progress:
        fps = res.frames / res.seconds if res.seconds > 0 else 0.0
        audio = {"copy": "audio copied", None: "no audio"}.get(res.audio, f"audio re-encoded to {res.audio}")
        print(f"{src} -> {dst}: {res.frames} frames {res.width}x{res.height} at {res.fps:.3g} fps, "
              f"{len(res.cuts)} cut(s), {audio}, smoothing {smoothing}; {res.seconds:.1f} s ({fps:.1f} frames/s)",
              file=sys.stderr)
    return res


def _without_name(message: str, src: Path) -> str:
    """``message`` without a leading ``"<src>: "`` (the command line names the file itself)."""
    prefix = f"{src}: "
    return message[len(prefix):] if message.startswith(prefix) else message
