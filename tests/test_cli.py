"""`tinct colorize` / `tinct models` from the command line: folders, globs, bad files, exit codes."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tinct.cli import main


def run(*args: str) -> int:
    return main(list(args))


def test_colorize_folder_keeps_structure_and_sizes(photo_dir, tmp_path, tiny_model_path):
    out = tmp_path / "out"
    assert run("colorize", str(photo_dir), "-o", str(out), "--model", str(tiny_model_path), "-q") == 0
    for rel, size in [("a.jpg", (60, 40)), ("b.png", (47, 33)), ("sub/c.jpg", (30, 50))]:
        with Image.open(out / rel) as im:
            assert im.size == size and im.mode == "RGB"


def test_broken_files_are_named_and_the_batch_goes_on(photo_dir, tmp_path, tiny_model_path, capsys):
    good = (photo_dir / "a.jpg").read_bytes()
    (photo_dir / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (photo_dir / "notes.png").write_bytes(b"this is a text file, not a PNG\n" * 10)
    (photo_dir / "empty.jpg").write_bytes(b"")
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(photo_dir / "huge.png")
    out = tmp_path / "out"
    code = run("colorize", str(photo_dir), "-o", str(out), "--model", str(tiny_model_path), "--max-pixels", "4000")
    err = capsys.readouterr().err
    assert code == 1
    for name in ("truncated.jpg", "notes.png", "empty.jpg", "huge.png"):
        lines = [ln for ln in err.splitlines() if name in ln]
        assert len(lines) == 1, (name, err)
        assert lines[0].startswith("tinct: error:")
        assert not (out / name).exists()
    assert "Traceback" not in err
    assert (out / "a.jpg").exists() and (out / "b.png").exists() and (out / "sub" / "c.jpg").exists()
    assert "3 colorized" in err and "4 failed" in err


def test_inputs_are_never_overwritten(photo_dir, tiny_model_path, capsys):
    before = (photo_dir / "a.jpg").read_bytes()
    code = run("colorize", str(photo_dir / "a.jpg"), "-o", str(photo_dir), "--model", str(tiny_model_path), "--overwrite", "-q")
    assert code == 1
    assert "overwrite the input" in capsys.readouterr().err
    assert (photo_dir / "a.jpg").read_bytes() == before


def test_existing_outputs_need_a_flag(photo_dir, tmp_path, tiny_model_path, capsys):
    out = tmp_path / "out"
    args = ["colorize", str(photo_dir / "a.jpg"), "-o", str(out), "--model", str(tiny_model_path), "-q"]
    assert run(*args) == 0
    stamp = (out / "a.jpg").stat().st_mtime_ns
    assert run(*args) == 1 and "--overwrite or --skip-existing" in capsys.readouterr().err
    assert run(*args, "--skip-existing") == 0 and (out / "a.jpg").stat().st_mtime_ns == stamp
    assert run(*args, "--overwrite") == 0


def test_globs_and_format(photo_dir, tmp_path, tiny_model_path):
    out = tmp_path / "out"
    assert run("colorize", str(photo_dir / "*.jpg"), "-o", str(out), "--format", "png", "--model", str(tiny_model_path), "-q") == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.png"]


def test_usage_errors_are_one_line(tmp_path, tiny_model_path, capsys):
    assert run("colorize", str(tmp_path / "missing.jpg"), "--model", str(tiny_model_path)) == 2
    assert run("colorize", str(tmp_path), "--model", str(tmp_path / "nope.safetensors")) == 2
    assert run("colorize", str(tmp_path), "--model", "no-such-model") == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("tinct: error:") == 3


def test_models_lists_architectures(capsys):
    assert run("models") == 0
    out = capsys.readouterr().out
    assert "hypercolumns" in out
    assert "larsson (efficientnet_lite2, lab-joint) 3600 steps" in out  # the shipped default's line
    assert "default                        alias of tinct-lite2-joint" in out


def test_traits_name_what_a_model_is():
    from tinct.weights import traits

    assert traits({"arch": "iizuka", "config": {"low_level": "scratch", "global_features": False}}) == \
        "iizuka (scratch, no global features)"
    assert traits({"arch": "larsson", "config": {"backbone": "efficientnet_lite0", "space": "hue-chroma"}}) == \
        "larsson (efficientnet_lite0, hue-chroma)"
    assert traits({"arch": "unet", "config": {}}) == "unet (-)"
    assert traits({"arch": "larsson", "config": {"backbone": "efficientnet_lite1", "space": "lab-joint",
                                                 "tune_levels": 2}}) == \
        "larsson (efficientnet_lite1, lab-joint, last 2 levels tuned)"


def test_training_length_counts_the_steps_of_the_init_weights():
    from tinct.weights import training_length

    assert training_length({"steps": 1200}) == "1200 steps"
    assert training_length({"steps": 2600, "total_steps": 3100, "init": {"name": "iizuka-lite0", "steps": 500}}) == \
        "3100 steps (2600 after iizuka-lite0)"


def test_console_script_help():
    r = subprocess.run([sys.executable, "-m", "tinct.cli", "colorize", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--render-size" in r.stdout


def test_onnx_backend_from_the_cli(photo_dir, tmp_path, tiny_model_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    torch_out, onnx_out = tmp_path / "t", tmp_path / "o"
    args = [str(photo_dir / "b.png"), "--model", str(tiny_model_path), "--render-size", "64", "-q"]
    assert run("colorize", *args, "-o", str(torch_out)) == 0
    assert run("colorize", *args, "-o", str(onnx_out), "--backend", "onnx") == 0
    assert run("colorize", *args, "-o", str(tmp_path / "auto"), "--backend", "auto") == 0
    a = np.asarray(Image.open(torch_out / "b.png"), dtype=int)
    for other in (onnx_out, tmp_path / "auto"):
        b = np.asarray(Image.open(other / "b.png"), dtype=int)
        assert np.abs(a - b).max() <= 2
    assert list((tmp_path / "cache" / "tinct" / "onnx").glob("*.onnx"))  # exported once, cached


def test_video_and_photos_in_one_call(photo_dir, tmp_path, tiny_model_path):
    av = pytest.importorskip("av")
    clip = tmp_path / "clip.mp4"
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(8):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 30 * i, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    out_dir = tmp_path / "out"
    code = run("colorize", str(clip), str(photo_dir / "a.jpg"), "-o", str(out_dir), "--model", str(tiny_model_path), "-q")
    assert code == 0
    assert (out_dir / "a.jpg").is_file()
    with av.open(str(out_dir / "clip.mp4")) as result:
        assert sum(1 for _ in result.decode(video=0)) == 8
