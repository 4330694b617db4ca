"""Video colorization: timing, size, audio and rotation survive; smoothing steadies colors and resets at cuts."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_photo

av = pytest.importorskip("av")

from tinct import Colorizer  # noqa: E402
from tinct.color import rgb_to_lab  # noqa: E402
from tinct.imageio import ImageError  # noqa: E402
from tinct.video import (  # noqa: E402
    TemporalSmoother,
    colorize_frames,
    colorize_video,
    colorize_video_cli,
    is_video_path,
    video_output_path,
)
from tinct.weights import load_weights  # noqa: E402


@pytest.fixture(scope="module")
def colorizer(tiny_model_path) -> Colorizer:
    return Colorizer(load_weights(tiny_model_path), render_size=64)


def gray_frames(n: int, h: int, w: int, cut_at: int | None = None) -> list[np.ndarray]:
    """n gray (H,W,3) uint8 frames panning 1 px/frame over a photo; a different photo from ``cut_at``."""
    big = [make_photo(h, w + n, 11), make_photo(h, w + n, 12)]
    out = []
    for i in range(n):
        src = big[1 if cut_at is not None and i >= cut_at else 0]
        g = src[:, i:i + w].mean(-1, keepdims=True).astype(np.uint8)
        out.append(np.repeat(g, 3, axis=2))
    return out


def write_clip(path: Path, frames: list[np.ndarray], fps: int = 10, vcodec: str = "libx264",
               acodec: str | None = "aac", rotation: int = 0, faststart: bool = False) -> Path:
    """Encode ``frames`` with PyAV, plus a 440 Hz sine as long as the video when ``acodec``
    (``faststart``: an MP4's index before its data, so that a truncated copy still opens)."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w", options={"movflags": "+faststart"} if faststart else {}) as out:
        v = out.add_stream(vcodec, rate=fps)
        v.width, v.height = w, h
        v.pix_fmt = "yuv444p" if vcodec == "ffv1" else "yuv420p"
        if rotation:
            v.set_display_rotation(rotation)
        a = None
        if acodec:
            a = out.add_stream(acodec, rate=16000)
            a.layout = "mono"
        for f in frames:
            out.mux(v.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        out.mux(v.encode(None))
        if a is not None:
            t = np.arange(16000 * len(frames) // fps) / 16000
            pcm = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
            for k in range(0, pcm.shape[1], 1024):
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm[:, k:k + 1024]), format="flt", layout="mono")
                af.sample_rate, af.pts = 16000, k
                out.mux(a.encode(af))
            out.mux(a.encode(None))
    return path


def probe(path: Path) -> dict:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        a = c.streams.audio[0] if c.streams.audio else None
        info = {"rate": v.average_rate, "size": (v.codec_context.width, v.codec_context.height),
                "audio": a.codec_context.codec.canonical_name if a is not None else None,
                "audio_seconds": float(a.duration * a.time_base) if a is not None and a.duration else None}
        frames = [f for f in c.decode(video=0)]
        info["frames"] = [f.to_ndarray(format="rgb24") for f in frames]
        info["rotation"] = frames[0].rotation
    return info


def chroma(frames: list[np.ndarray]) -> float:
    """Mean Lab chroma of uint8 RGB frames."""
    x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255
    return float(rgb_to_lab(x)[:, 1:].norm(dim=1).mean())


def test_video_keeps_frames_rate_size_and_audio(colorizer, tmp_path):
    src = write_clip(tmp_path / "film.mp4", gray_frames(15, 48, 64))
    dst = tmp_path / "out" / "film.mp4"
    res = colorize_video(colorizer, src, dst, progress=False)
    assert res.path == dst and res.frames == 15 and res.audio == "copy" and (res.width, res.height) == (64, 48)
    got, ref = probe(dst), probe(src)
    assert got["rate"] == Fraction(10) and got["size"] == (64, 48) and len(got["frames"]) == 15
    assert got["audio"] == "aac" and got["audio_seconds"] == pytest.approx(ref["audio_seconds"], abs=0.01)
    assert chroma(got["frames"]) > chroma(ref["frames"]) + 1.0  # gray in, colored out
    # The first frame (nothing to smooth yet) is the image pipeline's result, up to H.264 losses.
    still = colorizer.colorize_array(ref["frames"][0].astype(np.float32) / 255)
    assert np.abs(got["frames"][0].astype(np.float32) - still * 255).mean() < 3.0
    assert not [p for p in dst.parent.iterdir() if p.name.startswith(".")]  # atomic write, nothing left


def test_odd_sized_rotated_video_with_uncopyable_audio(colorizer, tmp_path, capsys):
    src = write_clip(tmp_path / "odd.mkv", gray_frames(6, 33, 45), fps=5, vcodec="ffv1", acodec="flac",
                     rotation=90)
    dst = tmp_path / "odd.mp4"  # FLAC is not copied into MP4: re-encoded to AAC
    colorize_video_cli(colorizer, src, dst, smoothing="none", progress=True)
    assert "6 frames 46x34" in capsys.readouterr().err
    got = probe(dst)
    assert got["size"] == (46, 34) and len(got["frames"]) == 6 and got["rate"] == Fraction(5)
    assert got["audio"] == "aac" and got["rotation"] == 90
    short = colorize_video(colorizer, src, tmp_path / "short.mkv", progress=False, max_frames=3)
    assert short.frames == 3 and short.audio == "copy" and len(probe(short.path)["frames"]) == 3  # MKV takes FLAC


def test_smoother_steadies_static_colors_follows_motion_and_resets_at_cuts():
    g = torch.Generator().manual_seed(0)
    L = torch.full((1, 1, 24, 32), 50.0)
    L[..., 8:14, 8:14] = 80.0
    sm = TemporalSmoother(alpha=0.25)
    raw = [torch.full((1, 2, 24, 32), 20.0) + 15 * torch.randn(1, 2, 24, 32, generator=g) for _ in range(12)]
    out = [sm(L, ab)[0] for ab in raw]
    flicker = lambda seq: float(torch.stack([(b - a).abs().mean() for a, b in zip(seq, seq[1:])]).mean())  # noqa: E731
    assert flicker(out) < 0.4 * flicker(raw)
    # Where L moved, the new frame's ab is taken (no color trail); where it did not, it is smoothed.
    L2 = L.clone()
    L2[..., 8:14, 8:14] = 50.0
    L2[..., 8:14, 20:26] = 80.0
    ab = torch.full((1, 2, 24, 32), -40.0)
    moved, cut = sm(L2, ab)
    assert not cut
    assert torch.allclose(moved[..., 10:12, 22:24], ab[..., 10:12, 22:24])
    assert (moved[..., 0:3, 0:3] - ab[..., 0:3, 0:3]).abs().min() > 10
    # A different scene resets the average: the cut frame is the model's own prediction.
    new_scene = torch.rand(1, 1, 24, 32, generator=g) * 100
    fresh = torch.full((1, 2, 24, 32), 60.0)
    out_cut, cut = sm(new_scene, fresh)
    assert cut and torch.equal(out_cut, fresh) and sm.last_score > 10
    # "none" passes the prediction through.
    off = TemporalSmoother(enabled=False)
    assert all(torch.equal(off(L, ab)[0], ab) for ab in raw[:3])


def test_frames_api_smooths_and_detects_the_cut(colorizer):
    frames = gray_frames(12, 48, 64, cut_at=6)
    ema = list(colorize_frames(colorizer, frames, smoothing="ema", batch_size=5))
    assert [r.cut for r in ema] == [i == 6 for i in range(12)]
    assert ema[0].rgb.shape == (48, 64, 3) and ema[0].rgb.dtype == np.uint8
    assert ema[0].ab.shape == ema[0].raw_ab.shape == (1, 2, 48, 64)
    assert torch.equal(ema[6].ab, ema[6].raw_ab)  # reset at the cut

    def change(key):  # mean frame-to-frame |ab change| within scenes
        return float(np.mean([(getattr(b, key) - getattr(a, key)).abs().mean()
                              for a, b in zip(ema, ema[1:]) if not b.cut]))

    assert change("ab") < change("raw_ab")  # raw_ab is what smoothing="none" shows


def test_paths_and_bad_inputs(colorizer, tmp_path):
    assert is_video_path("a/Film.MP4") and is_video_path("x.webm") and is_video_path(Path("c.m4v"))
    assert not is_video_path("photo.jpg") and not is_video_path("noext")
    assert video_output_path(Path("in/film.mov"), Path("out.mp4")) == Path("out.mp4")
    assert video_output_path(Path("in/film.mov"), Path("outdir")) == Path("outdir/film.mov")
    with pytest.raises(ImageError, match="no such file"):
        colorize_video_cli(colorizer, tmp_path / "missing.mp4", tmp_path / "o.mp4", "ema", False)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 50)
    with pytest.raises(ImageError, match="cannot read this video"):
        colorize_video_cli(colorizer, junk, tmp_path / "o.mp4", "ema", False)
    audio_only = tmp_path / "sound.mkv"
    with av.open(str(audio_only), "w") as out:
        a = out.add_stream("flac", rate=8000)
        a.layout = "mono"
        af = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        af.sample_rate, af.pts = 8000, 0
        out.mux(a.encode(af))
        out.mux(a.encode(None))
    with pytest.raises(ImageError, match="no video stream"):
        colorize_video_cli(colorizer, audio_only, tmp_path / "o.mp4", "ema", False)
    src = write_clip(tmp_path / "ok.mp4", gray_frames(2, 16, 16), acodec=None)
    with pytest.raises(ValueError, match="write a video as one of"):
        colorize_video_cli(colorizer, src, tmp_path / "o.png", "ema", False)
    with pytest.raises(ValueError, match="smoothing must be one of none, ema"):
        colorize_video_cli(colorizer, src, tmp_path / "o.mp4", "median", False)
    with pytest.raises(ValueError, match="overwrite the input"):
        colorize_video_cli(colorizer, src, src, "ema", False)
    assert not (tmp_path / "o.mp4").exists()


def noisy_frames(n: int, h: int, w: int) -> list[np.ndarray]:
    """Gray frames with fresh grain each: every frame costs bytes, so a cut file loses frames."""
    rng = np.random.default_rng(5)
    return [np.clip(f.astype(np.int16) + rng.integers(-20, 21, f.shape[:2])[..., None], 0, 255).astype(np.uint8)
            for f in gray_frames(n, h, w)]


@pytest.mark.parametrize("ext", [".mkv", ".mp4"])
def test_truncated_video_names_the_frame_and_fails_unless_partial_is_allowed(colorizer, tmp_path, capsys, ext):
    whole = write_clip(tmp_path / f"whole{ext}", noisy_frames(30, 48, 64), faststart=True)
    cut = tmp_path / f"cut{ext}"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    dst = tmp_path / "out" / f"cut{ext}"
    with pytest.raises(ImageError, match=r"decoding stopped at frame \d+") as err:
        colorize_video_cli(colorizer, cut, dst, "ema", False)
    msg = str(err.value)
    assert "--allow-partial" in msg and str(cut) not in msg and "\n" not in msg
    assert not dst.exists() and not list(dst.parent.glob(".*"))  # nothing written, no temporary left
    res = colorize_video_cli(colorizer, cut, dst, "ema", False, allow_partial=True)
    warning = capsys.readouterr().err.strip()
    assert 0 < res.frames < 30 and len(probe(dst)["frames"]) == res.frames
    assert warning.startswith(f"tinct: warning: {cut}: decoding stopped at frame {res.frames + 1}")
    assert "\n" not in warning and res.partial in warning
    full = colorize_video(colorizer, whole, tmp_path / f"full{ext}", progress=False)
    assert full.frames == 30 and full.partial is None  # a complete file is not flagged


def _bit_flipped(src: Path, dst: Path, where: str, seed: int = 0) -> Path:
    data = bytearray(src.read_bytes())
    if where == "header":
        for i in range(64):
            data[i] ^= 0xFF
    else:
        rng = np.random.default_rng(seed)
        for i in rng.integers(len(data) // 10, len(data), 200):
            data[i] ^= 1 << int(rng.integers(8))
    dst.write_bytes(bytes(data))
    return dst


@pytest.mark.parametrize("where", ["header", "stream"])
def test_bit_flipped_mkv_is_one_line_naming_the_file_once(tiny_model_path, tmp_path, capsys, where):
    from tinct.cli import main

    clip = write_clip(tmp_path / "clip.mkv", gray_frames(30, 48, 64))
    # The encoder's bytes vary from run to run, and FFmpeg's threaded H.264 decoding conceals
    # some flipped bits (the video is then colorized, exit 0): the message of the first
    # corruption that does fail is what is under test.
    for seed in range(10):
        bad = _bit_flipped(clip, tmp_path / "flipped.mkv", where, seed)
        rc = main(["colorize", str(bad), "-o", str(tmp_path / "out"), "--model", str(tiny_model_path),
                   "--backend", "torch", "--render-size", "64", "-q", "--overwrite"])
        err = capsys.readouterr().err.strip()
        if rc != 0:
            break
    assert rc == 1 and err.startswith(f"tinct: error: {bad}: ") and "\n" not in err, err
    assert err.count("flipped.mkv") == 1, err


def test_video_docs_examples_write_where_they_say():
    """docs/video.md's ``tinct colorize ... # -> PATH`` lines agree with ``video_output_path``."""
    import re
    import shlex

    doc = (Path(__file__).resolve().parent.parent / "docs" / "video.md").read_text()
    examples = re.findall(r"^tinct colorize (.+?)\s+# -> (\S+)", doc, flags=re.M)
    assert len(examples) >= 3
    for command, written in examples:
        args = shlex.split(command)
        src = next(a for a in args if is_video_path(a) and a != (args[args.index("-o") + 1] if "-o" in args else None))
        out = args[args.index("-o") + 1] if "-o" in args else "colorized"
        assert video_output_path(Path(src), Path(out)) == Path(written), command


def test_cli_allow_partial_keeps_a_truncated_video(tiny_model_path, tmp_path):
    from tinct.cli import main

    whole = write_clip(tmp_path / "whole.mkv", noisy_frames(30, 48, 64), faststart=True)
    cut = tmp_path / "in" / "cut.mkv"
    cut.parent.mkdir()
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    base = ["colorize", str(cut), "--model", str(tiny_model_path), "--render-size", "64", "-q"]
    assert main([*base, "-o", str(tmp_path / "strict")]) == 1
    assert not (tmp_path / "strict" / "cut.mkv").exists()
    assert main([*base, "-o", str(tmp_path / "kept"), "--allow-partial"]) == 0
    assert 0 < len(probe(tmp_path / "kept" / "cut.mkv")["frames"]) < 30
