"""Outputs a team can share: the user's umask decides their modes, not tempfile's private defaults."""
import os
import stat

import pytest

from ssgan.util.fileio import atomic_write, atomic_write_many, staging


@pytest.fixture
def umask():
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def _mode(path):
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750), (0o077, 0o600, 0o700)])
def test_modes_follow_the_umask(tmp_path, umask, mask, file_mode, dir_mode):
    umask(mask)
    atomic_write(tmp_path / "metrics.json", b"{}")
    assert _mode(tmp_path / "metrics.json") == file_mode
    with staging(tmp_path / "prepared") as tmp:
        (tmp / "labeled.parquet").write_bytes(b"x")
    assert _mode(tmp_path / "prepared") == dir_mode
    assert _mode(tmp_path / "prepared" / "labeled.parquet") == file_mode


def test_write_many_leaves_every_target_alone_when_one_fails(tmp_path):
    (tmp_path / "a.csv").write_bytes(b"old a")
    (tmp_path / "blocker").write_bytes(b"a file where a directory should be")
    with pytest.raises(OSError):
        atomic_write_many({tmp_path / "a.csv": b"new a", tmp_path / "blocker" / "b.png": b"new b"})
    assert (tmp_path / "a.csv").read_bytes() == b"old a"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "blocker"]  # no temp files left behind


def test_staging_keeps_the_old_directory_on_failure(tmp_path):
    (tmp_path / "prepared").mkdir()
    (tmp_path / "prepared" / "labeled.parquet").write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with staging(tmp_path / "prepared") as tmp:
            (tmp / "labeled.parquet").write_bytes(b"new")
            raise RuntimeError("interrupted")
    assert (tmp_path / "prepared" / "labeled.parquet").read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["prepared"]
