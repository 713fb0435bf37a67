"""Registry promotion by val error within one data key, on a real MLflow sqlite store; git lineage tags."""
import hashlib
import subprocess

import mlflow
import pytest

from pipelines.params import git_lineage
from ssgan.tracking import runs as tracking
from ssgan.tracking import registry
from ssgan.tracking.promote import DATA_KEY_TAG, PromotionError, decide, model_names, promote


def test_decide_reads_val_error_only():
    assert decide(0.1, None, False).promote
    assert decide(0.1, 0.2, False).promote and not decide(0.2, 0.2, False).promote  # a tie keeps the champion
    assert not decide(0.3, 0.2, False).promote and decide(0.3, 0.2, True).reason == "--force"
    assert decide(0.3, 0.2, False).reason == "val_error 0.3000 >= champion's 0.2000"


def _run(uri, tmp_path, name, key, val_errors, test_error=0.5):
    """What the train and evaluate stages leave: a run with its val errors, tags, a model file, two versions."""
    ref = tracking.start_run(uri, "ssgan-digits", {}, tmp_path / "mlruns", run_name=name)
    for epoch, v in enumerate(val_errors, 1):
        tracking.log_metrics(ref, {"val_error": v}, step=epoch)
    tracking.log_metrics(ref, {"test_error": test_error}, step=len(val_errors))
    model = tmp_path / f"{name}.pt"
    model.write_bytes(name.encode())
    md5 = hashlib.md5(model.read_bytes()).hexdigest()
    for k, v in {tracking.MODEL_MD5_TAG: md5, DATA_KEY_TAG: key, "ssgan.labels": key.split("-")[1].removesuffix("labels"),
                 "ssgan.source": "digits", "ssgan.git_commit": "abc1234", "ssgan.git_dirty": "false"}.items():
        tracking.set_tag(ref, k, v)
    client = mlflow.MlflowClient(uri)
    for registered in model_names("digits").values():
        if not client.search_registered_models(f"name = '{registered}'"):
            client.create_registered_model(registered)
        client.create_model_version(registered, f"file://{tmp_path}/{name}", run_id=ref.run_id,
                                    tags={tracking.MODEL_MD5_TAG: md5})
    return model, ref


def _alias(uri, alias, kind="classifier"):
    v = mlflow.MlflowClient(uri).get_model_version_by_alias(model_names("digits")[kind], alias)
    return mlflow.MlflowClient(uri).get_run(v.run_id).info.run_name


def test_champion_per_data_key_challenger_and_force(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    k50, k20 = "digits-50labels-seed0-val200", "digits-20labels-seed0-val200"
    a, _ = _run(uri, tmp_path, "a", k50, [0.3, 0.2], test_error=0.11)
    assert promote(a, uri)["reason"] == "first version for this data"
    assert _alias(uri, "champion") == "a" == _alias(uri, f"champion-{k50}") == _alias(uri, "champion", "generator")

    b, _ = _run(uri, tmp_path, "b", k50, [0.25], test_error=0.01)  # a better test error is never looked at
    result = promote(b, uri)
    assert not result["promoted"] and result["reason"] == "val_error 0.2500 >= champion's 0.2000"
    assert _alias(uri, "champion") == "a" and _alias(uri, "challenger") == "b" == _alias(uri, f"challenger-{k50}", "generator")

    c, _ = _run(uri, tmp_path, "c", k50, [0.4, 0.1])
    assert promote(c, uri)["promoted"] and _alias(uri, f"champion-{k50}") == "c"

    d, _ = _run(uri, tmp_path, "d", k20, [0.6])  # other data: not compared with c's 0.1
    assert promote(d, uri)["reason"] == "first version for this data"
    assert _alias(uri, "champion") == "d" and _alias(uri, f"champion-{k20}") == "d" and _alias(uri, f"champion-{k50}") == "c"

    e, _ = _run(uri, tmp_path, "e", k50, [0.9])
    forced = promote(e, uri, force=True)
    assert forced["promoted"] and forced["forced"] and _alias(uri, f"champion-{k50}") == "e"
    assert promote(e, uri)["already"]

    version = mlflow.MlflowClient(uri).get_model_version_by_alias(model_names("digits")["classifier"], f"champion-{k20}")
    assert version.description.startswith(f"digits, 20 labels ({k20}); val error 0.6000, test error 0.5000; commit abc1234;")


def test_promote_without_a_run_is_a_clear_error(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    stray = tmp_path / "model.pt"
    stray.write_bytes(b"not logged")
    with pytest.raises(PromotionError, match="no MLflow run in .* wrote it; run `dvc repro`"):
        promote(stray, uri)


def test_git_lineage_commit_and_dirty(tmp_path):
    assert git_lineage(tmp_path) == {"ssgan.git_commit": "none (not a git checkout)"}
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "params.yaml").write_text("a: 1\n")
    subprocess.run([*git, "add", "."], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=tmp_path, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    assert git_lineage(tmp_path) == {"ssgan.git_commit": head, "ssgan.git_dirty": "false"}
    (tmp_path / "params.yaml").write_text("a: 2\n")
    assert git_lineage(tmp_path)["ssgan.git_dirty"] == "true"


def test_two_concurrent_promotions_cannot_both_win(tmp_path, monkeypatch):
    """Each reads 'no champion yet' and would take the alias; the lock makes the second compare with the first."""
    import threading
    import time

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    key = "digits-val200-0123456789ab"
    a, _ = _run(uri, tmp_path, "a", key, [0.3])
    b, _ = _run(uri, tmp_path, "b", key, [0.2])
    read = registry.version_by_alias

    def slow_read(*args, **kwargs):  # widen the window between reading the champion and moving the alias
        found = read(*args, **kwargs)
        time.sleep(0.5)
        return found

    monkeypatch.setattr(registry, "version_by_alias", slow_read)
    results = {}
    threads = [threading.Thread(target=lambda m=m: results.setdefault(m.name, promote(m, uri))) for m in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    reasons = sorted(r["reason"] for r in results.values())
    assert reasons[0] == "first version for this data" and reasons[1].startswith("val_error ")
    assert _alias(uri, f"champion-{key}") == "b"  # the lower val error holds the alias whatever the order
