"""The offline figures: what each panel shows, and that the PNG bytes are stable for a rerun."""
import io

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ssgan.util.plots import confusion_figure, confusion_png, curves_figure, curves_png

HISTORY = [{"epoch": e, "loss_sup": 1.0 / e, "loss_unl": 0.5, "loss_gen": 2.0, "val_error": v}
           for e, v in zip((1, 2, 3, 4), (0.4, 0.2, 0.1, 0.15))]


def test_curves_mark_the_selected_epoch_on_both_panels():
    fig = curves_figure(HISTORY, best_epoch=3, mode="ssgan")
    val, losses = fig.axes
    assert val.get_ylabel() == "val_error" and val.get_xlabel() == "epoch"
    assert [line.get_label() for line in losses.get_lines() if not line.get_label().startswith("_")] == [
        "loss_sup", "loss_unl", "loss_gen"]
    star = [line for line in val.get_lines() if line.get_label().startswith("selected")]
    assert list(star[0].get_xdata()) == [3] and list(star[0].get_ydata()) == [0.1]
    for ax in (val, losses):  # the dotted vertical line at the selected epoch
        assert any(list(line.get_xdata()) == [3, 3] for line in ax.get_lines())


def test_curves_of_a_supervised_run_show_its_one_loss():
    history = [{"epoch": r["epoch"], "loss_sup": r["loss_sup"], "val_error": r["val_error"]} for r in HISTORY]
    _, losses = curves_figure(history, best_epoch=3, mode="supervised").axes
    assert [line.get_label() for line in losses.get_lines() if not line.get_label().startswith("_")] == ["loss_sup"]


def test_confusion_has_axis_titles_and_class_names():
    counts = np.array([[5, 1, 0], [0, 6, 0], [2, 0, 4]])
    ax = confusion_figure(counts, ("cat", "dog", "eel")).axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted class", "true class")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["cat", "dog", "eel"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["cat", "dog", "eel"]
    assert "15/18 correct" in ax.get_title()
    cells = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts}
    assert cells[(2, 0)] == "2" and cells[(0, 1)] == "1"  # row = true, column = predicted


def test_pngs_are_images_and_byte_stable():
    png = curves_png(HISTORY, 3, "ssgan")
    assert Image.open(io.BytesIO(png)).size == (1000, 400)
    assert curves_png(HISTORY, 3, "ssgan") == png  # no timestamp: a rerun leaves DVC and git unchanged
    assert confusion_png(np.eye(2, dtype=int), ("a", "b"))[:4] == b"\x89PNG"


@pytest.mark.parametrize("mode", ["ssgan", "supervised"])
def test_train_outputs_show_samples_only_of_a_trained_generator(tiny_config, mode):
    from ssgan.training.checkpoint import DataMeta, model_from_payload, model_payload
    from ssgan.driver.launch import TrainOutputs, output_files
    from ssgan.training.models import build_models

    cfg = dataclasses.replace(tiny_config, train=dataclasses.replace(tiny_config.train, mode=mode, sample_rows=2))
    meta = DataMeta((1, 8, 8), 10, tuple(str(i) for i in range(10)), "digits")
    d, g = build_models(cfg.model, meta.image_shape, meta.num_classes)
    history = [{"epoch": 1, "step": 5, "val_error": 0.5, "loss_sup": 1.0}]
    state = {"best": model_payload(cfg, meta, d, g, 1, 0.5), "history": history}
    outputs = TrainOutputs(*(Path(n) for n in ("model.pt", "train.csv", "samples.png", "curves.png")))
    samples = Image.open(io.BytesIO(output_files(cfg, state, model_from_payload(state["best"]), outputs)[outputs.samples]))
    # 2 rows x 10 columns of 8x8 samples with 1-pixel gaps, at 4x; the note: a 4 x 1 inch figure at 100 dpi.
    assert samples.size == ((4 * (10 * 9 + 1), 4 * (2 * 9 + 1)) if mode == "ssgan" else (400, 100))
