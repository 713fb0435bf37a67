"""Open source files as byte streams: optional gzip, a running sha256, and one-line errors for short or corrupt data."""
from __future__ import annotations

import gzip
import hashlib
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

from ssgan.data.catalog import DataSourceError

GZIP_MAGIC = b"\x1f\x8b"


class HashingReader:
    """A read-only file wrapper that hashes every byte read, so checksums cost no second pass."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self.digest = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self.digest.update(data)
        return data

    def readinto(self, buf) -> int:  # gzip and io.BufferedReader prefer this
        n = self._f.readinto(buf)
        self.digest.update(memoryview(buf)[:n])
        return n

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def finish(self) -> str:
        """Hash whatever was not read (trailing bytes) and return "sha256:<hex>"."""
        for block in iter(lambda: self._f.read(1 << 20), b""):
            self.digest.update(block)
        return f"sha256:{self.digest.hexdigest()}"


class Stream:
    """A source file's (decompressed) bytes, read sequentially with exact-length reads."""

    def __init__(self, path: Path, raw: HashingReader, body) -> None:
        self.path, self._raw, self._body = path, raw, body

    def read_exact(self, n: int, what: str) -> bytes:
        try:
            data = self._body.read(n)
        except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as err:
            raise corrupt(self.path, err) from None
        if len(data) != n:
            raise DataSourceError(f"{self.path}: truncated: {what} needs {n} bytes, only {len(data)} left")
        return data

    def read_rest(self) -> bytes:
        try:
            return self._body.read()
        except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as err:
            raise corrupt(self.path, err) from None

    def checksum(self) -> str:
        return self._raw.finish()


def corrupt(path: Path, err: BaseException) -> DataSourceError:
    if isinstance(err, EOFError):
        return DataSourceError(f"{path}: truncated gzip file (the compressed stream ends early)")
    return DataSourceError(f"{path}: corrupt gzip data ({err})")


@contextmanager
def open_stream(path: Path) -> Iterator[Stream]:
    """Open `path`; `.gz` files (checked by their magic bytes, not just the name) are decompressed on the fly."""
    path = Path(path)
    if not path.is_file():
        raise DataSourceError(f"{path}: not found")
    with open(path, "rb") as f:
        if path.suffix == ".gz":
            if f.read(2) != GZIP_MAGIC:
                raise DataSourceError(f"{path}: not a gzip file (it is named .gz but does not start with the gzip magic bytes)")
            f.seek(0)
        raw = HashingReader(f)
        if path.suffix == ".gz":
            with gzip.GzipFile(fileobj=raw, mode="rb") as body:
                yield Stream(path, raw, body)
        else:
            yield Stream(path, raw, raw)
