import mlflow
import torch

from ssgan import tracking
from ssgan.checkpoint import DataMeta, LoadedModel
from ssgan.models import build_models


def logged_models(uri: str, run_id: str) -> dict:
    mlflow.set_tracking_uri(uri)
    run = mlflow.get_run(run_id)
    found = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id],
                                        filter_string=f"source_run_id = '{run_id}'", output_format="list")
    return {m.name: m for m in found}


def test_mlflow_logging_into_temporary_sqlite_store(tmp_path, tiny_config):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ref = tracking.start_run(uri, "ssgan-test", {"train.lr": 0.1, "model.d_hidden": [4, 2]}, tmp_path / "mlruns")
    for epoch in (1, 2):
        tracking.log_metrics(ref, {"val_accuracy": 0.5 * epoch}, step=epoch)
    (tmp_path / "grid.png").write_bytes(b"\x89PNG fake")
    tracking.log_artifact(ref, tmp_path / "grid.png")

    torch.manual_seed(0)
    d, g = build_models(tiny_config.model, (1, 8, 8), 10)
    model = LoadedModel(tiny_config, DataMeta((1, 8, 8), 10, tuple("0123456789"), "digits"), d.eval(), g.eval(), 2, 1.0)
    tracking.log_models(ref, model, ["torch"])
    tracking.end_run(ref)

    client = mlflow.MlflowClient(uri)
    run = client.get_run(ref.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"train.lr": "0.1", "model.d_hidden": "[4, 2]"}
    history = client.get_metric_history(ref.run_id, "val_accuracy")
    assert [(m.step, m.value) for m in history] == [(1, 0.5), (2, 1.0)]
    assert [a.path for a in client.list_artifacts(ref.run_id)] == ["grid.png"]
    assert tracking.run_exists(ref)

    models = logged_models(uri, ref.run_id)
    assert set(models) == {"classifier", "generator"}
    x = torch.rand(3, 1, 8, 8)
    served = mlflow.pytorch.load_model(f"models:/{models['classifier'].model_id}")
    torch.testing.assert_close(served(x), d(x)[0])
    generator = mlflow.pytorch.load_model(f"models:/{models['generator'].model_id}")
    assert generator(torch.rand(2, tiny_config.model.latent_dim)).shape == (2, 1, 8, 8)


def test_unknown_run_is_reported_missing(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking.start_run(uri, "ssgan-test", {}, tmp_path / "mlruns")
    assert not tracking.run_exists(tracking.RunRef(uri, "0" * 32, "ssgan-test"))
