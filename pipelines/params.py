"""params.yaml and environment -> typed config and locations, for the stage entry points."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import yaml

from ssgan.config import Cluster, Config, ConfigError, DataConfig, from_mapping

DEFAULT_PARAMS = "params.yaml"


class _NoAliasLoader(yaml.SafeLoader):
    """safe_load without anchors and aliases: a few hundred bytes of nested aliases expand to gigabytes
    ("billion laughs"), and params never need them."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.events.AliasEvent):
            event = self.peek_event()
            raise yaml.constructor.ConstructorError(
                None, None, f"YAML aliases (*name) are not allowed in params, line {event.start_mark.line + 1}",
                event.start_mark)
        return super().compose_node(parent, index)


def load_params(path: str | Path = DEFAULT_PARAMS) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: params file not found; run from the project root or pass --params PATH")
    try:
        params = yaml.load(path.read_text(), Loader=_NoAliasLoader) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    return params


def load_config(path: str | Path, sections: tuple[str, ...]) -> Config:
    """Parse and check `sections` of the params file; the file may not hold unknown sections."""
    return from_mapping(load_params(path), sections)


def data_config(path: str | Path) -> DataConfig:
    """The `data` section; SSGAN_DATA_CACHE, when set, replaces data.cache_dir (a cache, so not a param DVC tracks)."""
    data = load_config(path, ("data",)).data
    cache = os.environ.get("SSGAN_DATA_CACHE")
    return dataclasses.replace(data, cache_dir=cache) if cache else data


def project_root() -> Path:
    """Where the local stores live: DVC_ROOT when DVC runs the stage, else the current directory.

    DVC sets DVC_ROOT for every stage, and for a queued experiment (which runs in a temp copy
    under .dvc/tmp) it points at the real project, so its MLflow run and Ray checkpoints land in
    the project's stores instead of vanishing with the temp copy.
    """
    return Path(os.environ.get("DVC_ROOT") or Path.cwd())


def cluster(root: Path) -> Cluster:
    """RAY_ADDRESS (else a private local Ray), SSGAN_RAY_STORAGE (else <project>/.ray_results; on a
    cluster s3://, gs:// or a shared path), SSGAN_SHIP_CODE, and the CPU kernel caps this process
    runs with, for every Ray process."""
    from pipelines.kernels import CPU_KERNEL_ENV

    storage = os.environ.get("SSGAN_RAY_STORAGE") or str((root / ".ray_results").resolve())
    kernels = tuple((k, os.environ[k]) for k in CPU_KERNEL_ENV if k in os.environ)  # as pinned for this process
    ship = os.environ.get("SSGAN_SHIP_CODE", "").strip().lower()
    if ship not in ("", "0", "1", "false", "true"):
        raise ConfigError(f"SSGAN_SHIP_CODE={ship!r}: use 1 (Ray ships the driver's ssgan to every node) or 0")
    return Cluster(address=os.environ.get("RAY_ADDRESS") or None, storage_path=storage, worker_env=kernels,
                   ship_code=ship in ("1", "true"))


def git_lineage(root: Path) -> dict[str, str]:
    """The commit the project is at and whether its tree has uncommitted changes (tags on every run)."""
    import subprocess

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"ssgan.git_commit": "none (not a git checkout)"}
    status = git("status", "--porcelain", "--untracked-files=no") or ""
    # DVC's own bookkeeping (dvc.lock, stage outputs) changes as stages run: dirty means the user's changes.
    managed = dvc_managed_paths(root)
    changed = [line[3:].split(" -> ")[-1].strip('"') for line in status.splitlines()]
    dirty = [path for path in changed if not any(path == m or path.startswith(m.rstrip("/") + "/") for m in managed)]
    return {"ssgan.git_commit": commit.strip(), "ssgan.git_dirty": "true" if dirty else "false"}


def _stages(root: Path) -> dict:
    import yaml

    path = root / "dvc.yaml"
    if not path.exists():
        return {}
    return (yaml.safe_load(path.read_text()) or {}).get("stages") or {}


def _paths(entries) -> list[str]:
    """dvc.yaml deps / outs entries: plain paths or one-key mappings (path: options)."""
    return [next(iter(e)) if isinstance(e, dict) else str(e) for e in entries or []]


def dvc_managed_paths(root: Path) -> set[str]:
    """dvc.lock and every stage's outputs, metrics and plots."""
    paths = {"dvc.lock"}
    for stage in _stages(root).values():
        for kind in ("outs", "metrics", "plots"):
            paths.update(_paths(stage.get(kind)))
    return paths


def train_code_digest(root: Path) -> str:
    """md5 over the code files the train stage depends on (dvc.yaml's deps, as DVC sees them); outside
    a DVC project, over the installed ssgan and pipelines sources. Part of the run key, so an
    interrupted run is continued only by the same code."""
    import hashlib

    import ssgan

    deps = [d for d in _paths(_stages(root).get("train", {}).get("deps")) if d.endswith(".py")]
    if deps:
        files = {d: root / d for d in deps}
    else:
        packages = (Path(ssgan.__file__).parent, Path(__file__).parent)
        files = {str(f.relative_to(p.parent)): f for p in packages for f in p.rglob("*.py")}
    h = hashlib.md5()
    for label, f in sorted(files.items()):
        h.update(f"{label} {hashlib.md5(f.read_bytes()).hexdigest() if f.exists() else 'missing'}\n".encode())
    return h.hexdigest()
