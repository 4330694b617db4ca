"""Rewrite one marked block of the README: the text between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``."""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def rewrite_block(name: str, body: str, readme: Path = README) -> None:
    """Replace the block ``name`` of ``readme`` by ``body``; exit with a message when the markers are absent."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = readme.read_text()
    if start not in text or end not in text:
        sys.exit(f"{readme.name} has no {start} / {end} markers")
    pattern = re.escape(start) + r"\n(?:.*?\n)?" + re.escape(end)  # the block may be empty
    readme.write_text(re.sub(pattern, lambda _: f"{start}\n{body}\n{end}", text, flags=re.S))
    print(f"\nrewrote the {name} block of {readme}")
