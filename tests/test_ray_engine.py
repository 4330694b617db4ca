"""``tinct colorize --engine ray`` on a local Ray cluster of 2 CPUs started by these tests.

Pinned: the same files as the local engine (names, pixels within 1/255, EXIF) with a broken
photo reported; a driver killed mid-run, then rerun, does every photo exactly once and leaves no
partial file; an S3 destination (and source) through moto's S3 server, with s3fs.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tinct.cli import main

from conftest import make_photo

if importlib.util.find_spec("ray") is None:  # not imported here: the CLI sets Ray's settings before it does
    pytest.skip("Ray is not installed (pip install 'tinct[cluster]')", allow_module_level=True)

BIN = Path(sys.executable).parent
EXIF_MAKE = 0x010F


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_address():
    """``ray start --head --num-cpus 2`` on this machine; stopped after the module's tests."""
    port = _free_port()
    env = {**os.environ, "RAY_BACKEND_LOG_LEVEL": "error"}
    subprocess.run([str(BIN / "ray"), "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
                    "--disable-usage-stats"], check=True, env=env, capture_output=True, timeout=180)
    yield f"127.0.0.1:{port}"
    import ray

    ray.shutdown()
    subprocess.run([str(BIN / "ray"), "stop", "--force"], env=env, capture_output=True, timeout=120)


def _photos(folder: Path, n: int, size: tuple[int, int] = (48, 64)) -> list[Path]:
    """``n`` gray photos in turn JPEG (with EXIF), PNG, TIFF, WebP and BMP, every fifth in a sub-folder."""
    kinds = ["jpg", "png", "tif", "webp", "bmp"]
    out = []
    for i in range(n):
        path = folder / ("sub" if i % 5 == 4 else "") / f"p{i:02d}.{kinds[i % len(kinds)]}"
        path.parent.mkdir(parents=True, exist_ok=True)
        gray = Image.fromarray(make_photo(size[0] + i % 7, size[1] + i % 5, i)).convert("L")
        if path.suffix == ".jpg":
            exif = Image.Exif()
            exif[EXIF_MAKE] = f"camera {i}"
            gray.save(path, exif=exif, quality=95)
        elif path.suffix == ".webp":
            gray.save(path, lossless=True)
        else:
            gray.save(path)
        out.append(path)
    return out


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).astype(int)


def _records(out: str | Path) -> list[dict]:
    return [json.loads(line) for part in sorted(Path(out).glob(".tinct-runs/*/part-*.jsonl"))
            for line in part.read_text().splitlines()]


def test_ray_engine_writes_the_local_engines_files(tmp_path, ray_address, tiny_model_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths: the workers' current folder is not the driver's
    src = tmp_path / "in"
    photos = _photos(src, 40)
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    common = ["colorize", "in", "-m", str(tiny_model_path)]
    assert main([*common, "-o", "local", "-q"]) == 1
    capsys.readouterr()
    on_ray = [*common, "-o", "ray", "--engine", "ray", "--address", ray_address, "--batch-size", "4"]
    assert main(on_ray) == 1
    err = capsys.readouterr().err
    assert "broken.jpg" in err and "40 colorized into ray" in err and "1 failed" in err and "photos/s" in err
    assert main(on_ray) == 1  # the rerun retries the broken photo only
    assert "0 colorized into ray" in capsys.readouterr().err.splitlines()[-1]

    def outputs(root: Path) -> list[str]:
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and ".tinct-runs" not in p.parts)

    assert outputs(tmp_path / "ray") == outputs(tmp_path / "local") == sorted(p.relative_to(src).as_posix() for p in photos)
    for p in photos:
        rel = p.relative_to(src)
        assert np.abs(_pixels(tmp_path / "ray" / rel) - _pixels(tmp_path / "local" / rel)).max() <= 1, rel
    with Image.open(tmp_path / "ray" / "p05.jpg") as im:
        assert im.getexif()[EXIF_MAKE] == "camera 5"
    records = _records(tmp_path / "ray")
    assert len(records) == 42 and sum(r["status"] == "done" for r in records) == 40
    failed = [r for r in records if r["status"] == "failed"]  # once per run
    assert len(failed) == 2 and all(r["source"].endswith("broken.jpg") and r["error"] for r in failed)


def test_a_killed_run_resumes_and_does_every_photo_once(tmp_path, ray_address, tiny_model_path):
    src = tmp_path / "in"
    photos = _photos(src, 40, size=(700, 900))  # big enough that the run outlives its first manifest part
    out = tmp_path / "out"
    command = [str(BIN / "tinct"), "colorize", str(src), "-o", str(out), "-m", str(tiny_model_path), "--engine", "ray",
               "--address", ray_address, "--batch-size", "1", "--format", "png"]
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 240
    while not list(out.glob(".tinct-runs/*/part-*.jsonl")) and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert driver.poll() is None, f"the run ended before it could be killed: {driver.stderr.read().decode()[-800:]}"
    os.kill(driver.pid, signal.SIGKILL)  # the driver dies without a word; its actors die with its job
    driver.wait()
    first = _records(out)
    assert 0 < len(first) < 40
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"{len(first)} done by an earlier run" in rerun.stderr
    done = [r["source"] for r in _records(out) if r["status"] == "done"]
    assert sorted(done) == sorted(str(p) for p in photos)  # each photo recorded done exactly once
    written = sorted(p for p in out.rglob("*") if p.is_file() and ".tinct-runs" not in p.parts)
    assert [p.relative_to(out).with_suffix("").as_posix() for p in written] == \
        sorted(p.relative_to(src).with_suffix("").as_posix() for p in photos)  # no temporary left
    for p in written:
        with Image.open(p) as im:
            im.load()  # whole, not truncated


@pytest.fixture()
def s3_server(monkeypatch):
    """moto's standalone S3 server on a free port, with the AWS variables that point s3fs at it."""
    pytest.importorskip("s3fs")
    if shutil.which("moto_server", path=str(BIN)) is None:
        pytest.skip("moto[server] is not installed")
    port = _free_port()
    server = subprocess.Popen([str(BIN / "moto_server"), "-p", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "moto_server did not start"
            time.sleep(0.2)
    yield env
    server.terminate()
    server.wait(timeout=30)


def test_object_store_sources_and_destination(tmp_path, ray_address, tiny_model_path, s3_server):
    import s3fs

    store = s3fs.S3FileSystem(endpoint_url=s3_server["AWS_ENDPOINT_URL"])
    store.mkdir("archive")
    src = tmp_path / "in"
    photos = _photos(src, 6)
    for p in photos:
        store.put_file(str(p), f"archive/scans/{p.relative_to(src).as_posix()}")
    command = [str(BIN / "tinct"), "colorize", "s3://archive/scans", "-o", "s3://archive/colorized", "-m",
               str(tiny_model_path), "--engine", "ray", "--address", ray_address]
    env = {**os.environ, **s3_server}  # the driver passes the AWS variables on to the workers
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert main(["colorize", str(src), "-o", str(tmp_path / "local"), "-m", str(tiny_model_path), "-q"]) == 0
    store.invalidate_cache()
    for p in photos:
        rel = p.relative_to(src).as_posix()
        (tmp_path / "got" / rel).parent.mkdir(parents=True, exist_ok=True)
        store.get_file(f"archive/colorized/{rel}", str(tmp_path / "got" / rel))
        assert np.abs(_pixels(tmp_path / "got" / rel) - _pixels(tmp_path / "local" / rel)).max() <= 1, rel
    parts = store.glob("archive/colorized/.tinct-runs/*/part-*.jsonl")
    lines = [json.loads(line) for part in parts for line in store.cat_file(part).decode().splitlines()]
    assert sorted(r["output"] for r in lines if r["status"] == "done") == \
        sorted(f"s3://archive/colorized/{p.relative_to(src).as_posix()}" for p in photos)
    again = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert again.returncode == 0 and "0 colorized" in again.stderr and "6 done by an earlier run" in again.stderr
