"""tinct.atomic: a file under its final name is complete, or the old one; leftovers are named."""

import json
import os
import stat

import pytest

from tinct.atomic import atomic_open, atomic_path, write_json, write_text
from tinct.imageio.write import TEMPORARY_NAME


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    dest = tmp_path / "out.json"
    write_json(dest, {"v": 1})
    with pytest.raises(RuntimeError), atomic_open(dest, "w") as fh:
        fh.write('{"v": 2, "half')
        raise RuntimeError("killed mid-write")
    assert json.loads(dest.read_text()) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_the_temporary_is_hidden_beside_the_file_and_replaces_it(tmp_path):
    dest = tmp_path / "sub" / "weights.bin"
    with atomic_path(dest) as tmp:
        assert tmp.parent == dest.parent and TEMPORARY_NAME.fullmatch(tmp.name)
        assert not dest.exists()
        tmp.write_bytes(b"abc")
    assert dest.read_bytes() == b"abc" and not tmp.exists()


def test_a_replaced_file_keeps_its_permissions(tmp_path):
    dest = tmp_path / "report.md"
    write_text(dest, "old")
    os.chmod(dest, 0o640)
    write_text(dest, "new")
    assert dest.read_text() == "new" and stat.S_IMODE(dest.stat().st_mode) == 0o640


def test_only_whole_file_modes(tmp_path):
    with pytest.raises(ValueError, match="mode must start with 'w'"), atomic_open(tmp_path / "x", "ab"):
        pass


def test_a_new_file_gets_the_usual_permissions_even_if_the_writer_restricted_them(tmp_path):
    mask = os.umask(0o022)
    try:
        dest = tmp_path / "w.safetensors"
        with atomic_path(dest) as tmp:
            tmp.write_bytes(b"x")
            os.chmod(tmp, 0o600)  # as a library writing its own private temporary would
        from tinct import atomic

        assert stat.S_IMODE(dest.stat().st_mode) == atomic._NEW_FILE_MODE
    finally:
        os.umask(mask)
