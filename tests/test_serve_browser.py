"""``tinct serve`` end to end in a real browser: Debian's headless Chromium driven by Playwright.

The server runs uvicorn in a background thread on 127.0.0.1 (a free port, loopback only) and
serves the session's tiny random model. The browser uploads a gray photo and a text file named
.jpg, waits for the results, reads the colorized image's pixels in the page (channels must
differ), moves the comparison slider, downloads the result and checks the file. A second server
also offers a tiny random hint model: the browser pins colors on a photo with the mouse and the
keyboard, sees the result change, undoes, saves and loads the hints, and downloads the result.

Chromium: ``/usr/bin/chromium`` (``TINCT_CHROMIUM`` overrides). When it is missing the test runs
``scripts/install-browser.sh`` once and skips, with the script's reason, only if that could not
install it (``TINCT_SKIP_BROWSER=1``: skip without installing). Playwright's own browser download
(``playwright install``) is never used.

A screenshot goes to the test's tmp dir; with ``TINCT_UPDATE_SCREENSHOT=1`` it is also copied to
docs/serve-screenshot.png. ``TINCT_SERVE_TEST_MODEL=FILE.safetensors`` serves that model (at the
default render size) instead of the tiny random one, e.g. to take that screenshot with real weights.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import make_photo

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
pytest.importorskip("uvicorn", reason="the serve extra (uvicorn) is not installed")
pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")

import uvicorn  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from tinct.serve.app import Limits, create_app  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("TINCT_CHROMIUM", "/usr/bin/chromium")
# headless, as root, and nothing that reaches the network on its own
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def chromium() -> str:
    """The Chromium executable; installs Debian's package if it is missing, else skips saying why."""
    if os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    if os.environ.get("TINCT_SKIP_BROWSER") == "1":
        pytest.skip(f"no Chromium at {CHROMIUM} and TINCT_SKIP_BROWSER=1 asks not to install it")
    script = ROOT / "scripts" / "install-browser.sh"
    try:
        out = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=600).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        out = f"install-browser.sh could not run ({exc})"
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no Chromium at {CHROMIUM} and it could not be installed: {out or 'no reason given'}")
    return CHROMIUM


@pytest.fixture(scope="module")
def model_name(tiny_model_path) -> tuple[str, Path, int]:
    """(name, weights file, render size) of the model the page offers."""
    chosen = os.environ.get("TINCT_SERVE_TEST_MODEL")
    if chosen:
        return Path(chosen).stem, Path(chosen), 384
    return "tiny", tiny_model_path, 96


@pytest.fixture(scope="module")
def server_url(model_name):
    """uvicorn serving the model in a background thread on 127.0.0.1:<free port>."""
    name, path, render_size = model_name
    app = create_app({name: path}, render_size=render_size,
                     limits=Limits(max_upload_bytes=2 * 1024 * 1024, max_pixels=4_000_000, max_samples=4))
    with serve(app) as url:
        yield url


@pytest.fixture(scope="module")
def hint_server_url(tiny_model_path, tiny_hint_model_path):
    """uvicorn serving the tiny model (the default) and the tiny hint model."""
    app = create_app({"tiny": tiny_model_path, "tiny-hints": tiny_hint_model_path}, render_size=96,
                     limits=Limits(max_upload_bytes=2 * 1024 * 1024, max_pixels=4_000_000, max_samples=4))
    with serve(app) as url:
        yield url


@contextmanager
def serve(app) -> Iterator[str]:
    """Run ``app`` with uvicorn in a background thread on 127.0.0.1:<free port> -> its URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@contextmanager
def watched_page(chromium: str, profile: Path, server: str, width: int) -> Iterator[tuple]:
    """A headless Chromium page (fresh profile) -> (page, errors, outside): page errors and console
    errors (bar Chromium's expected "Failed to load resource" for a rejected upload), and every
    request that left the server (there must be none: the page works offline)."""
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=chromium, headless=True, args=CHROMIUM_FLAGS,
            accept_downloads=True, viewport={"width": width, "height": 760},
        )
        try:
            page = context.pages[0] if context.pages else context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error"
                    and "Failed to load resource" not in m.text else None)
            outside: list[str] = []
            page.on("request", lambda req: None if req.url.startswith((server, "blob:", "data:"))
                    else outside.append(req.url))
            yield page, errors, outside
        finally:
            context.close()


def test_page_colorizes_a_photo_and_downloads_it(chromium, server_url, model_name, tmp_path):
    try:
        from skimage import data as skdata

        gray = Image.fromarray(skdata.chelsea()).convert("L")  # a real photo shipped with scikit-image
    except Exception:  # noqa: BLE001 - any problem with the sample: use a generated one
        gray = Image.fromarray(make_photo(300, 451, 4)).convert("L")
    photo = tmp_path / "chelsea.jpg"
    gray.save(photo, quality=92)
    bad = tmp_path / "notes.jpg"
    bad.write_text("these are notes, not a photo\n" * 10)

    with watched_page(chromium, tmp_path / "profile", server_url, 1100) as (page, errors, outside):
        page.goto(server_url)
        page.wait_for_selector("#server-status.ok", timeout=15_000)
        assert page.input_value("#model") == model_name[0]
        assert page.is_visible("#decode-field") and page.input_value("#decode") == "annealed"

        page.set_input_files("#files", [str(photo), str(bad)])
        done = page.locator("article.card[data-state=done]")
        failed = page.locator("article.card[data-state=error]")
        done.wait_for(timeout=45_000)
        failed.wait_for(timeout=15_000)

        message = failed.locator(".error").inner_text()
        assert message.startswith("notes.jpg: the photo is not an image"), message
        assert page.inner_text("#overall-text").startswith("2 of 2 done (1 failed)")

        # the colorized image, read back from the page's own <img>
        pixels = _result(page, "article.card[data-state=done] img.after")
        assert pixels.shape[1::-1] == gray.size
        chroma = np.abs(pixels[..., 0] - pixels[..., 1]) + np.abs(pixels[..., 1] - pixels[..., 2])
        assert chroma.mean() > 2.0, chroma.mean()

        # the before/after slider moves the divide
        slider = done.locator("input.slider")
        slider.evaluate("(el) => { el.value = 30; el.dispatchEvent(new Event('input', { bubbles: true })); }")
        pos = done.locator(".compare").evaluate("(el) => el.style.getPropertyValue('--pos')")
        assert pos == "30%"
        slider.evaluate("(el) => { el.value = 50; el.dispatchEvent(new Event('input', { bubbles: true })); }")

        with page.expect_download(timeout=15_000) as info:
            done.locator("a.download").click()
        download = info.value
        assert download.suggested_filename == "chelsea-color.png"
        saved = tmp_path / download.suggested_filename
        download.save_as(saved)

        shot = tmp_path / "serve-screenshot.png"
        page.screenshot(path=str(shot), full_page=True)
        assert errors == [] and outside == []

    with Image.open(saved) as im:
        assert im.format == "PNG" and im.size == gray.size
        rgb = np.asarray(im.convert("RGB")).astype(np.int16)
    assert float(np.abs(rgb[..., 0] - rgb[..., 1]).mean() + np.abs(rgb[..., 1] - rgb[..., 2]).mean()) > 2.0
    with Image.open(shot) as im:
        assert im.size[0] >= 1000
        assert im.convert("RGB").getextrema() != ((255, 255), (255, 255), (255, 255))  # not blank
    if os.environ.get("TINCT_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(shot, ROOT / "docs" / "serve-screenshot.png")


def test_dropped_photo_with_samples_shows_each_sample(chromium, server_url, tmp_path):
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=chromium, headless=True, args=CHROMIUM_FLAGS,
            accept_downloads=True, viewport={"width": 1000, "height": 700},
        )
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.goto(server_url)
            page.wait_for_selector("#server-status.ok", timeout=15_000)
            page.fill("#samples", "3")
            page.dispatch_event("#samples", "change")
            assert page.input_value("#decode") == "sample" and page.is_disabled("#decode")
            # a gray picture drawn in the page, dropped onto the drop zone as a file
            page.evaluate("""async () => {
                const c = document.createElement("canvas");
                c.width = 90; c.height = 60;
                const ctx = c.getContext("2d");
                const g = ctx.createLinearGradient(0, 0, 90, 60);
                g.addColorStop(0, "#111"); g.addColorStop(1, "#eee");
                ctx.fillStyle = g; ctx.fillRect(0, 0, 90, 60);
                ctx.fillStyle = "#777"; ctx.beginPath(); ctx.arc(45, 30, 18, 0, 7); ctx.fill();
                const blob = await new Promise((r) => c.toBlob(r, "image/png"));
                const dt = new DataTransfer();
                dt.items.add(new File([blob], "dropped.png", { type: "image/png" }));
                document.querySelector("#drop").dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true }));
            }""")
            card = page.locator("article.card[data-state=done]")
            card.wait_for(timeout=45_000)
            buttons = card.locator(".samples button")
            assert buttons.count() == 3
            assert "3 samples" in card.locator(".meta").inner_text()
            buttons.nth(1).click()
            assert buttons.nth(1).get_attribute("aria-pressed") == "true"
            link = card.locator("a.download")
            assert link.get_attribute("download") == "dropped-color-sample2.png"
            assert link.get_attribute("href") == card.locator("img.after").get_attribute("src")
        finally:
            context.close()


# the pixels of a result image (by default the card's), read back in the page
READ_RESULT = """async (selector) => {
    const img = document.querySelector(selector || "article.card img.after");
    await img.decode();
    const c = document.createElement("canvas");
    c.width = img.naturalWidth; c.height = img.naturalHeight;
    const ctx = c.getContext("2d");
    ctx.drawImage(img, 0, 0);
    return { w: c.width, h: c.height, rgba: Array.from(ctx.getImageData(0, 0, c.width, c.height).data) };
}"""
# the card has shown a result newer than version v and waits for nothing more
SETTLED = """(v) => {
    const c = document.querySelector("article.card");
    return c && c.dataset.busy === "false" && Number(c.dataset.version) > v;
}"""


def _result(page, selector: str | None = None) -> np.ndarray:
    """The result image's pixels as the page shows them -> (H,W,3) int16."""
    got = page.evaluate(READ_RESULT, selector)
    return np.asarray(got["rgba"], dtype=np.int16).reshape(got["h"], got["w"], 4)[..., :3]


def _settle(page, card) -> np.ndarray:
    """Wait for the refresh that follows a change (a newer result, nothing pending) -> its pixels."""
    page.wait_for_function(SETTLED, arg=int(card.get_attribute("data-version") or 0), timeout=30_000)
    return _result(page)


def test_color_hints_pin_undo_save_load_and_download(chromium, hint_server_url, tmp_path):
    gray = Image.fromarray(make_photo(120, 160, 5)).convert("L")
    photo = tmp_path / "street.jpg"
    gray.save(photo, quality=92)

    with watched_page(chromium, tmp_path / "profile", hint_server_url, 1000) as (page, errors, outside):
        page.goto(hint_server_url)
        page.wait_for_selector("#server-status.ok", timeout=15_000)
        assert page.input_value("#model") == "tiny"          # the server's default stays the choice
        assert "choose tiny-hints" in page.inner_text("#hints-note")
        page.select_option("#model", "tiny-hints")
        assert "takes color hints" in page.inner_text("#hints-note")

        page.set_input_files("#files", [str(photo)])
        card = page.locator("article.card[data-state=done]")
        card.wait_for(timeout=45_000)
        assert card.locator(".hint-tools").is_visible()
        assert card.get_attribute("data-version") == "1"
        first = _result(page)
        assert first.shape == (120, 160, 3)

        # a click on the photo pins a point there, selected and focused
        layer = card.locator(".points")
        box = layer.bounding_box()
        layer.click(position={"x": box["width"] * 0.3, "y": box["height"] * 0.4})
        point = card.locator(".point")
        assert point.count() == 1
        assert point.get_attribute("aria-pressed") == "true"
        assert point.evaluate("(el) => el === document.activeElement")
        x, y = (int(v) for v in point.get_attribute("aria-label").split(" at ")[1].split(":")[0].split(", "))
        assert abs(x - 0.3 * 160) <= 2 and abs(y - 0.4 * 120) <= 2

        # the palette suggests colors for it; one click uses one
        swatches = card.locator(".swatch")
        swatches.first.wait_for(timeout=30_000)
        assert 1 <= swatches.count() <= 6
        chosen = swatches.last.get_attribute("data-color")
        swatches.last.click()
        assert point.get_attribute("aria-label").endswith(chosen)
        assert card.locator(".hint-color").input_value() == chosen
        _settle(page, card)

        # the color input: a vivid green, and the result changes
        card.locator(".hint-color").fill("#00ff40")
        assert point.get_attribute("aria-label").endswith("#00ff40")
        pinned = _settle(page, card)
        assert np.abs(pinned - first).mean() > 0.05, np.abs(pinned - first).mean()
        assert "1 hint" in card.locator(".meta").inner_text()

        # the keyboard: arrows move the focused point, Ctrl+Z undoes the move
        label = point.get_attribute("aria-label")
        point.focus()
        page.keyboard.press("ArrowRight")
        moved = point.get_attribute("aria-label")
        assert moved.startswith(f"color hint 1 of 1 at {x + 2}, {y}:"), moved
        page.keyboard.press("Control+z")
        assert point.get_attribute("aria-label") == label

        # save hints: a JSON file in the documented format
        with page.expect_download(timeout=15_000) as info:
            card.locator(".hint-save").click()
        assert info.value.suggested_filename == "street.hints.json"
        saved_hints = tmp_path / "street.hints.json"
        info.value.save_as(saved_hints)
        assert json.loads(saved_hints.read_text()) == [{"x": x, "y": y, "color": "#00ff40"}]

        # undo back to no point at all: the first result again
        undo = card.locator(".hint-undo")
        while undo.is_enabled():
            undo.click()
        assert point.count() == 0
        assert np.array_equal(_settle(page, card), first)

        # load the saved hints: the point is back, and so is its color
        card.locator(".hint-load").set_input_files(str(saved_hints))
        point.first.wait_for(state="attached", timeout=10_000)  # the page reads the file asynchronously
        assert point.count() == 1 and point.get_attribute("aria-label").endswith("#00ff40")
        assert np.array_equal(_settle(page, card), pinned)

        # select with Enter, delete with the Delete key
        point.focus()
        page.keyboard.press("Enter")
        assert point.get_attribute("aria-pressed") == "true"
        page.keyboard.press("Delete")
        assert point.count() == 0
        _settle(page, card)

        # the Add point button pins one in the middle, and the Delete point button removes it
        card.locator(".hint-add").click()
        assert point.get_attribute("aria-label").startswith("color hint 1 of 1 at 80, 60:")
        card.locator(".hint-delete").click()
        assert point.count() == 0
        _settle(page, card)

        # pin green again and download the result
        layer.click(position={"x": box["width"] * 0.3, "y": box["height"] * 0.4})
        card.locator(".hint-color").fill("#00ff40")
        final = _settle(page, card)
        assert np.array_equal(final, pinned)
        with page.expect_download(timeout=15_000) as info:
            card.locator("a.download").click()
        assert info.value.suggested_filename == "street-color.png"
        result = tmp_path / "street-color.png"
        info.value.save_as(result)
        assert errors == [] and outside == []

    with Image.open(result) as im:
        assert im.format == "PNG" and im.size == (160, 120)
        assert np.array_equal(np.asarray(im.convert("RGB")).astype(np.int16), final)
