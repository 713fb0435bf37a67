"""Names that become paths: run keys, sweep and curve names are joined into storage paths that are
later deleted, so each must be one plain path component; and every deletion checks that its
target lies inside the root it was meant for, whatever name reached it."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

# Letters, digits, '.', '_', '-'; starting with a letter or digit, so '.', '..' and hidden names are out.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class UnsafeNameError(ValueError):
    """A run or sweep name that could not safely name a folder."""


def check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise UnsafeNameError(f"{what} {name!r}: not a valid name; use 1-100 letters, digits, '.', '_' or '-', "
                         f"starting with a letter or digit (it names a folder that is later deleted)")
    return name


def inside(root: str, target: str) -> bool:
    """`target` is strictly below `root` (both '/'-separated paths or URI paths, compared without
    resolving: a name was checked by `check_name`, this guards against one that was not)."""
    root_parts = [p for p in root.rstrip("/").split("/") if p not in ("", ".")]
    parts = [p for p in target.rstrip("/").split("/") if p not in ("", ".")]
    return ".." not in parts and len(parts) > len(root_parts) and parts[:len(root_parts)] == root_parts


def remove_tree_inside(root: Path, target: Path) -> None:
    """shutil.rmtree(target), refused unless target resolves strictly inside root."""
    root, resolved = Path(root).resolve(), Path(target).resolve()
    if resolved == root or root not in resolved.parents:
        raise UnsafeNameError(f"{target}: refusing to delete, it is not inside {root}")
    shutil.rmtree(resolved, ignore_errors=True)
