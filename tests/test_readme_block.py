"""The marked-block rewriter that the benchmarks use to keep README tables true."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from readme_block import rewrite_block  # noqa: E402


@pytest.mark.parametrize("old", ["", "| old | table |\n|---|---|\n"])
def test_rewrites_empty_and_filled_blocks_and_keeps_the_rest(tmp_path, old):
    doc = tmp_path / "README.md"
    doc.write_text(f"intro\n<!-- t:start -->\n{old}<!-- t:end -->\nafter\n")
    rewrite_block("t", "| new |", doc)
    assert doc.read_text() == "intro\n<!-- t:start -->\n| new |\n<!-- t:end -->\nafter\n"
    rewrite_block("t", "| newer |", doc)  # and again: idempotent markers
    assert doc.read_text().count("<!-- t:start -->") == 1 and "| newer |" in doc.read_text()


def test_missing_markers_stop_with_a_message(tmp_path):
    doc = tmp_path / "README.md"
    doc.write_text("no markers\n")
    with pytest.raises(SystemExit, match="no <!-- t:start -->"):
        rewrite_block("t", "x", doc)
