"""What a run is tagged with: the user's changes (not DVC's bookkeeping) and the training code."""
import subprocess

import yaml

from pipelines import params as P

DVC_YAML = {"stages": {"train": {"cmd": "ssgan train", "deps": ["data/prepared/val.parquet", "ssgan/step.py", "ssgan/train.py"],
                                 "outs": ["models/model.pt"], "metrics": [{"metrics.json": {"cache": False}}]}}}


def _project(tmp_path):
    (tmp_path / "ssgan").mkdir()
    for name in ("step.py", "train.py", "serving.py"):
        (tmp_path / "ssgan" / name).write_text(f"# {name}\n")
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML))
    for name in ("dvc.lock", "params.yaml", "metrics.json"):
        (tmp_path / name).write_text("a: 1\n")
    git = lambda *a: subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    return tmp_path


def test_dvc_bookkeeping_is_not_dirt_but_the_users_changes_are(tmp_path):
    root = _project(tmp_path)
    assert P.git_lineage(root)["ssgan.git_dirty"] == "false"
    (root / "dvc.lock").write_text("a: 2\n")  # what the reference stage does before training
    (root / "metrics.json").write_text("a: 2\n")
    assert P.git_lineage(root)["ssgan.git_dirty"] == "false"
    (root / "params.yaml").write_text("a: 2\n")
    assert P.git_lineage(root)["ssgan.git_dirty"] == "true"


def test_train_code_digest_follows_the_train_stage_code_deps(tmp_path):
    root = _project(tmp_path)
    before = P.train_code_digest(root)
    (root / "ssgan" / "serving.py").write_text("# changed, not a train dependency\n")
    assert P.train_code_digest(root) == before
    (root / "ssgan" / "step.py").write_text("# changed\n")
    assert P.train_code_digest(root) != before
