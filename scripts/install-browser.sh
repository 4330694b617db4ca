#!/usr/bin/env bash
# Install Debian's headless-capable Chromium for tinct's browser test (tests/test_serve_browser.py).
#
# Idempotent: does nothing when /usr/bin/chromium (or $TINCT_CHROMIUM) already exists. Never fails the build: when
# the browser cannot be installed (not root, no apt-get, no network to the package mirror...)
# it says why and exits 0, and the browser test then skips with that reason.
# Playwright's own `playwright install` is NOT used: it downloads a browser build from outside
# the package registries, which is not reachable here. Recommended packages are skipped (udev,
# upower, printing...); fonts-liberation, one of them, is asked for by name so pages render text.

CHROMIUM=${TINCT_CHROMIUM:-/usr/bin/chromium}   # TINCT_CHROMIUM: the same override as the test

if [ -x "$CHROMIUM" ]; then
    echo "install-browser: $CHROMIUM is already installed"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-browser: apt-get not found (not a Debian-like system); the browser test will be skipped"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "install-browser: not root and no password-less sudo; the browser test will be skipped"
        exit 0
    fi
fi

export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get update -q >/tmp/tinct-install-browser.log 2>&1; then
    echo "install-browser: 'apt-get update' failed (see /tmp/tinct-install-browser.log); the browser test will be skipped"
    exit 0
fi
if ! $SUDO apt-get install -y -q --no-install-recommends chromium chromium-driver fonts-liberation >>/tmp/tinct-install-browser.log 2>&1; then
    echo "install-browser: 'apt-get install chromium chromium-driver fonts-liberation' failed (see /tmp/tinct-install-browser.log); the browser test will be skipped"
    exit 0
fi

if [ -x "$CHROMIUM" ]; then
    echo "install-browser: installed $("$CHROMIUM" --version 2>/dev/null || echo chromium)"
else
    echo "install-browser: apt-get finished but $CHROMIUM is missing; the browser test will be skipped"
fi
exit 0
