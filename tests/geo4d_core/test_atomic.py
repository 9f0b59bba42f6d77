"""geo4d_core.atomic: whole-file replacement."""

import os
import stat

import pytest

from geo4d_core.atomic import write_text_atomic


def test_write_replaces_whole_file_with_normal_permissions(tmp_path):
    path = write_text_atomic(tmp_path / "sub" / "a.json", "first")
    assert path.read_text() == "first"
    write_text_atomic(path, "second ✓")
    assert path.read_text(encoding="utf-8") == "second ✓"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.json"]  # no temporary file left


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = write_text_atomic(tmp_path / "a.txt", "old")
    with pytest.raises(TypeError):
        write_text_atomic(path, 123)  # not a str: the write fails
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]
