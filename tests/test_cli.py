"""`tinct colorize` / `tinct models` from the command line: folders, globs, bad files, exit codes."""

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tinct.cli import NOTICE_LOGGER, OneLineFormatter, main
from tinct.engines.listing import glob_root


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


def test_existing_outputs_are_kept_and_counted_not_failed(photo_dir, tmp_path, tiny_model_path, capsys):
    out = tmp_path / "out"
    args = ["colorize", str(photo_dir), "-o", str(out), "--model", str(tiny_model_path)]
    assert run(*args, "-q") == 0
    stamp = (out / "a.jpg").stat().st_mtime_ns
    capsys.readouterr()
    assert run(*args) == 0  # a plain rerun: nothing failed
    err = capsys.readouterr().err
    assert "0 colorized" in err and "3 exist" in err and "--skip-existing" in err and "--overwrite" in err
    assert "0 failed" in err and "tinct: error" not in err
    assert run(*args, "-q") == 0 and "3 output(s) exist" in capsys.readouterr().err  # -q: one line says so
    assert run(*args, "--skip-existing") == 0 and "3 skipped (exist)" in capsys.readouterr().err
    assert run(*args, "-q", "--skip-existing") == 0 and capsys.readouterr().err == ""
    assert (out / "a.jpg").stat().st_mtime_ns == stamp
    assert run(*args, "--overwrite") == 0 and "3 colorized" in capsys.readouterr().err


def test_globs_and_format(photo_dir, tmp_path, tiny_model_path):
    out = tmp_path / "out"
    assert run("colorize", str(photo_dir / "*.jpg"), "-o", str(out), "--format", "png", "--model", str(tiny_model_path), "-q") == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.png"]


def test_globs_keep_sub_folders_below_their_fixed_prefix(photo_dir, tmp_path, tiny_model_path):
    (photo_dir / "other").mkdir()
    (photo_dir / "other" / "c.jpg").write_bytes((photo_dir / "sub" / "c.jpg").read_bytes())  # same name
    out = tmp_path / "out"
    assert run("colorize", str(photo_dir / "**" / "*.jpg"), "-o", str(out), "--model", str(tiny_model_path), "-q") == 0
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.jpg")) == ["a.jpg", "other/c.jpg", "sub/c.jpg"]


def test_glob_root_is_the_pattern_s_fixed_folders():
    assert glob_root("photos/**/*.png") == Path("photos")
    assert glob_root("/data/scans/*/page.tif") == Path("/data/scans")
    assert glob_root("*.jpg") == Path(".")


def test_an_output_folder_inside_the_input_folder_is_not_colorized_again(photo_dir, tiny_model_path, capsys):
    out = photo_dir / "out"
    base = ["-o", str(out), "--model", str(tiny_model_path)]
    assert run("colorize", str(photo_dir), *base, "-q") == 0
    capsys.readouterr()
    assert run("colorize", str(photo_dir), *base, "--skip-existing") == 0
    assert run("colorize", str(photo_dir / "**" / "*.jpg"), *base, "--skip-existing") == 0
    err = capsys.readouterr().err
    assert "3 skipped (exist)" in err and "2 skipped (exist)" in err and "colorized into" in err
    assert not (out / "out").exists()
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == ["a.jpg", "b.png", "sub/c.jpg"]


def test_files_of_other_kinds_in_a_folder_are_counted_in_the_summary(photo_dir, tmp_path, tiny_model_path, capsys):
    (photo_dir / "notes.txt").write_text("not a photo")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(photo_dir / "sub" / "anim.gif")
    (photo_dir / "README").write_text("no extension")
    assert run("colorize", str(photo_dir), "-o", str(tmp_path / "out"), "--model", str(tiny_model_path)) == 0
    err = capsys.readouterr().err
    assert "3 colorized" in err and "3 skipped (not a supported image: 1 .gif, 1 .txt, 1 no extension)" in err
    only_text = tmp_path / "texts"
    only_text.mkdir()
    (only_text / "a.txt").write_text("x")
    assert run("colorize", str(only_text), "--model", str(tiny_model_path)) == 2
    assert "no images found in this folder (only 1 .txt)" in capsys.readouterr().err


def test_samples_are_written_beside_the_decoded_photo(photo_dir, tmp_path, tiny_model_path, capsys):
    base = ["colorize", str(photo_dir / "b.png"), "--model", str(tiny_model_path), "--render-size", "64"]
    assert run(*base, "-o", str(tmp_path / "plain"), "-q") == 0
    assert run(*base, "-o", str(tmp_path / "s"), "--samples", "2", "--seed", "1") == 0
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["b.png", "b.sample1.png", "b.sample2.png"]
    assert "1 colorized into" in capsys.readouterr().err.replace("(each with 2 samples)", "")
    decoded, plain = (np.asarray(Image.open(d / "b.png")) for d in (tmp_path / "s", tmp_path / "plain"))
    assert np.array_equal(decoded, plain)  # the photo is decoded as without --samples


def test_a_rerun_removes_stale_temporaries_of_a_killed_run(photo_dir, tmp_path, tiny_model_path, capsys):
    from tinct.atomic import temporary_beside
    from tinct.video import partial_name

    out = tmp_path / "out"
    args = ["colorize", str(photo_dir), "-o", str(out), "--model", str(tiny_model_path)]
    assert run(*args, "-q") == 0
    stale = [out / ".a.jpg.tmp-0a1b2c3d", out / "sub" / ".c.jpg.tmp-99999999", temporary_beside(out / "clip.mp4", partial_name)]
    in_progress = out / ".b.png.tmp-0123abcd"  # written by another run that started after this one
    others = [out / ".a.jpg.tmp-notmine", out / "notes.tmp-0a1b2c3d", out / ".hidden"]
    for f in [*stale, in_progress, *others]:
        f.write_bytes(b"half a file")
    for f in [*stale, *others]:
        os.utime(f, (1_000_000, 1_000_000))  # 1970: before any run
    future = time.time() + 3600
    os.utime(in_progress, (future, future))
    capsys.readouterr()
    assert run(*args, "--skip-existing") == 0
    assert "3 stale temporary file(s) of a killed run removed" in capsys.readouterr().err
    assert not any(f.exists() for f in stale) and in_progress.exists() and all(f.exists() for f in others)


def test_decoder_errors_name_the_model_the_user_asked_for(photo_dir, tmp_path, tiny_model_path, capsys):
    code = run("colorize", str(photo_dir / "a.jpg"), "-o", str(tmp_path), "--model", str(tiny_model_path),
               "--decode", "median")
    err = capsys.readouterr().err
    assert code == 2 and f"model '{tiny_model_path}' decodes with" in err and "hypercolumns" not in err


def test_a_style_error_draws_no_progress_bar(photo_dir, tmp_path, tiny_model_path, capsys):
    code = run("colorize", str(photo_dir / "a.jpg"), "-o", str(tmp_path / "out"), "--model", str(tiny_model_path),
               "--style", str(photo_dir / "b.png"))
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("tinct: error:") and "no global features" in err
    assert "colorizing" not in err and "0/1" not in err


def test_a_bad_flag_shows_the_command_s_usage(capsys):
    with pytest.raises(SystemExit) as stop:
        run("colorize", "old.png", "--no-such-flag")
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "usage: tinct colorize" in err and "unrecognized arguments: --no-such-flag" in err


def test_warnings_are_one_line_even_with_q(tmp_path, tiny_model_path, capsys):
    tifffile = pytest.importorskip("tifffile")
    src = tmp_path / "deep.tif"  # 16-bit, with a Software tag: its EXIF cannot go into a 16-bit TIFF
    tifffile.imwrite(src, np.full((24, 32, 3), 30000, np.uint16), photometric="rgb", software="scanner")
    assert run("colorize", str(src), "-o", str(tmp_path / "out"), "--model", str(tiny_model_path), "-q") == 0
    err = capsys.readouterr().err
    assert err.splitlines() == [f"tinct: warning: '{tmp_path / 'out' / 'deep.tif'}': EXIF cannot be stored in a "
                                "16-bit TIFF; it is dropped"]


def test_log_records_print_in_the_one_line_style():
    fmt = OneLineFormatter()
    record = logging.LogRecord("tinct.export", logging.WARNING, __file__, 1, "ONNX export failed (%s)\nusing PyTorch",
                               ("boom",), None)
    assert fmt.format(record) == "tinct: warning: ONNX export failed (boom) using PyTorch"
    notice = logging.LogRecord(NOTICE_LOGGER, logging.INFO, __file__, 1, "preparing", (), None)
    assert fmt.format(notice) == "tinct: preparing"


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
    assert "larsson (efficientnet_lite2, lab-joint) 8000 steps" in out  # the shipped default's line
    assert "default                        alias of tinct-lite2-diverse" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ") and "steps" in line}
    assert "[--decode expectation|annealed|mode|sample (default expectation), --samples]" in lines["tinct-lite2-diverse"]
    assert "[--style]" in lines["iizuka-lite0"] and "[no decoder choice]" in lines["cnn-pool"]


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


def test_the_first_onnx_run_says_it_prepares_the_runtime(photo_dir, tmp_path, tiny_model_path, monkeypatch, capsys):
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    args = ["colorize", str(photo_dir / "b.png"), "--model", str(tiny_model_path), "--render-size", "64",
            "--backend", "onnx"]
    assert run(*args, "-o", str(tmp_path / "first")) == 0
    assert f"tinct: preparing the fast CPU runtime for {tiny_model_path}, once" in capsys.readouterr().err
    assert run(*args, "-o", str(tmp_path / "second")) == 0
    assert "preparing" not in capsys.readouterr().err


@pytest.mark.parametrize("precision, video_on_onnx", [("float32", True), ("bfloat16", False)])
def test_video_and_photos_in_one_call(precision, video_on_onnx, photo_dir, tmp_path, tiny_model_path, monkeypatch):
    """--backend auto (the default): photos on PyTorch; the video on onnxruntime (exported once)
    when PyTorch would run in float32, on PyTorch when it runs in bfloat16 (faster there)."""
    av = pytest.importorskip("av")
    pytest.importorskip("onnxruntime")
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    assert run("colorize", str(photo_dir / "a.jpg"), "-o", str(tmp_path / "only-photos"), "--model",
               str(tiny_model_path), "-q", "--precision", precision) == 0
    assert not list(cache.glob("tinct/onnx/*.onnx"))  # photos alone: no export
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
    code = run("colorize", str(clip), str(photo_dir / "a.jpg"), "-o", str(out_dir), "--model", str(tiny_model_path),
               "-q", "--precision", precision)
    assert code == 0
    assert (out_dir / "a.jpg").is_file()
    with av.open(str(out_dir / "clip.mp4")) as result:
        assert sum(1 for _ in result.decode(video=0)) == 8
    assert bool(list(cache.glob("tinct/onnx/*.onnx"))) == video_on_onnx


# ----------------------------------------------------------------------------- errors and bugs
def test_a_user_error_is_one_line_and_a_bug_keeps_its_traceback(monkeypatch, capsys, tmp_path):
    import tinct.cli as cli

    assert main(["colorize", str(tmp_path / "missing.jpg"), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tinct: error:") and "missing.jpg" in err and "Traceback" not in err

    def broken(args):
        return {}["a programming error"]

    monkeypatch.setattr(cli, "cmd_models", broken)
    assert main(["models"]) == 3
    err = capsys.readouterr().err
    assert "Traceback" in err and "KeyError" in err and "this is a bug in tinct" in err


# ----------------------------------------------------------------------------- color hints
def _hint_photo(folder: Path, name: str = "p.png") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    Image.fromarray(np.full((48, 64), 128, np.uint8)).save(path)
    return path


def test_colorize_with_a_hints_file_and_with_auto(tmp_path, tiny_hint_model_path, capsys):
    photo = _hint_photo(tmp_path / "in")
    model = str(tiny_hint_model_path)
    assert main(["colorize", str(photo), "-o", str(tmp_path / "plain"), "-m", model, "-q"]) == 0
    hints = tmp_path / "red.json"
    hints.write_text('[{"x": 32, "y": 24, "color": "#e02020"}]')
    assert main(["colorize", str(photo), "-o", str(tmp_path / "hinted"), "-m", model, "--hints", str(hints), "-q"]) == 0
    plain = np.asarray(Image.open(tmp_path / "plain" / "p.png"), np.float32)
    hinted = np.asarray(Image.open(tmp_path / "hinted" / "p.png"), np.float32)
    assert np.abs(plain - hinted).max() > 1  # the hint changed the colors
    # auto: <name>.hints.json beside the photo; a photo without one gets none; a bad one fails only its photo
    (photo.parent / "p.hints.json").write_text(hints.read_text())
    _hint_photo(photo.parent, "q.png")
    _hint_photo(photo.parent, "r.png")
    (photo.parent / "r.hints.json").write_text('[{"x": 999, "y": 1, "color": "#e02020"}]')
    capsys.readouterr()
    assert main(["colorize", str(photo.parent), "-o", str(tmp_path / "auto"), "-m", model, "--hints", "auto"]) == 1
    err = capsys.readouterr().err
    assert "r.png: hint 1: (999, 1) is outside the 64x48 photo" in err and "2 colorized" in err
    assert np.array_equal(np.asarray(Image.open(tmp_path / "auto" / "p.png")), hinted.astype(np.uint8))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "auto" / "q.png")), plain.astype(np.uint8))


def test_hints_need_a_hint_model_and_one_photo_per_file(tmp_path, tiny_model_path, tiny_hint_model_path, capsys):
    photo = _hint_photo(tmp_path / "in")
    _hint_photo(tmp_path / "in", "second.png")
    hints = tmp_path / "h.json"
    hints.write_text('[{"x": 1, "y": 1, "color": "#e02020"}]')
    assert main(["colorize", str(photo), "-m", str(tiny_model_path), "--hints", str(hints), "-q"]) == 2
    assert "--hints needs a hint model" in capsys.readouterr().err
    assert main(["colorize", str(tmp_path / "in"), "-m", str(tiny_hint_model_path), "--hints", str(hints), "-q"]) == 2
    assert "names the hints of one photo; 2 photos were given" in capsys.readouterr().err
    hints.write_text("[{")
    assert main(["colorize", str(photo), "-m", str(tiny_hint_model_path), "--hints", str(hints), "-q"]) == 2
    assert "hints file" in capsys.readouterr().err


def test_suggest_prints_a_palette(tmp_path, tiny_hint_model_path, capsys):
    import json

    photo = _hint_photo(tmp_path)
    assert main(["suggest", str(photo), "--at", "10,20", "--k", "3", "-m", str(tiny_hint_model_path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("#") and len(line.split()) == 2 for line in lines)
    assert main(["suggest", str(photo), "--at", "0.5,0.5", "--json", "-m", str(tiny_hint_model_path)]) == 0
    colors = json.loads(capsys.readouterr().out)
    assert len(colors) == 6 and {"color", "probability"} <= set(colors[0])
    assert main(["suggest", str(photo), "--at", "ten,20", "-m", str(tiny_hint_model_path)]) == 2
    assert "--at ten,20: expected X,Y" in capsys.readouterr().err
    assert main(["suggest", str(photo), "--at", "100,20", "-m", str(tiny_hint_model_path)]) == 2
    assert "outside the 64x48 photo" in capsys.readouterr().err


def test_threads_sets_the_runtime_threads(photo_dir, tmp_path, tiny_model_path, capsys):
    import torch

    before = torch.get_num_threads()
    try:
        assert main(["colorize", str(photo_dir), "-o", str(tmp_path / "o"), "-m", str(tiny_model_path),
                     "--threads", "1", "--backend", "torch", "-q"]) == 0
        assert torch.get_num_threads() == 1
        assert main(["colorize", str(photo_dir), "-o", str(tmp_path / "o2"), "--threads", "0", "-q"]) == 2
        assert "--threads 0: give at least 1" in capsys.readouterr().err
    finally:
        torch.set_num_threads(before)


def test_the_command_ends_a_finished_colorize_without_teardown_and_keeps_everything(photo_dir, tmp_path):
    """`tinct colorize` as a process: after a local run it exits at once (os._exit once flushed),
    with its exit code, its summary on stderr and every output whole; a run with a broken photo
    still exits 1 and says why."""
    (tmp_path / "in").mkdir()
    for p in sorted(photo_dir.glob("*.*")):  # a.jpg, b.png
        (tmp_path / "in" / p.name).write_bytes(p.read_bytes())
    cmd = [sys.executable, "-m", "tinct.cli", "colorize", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
           "--render-size", "64"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "2 colorized" in done.stderr
    for out in (tmp_path / "out").iterdir():
        with Image.open(out) as im:
            im.load()  # decodes whole
    (tmp_path / "in" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    failed = subprocess.run([*cmd, "--skip-existing"], capture_output=True, text=True, timeout=300)
    assert failed.returncode == 1 and "broken.jpg" in failed.stderr and "1 failed" in failed.stderr
