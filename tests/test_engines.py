"""The engines' shared parts without a cluster: URL listing and output names, storage, the run
manifest and what a rerun resumes, and one batch of a Ray actor's work (``colorize_rows``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tinct.engines.listing import expand_sources, plan_locations, plan_outputs
from tinct.engines.manifest import RUNS_FOLDER, Record, RunManifest, plan_resume, read_records
from tinct.engines.storage import existing_files, is_url, join, parent_and_name, write_bytes
from tinct.errors import UsageError

from conftest import make_photo


def test_is_url_tells_schemes_from_paths():
    assert is_url("s3://bucket/key") and is_url("file:///tmp/x") and is_url("gs://b")
    assert not is_url("/tmp/x") and not is_url("photos/a.jpg") and not is_url("C:\\photos")


def test_join_and_parent_keep_url_slashes():
    assert join("s3://b/out/", "sub/a.jpg") == "s3://b/out/sub/a.jpg"
    assert join("out", "sub/a.jpg") == str(Path("out") / "sub" / "a.jpg")
    assert parent_and_name("s3://b/out/sub/a.jpg") == ("s3://b/out/sub", "a.jpg")


def test_plan_locations_maps_names_and_refuses_collisions(tmp_path):
    pairs = [(str(tmp_path / "a.png"), "a.png"), (str(tmp_path / "a.jpg"), "a.jpg"), ("s3://b/in/x/y.tif", "x/y.tif")]
    plan = plan_locations(pairs, "s3://b/out", "png")
    assert [d for _, d, _ in plan] == ["s3://b/out/a.png", "s3://b/out/a.png", "s3://b/out/x/y.png"]
    assert [p is None for _, _, p in plan] == [True, False, True]
    assert "collides" in plan[1][2]
    same = plan_locations([(str(tmp_path / "a.png"), "a.png")], str(tmp_path), None)
    assert "overwrite the input" in same[0][2]


def test_plan_outputs_is_plan_locations_on_paths(photo_dir, tmp_path):
    from tinct.engines.listing import expand_inputs

    inputs = expand_inputs([str(photo_dir)], tmp_path / "out")
    plan = plan_outputs(inputs.files, tmp_path / "out", None)
    assert [(s.name, d.relative_to(tmp_path / "out").as_posix()) for s, d, _ in plan] == \
        [("a.jpg", "a.jpg"), ("b.png", "b.png"), ("c.jpg", "sub/c.jpg")]


def test_expand_sources_lists_file_urls_like_folders(photo_dir):
    (photo_dir / "notes.txt").write_text("x")
    (photo_dir / ".hidden.jpg").write_bytes(b"")
    pairs, unsupported = expand_sources([photo_dir.as_uri()])
    assert [rel for _, rel in pairs] == ["a.jpg", "b.png", "sub/c.jpg"]
    assert all(src.startswith("file://") for src, _ in pairs)
    assert unsupported == {".txt": 1}
    glob_pairs, _ = expand_sources([photo_dir.as_uri() + "/**/*.jpg"])
    assert [rel for _, rel in glob_pairs] == ["a.jpg", "sub/c.jpg"]
    with pytest.raises(UsageError, match="no such object"):
        expand_sources([(photo_dir / "missing").as_uri()])


def test_existing_files_spells_locations_as_join(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.png").write_bytes(b"x")
    assert existing_files(str(tmp_path)) == {join(str(tmp_path), "sub/a.png")}
    assert existing_files(tmp_path.as_uri()) == {tmp_path.as_uri() + "/sub/a.png"}
    assert existing_files(str(tmp_path / "none")) == set()


def test_manifest_parts_are_whole_files_and_read_back(tmp_path):
    run = RunManifest(str(tmp_path), flush_lines=2, flush_seconds=1e9)
    run.start({"model": "m"})
    run.record([Record("a", "A", "done", seconds=0.5)])
    assert not list((tmp_path / RUNS_FOLDER).rglob("part-*"))  # below flush_lines: nothing written yet
    run.record([Record("b", "B", "failed", "broken")])
    run.record([Record("c", "C", "done")])
    run.close()
    parts = sorted((tmp_path / RUNS_FOLDER).rglob("part-*.jsonl"))
    assert [p.name for p in parts] == ["part-00001.jsonl", "part-00002.jsonl"]
    assert json.loads(parts[0].read_text().splitlines()[1]) == \
        {"source": "b", "output": "B", "status": "failed", "error": "broken", "seconds": 0.0}
    assert [(r.source, r.status) for r in read_records(str(tmp_path))] == [("a", "done"), ("b", "failed"), ("c", "done")]


def _run_with(dest: Path, settings: dict, records: list[Record]) -> None:
    run = RunManifest(str(dest))
    run.start(settings)
    run.record(records)
    run.close()


def test_plan_resume_does_only_missing_work(tmp_path):
    dest = tmp_path / "out"
    plan = [(f"in/{n}.jpg", str(dest / f"{n}.jpg"), None) for n in "abcde"] + [("in/f.jpg", str(dest / "a.jpg"), "collides")]
    settings = {"model": "default"}
    for n in "abc":  # written by the killed run ...
        write_bytes(str(dest / f"{n}.jpg"), b"jpeg")
    _run_with(dest, settings, [Record("in/a.jpg", str(dest / "a.jpg"), "done"),  # ... which recorded a only,
                               Record("in/d.jpg", str(dest / "d.jpg"), "failed", "broken")])  # and d as failed
    resume = plan_resume(plan, str(dest), settings)
    # a: recorded and present; b, c: present but unrecorded (redone); d: failed (retried); e: new
    assert resume.tally["done earlier"] == 1
    assert resume.jobs == [(f"in/{n}.jpg", str(dest / f"{n}.jpg")) for n in "bcde"]
    assert [r.error for r in resume.problems] == ["collides"]
    assert plan_resume(plan, str(dest), settings, overwrite=True).jobs == [(s, d) for s, d, p in plan if not p]
    (dest / "a.jpg").unlink()  # a recorded output that went missing is made again
    assert ("in/a.jpg", str(dest / "a.jpg")) in plan_resume(plan, str(dest), settings).jobs


def test_plan_resume_keeps_outputs_it_does_not_own(tmp_path):
    dest = tmp_path / "out"
    write_bytes(str(dest / "a.jpg"), b"someone else's")
    plan = [("in/a.jpg", str(dest / "a.jpg"), None)]
    assert plan_resume(plan, str(dest), {}).tally["exists"] == 1
    assert plan_resume(plan, str(dest), {}, skip_existing=True).tally["skipped"] == 1
    assert plan_resume(plan, str(dest), {}, overwrite=True).jobs == [("in/a.jpg", str(dest / "a.jpg"))]


def test_plan_resume_refuses_a_destination_made_with_other_settings(tmp_path):
    _run_with(tmp_path, {"model": "default", "decode": "annealed"}, [])
    with pytest.raises(UsageError, match="model 'default'"):
        plan_resume([], str(tmp_path), {"model": "tinct-lite0-joint", "decode": "annealed"})
    assert plan_resume([], str(tmp_path), {"model": "tinct-lite0-joint", "decode": "annealed"}, overwrite=True).jobs == []


def test_colorize_rows_isolates_failures_and_stages_object_store_files(tmp_path, tiny_model_path):
    import fsspec

    from tinct.engines.ray_data import colorize_rows
    from tinct.pipeline import Colorizer

    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(make_photo(40, 56, 1)).convert("L").save(src / "a.png")
    (src / "bad.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    memory = fsspec.filesystem("memory")  # an object store in this process: sources and outputs are staged
    memory.pipe_file("/bucket/in/a.png", (src / "a.png").read_bytes())
    out = tmp_path / "out"
    rows = [("memory://bucket/in/a.png", "memory://bucket/out/a.png"),
            (str(src / "bad.jpg"), str(out / "bad.jpg")),
            ("memory://bucket/in/missing.png", str(out / "missing.png")),
            ((src / "a.png").as_uri(), str(out / "local" / "a.png"))]  # file:// is a local path: no staging
    records = colorize_rows(Colorizer(tiny_model_path).colorize_files, rows, {"confidence": True})
    assert [r.status for r in records] == ["done", "failed", "failed", "done"]
    assert "not an image" in records[1].error and records[2].error.startswith("cannot read")
    with memory.open("/bucket/out/a.png") as fh:
        staged = np.asarray(Image.open(fh))
    assert np.array_equal(staged, np.asarray(Image.open(out / "local" / "a.png")))
    assert memory.isfile("/bucket/out/a.confidence.png")  # a sibling output travels with its photo
    assert (out / "local" / "a.confidence.png").is_file()
    memory.rm("/bucket", recursive=True)


def test_colorize_rows_survives_a_bug_on_one_photo(tmp_path):
    from tinct.engines.ray_data import colorize_rows

    def colorize_files(jobs, on_done, **options):
        for src, dst in jobs:
            if src.name == "boom.png":
                raise RuntimeError("unexpected")
            dst.write_bytes(b"ok")
            on_done(src, dst, None)

    rows = [(str(tmp_path / n), str(tmp_path / f"out-{n}")) for n in ("a.png", "boom.png", "c.png")]
    records = colorize_rows(colorize_files, rows, {})
    assert [r.status for r in records] == ["done", "failed", "done"]
    assert "RuntimeError: unexpected" in records[1].error


@pytest.mark.parametrize("argv, message", [
    (["s3://bucket/scans", "-o", "out"], "URLs are read and written by the Ray engine: add --engine ray"),
    (["{photos}", "-o", "s3://bucket/out"], "URLs are read and written by the Ray engine"),
    (["{photos}", "--engine", "ray", "--workers", "0"], "--workers 0: give at least 1"),
    (["{photos}", "--engine", "ray", "--batch-size", "0"], "--batch-size 0: give at least 1"),
    (["{photos}", "--engine", "ray", "--device", "cuda"], "--engine ray runs on the workers' CPUs"),
    (["{video}", "--engine", "ray"], "--engine ray colorizes photos"),
])
def test_colorize_flags_that_do_not_fit_the_engine_are_one_line_errors(argv, message, photo_dir, tmp_path, capsys):
    from tinct.cli import main

    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    argv = [a.format(photos=photo_dir, video=video) for a in argv]
    assert main(["colorize", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_engine_ray_without_ray_says_what_to_install(photo_dir, monkeypatch, capsys):
    import importlib.util

    from tinct.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    assert main(["colorize", str(photo_dir), "--engine", "ray"]) == 2
    assert "pip install 'tinct[cluster]'" in capsys.readouterr().err


def test_a_cluster_that_cannot_be_joined_leaves_the_destination_untouched(photo_dir, tmp_path, monkeypatch, capsys,
                                                                          tiny_model_path):
    from tinct.cli import main
    from tinct.engines import ray_data
    from tinct.errors import SetupError

    def unreachable(address):
        raise SetupError(f"--address {address}: ray client connection timeout")

    monkeypatch.setattr(ray_data, "connect", unreachable)
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.jpg").write_bytes(b"the user's own file")
    argv = ["colorize", str(photo_dir), "-o", str(out), "-m", str(tiny_model_path), "--engine", "ray", "--address", "x:1"]
    assert main(argv) == 2
    assert "connection timeout" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["a.jpg"]  # no run manifest: a rerun still keeps a.jpg


@pytest.mark.parametrize("flags, message", [
    (["--decode", "bogus"], "decodes with"),
    (["--style", "{photo}"], "has no global features, so it cannot take a style reference"),
    (["--hints", "auto"], "--hints needs a hint model"),
    (["--render-size", "16"], "render size must be at least 32 pixels"),
])
def test_the_ray_driver_checks_flags_from_the_weights_header_without_torch(flags, message, photo_dir, tmp_path,
                                                                           tiny_model_path):
    """The driver reads what the model offers from its weights file's header: a bad flag is a
    one-line error before any cluster is joined, and torch is never imported (a second off every run)."""
    import subprocess
    import sys

    photo = next(p for p in photo_dir.iterdir() if p.suffix == ".png")
    argv = ["colorize", str(photo_dir), "-o", str(tmp_path / "out"), "-m", str(tiny_model_path), "--engine", "ray",
            "--address", "127.0.0.1:1", *(f.format(photo=photo) for f in flags)]
    code = ("import sys; from tinct.cli import main; rc = main(sys.argv[1:]); "
            "print('torch imported' if 'torch' in sys.modules else 'no torch'); sys.exit(rc)")
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stdout.strip() == "no torch"
    assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
