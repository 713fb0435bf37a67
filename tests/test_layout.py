"""The layout's rules, read from the source (ssgan/*/__init__.py says them in words): which package
may import which, where Ray and MLflow may appear, no private names across modules, no import
cycles, no process-wide state changed by the library. Static: nothing is imported or run."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ssgan"

# Each package and the ssgan packages it may import (top-level modules count as packages here).
ALLOWED = {
    "config": set(),
    "metrics": set(),
    "util": {"metrics"},
    "data": {"config", "util"},
    "training": {"config", "metrics", "util", "data"},
    "tracking": {"config", "metrics", "util", "data", "training"},
    "quality": {"config", "metrics", "util", "data", "training", "tracking"},
    "driver": {"config", "metrics", "util", "data", "training", "tracking", "quality"},
    "sweep": {"config", "metrics", "util", "data", "training", "tracking", "quality", "driver"},
    "active": {"config", "metrics", "util", "data"},
    "__main__": set(),
}
# Third-party modules only some packages may import (anywhere in the file, lazily or not).
ONLY_IN = {
    "ray": {"driver", "sweep"},
    "mlflow": {"tracking"},
    "torch.distributed": {"training", "driver"},
    "pyarrow.fs": {"driver", "sweep"},
}
# Within a package, modules held to a stricter rule.
MODULE_FORBIDS = {
    "ssgan.quality.measures": {"torch"},  # pure statistics on arrays
    "ssgan.sweep.space": {"ray", "mlflow"},  # pure: parse, check, draw
    "ssgan.sweep.trial_log": {"ray"},  # driven by a Tune callback that lives in ssgan.sweep.tuner
    "ssgan.training.losses": {"torch.distributed"},
    "ssgan.training.unlabeled_terms": {"torch.distributed"},
    "ssgan.training.models": {"torch.distributed"},
}
# The two places that may change process-wide state, each restoring it on exit.
STATE_SCOPES = {("ssgan.driver.cluster", "scoped_environ"), ("ssgan.tracking.runs", "using_tracking_uri")}


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def package_of(module: str) -> str:
    return module.split(".")[1]


def imports(path: Path, top_level_only: bool = False) -> list[tuple[str, list[str], int]]:
    """(module, imported names, line) for each import; `top_level_only`: those run at import time."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out = []
    for node in nodes:
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, [a.name for a in node.names], node.lineno))
    return out


def ssgan_targets(module: str, names: list[str], known: dict[str, Path]) -> set[str]:
    """The ssgan modules an import statement reaches (`from ssgan.x import y` may import module x.y)."""
    if module.split(".")[0] != "ssgan":
        return set()
    targets = {f"{module}.{n}" for n in names if f"{module}.{n}" in known}
    return targets or ({module} if module in known else set())


ALL = modules()


def test_every_package_is_listed_and_documents_its_rules():
    packages = {package_of(m) for m in ALL if m != "ssgan"}
    assert packages == set(ALLOWED), f"packages without rules (or rules without packages): {packages ^ set(ALLOWED)}"
    for package in packages:
        init = PACKAGE / package / "__init__.py"
        if init.exists():
            doc = ast.get_docstring(ast.parse(init.read_text())) or ""
            assert "May import" in doc and ("never import" in doc), f"{init}: say what it owns, may and must never import"


@pytest.mark.parametrize("module", sorted(m for m in ALL if m != "ssgan"))
def test_imports_follow_the_layers(module):
    own = package_of(module)
    problems = []
    for target_module, names, line in imports(ALL[module]):
        for target in ssgan_targets(target_module, names, ALL):
            other = package_of(target) if target != "ssgan" else own
            if other != own and other not in ALLOWED[own]:
                problems.append(f"line {line}: {target} ({own} may import {sorted(ALLOWED[own]) or 'no ssgan package'})")
        for third, packages in ONLY_IN.items():
            if (target_module == third or target_module.startswith(third + ".")) and own not in packages:
                problems.append(f"line {line}: {target_module} (only {sorted(packages)} may)")
        for forbidden in MODULE_FORBIDS.get(module, ()):
            if target_module == forbidden or target_module.startswith(forbidden + "."):
                problems.append(f"line {line}: {target_module} (forbidden in {module})")
    assert not problems, f"{module}: " + "; ".join(problems)


@pytest.mark.parametrize("module", sorted(ALL))
def test_no_private_names_across_modules(module):
    private = [f"line {line}: {m}.{n}" for m, names, line in imports(ALL[module])
               if m.split(".")[0] == "ssgan" and m != module for n in names if n.startswith("_")]
    assert not private, f"{module} imports private names: {private}"


def test_ray_private_modules_only_in_the_driver():
    users = {m for m, path in ALL.items() for target, _, _ in imports(path)
             if target.startswith("ray.") and "._internal" in target}
    assert users <= {"ssgan.driver.cluster", "ssgan.driver.worker"}, users


def test_no_import_cycles_at_import_time():
    graph = {m: {t for target, names, _ in imports(p, top_level_only=True) for t in ssgan_targets(target, names, ALL)
                 if t != m} for m, p in ALL.items()}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join(path[path.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def _process_state_changes(tree: ast.AST):
    """Calls and assignments that change the environment or MLflow's process-wide URI."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = ast.unparse(node.func.value)
            if owner == "os.environ" and node.func.attr in ("setdefault", "update", "pop", "clear", "popitem"):
                yield node.lineno, ast.unparse(node.func)
            if node.func.attr in ("set_tracking_uri", "set_registry_uri", "putenv", "unsetenv"):
                yield node.lineno, ast.unparse(node.func)
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            for target in targets:
                if isinstance(target, ast.Subscript) and ast.unparse(target.value) == "os.environ":
                    yield node.lineno, ast.unparse(target)


@pytest.mark.parametrize("module", sorted(ALL))
def test_the_library_changes_no_process_state_outside_its_two_scopes(module):
    tree = ast.parse(ALL[module].read_text())
    allowed_lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and (module, node.name) in STATE_SCOPES:
            allowed_lines |= {n.lineno for n in ast.walk(node) if hasattr(n, "lineno")}
    changes = [f"line {line}: {what}" for line, what in _process_state_changes(tree) if line not in allowed_lines]
    assert not changes, f"{module} changes process-wide state: {changes}"


def test_the_rules_catch_a_violation(tmp_path):
    """The checks above must see what they forbid (a test of the tests)."""
    bad = ast.parse("import os\nos.environ['X'] = '1'\nos.environ.setdefault('Y', '2')\nimport mlflow\n"
                    "mlflow.set_tracking_uri('x')\n")
    assert [what for _, what in _process_state_changes(bad)] == ["os.environ['X']", "os.environ.setdefault",
                                                                 "mlflow.set_tracking_uri"]
    fake = tmp_path / "m.py"
    fake.write_text("from ssgan.driver.fit import fit\nfrom ssgan.config import require\n")
    reached = {t for m, n, _ in imports(fake) for t in ssgan_targets(m, n, ALL)}
    assert reached == {"ssgan.driver.fit", "ssgan.config"}
    assert "driver" not in ALLOWED["training"]  # so training importing the driver is reported
