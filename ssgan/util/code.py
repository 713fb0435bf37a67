"""A digest of the ssgan code a process imports, so a worker can tell that it runs the driver's code.

On a cluster every node brings its own ssgan: an installed package in the node's image, or the
driver's copy shipped by Ray (`runtime_env` py_modules). A node with another version would train
with other losses or models under the same run key; each worker compares this digest with the
driver's before it trains.
"""
from __future__ import annotations

import functools
import hashlib
from pathlib import Path


def package_dir() -> Path:
    import ssgan

    return Path(ssgan.__file__).resolve().parent


@functools.lru_cache(maxsize=None)
def _digest_of(root: str) -> str:
    h = hashlib.md5()
    for path in sorted(Path(root).rglob("*.py")):
        h.update(f"{path.relative_to(root).as_posix()} {hashlib.md5(path.read_bytes()).hexdigest()}\n".encode())
    return h.hexdigest()


def package_digest() -> str:
    """md5 over every ssgan/**/*.py file's relative path and md5 (read once per process)."""
    return _digest_of(str(package_dir()))
