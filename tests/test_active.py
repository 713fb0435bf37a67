"""What to label next (scores, ranking, suggest), taking labels back (add-labels, prepare), and the label curve."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from ssgan.active.suggest import rank_unlabeled, uncertainty
from ssgan.config import DataConfig
from ssgan.data.prepare import prepare
from ssgan.data.splits import SplitError
from tests.conftest import TINY_PARAMS

ROOT = Path(__file__).resolve().parents[1]


def test_uncertainty_scores_in_closed_form():
    k = 4
    assert uncertainty(np.zeros((1, k)), "entropy")[0] == pytest.approx(np.log(k))  # uniform: the maximum
    assert uncertainty(np.array([[50.0, 0, 0, 0]]), "entropy")[0] == pytest.approx(0.0, abs=1e-12)
    assert uncertainty(np.array([[1.0, 1.0, -5, -5]]), "margin")[0] == pytest.approx(1.0)  # a tie at the top
    assert uncertainty(np.array([[50.0, 0, 0, 0]]), "margin")[0] == pytest.approx(0.0, abs=1e-12)
    # D's fake class has logit 0: p(fake) = 1 / (1 + sum_k exp(l_k)).
    assert uncertainty(np.zeros((1, 2)), "fake")[0] == pytest.approx(1 / 3)
    assert uncertainty(np.full((1, 3), -40.0), "fake")[0] == pytest.approx(1.0)


def test_ranking_is_by_score_then_row_id():
    logits = np.array([[5.0, 0], [0.0, 0], [0.0, 0], [2.0, 0]])
    order, scores = rank_unlabeled(logits, np.array([30, 20, 10, 40]), "entropy", 3)
    assert order.tolist() == [2, 1, 3] and scores[0] == scores[1] > scores[2]


def _extra(tmp_path, rows):
    path = tmp_path / "extra.csv"
    path.write_text("row_id,label\n" + "".join(f"{r},{l}\n" for r, l in rows))
    return str(path)


def test_prepare_moves_annotated_rows_to_labeled(prepared_dir, tmp_path):
    cfg = DataConfig(**TINY_PARAMS["data"])
    unlabeled = pq.read_table(prepared_dir / "unlabeled.parquet", columns=["index"]).column("index").to_numpy()
    rows = sorted(unlabeled[:5].tolist())
    summary = prepare(DataConfig(**{**TINY_PARAMS["data"], "extra_labels": _extra(tmp_path, [(r, 7) for r in rows])}),
                      tmp_path / "p")
    labeled = pq.read_table(tmp_path / "p" / "labeled.parquet").to_pydict()
    added = {i: l for i, l in zip(labeled["index"], labeled["label"]) if i in rows}
    assert added == {r: 7 for r in rows}  # the annotator's label, not the source's
    assert summary["splits"]["labeled"]["total"] == 35 and summary["splits"]["unlabeled"]["total"] == len(unlabeled) - 5
    assert not set(rows) & set(pq.read_table(tmp_path / "p" / "unlabeled.parquet").column("index").to_pylist())
    # An empty file changes nothing: the original splits stay reproducible.
    prepare(DataConfig(**{**TINY_PARAMS["data"], "extra_labels": _extra(tmp_path, [])}), tmp_path / "same")
    assert (tmp_path / "same" / "unlabeled.parquet").read_bytes() == (prepared_dir / "unlabeled.parquet").read_bytes()
    val_row = pq.read_table(prepared_dir / "val.parquet").column("index").to_pylist()[0]
    with pytest.raises(SplitError, match=f"row {val_row} is not in the unlabeled split \\(it is in val\\)"):
        prepare(DataConfig(**{**TINY_PARAMS["data"], "extra_labels": _extra(tmp_path, [(val_row, 1)])}), tmp_path / "x")
    with pytest.raises(SplitError, match="has label 10, outside 0..9"):
        prepare(DataConfig(**{**TINY_PARAMS["data"], "extra_labels": _extra(tmp_path, [(rows[0], 10)])}), tmp_path / "x")
    assert not (tmp_path / "x").exists()


def _cli(project, *args):
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "DVC_ROOT")}
    return subprocess.run([sys.executable, "-m", "ssgan", *args], cwd=project, capture_output=True, text=True,
                          env={**env, "PYTHONPATH": str(ROOT)})


@pytest.fixture
def trained(prepared_dir, tmp_path):
    """A project with prepared data and a model trained in-process (no Ray: only the model file matters here)."""
    from ssgan.training.checkpoint import payload_bytes
    from ssgan.config import from_mapping
    from ssgan.training.loop import LocalSession, TrainJob, run_training

    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "data" / "prepared").symlink_to(prepared_dir)
    (project / "models").mkdir()
    params = {**TINY_PARAMS, "data": {**TINY_PARAMS["data"], "extra_labels": "data/extra_labels.csv"}}
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    session = LocalSession()
    run_training(TrainJob(from_mapping(TINY_PARAMS), str(prepared_dir)), session)
    (project / "models" / "model.pt").write_bytes(payload_bytes(session.state["best"]))
    return project


def test_suggest_then_add_labels(trained):
    result = _cli(trained, "suggest", "--n", "12", "--score", "margin")
    assert result.returncode == 0, result.stderr
    table = pq.read_table(trained / "suggest" / "to_label.parquet").to_pydict()
    assert len(table["row_id"]) == 12 and table["score"] == sorted(table["score"], reverse=True)
    assert (trained / "suggest" / "contact_sheet.png").read_bytes()[:4] == b"\x89PNG"
    unlabeled = set(pq.read_table(trained / "data/prepared/unlabeled.parquet", columns=["index"]).column("index").to_pylist())
    assert set(table["row_id"]) <= unlabeled

    labels = trained / "labels.csv"
    labels.write_text("row_id,label\n" + "".join(f"{r},{i % 10}\n" for i, r in enumerate(table["row_id"][:4])))
    assert _cli(trained, "add-labels", str(labels)).returncode == 0
    extra = trained / "data" / "extra_labels.csv"
    written = extra.read_bytes()
    assert list(csv.DictReader(extra.open()))[0] == {"row_id": str(table["row_id"][0]), "label": "0"}
    labeled_row = pq.read_table(trained / "data/prepared/labeled.parquet").column("index").to_pylist()[0]
    for bad, message in ((f"{table['row_id'][0]},1", "is already labeled"),
                         ("999999,1", "row 999999 is not a row of the unlabeled split"),
                         (f"{table['row_id'][5]},10", "label 10 is outside 0..9"),
                         (f"{labeled_row},1", f"row {labeled_row} is already labeled")):
        labels.write_text("row_id,label\n" + bad + "\n")
        result = _cli(trained, "add-labels", str(labels))
        assert result.returncode == 1 and message in result.stderr and result.stderr.count("\n") == 1, result.stderr
        assert extra.read_bytes() == written  # nothing written

    # The README's next step, `dvc repro`, starts with prepare: the four rows move to labeled with the
    # annotator's labels, and the val set (so the promotion key) stays, so the new model must beat the old.
    assert _cli(trained, "prepare", "--out", "data/prepared2").returncode == 0
    relabeled = pq.read_table(trained / "data/prepared2/labeled.parquet").to_pydict()
    added = {r: l for r, l in zip(relabeled["index"], relabeled["label"]) if r in table["row_id"][:4]}
    assert added == {r: i % 10 for i, r in enumerate(table["row_id"][:4])}
    from ssgan.tracking.promote import data_key
    assert data_key(trained / "data/prepared2") == data_key(trained / "data/prepared")


def test_curve_refuses_a_label_count_a_class_cannot_supply(tmp_path):
    from ssgan.config import Cluster
    from ssgan.sweep.curve import CurveOutputs, curve

    params = {**TINY_PARAMS, "curve": {"labels": [2, 500], "seeds": 1}}
    with pytest.raises(SplitError) as err:
        curve(params, CurveOutputs(tmp_path / "c.csv", tmp_path / "c.png"), tmp_path / "work", "sqlite:///x.db", None,
              Cluster(storage_path=str(tmp_path / "ray")))
    assert "\n" not in str(err.value) and "class" in str(err.value)
    assert not (tmp_path / "c.csv").exists()


@pytest.mark.slow
def test_label_curve_runs_both_modes_on_ray(prepared_dir, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    # An annotator's labels for the project's split must not leak into the curve's random draws.
    rows = pq.read_table(prepared_dir / "unlabeled.parquet", columns=["index"]).column("index").to_pylist()[:3]
    (project / "extra.csv").write_text("row_id,label\n" + "".join(f"{r},1\n" for r in rows))
    params = {**TINY_PARAMS, "data": {**TINY_PARAMS["data"], "extra_labels": "extra.csv"},
              "curve": {"labels": [2], "seeds": 1, "epochs": 2, "steps_per_epoch": 5}}
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    result = _cli(project, "curve")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = list(csv.DictReader((project / "plots" / "label_curve.csv").open()))
    assert [(r["labels_per_class"], r["labels"], r["mode"], r["seed"]) for r in rows] == [
        ("2", "20", "ssgan", "0"), ("2", "20", "supervised", "0")]
    assert all(0 <= float(r["test_error"]) <= 1 and 0 <= float(r["val_error"]) <= 1 for r in rows)
    assert (project / "plots" / "label_curve.png").read_bytes()[:4] == b"\x89PNG"
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    (parent,) = [r for r in runs if r.data.tags.get("ssgan.mode") == "curve"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 2 and {c.data.params["train.mode"] for c in children} == {"ssgan", "supervised"}
    assert {c.info.run_id: c.data.metrics["test_error"] for c in children} == {r["mlflow_run_id"]: float(r["test_error"]) for r in rows}
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} == {"label_curve.csv", "label_curve.png"}
    assert json.loads(json.dumps(parent.data.params))["curve.seeds"] == "1"


def test_suggest_on_a_split_with_no_unlabeled_rows_is_a_clear_error(tmp_path):
    from ssgan.active.suggest import unlabeled_rows
    from ssgan.data import parquet as P
    from ssgan.data.catalog import DataSourceError

    empty = np.zeros((0, 8, 8, 1), np.uint8)
    P.write_splits(tmp_path / "p", {"unlabeled": P.split_table(empty, None, np.arange(0), {"num_classes": 10})}, {})
    with pytest.raises(DataSourceError, match="unlabeled.parquet: the unlabeled split is empty; there is nothing to suggest"):
        unlabeled_rows(tmp_path / "p")


def test_contact_sheet_captions_each_image_with_its_row_id():
    import io

    from PIL import Image

    from ssgan.util.images import CAPTION_HEIGHT, contact_sheet_png

    images = np.full((12, 8, 8, 1), 255, np.uint8)  # white images: any dark pixel is caption text
    sheet = np.asarray(Image.open(io.BytesIO(contact_sheet_png(images, [str(1000 + i) for i in range(12)], cols=10, scale=2))))
    cell_h = 8 * 2 + CAPTION_HEIGHT + 4
    assert sheet.shape[0] == 2 * cell_h
    captions = [sheet[r * cell_h + 2 + 16: (r + 1) * cell_h] for r in range(2)]
    assert all((c < 128).any() for c in captions)  # a row id is printed under the images of each grid row
    blank = np.asarray(Image.open(io.BytesIO(contact_sheet_png(images, [""] * 12, cols=10, scale=2))))
    assert (blank[2 + 16: cell_h] >= 128).all()
