"""``tinct serve``: the HTTP API, its limits and error messages, with real generated images.

Every app here serves the session's tiny random model under the name "tiny" (never the
shipped weights) at a small render size, so a colorization takes a fraction of a second.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib.util
import io
import json
import re
import struct
import tempfile
import threading
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from conftest import make_photo

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
if not any(importlib.util.find_spec(m) for m in ("python_multipart", "multipart")):
    pytest.skip("the serve extra (python-multipart) is not installed", allow_module_level=True)

with warnings.catch_warnings():  # newer Starlette warns about its httpx-based test client
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from tinct.serve import add_parser, cmd_serve, parse_model_specs  # noqa: E402
from tinct.serve.app import JobQueue, Limits, QueueFull, create_app  # noqa: E402

CAP = 200_000          # upload cap of the test apps, bytes
MAX_PIXELS = 1_000_000


# ----------------------------------------------------------------------------- helpers
def jpeg_bytes(h: int = 48, w: int = 64, seed: int = 1, gray: bool = True) -> bytes:
    im = Image.fromarray(make_photo(h, w, seed))
    buf = io.BytesIO()
    (im.convert("L") if gray else im).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def png_bytes(h: int = 40, w: int = 52, seed: int = 2) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(make_photo(h, w, seed)).convert("L").save(buf, "PNG")
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(width: int, height: int) -> bytes:
    """A valid gray PNG of width x height zero pixels: tiny on the wire, huge when decoded."""
    raw = (b"\x00" + bytes(width)) * height
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw, 9))
            + _chunk(b"IEND", b""))


def png_header_only(width: int, height: int) -> bytes:
    """Just a PNG signature and an IHDR claiming width x height (no pixel data at all)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IEND", b"")


def decode_result(item: dict) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(item["data"]))).convert("RGB")).astype(np.int16)


def chroma(rgb: np.ndarray) -> float:
    """Mean absolute difference between channels: 0 for a gray image."""
    return float(np.abs(rgb[..., 0] - rgb[..., 1]).mean() + np.abs(rgb[..., 1] - rgb[..., 2]).mean())


def post(client: TestClient, image: bytes | None = None, name: str = "photo.jpg", ctype: str = "image/jpeg",
         **fields: object):
    files = {"image": (name, image if image is not None else jpeg_bytes(), ctype)}
    style = fields.pop("style", None)
    if style is not None:
        files["style"] = ("style.jpg", style, "image/jpeg")
    return client.post("/api/colorize", files=files, data={k: str(v) for k, v in fields.items()})


def assert_one_line_error(resp, status: int, field: str | None, *words: str) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error", "field"}
    msg = body["error"]
    assert msg and "\n" not in msg and "Traceback" not in msg
    assert body["field"] == field
    for w in words:
        assert w.lower() in msg.lower(), msg
    return msg


def make_app(tiny_model_path: Path, **kwargs):
    limits = kwargs.pop("limits", Limits(max_upload_bytes=CAP, max_pixels=MAX_PIXELS, max_samples=4))
    return create_app({"tiny": tiny_model_path}, render_size=64, limits=limits, **kwargs)


@pytest.fixture(scope="module")
def app(tiny_model_path):
    return make_app(tiny_model_path)


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app) as c:
        yield c


# ----------------------------------------------------------------------------- discovery
def test_models_lists_names_decoders_and_limits(client, tiny_model_path):
    body = client.get("/api/models").json()
    assert body["default"] == "tiny"
    (m,) = body["models"]
    assert m["name"] == "tiny" and m["arch"] == "hypercolumns" and m["head"] == "histogram"
    assert m["decode_methods"] == ["expectation", "annealed", "mode", "sample"]
    assert m["default_decode"] == "annealed" and m["samples"] is True and m["style"] is False
    assert m["hints"] is False
    assert body["limits"] == {"max_upload_bytes": CAP, "max_pixels": MAX_PIXELS, "max_samples": 4,
                              "max_queue": 32, "formats": ["png", "jpeg"], "max_hints": 256,
                              "max_suggestions": 16}
    assert str(tiny_model_path) not in client.get("/api/models").text  # no server paths go out


def test_health(client):
    body = client.get("/api/health").json()
    assert body["status"] == "ok" and body["workers"] == 1 and body["waiting"] == 0


def test_openapi_describes_the_api(client):
    spec = client.get("/openapi.json").json()
    assert {"/api/colorize", "/api/models", "/api/health", "/api/photos", "/api/photos/{photo_id}/colorize",
            "/api/photos/{photo_id}/suggest"} <= set(spec["paths"])
    op = spec["paths"]["/api/colorize"]["post"]
    assert "multipart/form-data" in op["requestBody"]["content"]
    body = spec["components"]["schemas"][op["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
                                         .rsplit("/", 1)[1]]
    assert {"image", "model", "decode", "samples", "seed", "style", "format", "output", "hints"} <= set(body["properties"])
    assert {"400", "413", "422", "503"} <= set(op["responses"])
    schemas = spec["components"]["schemas"]
    assert {"hints", "model", "decode", "format"} <= set(schemas["PhotoColorizeIn"]["properties"])
    assert {"x", "y", "k", "hints", "model"} <= set(schemas["SuggestIn"]["properties"])
    assert "hints" in schemas["ModelOut"]["properties"]
    for path in ("/api/photos/{photo_id}/colorize", "/api/photos/{photo_id}/suggest"):
        assert {"400", "404", "503"} <= set(spec["paths"][path]["post"]["responses"])
    # FastAPI's /docs pages load their assets from a CDN: they are off in this offline app
    assert client.get("/docs").status_code == 404


def test_page_and_assets_are_local(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    texts = [page.text] + [client.get(f"/static/{n}").text for n in ("app.js", "style.css")]
    for text in texts:
        assert "http://" not in text and "https://" not in text and "//cdn" not in text
    js = texts[1]
    assert "api/colorize" in js and "api/models" in js and "api/photos" in js
    assert "innerHTML" not in js  # server and file-name text is never parsed as HTML


# ----------------------------------------------------------------------------- colorizing
def test_colorize_gray_jpeg_returns_colored_png_of_same_size(client):
    r = post(client, jpeg_bytes(48, 64), name="old photo.JPG")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["width"], body["height"], body["model"], body["decode"]) == (64, 48, "tiny", "annealed")
    (item,) = body["results"]
    assert item["media_type"] == "image/png" and item["filename"] == "old_photo-color.png"
    rgb = decode_result(item)
    assert rgb.shape == (48, 64, 3)
    assert chroma(rgb) > 2.0
    assert body["saved"] == []


def test_output_image_returns_the_file_itself(client):
    r = post(client, png_bytes(), name="scan.png", format="jpeg", output="image", decode="expectation")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/jpeg"
    assert r.headers["content-disposition"] == 'attachment; filename="scan-color.jpg"'
    assert r.headers["x-tinct-decode"] == "expectation"
    im = Image.open(io.BytesIO(r.content))
    assert im.format == "JPEG" and im.size == (52, 40)


def test_samples_differ_and_are_reproducible(client):
    first = post(client, samples=3, seed=7).json()
    again = post(client, samples=3, seed=7).json()
    assert first["decode"] == "sample"
    assert [i["seed"] for i in first["results"]] == [7, 8, 9]
    assert [i["filename"] for i in first["results"]] == [f"photo-color-sample{k}.png" for k in (1, 2, 3)]
    imgs = [decode_result(i) for i in first["results"]]
    assert not np.array_equal(imgs[0], imgs[1]) and not np.array_equal(imgs[1], imgs[2])
    assert [i["data"] for i in first["results"]] == [i["data"] for i in again["results"]]


def exif_heavy(kind: str, size: int = 70_000) -> bytes:
    """A gray PNG or WebP whose EXIF block is over a JPEG's 64 KB limit."""
    exif = Image.Exif()
    exif[0x010E] = "x" * size  # ImageDescription
    buf = io.BytesIO()
    Image.fromarray(make_photo(40, 52, 4)).convert("RGB").convert("L").convert("RGB").save(
        buf, kind, exif=exif.tobytes(), **({"lossless": True} if kind == "WEBP" else {}))
    return buf.getvalue()


@pytest.mark.parametrize("kind", ["PNG", "WEBP"])
def test_exif_too_large_for_a_jpeg_is_dropped_with_a_warning(client, kind, caplog):
    data = exif_heavy(kind)
    with caplog.at_level("WARNING", logger="tinct.serve"):
        image = post(client, data, name=f"scan.{kind.lower()}", format="jpeg", output="image")
        as_json = post(client, data, name=f"scan.{kind.lower()}", format="jpeg")
        as_png = post(client, data, name=f"scan.{kind.lower()}", format="png", output="image")
    assert image.status_code == 200, image.text
    warning = image.headers["x-tinct-warning"]
    assert "EXIF" in warning and "JPEG" in warning and "dropped" in warning
    with Image.open(io.BytesIO(image.content)) as im:
        assert im.format == "JPEG" and im.size == (52, 40) and "exif" not in im.info
    assert as_json.status_code == 200 and as_json.json()["warnings"] == [warning]
    assert "EXIF" in caplog.text
    assert as_png.status_code == 200 and "x-tinct-warning" not in as_png.headers  # a PNG keeps it
    with Image.open(io.BytesIO(as_png.content)) as im:
        assert len(im.info["exif"]) > 65_533


def test_content_is_sniffed_not_the_name_or_type(client):
    r = post(client, png_bytes(), name="really-a-png.jpg", ctype="text/plain")
    assert r.status_code == 200, r.text
    assert (r.json()["width"], r.json()["height"]) == (52, 40)


# ----------------------------------------------------------------------------- bad uploads
def _truncated_jpeg() -> bytes:
    data = jpeg_bytes(120, 160, seed=3)
    return data[: len(data) // 2]


@pytest.mark.parametrize("case, data, name, status, words", [
    ("truncated JPEG", _truncated_jpeg(), "half.jpg", 422, ["truncated"]),
    ("text named .jpg", b"this is not an image, just some text\n" * 20, "notes.jpg", 422, ["not an image"]),
    ("0 bytes", b"", "empty.png", 422, ["empty", "0 bytes"]),
    ("over the size cap", b"\xff\xd8\xff" + bytes(CAP + 10), "huge.jpg", 413, ["over the upload limit"]),
    ("header claims 10^10 pixels", png_header_only(100_000, 100_000), "claims.png", 413,
     ["10,000,000,000 pixels", "limit"]),
])
def test_bad_upload_gets_one_clear_line(client, case, data, name, status, words):
    r = post(client, data, name=name)
    msg = assert_one_line_error(r, status, "image", *words)
    assert msg.startswith("the photo "), msg


def test_decompression_bomb_is_rejected_before_decoding(client, monkeypatch):
    bomb = png_bomb(5000, 5000)          # 25 megapixels of zeros in ~25 KB
    assert len(bomb) < CAP
    decoded = []
    real_load = ImageFile.ImageFile.load

    def spy(self):
        decoded.append(self.size)
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    r = post(client, bomb, name="bomb.png")
    assert_one_line_error(r, 413, "image", "25,000,000 pixels", "1,000,000")
    assert decoded == []                 # refused from the header: no pixel was decoded


def test_bad_style_reference_is_reported_as_such(app, tiny_model_path):
    info = app.state.pool.infos["tiny"]
    from dataclasses import replace

    app.state.pool.infos["tiny"] = replace(info, style=True)
    try:
        with TestClient(app) as c:
            r = post(c, style=b"GIF89a not really")
        assert_one_line_error(r, 422, "style", "the style reference", "not an image")
    finally:
        app.state.pool.infos["tiny"] = info


# ----------------------------------------------------------------------------- bad parameters
@pytest.mark.parametrize("fields, status, field, words", [
    ({"model": "nope"}, 400, "model", ["unknown model 'nope'", "tiny"]),
    ({"model": "../../etc/passwd"}, 400, "model", ["unknown model", "tiny"]),
    ({"model": "/etc/passwd"}, 400, "model", ["unknown model"]),
    ({"samples": 5}, 400, "samples", ["at most 4"]),
    ({"samples": 1000000}, 400, "samples", ["at most 4"]),
    ({"samples": 0}, 400, "samples", ["at least 1"]),
    ({"samples": "many"}, 422, "samples", ["samples"]),
    ({"samples": 2, "decode": "annealed"}, 400, "decode", ["'sample'"]),
    ({"decode": "telepathy"}, 400, "decode", ["decodes with", "telepathy"]),
    ({"format": "gif"}, 422, "format", ["format"]),
    ({"output": "image", "samples": 2}, 400, "output", ["one image"]),
    ({"seed": -1}, 400, "seed", ["seed"]),
])
def test_bad_parameter_gets_one_clear_line(client, fields, status, field, words):
    before = client.get("/api/health").json()["done"]
    r = post(client, **fields)
    assert_one_line_error(r, status, field, *words)
    assert client.get("/api/health").json()["done"] == before  # refused before reaching the model


def test_style_needs_a_model_with_global_features(client):
    r = post(client, style=jpeg_bytes(seed=5))
    assert_one_line_error(r, 400, "style", "no global features")


def test_missing_image_field(client):
    r = client.post("/api/colorize", data={"model": "tiny"})
    assert_one_line_error(r, 422, "image", "no 'image' field")


def test_default_alias_is_accepted_like_on_the_command_line(client, tiny_model_path):
    r = post(client, model="default")
    assert r.status_code == 200, r.text
    assert r.json()["model"] == "tiny"  # no shipped model served here: the server's default
    from tinct.serve.app import ModelPool
    from tinct.weights import shipped_weights

    target = shipped_weights()["default"]
    pool = ModelPool({"tiny": tiny_model_path, target.stem: target}, default="tiny")
    assert pool.check("default").name == target.stem  # the alias names a served file: that one
    with pytest.raises(Exception, match="unknown model 'weights/default.safetensors'"):
        pool.check("weights/default.safetensors")


def test_serve_doc_gives_the_default_decoder_that_api_models_gives():
    from tinct.serve.app import ModelPool
    from tinct.weights import shipped_weights

    target = shipped_weights()["default"]
    info = ModelPool({target.stem: target}).infos[target.stem]
    doc = (Path(__file__).resolve().parent.parent / "docs" / "serve.md").read_text()
    decoder = next(line for line in doc.split("\n- ") if line.startswith("**Decoder**"))
    assert f"`{info.default_decode}` for the shipped default (`{target.stem}`)" in " ".join(decoder.split())


def test_path_like_model_never_touches_the_file_system(client, monkeypatch):
    import tinct.serve.app as serve_app

    opened = []
    monkeypatch.setattr(serve_app, "load_weights", lambda *a, **k: opened.append(a))
    r = post(client, model="../../etc/passwd")
    assert r.status_code == 400 and opened == []


def test_request_over_the_body_cap_is_refused_before_parsing(client):
    big = bytes(2 * CAP + 70 * 1024)
    r = client.post("/api/colorize", content=big, headers={"content-type": "multipart/form-data; boundary=x"})
    assert_one_line_error(r, 413, None, "limit")


def test_streamed_request_over_the_body_cap_is_cut_off(client):
    head = (b'--x\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n'
            b"Content-Type: image/jpeg\r\n\r\n")

    def chunks():  # no Content-Length: the body arrives chunked and is counted as it comes
        yield head
        for _ in range(100):
            yield bytes(10_000)
        yield b"\r\n--x--\r\n"

    r = client.post("/api/colorize", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"})
    assert r.request.headers.get("transfer-encoding") == "chunked"
    assert_one_line_error(r, 413, None, "limit")


def test_cross_site_post_is_refused(client):
    r = client.post("/api/colorize", files={"image": ("a.jpg", jpeg_bytes(), "image/jpeg")},
                    headers={"Origin": "http://evil.example"})
    assert_one_line_error(r, 403, None, "cross-site")
    same = client.post("/api/colorize", files={"image": ("a.jpg", jpeg_bytes(), "image/jpeg")},
                       headers={"Origin": "http://testserver"})
    assert same.status_code == 200


def test_allowed_hosts_refuse_other_host_headers(tiny_model_path):
    with TestClient(make_app(tiny_model_path, allowed_hosts=["127.0.0.1", "localhost"]),
                    base_url="http://127.0.0.1:8000") as c:
        assert c.get("/api/health").status_code == 200
        assert c.get("/api/health", headers={"Host": "localhost:8000"}).status_code == 200
        assert c.get("/api/health", headers={"Host": "attacker.example"}).status_code == 400


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:8000", "127.0.0.1.evil.example", ""])
def test_another_host_header_gets_a_json_error(tiny_model_path, host):
    with TestClient(make_app(tiny_model_path, allowed_hosts=["127.0.0.1", "localhost"]),
                    base_url="http://127.0.0.1:8000") as c:
        r = c.get("/api/health", headers={"Host": host})
    assert_one_line_error(r, 400, None, "host")


def test_errors_the_router_makes_are_json(client):
    assert_one_line_error(client.get("/no/such/page"), 404, None, "not found")
    assert_one_line_error(client.get("/api/colorize"), 405, None, "method not allowed")


# ----------------------------------------------------------------------------- disk
def test_nothing_is_left_on_disk(tiny_model_path, tmp_path, monkeypatch):
    spool = tmp_path / "tmp"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))   # where spooled uploads would go
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    noisy = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (600, 600, 3), dtype=np.uint8)).save(noisy, "PNG")
    assert noisy.tell() > 1024 * 1024                      # over Starlette's in-memory spool size
    app = make_app(tiny_model_path, limits=Limits(max_upload_bytes=4 * 1024 * 1024))
    with TestClient(app) as c:
        assert post(c, noisy.getvalue(), name="noise.png").status_code == 200
    assert list(spool.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp"]


def test_save_dir_keeps_results_under_server_made_names(tiny_model_path, tmp_path):
    out = tmp_path / "kept"
    with TestClient(make_app(tiny_model_path, save_dir=out)) as c:
        r = post(c, name="../../etc/evil name.jpg", samples=2)
    assert r.status_code == 200, r.text
    saved = r.json()["saved"]
    assert len(saved) == 2 and sorted(p.name for p in out.iterdir()) == sorted(saved)
    for name in saved:
        assert name.startswith("evil_name-") and "/" not in name and name.endswith(".png")
    assert not (tmp_path / "etc").exists()


# ----------------------------------------------------------------------------- queue and models
def test_job_queue_bounds_running_and_waiting():
    async def scenario() -> tuple[int, int, bool]:
        q = JobQueue(workers=1, max_waiting=2)
        gate = threading.Event()

        def job() -> int:
            gate.wait(5)
            return 1

        tasks = [asyncio.create_task(q.run(job)) for _ in range(3)]  # 1 running + 2 waiting
        while q.running + q.waiting < 3:
            await asyncio.sleep(0.01)
        refused = False
        try:
            await q.run(job)
        except QueueFull:
            refused = True
        gate.set()
        results = await asyncio.gather(*tasks)
        return sum(results), q.peak_running, refused

    total, peak, refused = asyncio.run(scenario())
    assert (total, peak, refused) == (3, 1, True)


def test_concurrent_requests_run_one_at_a_time(tiny_model_path):
    app = make_app(tiny_model_path)
    codes: list[int] = []
    with TestClient(app) as c:
        def send(seed: int) -> None:
            codes.append(post(c, jpeg_bytes(seed=seed)).status_code)

        threads = [threading.Thread(target=send, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        health = c.get("/api/health").json()
    assert codes == [200] * 4
    assert health["peak_running"] == 1 and health["done"] == 4 and health["running"] == 0


def test_full_queue_answers_503_with_retry_after(tiny_model_path, monkeypatch):
    import tinct.serve.app as serve_app

    release = threading.Event()
    real = serve_app._run_job

    def slow(*args, **kwargs):
        release.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(serve_app, "_run_job", slow)
    app = make_app(tiny_model_path, limits=Limits(max_upload_bytes=CAP, max_queue=0))
    codes: list[int] = []
    with TestClient(app) as c:
        first = threading.Thread(target=lambda: codes.append(post(c).status_code))
        first.start()
        deadline = time.monotonic() + 10
        while c.get("/api/health").json()["running"] == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        busy = post(c)
        release.set()
        first.join(30)
    assert_one_line_error(busy, 503, None, "busy")
    assert busy.headers["retry-after"] == "2"
    assert codes == [200]


def test_models_are_cached_per_name_in_each_app(tiny_model_path, client, app):
    assert post(client).status_code == 200
    pool = app.state.pool
    assert pool.loaded == ["tiny"] and pool.get("tiny") is pool.get("tiny")
    other = make_app(tiny_model_path)
    assert other.state.pool is not pool and other.state.pool.loaded == []


def test_style_reference_reaches_a_model_with_global_features(tiny_model_path):
    """A stand-in model that takes ``style_L`` (like Iizuka et al.'s) gets the reference's L."""
    from dataclasses import replace

    from tinct.weights import load_weights

    base = load_weights(tiny_model_path)
    seen: list[tuple[int, ...]] = []

    class StyleModel(type(base)):
        forward_options = ("style_L",)

        def forward(self, L, style_L=None):
            seen.append(tuple(style_L.shape) if style_L is not None else ())
            return super().forward(L)

    model = StyleModel(**{**base.config, "pretrained": False})
    model.load_state_dict(base.state_dict())
    model.eval()
    app = make_app(tiny_model_path)
    pool = app.state.pool
    pool._loaded["tiny"] = model
    pool.infos["tiny"] = replace(pool.infos["tiny"], style=True)
    with TestClient(app) as c:
        assert c.get("/api/models").json()["models"][0]["style"] is True
        r = post(c, style=jpeg_bytes(30, 40, seed=9))
        plain = post(c)
    assert r.status_code == 200 and plain.status_code == 200, r.text
    assert seen[0] == (1, 1, 48, 64) and seen[1] == ()   # the reference at the render size (64)


# ----------------------------------------------------------------------------- color hints
TWO_HINTS = [{"x": 10, "y": 12, "color": "#ff2000"}, {"x": 50, "y": 30, "color": "#2040ff"}]


@pytest.fixture(scope="module")
def hint_app(tiny_model_path, tiny_hint_model_path):
    return create_app({"tiny": tiny_model_path, "tiny-hints": tiny_hint_model_path}, render_size=64,
                      limits=Limits(max_upload_bytes=CAP, max_pixels=MAX_PIXELS, max_samples=4, max_hints=8))


@pytest.fixture(scope="module")
def hint_client(hint_app):
    with TestClient(hint_app) as c:
        yield c


def keep(client: TestClient, image: bytes | None = None, name: str = "photo.jpg", model: str = "tiny-hints") -> dict:
    """Upload a photo to be kept (POST /api/photos) -> its {id, width, height, model}."""
    r = client.post("/api/photos", files={"image": (name, image if image is not None else jpeg_bytes(), "image/jpeg")},
                    data={"model": model})
    assert r.status_code == 200, r.text
    return r.json()


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(np.int16)


def test_models_say_which_take_hints(hint_client):
    body = hint_client.get("/api/models").json()
    models = {m["name"]: m for m in body["models"]}
    assert models["tiny-hints"]["hints"] is True and models["tiny-hints"]["arch"] == "larsson-hints"
    assert models["tiny"]["hints"] is False
    assert body["default"] == "tiny" and body["limits"]["max_hints"] == 8


def test_kept_photo_is_colorized_with_hints_and_only_the_head_runs_again(hint_client, hint_app, monkeypatch):
    photo = keep(hint_client, jpeg_bytes(48, 64), name="old photo.jpg")
    assert (photo["width"], photo["height"], photo["model"]) == (64, 48, "tiny-hints")
    assert len(photo["id"]) == 32
    model = hint_app.state.pool.get("tiny-hints")
    backbone_runs: list[int] = []
    real_features = model.features
    monkeypatch.setattr(model, "features", lambda L: backbone_runs.append(1) or real_features(L))
    url = f"/api/photos/{photo['id']}/colorize"
    plain = hint_client.post(url, json={"model": "tiny-hints"})
    hinted = hint_client.post(url, json={"model": "tiny-hints", "hints": TWO_HINTS})
    again = hint_client.post(url, json={"model": "tiny-hints", "hints": TWO_HINTS})
    assert plain.status_code == hinted.status_code == again.status_code == 200, hinted.text
    assert backbone_runs == []  # the upload prepared the photo: each change reruns only the head
    assert hinted.headers["content-type"] == "image/png"
    assert hinted.headers["content-disposition"] == 'attachment; filename="old_photo-color.png"'
    assert (hinted.headers["x-tinct-hints"], plain.headers["x-tinct-hints"]) == ("2", "0")
    assert hinted.headers["x-tinct-model"] == "tiny-hints" and hinted.headers["x-tinct-decode"] == "expectation"
    a, b = pixels(plain.content), pixels(hinted.content)
    assert a.shape == b.shape == (48, 64, 3)
    assert np.abs(a - b).mean() > 0.05          # the hints changed the colors
    assert again.content == hinted.content       # and the same hints give the same image
    jpeg = hint_client.post(url, json={"model": "tiny-hints", "hints": TWO_HINTS, "format": "jpeg"})
    assert jpeg.headers["content-type"] == "image/jpeg" and Image.open(io.BytesIO(jpeg.content)).size == (64, 48)


def test_hints_in_fractions_and_the_default_body(hint_client):
    photo = keep(hint_client)
    url = f"/api/photos/{photo['id']}/colorize"
    fractions = hint_client.post(url, json={"model": "tiny-hints", "hints": [{"x": 0.5, "y": 0.25, "color": "#3050c0"}]})
    assert fractions.status_code == 200 and fractions.headers["x-tinct-hints"] == "1"
    bare = hint_client.post(url)  # no body: the server's default model, no hint
    assert bare.status_code == 200 and bare.headers["x-tinct-model"] == "tiny"


def test_one_shot_colorize_takes_a_hints_field(hint_client):
    plain = post(hint_client, model="tiny-hints", output="image")
    hinted = post(hint_client, model="tiny-hints", output="image", hints=json.dumps(TWO_HINTS))
    assert plain.status_code == hinted.status_code == 200, hinted.text
    assert np.abs(pixels(plain.content) - pixels(hinted.content)).mean() > 0.05
    empty = post(hint_client, model="tiny", hints="[]")   # no hint at all: any model
    assert empty.status_code == 200, empty.text


def test_suggest_gives_k_likely_colors(hint_client):
    photo = keep(hint_client)
    url = f"/api/photos/{photo['id']}/suggest"
    r = hint_client.post(url, json={"model": "tiny-hints", "x": 20, "y": 10, "k": 4})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["model"], body["x"], body["y"]) == ("tiny-hints", 20, 10)
    colors = body["colors"]
    assert len(colors) == 4
    assert all(re.fullmatch(r"#[0-9a-f]{6}", c["color"]) for c in colors)
    probs = [c["probability"] for c in colors]
    assert probs == sorted(probs, reverse=True) and all(0 < p <= 1 for p in probs)
    with_hints = hint_client.post(url, json={"model": "tiny-hints", "x": 20, "y": 10, "k": 6, "hints": TWO_HINTS})
    assert with_hints.status_code == 200 and len(with_hints.json()["colors"]) == 6


@pytest.mark.parametrize("hints, words", [
    ([TWO_HINTS[0], {"x": 500, "y": 1, "color": "#fff"}], ["hint 2", "(500, 1)", "outside the 64x48 photo"]),
    ([{"x": 1, "y": 2, "color": "blue"}], ["hint 1", "'blue'", "hex color"]),
    ([{"x": 1, "y": 2}], ["hint 1", "needs", "color"]),
    ([{"x": "left", "y": 2, "color": "#fff"}], ["hint 1", "numbers"]),
    ([{"x": 1, "y": 2, "color": "#fff"}] * 9, ["at most 8 hints"]),
])
def test_bad_hint_is_a_400_naming_it(hint_client, hints, words):
    photo = keep(hint_client, jpeg_bytes(48, 64))
    before = hint_client.get("/api/health").json()["done"]
    r = hint_client.post(f"/api/photos/{photo['id']}/colorize", json={"model": "tiny-hints", "hints": hints})
    assert_one_line_error(r, 400, "hints", *words)
    s = hint_client.post(f"/api/photos/{photo['id']}/suggest", json={"model": "tiny-hints", "x": 1, "y": 1,
                                                                      "hints": hints})
    assert_one_line_error(s, 400, "hints", *words)
    assert hint_client.get("/api/health").json()["done"] == before  # refused before the queue


@pytest.mark.parametrize("value, words", [
    ("[{]", ["hints are not valid JSON"]),
    ('{"x": 1}', ["must be a JSON list"]),
    (json.dumps([{"x": 90, "y": 1, "color": "#fff"}]), ["hint 1", "outside the 64x48 photo"]),
])
def test_bad_hints_field_of_one_shot_colorize(hint_client, value, words):
    r = post(hint_client, jpeg_bytes(48, 64), model="tiny-hints", hints=value)
    assert_one_line_error(r, 400, "hints", *words)


def test_hints_for_a_model_without_a_hint_input_are_a_400(hint_client):
    photo = keep(hint_client, model="tiny")
    before = hint_client.get("/api/health").json()["done"]
    r = hint_client.post(f"/api/photos/{photo['id']}/colorize", json={"model": "tiny", "hints": TWO_HINTS})
    assert_one_line_error(r, 400, "hints", "model 'tiny' takes no color hints", "tiny-hints")
    one_shot = post(hint_client, model="tiny", hints=json.dumps(TWO_HINTS))
    assert_one_line_error(one_shot, 400, "hints", "takes no color hints")
    assert hint_client.get("/api/health").json()["done"] == before
    fine = hint_client.post(f"/api/photos/{photo['id']}/colorize", json={"model": "tiny", "hints": []})
    assert fine.status_code == 200 and fine.headers["x-tinct-model"] == "tiny"


def test_hints_for_a_model_without_a_hint_input_fail_in_the_pipeline_too(tiny_model_path):
    """The API checks first; the one inference door says the same if it is ever reached."""
    from tinct.pipeline import Colorizer

    with pytest.raises(ValueError, match="takes no color hints"):
        Colorizer(str(tiny_model_path), 64).colorize(make_photo(20, 30), hints=TWO_HINTS[:1])


@pytest.mark.parametrize("action, body", [("colorize", {}), ("suggest", {"x": 1, "y": 1})])
def test_unknown_photo_is_a_404(hint_client, action, body):
    r = hint_client.post(f"/api/photos/{'0' * 32}/{action}", json=body)
    assert_one_line_error(r, 404, "photo_id", "no kept photo", "upload it again")
    r = hint_client.post(f"/api/photos/{'x' * 500}/{action}", json=body)
    msg = assert_one_line_error(r, 404, "photo_id", "no kept photo")
    assert len(msg) < 200


@pytest.mark.parametrize("body, status, field, words", [
    ({"x": 65, "y": 1}, 400, "x", ["outside the 64x48 photo"]),
    ({"x": 1, "y": -1}, 400, "y", ["outside"]),
    ({"x": 1, "y": 1, "k": 0}, 400, "k", ["between 1 and 16"]),
    ({"x": 1, "y": 1, "k": 17}, 400, "k", ["between 1 and 16"]),
    ({"x": 1, "y": 1, "model": "nope"}, 400, "model", ["unknown model"]),
    ({"y": 1}, 422, "x", ["x"]),
])
def test_bad_suggestion_request(hint_client, body, status, field, words):
    photo = keep(hint_client, jpeg_bytes(48, 64))
    r = hint_client.post(f"/api/photos/{photo['id']}/suggest", json={"model": "tiny-hints", **body})
    assert_one_line_error(r, status, field, *words)


def test_upload_of_a_kept_photo_is_checked_like_colorize(hint_client):
    r = hint_client.post("/api/photos", files={"image": ("notes.jpg", b"not an image at all\n" * 10, "image/jpeg")})
    assert_one_line_error(r, 422, "image", "the photo", "not an image")
    r = hint_client.post("/api/photos", files={"image": ("huge.jpg", b"\xff\xd8\xff" + bytes(CAP + 10), "image/jpeg")})
    assert_one_line_error(r, 413, "image", "over the upload limit")
    r = hint_client.post("/api/photos", files={"image": ("a.jpg", jpeg_bytes(), "image/jpeg")}, data={"model": "x"})
    assert_one_line_error(r, 400, "model", "unknown model")
    r = hint_client.post("/api/photos", files={"image": ("a.jpg", jpeg_bytes(), "image/jpeg")},
                         headers={"Origin": "http://evil.example"})
    assert_one_line_error(r, 403, None, "cross-site")


def test_kept_photos_are_bounded_and_the_oldest_goes_first(tiny_model_path, tiny_hint_model_path):
    limits = Limits(max_upload_bytes=CAP, max_pixels=MAX_PIXELS, max_photos=2, max_prepared=1)
    app = create_app({"tiny-hints": tiny_hint_model_path, "tiny": tiny_model_path}, render_size=64, limits=limits)
    with TestClient(app) as c:
        ids = [keep(c, jpeg_bytes(seed=k))["id"] for k in range(3)]
        codes = [c.post(f"/api/photos/{i}/colorize", json={}).status_code for i in ids]
        store = app.state.photos
        assert codes == [404, 200, 200] and len(store) == 2
        assert len(store.prepared_keys) == 1 and store.prepared_keys[0][0] == ids[2]
        # the other model needs its own prepared photo: made again from the kept upload
        assert c.post(f"/api/photos/{ids[1]}/colorize", json={"model": "tiny"}).status_code == 200
        assert store.prepared_keys == [(ids[1], "tiny", 64)]


def test_a_prepared_photo_over_the_memory_budget_is_made_again_each_time(tiny_hint_model_path):
    limits = Limits(max_upload_bytes=CAP, max_pixels=MAX_PIXELS, max_prepared_bytes=1)
    app = create_app({"tiny-hints": tiny_hint_model_path}, render_size=64, limits=limits)
    with TestClient(app) as c:
        photo = keep(c)
        r = c.post(f"/api/photos/{photo['id']}/colorize", json={"hints": TWO_HINTS[:1]})
        assert r.status_code == 200, r.text
        assert app.state.photos.prepared_keys == [] and app.state.photos.prepared_bytes == 0


def test_photo_store_bounds_count_and_bytes():
    from tinct.serve.app import PhotoStore

    store = PhotoStore(max_photos=3, max_photos_bytes=250)
    first = store.add(b"a" * 100, "a", 1, 1)
    second = store.add(b"b" * 100, "b", 1, 1)
    store.get(first.id)                      # used: now the most recent
    third = store.add(b"c" * 100, "c", 1, 1)
    assert len(store) == 2 and store.photos_bytes == 200
    assert store.get(first.id) is first and store.get(third.id) is third
    with pytest.raises(Exception, match="no kept photo"):
        store.get(second.id)
    big = store.add(b"d" * 1000, "d", 1, 1)  # alone over the budget: the newest is still kept
    assert len(store) == 1 and store.get(big.id) is big
    assert "ddd" not in repr(big)


# ----------------------------------------------------------------------------- command line
def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="tinct")
    add_parser(p.add_subparsers(dest="command"))
    return p.parse_args(argv)


def test_add_parser_defaults():
    args = _parse(["serve"])
    assert (args.host, args.port, args.model, args.func) == ("127.0.0.1", 8000, None, cmd_serve)
    assert args.save_dir is None


def test_model_specs(tiny_model_path):
    models, default = parse_model_specs([f"mine={tiny_model_path}", str(tiny_model_path)])
    assert models == {"mine": tiny_model_path, "tiny": tiny_model_path} and default == "mine"
    with pytest.raises(ValueError, match="unknown model 'no-such-model'"):
        parse_model_specs(["no-such-model"])


def test_serve_user_errors_are_one_line(tiny_model_path, capsys):
    assert cmd_serve(_parse(["serve", "--model", "no-such-model"])) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tinct: error: unknown model") and "\n" not in err
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert cmd_serve(_parse(["serve", "--model", str(tiny_model_path), "--port", str(port)])) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"tinct: error: cannot listen on 127.0.0.1:{port}") and "\n" not in err


def test_unexpected_failure_is_one_line_json_without_details(tiny_model_path, monkeypatch):
    import tinct.serve.app as serve_app

    def broken(*args, **kwargs):
        raise RuntimeError(f"secret server detail {tiny_model_path}")

    monkeypatch.setattr(serve_app, "_run_job", broken)
    with TestClient(make_app(tiny_model_path), raise_server_exceptions=False) as c:
        r = post(c)
        assert c.get("/api/health").json()["running"] == 0      # the worker slot was given back
    msg = assert_one_line_error(r, 500, None, "internal error", "RuntimeError")
    assert "secret" not in msg and str(tiny_model_path) not in msg
