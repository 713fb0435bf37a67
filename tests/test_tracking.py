import time

import mlflow
import numpy as np
import pytest
import torch
from mlflow.exceptions import MlflowException

from ssgan.tracking import runs as tracking

from ssgan.tracking import registry
from ssgan.training.checkpoint import DataMeta, LoadedModel
from ssgan.metrics import to_tensor
from ssgan.training.models import build_models


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
    registry.log_models(ref, model, ["torch"])
    client = mlflow.MlflowClient(uri)
    assert client.get_run(ref.run_id).info.status == "RUNNING"  # FINISHED only once the driver says so
    tracking.end_run(ref)

    run = client.get_run(ref.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"train.lr": "0.1", "model.d_hidden": "[4, 2]"}
    history = client.get_metric_history(ref.run_id, "val_accuracy")
    assert [(m.step, m.value) for m in history] == [(1, 0.5), (2, 1.0)]
    assert [a.path for a in client.list_artifacts(ref.run_id)] == ["grid.png"]

    models = logged_models(uri, ref.run_id)
    assert set(models) == {"classifier", "generator"}
    # The served classifier takes pixels as `prepare` stores them (uint8, N x H x W x C), scales them itself
    # and answers each image's class name and the class probabilities.
    pixels = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 1), dtype=np.uint8)
    expected = torch.softmax(d(to_tensor(pixels))[0], dim=1).detach().numpy()
    pyfunc = mlflow.pyfunc.load_model(f"models:/{models['classifier'].model_id}")
    answer = pyfunc.predict(pixels)
    assert list(answer.columns) == ["class", "probability", "probabilities"]
    np.testing.assert_allclose(np.stack(answer["probabilities"]), expected, rtol=1e-5, atol=1e-6)
    assert list(answer["class"]) == [str(i) for i in expected.argmax(axis=1)]
    with pytest.raises(MlflowException, match="uint8"):  # floats 0..255 would be scored as if 255x brighter
        pyfunc.predict(pixels.astype(np.float32))
    generator = mlflow.pyfunc.load_model(f"models:/{models['generator'].model_id}")
    images = generator.predict(np.random.default_rng(0).random((2, tiny_config.model.latent_dim), np.float32))
    assert images.shape == (2, 8, 8, 1) and images.dtype == np.uint8


def test_find_run_by_tag_returns_the_newest(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    older = tracking.start_run(uri, "ssgan-a", {}, tmp_path / "mlruns")
    time.sleep(0.01)  # start times are in ms
    newer = tracking.start_run(uri, "ssgan-b", {}, tmp_path / "mlruns")
    tracking.start_run(uri, "ssgan-a", {}, tmp_path / "mlruns")  # untagged
    for ref in (older, newer):
        tracking.set_tag(ref, tracking.MODEL_MD5_TAG, "abc")
    assert tracking.find_run(uri, tracking.MODEL_MD5_TAG, "abc") == newer
    assert tracking.find_run(uri, tracking.MODEL_MD5_TAG, "def") is None


@pytest.mark.parametrize("conditional", [False, True], ids=["unconditional", "conditional"])
def test_logged_generator_samples_equal_the_model_files(tmp_path, tiny_config, conditional):
    """`ssgan sample`/`fid` on models:/… and on model.pt: one seed, the same latents, the same images."""
    import dataclasses

    from ssgan.training.models import generate_images
    from ssgan.tracking.serving import load_generator

    cfg = dataclasses.replace(tiny_config, model=dataclasses.replace(tiny_config.model, conditional_generator=conditional,
                                                                     latent_dim=7))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ref = tracking.start_run(uri, "ssgan-test", {"model.latent_dim": 7}, tmp_path / "mlruns")
    torch.manual_seed(0)
    d, g = build_models(cfg.model, (1, 8, 8), 10)
    registry.log_models(ref, LoadedModel(cfg, DataMeta((1, 8, 8), 10, tuple("0123456789"), "digits"), d.eval(), g.eval(), 2, 1.0), ["torch"])
    tracking.end_run(ref)
    with tracking.using_tracking_uri(uri):  # serving reads the process's URI, as the commands set it
        served = load_generator(f"runs:/{ref.run_id}/generator")
    assert served.num_classes == (10 if conditional else 0)
    for label in (None, 3) if conditional else (None,):
        np.testing.assert_array_equal(served.sample(23, label, 5), generate_images(g, 23, 5, label=label))


def test_logging_models_leaves_the_process_tracking_uri_and_environment_alone(tmp_path, tiny_config, monkeypatch):
    import os

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    mlflow.set_tracking_uri(None)  # the process uses the environment's store
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ref = tracking.start_run(uri, "ssgan-test", {}, tmp_path / "mlruns")
    d, g = build_models(tiny_config.model, (1, 8, 8), 10)
    model = LoadedModel(tiny_config, DataMeta((1, 8, 8), 10, tuple("0123456789"), "digits"), d.eval(), g.eval(), 2, 1.0)
    registry.register_models(ref, registry.log_models(ref, model, ["torch"]), {"classifier": "c", "generator": "g"}, {}, "md5")
    assert os.environ["MLFLOW_TRACKING_URI"] == f"sqlite:///{tmp_path / 'elsewhere.db'}"
    assert mlflow.get_tracking_uri() == f"sqlite:///{tmp_path / 'elsewhere.db'}"
    assert registry.versions_with_md5(uri, "c", "md5") == "1"  # and the models went to the run's store


def test_registry_gets_what_was_trained_once_per_model_file(tmp_path, tiny_config):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    torch.manual_seed(0)
    d, g = build_models(tiny_config.model, (1, 8, 8), 10)
    model = LoadedModel(tiny_config, DataMeta((1, 8, 8), 10, tuple("0123456789"), "digits"), d.eval(), g.eval(), 2, 1.0)
    names = {"classifier": "ssgan-test-classifier", "generator": "ssgan-test-generator"}
    versions = []
    for md5 in ("aaa", "aaa", "bbb"):  # a rerun that reproduced the file, then another model
        ref = tracking.start_run(uri, "ssgan-test", {}, tmp_path / "mlruns")
        versions.append(registry.register_models(ref, registry.log_models(ref, model, ["torch"]), names, {}, md5))
    assert [v["classifier"] for v in versions] == ["1", "1", "2"]
    assert registry.versions_with_md5(uri, "ssgan-test-generator", "bbb") == "2"
    supervised = tracking.start_run(uri, "ssgan-test", {}, tmp_path / "mlruns")
    assert set(registry.log_models(supervised, model, ["torch"], generator=False)) == {"classifier"}  # G never trained
