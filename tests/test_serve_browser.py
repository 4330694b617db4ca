"""``tinct serve`` end to end in a real browser: Debian's headless Chromium driven by Playwright.

The server runs uvicorn in a background thread on 127.0.0.1 (a free port, loopback only) and
serves the session's tiny random model. The browser uploads a gray photo and a text file named
.jpg, waits for the results, reads the colorized image's pixels in the page (channels must
differ), moves the comparison slider, downloads the result and checks the file.

Chromium: ``/usr/bin/chromium`` (``TINCT_CHROMIUM`` overrides). When it is missing the test runs
``scripts/install-browser.sh`` once and skips, with the script's reason, only if that could not
install it. Playwright's own browser download (``playwright install``) is never used.

A screenshot goes to the test's tmp dir; with ``TINCT_UPDATE_SCREENSHOT=1`` it is also copied to
docs/serve-screenshot.png.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import make_photo
from PIL import Image

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
    script = ROOT / "scripts" / "install-browser.sh"
    try:
        out = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=600).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        out = f"install-browser.sh could not run ({exc})"
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no Chromium at {CHROMIUM} and it could not be installed: {out or 'no reason given'}")
    return CHROMIUM


@pytest.fixture(scope="module")
def server_url(tiny_model_path):
    """uvicorn serving the tiny model in a background thread on 127.0.0.1:<free port>."""
    app = create_app({"tiny": tiny_model_path}, render_size=96,
                     limits=Limits(max_upload_bytes=2 * 1024 * 1024, max_pixels=4_000_000, max_samples=4))
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


def test_page_colorizes_a_photo_and_downloads_it(chromium, server_url, tmp_path):
    try:
        from skimage import data as skdata

        gray = Image.fromarray(skdata.chelsea()).convert("L")  # a real photo shipped with scikit-image
    except Exception:  # noqa: BLE001 - any problem with the sample: use a generated one
        gray = Image.fromarray(make_photo(300, 451, 4)).convert("L")
    photo = tmp_path / "chelsea.jpg"
    gray.save(photo, quality=92)
    bad = tmp_path / "notes.jpg"
    bad.write_text("these are notes, not a photo\n" * 10)

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"),              # a fresh --user-data-dir
            executable_path=chromium, headless=True, args=CHROMIUM_FLAGS,
            accept_downloads=True, viewport={"width": 1100, "height": 760},
        )
        try:
            page = context.pages[0] if context.pages else context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            outside: list[str] = []
            page.on("request", lambda req: None if req.url.startswith((server_url, "blob:", "data:"))
                    else outside.append(req.url))

            page.goto(server_url)
            page.wait_for_selector("#server-status.ok", timeout=15_000)
            assert page.input_value("#model") == "tiny"
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
            pixels = page.evaluate("""async () => {
                const img = document.querySelector("article.card[data-state=done] img.after");
                await img.decode();
                const c = document.createElement("canvas");
                c.width = img.naturalWidth; c.height = img.naturalHeight;
                const ctx = c.getContext("2d");
                ctx.drawImage(img, 0, 0);
                const d = ctx.getImageData(0, 0, c.width, c.height).data;
                let diff = 0;
                for (let i = 0; i < d.length; i += 4) diff += Math.abs(d[i] - d[i + 1]) + Math.abs(d[i + 1] - d[i + 2]);
                return { w: c.width, h: c.height, chroma: diff / (d.length / 4) };
            }""")
            assert (pixels["w"], pixels["h"]) == gray.size
            assert pixels["chroma"] > 2.0, pixels

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
        finally:
            context.close()

    with Image.open(saved) as im:
        assert im.format == "PNG" and im.size == gray.size
        rgb = np.asarray(im.convert("RGB")).astype(np.int16)
    assert float(np.abs(rgb[..., 0] - rgb[..., 1]).mean() + np.abs(rgb[..., 1] - rgb[..., 2]).mean()) > 2.0
    with Image.open(shot) as im:
        assert im.size[0] >= 1000
        assert im.convert("RGB").getextrema() != ((255, 255), (255, 255), (255, 255))  # not blank
    if os.environ.get("TINCT_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(shot, ROOT / "docs" / "serve-screenshot.png")
