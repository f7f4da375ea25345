import os

import pytest

from priors.files import atomic_write, write_bytes_atomic


def test_write_bytes_atomic_replaces_whole_file(tmp_path):
    target = tmp_path / "sub" / "a.png"
    write_bytes_atomic(target, b"one")
    write_bytes_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    assert os.listdir(target.parent) == ["a.png"]  # no temporary left behind


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "w.bin"
    write_bytes_atomic(target, b"old")

    def half_then_fail(tmp):
        tmp.write_bytes(b"ne")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, half_then_fail)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["w.bin"]
