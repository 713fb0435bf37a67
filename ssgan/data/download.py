"""Downloads into the cache: published checksum verified, written atomically, reused when present.

The cache directory comes from `DataConfig.cache_dir`; pipelines decide it (params or environment).
"""
from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ssgan.data.catalog import DataSourceError
from ssgan.util.fileio import default_mode

TIMEOUT_S = 60


@dataclass(frozen=True)
class Remote:
    name: str  # file name in the cache
    urls: tuple[str, ...]  # mirrors, tried in order
    checksum: str  # as published: "md5:<hex>" or "sha256:<hex>"


def file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _split(checksum: str) -> tuple[str, str]:
    algorithm, _, expected = checksum.partition(":")
    return algorithm, expected.lower()


def _mismatch(where: str, algorithm: str, got: str, expected: str, fix: str) -> DataSourceError:
    return DataSourceError(f"{where}: checksum mismatch ({algorithm} {got}, published {expected}); {fix}")


def fetch(remote: Remote, cache_dir: Path, opener: Callable = urllib.request.urlopen) -> Path:
    """The verified file in `cache_dir`, downloading it first if absent."""
    cache_dir = Path(cache_dir)
    dest = cache_dir / remote.name
    algorithm, expected = _split(remote.checksum)
    if dest.exists():
        got = file_digest(dest, algorithm)
        if got != expected:
            raise _mismatch(str(dest), algorithm, got, expected, "delete it to download it again")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    failures = []
    for url in remote.urls:
        try:
            _download(url, dest, algorithm, expected, opener)
            return dest
        except (urllib.error.URLError, OSError, TimeoutError) as err:
            failures.append(f"{url}: {getattr(err, 'reason', err)}")
    raise DataSourceError(f"{remote.name}: download failed ({'; '.join(failures)}); "
                          f"put the file at {dest} by hand to use it offline")


def _download(url: str, dest: Path, algorithm: str, expected: str, opener: Callable) -> None:
    print(f"[ssgan] downloading {url} -> {dest}", file=sys.stderr, flush=True)
    digest = hashlib.new(algorithm)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out, opener(url, timeout=TIMEOUT_S) as response:
            for block in iter(lambda: response.read(1 << 20), b""):
                digest.update(block)
                out.write(block)
        got = digest.hexdigest()
        if got != expected:
            # Not a mirror hiccup to retry elsewhere: the bytes are not the published file.
            raise _mismatch(url, algorithm, got, expected, "nothing was written to the cache")
        os.chmod(tmp, default_mode())
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)
