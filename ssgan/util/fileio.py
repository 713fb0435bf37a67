"""Atomic file output: write to a temp path beside the target, then rename, so readers never see half a file.

Temp files and dirs are created private (0600 / 0700) by `tempfile`; before the rename they get the
mode a plain `open()` / `mkdir()` would have given under the user's umask, so outputs stay readable
by the group as teammates expect (0644 / 0755 under the default umask 022); a rewritten file keeps its mode.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from ssgan.util.names import remove_tree_inside


def current_umask() -> int:
    # Linux reports it; elsewhere Python has no getter but set-and-restore, which a thread writing a
    # file in between (a run's lease heartbeat) could see, so that is the fallback only.
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_mode(directory: bool = False) -> int:
    return (0o777 if directory else 0o666) & ~current_umask()


def atomic_write(path: Path, data: bytes) -> None:
    atomic_write_many({Path(path): data})


def atomic_write_many(files: Mapping[Path, bytes]) -> None:
    """Write every file to a temp path first, then rename them all: a failure while writing leaves
    every target as it was (the renames themselves are the only window, and they are cheap)."""
    temps: list[tuple[str, Path]] = []
    try:
        for path, data in files.items():
            # A symlink is rewritten at its target (a user's link into shared storage stays a link),
            # and an existing file keeps its mode (a private 0600 file must not become 0644).
            path = Path(os.path.realpath(path))
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            temps.append((tmp, path))
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            try:
                mode = stat.S_IMODE(os.stat(path).st_mode)
            except FileNotFoundError:
                mode = default_mode()
            os.chmod(tmp, mode)
        for tmp, path in temps:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in temps:
            Path(tmp).unlink(missing_ok=True)
        raise


def owned_manifest(out_dir: Path) -> Path:
    """Lists what the last swap put in `out_dir`, so the next one replaces (and removes) only that. It
    lives beside the folder, not in it: the folder's content is a DVC output whose hash it must not change."""
    return out_dir.with_name(f".{out_dir.name}.owned.json")


@contextlib.contextmanager
def staging(out_dir: Path) -> Iterator[Path]:
    """A temp dir beside `out_dir` to write into; on success its entries replace their namesakes in
    `out_dir` and the entries the previous swap owned but this one did not write are removed. Anything
    else in `out_dir` (a user's cache, their extra labels) stays: `--out data` must not empty `data/`.
    On any failure the temp dir is removed and `out_dir` is as it was."""
    # A symlinked folder is written at its target, the temp dir beside it: renames never cross devices.
    out_dir = Path(os.path.realpath(out_dir))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        yield tmp
        owned = sorted(e.name for e in tmp.iterdir())
        os.chmod(tmp, default_mode(directory=True))
        if not out_dir.exists():
            os.replace(tmp, out_dir)
            atomic_write(owned_manifest(out_dir), json_bytes(owned))
            return
        previous = _owned(out_dir)
        for name in owned:
            target = out_dir / name
            if target.is_dir() and not target.is_symlink():
                remove_tree_inside(out_dir, target)
            os.replace(tmp / name, target)
        for name in previous - set(owned):
            stale = out_dir / name
            if stale.is_dir() and not stale.is_symlink():
                remove_tree_inside(out_dir, stale)
            else:
                stale.unlink(missing_ok=True)
        atomic_write(owned_manifest(out_dir), json_bytes(owned))
        tmp.rmdir()
    except BaseException:
        remove_tree_inside(out_dir.parent, tmp)
        raise


def _owned(out_dir: Path) -> set[str]:
    """The names the last swap into `out_dir` wrote; plain names only, whatever the manifest says."""
    try:
        names = json.loads(owned_manifest(out_dir).read_text())
    except (OSError, ValueError):
        return set()
    if not isinstance(names, list):
        return set()
    return {n for n in names if isinstance(n, str) and n and "/" not in n and n not in (".", "..")}


def json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


def csv_bytes(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue().encode()
