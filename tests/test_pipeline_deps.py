"""dvc.yaml must declare every ssgan/ and pipelines/ module each stage runs (so `dvc repro` reruns on code change)."""
import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _module_file(name: str) -> Path | None:
    path = ROOT / Path(*name.split("."))
    if (path / "__init__.py").exists():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").exists() else None


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return {n for n in names if n.split(".")[0] in ("ssgan", "pipelines")}


def _closure(start: str) -> set[Path]:
    """Files reachable by imports from `start`, not following the CLI (it imports every stage)."""
    seen: set[Path] = set()
    todo = [start]
    while todo:
        path = _module_file(todo.pop())
        if path is None or path in seen:
            continue
        seen.add(path)
        todo += [n for n in _imports(path) if n != "pipelines.cli"]
    return {p for p in seen if p.name != "__init__.py" or _imports(p)}  # a docstring-only __init__ runs nothing


@pytest.mark.parametrize("pipeline, stage", [("dvc.yaml", "prepare"), ("dvc.yaml", "train"), ("dvc.yaml", "evaluate"),
                                             ("dvc.yaml", "reference"), ("dvc.yaml", "promote"), ("tune/dvc.yaml", "tune"),
                                             ("curve/dvc.yaml", "curve")])
def test_stage_declares_the_code_it_runs(pipeline, stage):
    deps = yaml.safe_load((ROOT / pipeline).read_text())["stages"][stage]["deps"]  # paths from the project root
    declared = [ROOT / d for d in deps]
    runs = _closure(f"pipelines.{stage}") | _closure("ssgan.__main__")  # the command is `python -m ssgan <stage>`
    missing = [str(p.relative_to(ROOT)) for p in sorted(runs)
               if not any(p == d or d in p.parents for d in declared)]
    assert not missing, f"dvc.yaml stage {stage} does not list: {missing}"


def test_stages_declare_the_data_files_they_read():
    """Data deps, from the code's own lists: train checks every prepared split (and hashes test for its
    lineage) and reads the reference classifier; evaluate reads test, the model and the reference."""
    from ssgan.data.parquet import SPLITS

    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    deps = {name: {d.split("#")[0].strip() for d in stage["deps"]} for name, stage in stages.items()}
    assert {f"data/prepared/{s}.parquet" for s in SPLITS} | {"models/reference.pt"} <= deps["train"]
    assert {"data/prepared/test.parquet", "models/model.pt", "models/reference.pt"} <= deps["evaluate"]
    assert "data/extra_labels.csv" in deps["prepare"]
