"""Issue 31's small reproductions through the command line (`ssgan predict`, `fid`, `add-labels`): each ends
in one line and exit 1, or does what `ssgan predict --help` and docs/registry.md say."""
import io
import os
import signal
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipelines.cli import main
from ssgan.config import from_mapping
from ssgan.training.checkpoint import DataMeta, atomic_save, model_payload
from ssgan.training.models import build_models
from tests.conftest import TINY_PARAMS


def one_line_error(capsys, argv, *fragments):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"ssgan {argv[0]}: error: "), lines
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def model_file(tmp_path) -> Path:
    """An untrained digits classifier file: predict needs its shape and class names, not its accuracy."""
    cfg = from_mapping(TINY_PARAMS)
    torch.manual_seed(0)
    d, g = build_models(cfg.model, (1, 8, 8), 10)
    path = tmp_path / "models" / "model.pt"
    atomic_save(model_payload(cfg, DataMeta((1, 8, 8), 10, tuple("0123456789"), "digits"), d, g, 1, 0.5), path)
    return path


@pytest.fixture
def no_alarm():
    """A read that blocks (a FIFO) fails the test instead of hanging the suite."""
    def hung(*_):
        raise AssertionError("blocked reading a file")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def digit(inverted=False) -> np.ndarray:
    from sklearn.datasets import load_digits

    img = np.rint(load_digits().images[0] * (255 / 16)).astype(np.uint8)
    return 255 - img if inverted else img


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (its data is one tiny row): what a decompression bomb
    looks like before its pixels are decoded."""
    buf = io.BytesIO()
    Image.fromarray(np.zeros((1, 1), np.uint8)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


@pytest.mark.parametrize("size", [(9000, 9000), (10000, 10000), (20000, 20000)],
                         ids=["over ssgan's limit", "over Pillow's warning", "over Pillow's error"])
def test_an_image_over_the_pixel_limit_is_refused_unread(tmp_path, capsys, model_file, size):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_claiming(*size))
    one_line_error(capsys, ["predict", "--model", str(model_file), str(bomb)],
                   f"{bomb}: image of ", "more than the limit of 67,108,864", "--skip-bad")
    Image.fromarray(digit()).save(tmp_path / "ok.png")
    main(["predict", "--model", str(model_file), "--skip-bad", str(bomb), str(tmp_path / "ok.png")])
    out, err = capsys.readouterr()
    assert out.startswith(f"{tmp_path / 'ok.png'}\t") and len(out.splitlines()) == 1
    assert err.startswith(f"ssgan predict: skipped {bomb}: image of ") and "--skip-bad" not in err


def test_predict_reads_a_batch_at_a_time(tmp_path, capsys, model_file, monkeypatch):
    from ssgan.data import inputs
    from ssgan.tracking import serving

    for i in range(5):
        Image.fromarray(digit()).save(tmp_path / f"{i}.png")
    seen = []
    load = serving.load_classifier

    def recording(spec):
        model = load(spec)
        probabilities = model.probabilities
        model.probabilities = lambda images: seen.append(len(images)) or probabilities(images)
        return model

    monkeypatch.setattr(inputs, "BATCH_SIZE", 2)
    monkeypatch.setattr(serving, "load_classifier", recording)
    main(["predict", "--model", str(model_file), str(tmp_path)])
    assert seen == [2, 2, 1]
    assert [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()] == [str(tmp_path / f"{i}.png") for i in range(5)]


def test_a_fifo_or_folder_named_like_an_image_is_refused_or_skipped(tmp_path, capsys, model_file, no_alarm):
    folder = tmp_path / "in"
    folder.mkdir()
    os.mkfifo(folder / "x.png")
    (folder / "zero.png").symlink_to("/dev/zero")
    Image.fromarray(digit()).save(folder / "ok.png")
    one_line_error(capsys, ["predict", "--model", str(model_file), str(folder / "x.png")],
                   f"{folder / 'x.png'}: not a regular file", "--skip-bad")
    one_line_error(capsys, ["predict", "--model", str(model_file), str(folder / "zero.png")],
                   f"{folder / 'zero.png'}: not a regular file")
    main(["predict", "--model", str(model_file), "--skip-bad", str(folder)])
    out, err = capsys.readouterr()
    assert [line.split("\t")[0] for line in out.splitlines()] == [str(folder / "ok.png")]
    assert sorted(err.splitlines()) == [f"ssgan predict: skipped {folder / n}: not a regular file (a pipe, socket or "
                                        f"device); give image files" for n in ("x.png", "zero.png")]


def test_a_folder_named_like_an_image_inside_a_folder_is_walked(tmp_path, capsys, model_file):
    (tmp_path / "in" / "d.png").mkdir(parents=True)
    Image.fromarray(digit()).save(tmp_path / "in" / "d.png" / "ok.png")
    main(["predict", "--model", str(model_file), str(tmp_path / "in")])
    assert capsys.readouterr().out.split("\t")[0] == str(tmp_path / "in" / "d.png" / "ok.png")


def test_a_corrupt_image_names_skip_bad(tmp_path, capsys, model_file):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG not really")
    one_line_error(capsys, ["predict", "--model", str(model_file), str(tmp_path / "bad.png")],
                   f"{tmp_path / 'bad.png'}: not a decodable image", "--skip-bad skips such files")


def encoded(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def test_16_bit_and_float_images_keep_their_level():
    """By the type's range, never stretched per image: a faint 16-bit scan stays faint, as it would in 8 bits."""
    from ssgan.data.transform import decode

    faint = np.array([[1000, 65535], [0, 32896]], np.uint16)  # / 257: 3.89, 255, 0, 128
    assert decode(encoded(Image.fromarray(faint)), (2, 2, 1), True, "x")[..., 0].tolist() == [[4, 255], [0, 128]]
    assert decode(encoded(Image.fromarray(faint), "TIFF"), (2, 2, 1), True, "x")[..., 0].tolist() == [[4, 255], [0, 128]]
    very_faint = np.full((2, 2), 1000, np.uint16)  # was stretched to... nothing: lo == hi
    assert decode(encoded(Image.fromarray(very_faint)), (2, 2, 1), True, "x").max() == 4
    floats = np.array([[0.5, 2.0], [-1.0, 0.25]], np.float32)  # 0..1, clipped: 127.5 -> 128, 255, 0, 63.75 -> 64
    assert decode(encoded(Image.fromarray(floats), "TIFF"), (2, 2, 1), True, "x")[..., 0].tolist() == [[128, 255], [0, 64]]


def test_transparency_is_composited_onto_black_and_a_shape_only_in_alpha_stays_visible():
    from ssgan.data.transform import decode

    # Black ink whose shape is only its alpha: alpha is the intensity (255 opaque, 128 half).
    glyph = np.zeros((2, 2, 4), np.uint8)
    glyph[0, 0, 3], glyph[1, 1, 3] = 255, 128
    assert decode(encoded(Image.fromarray(glyph)), (2, 2, 1), True, "x")[..., 0].tolist() == [[255, 0], [0, 128]]
    assert decode(encoded(Image.fromarray(glyph[..., [0, 3]], "LA")), (2, 2, 1), True, "x")[..., 0].tolist() == [[255, 0], [0, 128]]
    # Several colours: composited onto black, colour x alpha / 255. (255, 0, 0) at alpha 128 -> (128, 0, 0),
    # whose L is 128 x 0.299 = 38.3 -> 38; (10, 20, 30) opaque -> L (2990 + 11740 + 3420) / 1000 = 18.15 -> 18.
    mixed = np.array([[[255, 0, 0, 128], [10, 20, 30, 255]], [[0, 0, 0, 0], [200, 200, 200, 255]]], np.uint8)
    assert decode(encoded(Image.fromarray(mixed)), (2, 2, 3), True, "x").tolist() == [
        [[128, 0, 0], [10, 20, 30]], [[0, 0, 0], [200, 200, 200]]]
    assert decode(encoded(Image.fromarray(mixed)), (2, 2, 1), True, "x")[..., 0].tolist() == [[38, 18], [0, 200]]
    # Fully opaque RGBA is the RGB image itself.
    opaque = np.dstack([np.full((2, 2, 3), 90, np.uint8), np.full((2, 2), 255, np.uint8)])
    assert decode(encoded(Image.fromarray(opaque)), (2, 2, 1), True, "x").max() == 90


def test_predict_says_what_it_expects(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "8-bit pixels (0..255" in text and "light digits on a dark background" in text


def test_a_dark_on_light_digit_is_warned_about_once(tmp_path, capsys, model_file):
    for name, inverted in (("ink0.png", True), ("ink1.png", True), ("ok.png", False)):
        Image.fromarray(digit(inverted)).save(tmp_path / name)
    main(["predict", "--model", str(model_file), "--data", str(tmp_path / "none"), str(tmp_path)])
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 3
    assert err.splitlines() == [err.strip()] and err.startswith(f"ssgan predict: warning: {tmp_path / 'ink0.png'}: mean pixel ")
    assert "light shapes on a dark background: invert it" in err and "(the digits data set)" in err
    main(["predict", "--model", str(model_file), str(tmp_path / "ok.png")])  # as the digits are stored: no warning
    assert capsys.readouterr().err == ""


def test_pixels_on_another_scale_are_warned_about_against_the_prepared_splits(tmp_path, capsys, model_file, prepared_dir):
    Image.fromarray((digit() // 16).astype(np.uint8)).save(tmp_path / "raw.png")  # 0..16, as load_digits gives them
    main(["predict", "--model", str(model_file), "--data", str(prepared_dir), str(tmp_path / "raw.png")])
    err = capsys.readouterr().err
    assert f"(the prepared splits in {prepared_dir})" in err and "scale it to 0..255" in err


def test_the_built_in_digits_range_holds_every_digit_and_no_inverted_one():
    from sklearn.datasets import load_digits

    from ssgan.data.input_stats import BUILTIN, MARGIN, image_means

    images = np.rint(load_digits().images * (255 / 16)).astype(np.uint8)  # as `prepare` stores them
    ref, means = BUILTIN["digits"], image_means(images)
    assert ref.lo == pytest.approx(means.min(), abs=0.05) and ref.hi == pytest.approx(means.max(), abs=0.05)
    assert image_means(255 - images).min() > ref.hi + MARGIN * (ref.hi - ref.lo)


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """A folder outside any project, with no tracking server configured."""
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    return cwd


def test_predict_outside_a_project_creates_no_mlflow_store(tmp_path, capsys, model_file, elsewhere):
    Image.fromarray(digit()).save(tmp_path / "ok.png")
    main(["predict", "--model", str(model_file), str(tmp_path / "ok.png")])
    assert capsys.readouterr().out.startswith(str(tmp_path / "ok.png"))
    one_line_error(capsys, ["predict", "--model", "models:/ssgan-digits-classifier@champion", str(tmp_path / "ok.png")],
                   "models:/ssgan-digits-classifier@champion: no MLflow store", "set MLFLOW_TRACKING_URI")
    assert list(elsewhere.iterdir()) == []  # no mlflow.db, no mlruns/


@pytest.mark.parametrize("uri,shown", [
    ("http://user:pass@host:5000/api?token=abc&x=1", "http://***@host:5000/api?token=***&x=1"),
    ("https://ghp_secret@example.com/mlflow", "https://***@example.com/mlflow"),
    ("s3://bucket/ray?access_key=AK&secret_key=SK&endpoint_override=127.0.0.1:9000",
     "s3://bucket/ray?access_key=***&secret_key=***&endpoint_override=127.0.0.1:9000"),
    ("http://h/?X-Amz-Signature=zz&X-Amz-Date=1", "http://h/?X-Amz-Signature=***&X-Amz-Date=1"),
    ("sqlite:////work/main/mlflow.db", "sqlite:////work/main/mlflow.db"),
    ("databricks://profile", "databricks://profile"),
])
def test_credentials_in_uris_are_redacted(uri, shown):
    from ssgan.util.redact import redact_text, redact_uri

    assert redact_uri(uri) == shown
    assert redact_text(f"no MLflow run in {uri} wrote models/model.pt") == f"no MLflow run in {shown} wrote models/model.pt"


def test_error_lines_never_show_credentials(capsys, monkeypatch):
    import pipelines.predict
    from ssgan.data.catalog import DataSourceError

    def failing(args):
        raise DataSourceError("models:/m@champion: no such MLflow model at http://alice:hunter2@127.0.0.1:5000/?token=t0k")

    monkeypatch.setattr(pipelines.predict, "run", failing)
    line = one_line_error(capsys, ["predict", "x.png"], "http://***@127.0.0.1:5000/?token=***")
    assert "hunter2" not in line and "alice" not in line and "t0k" not in line


def test_fid_on_a_one_image_folder_is_one_line(tmp_path, capsys):
    from ssgan.quality.feature_nets import ReferenceClassifier, reference_payload

    torch.manual_seed(0)
    torch.save(reference_payload(ReferenceClassifier((1, 8, 8), 10)), tmp_path / "reference.pt")
    for folder, n in (("one", 1), ("many", 3)):
        (tmp_path / folder).mkdir()
        for i in range(n):
            Image.fromarray(digit()).save(tmp_path / folder / f"{i}.png")
    one_line_error(capsys, ["fid", str(tmp_path / "one"), str(tmp_path / "many"), "--reference", str(tmp_path / "reference.pt")],
                   f"{tmp_path / 'one'}: 1 image(s); FID needs at least 2 per set")


def test_add_labels_reads_an_excel_csv(tmp_path, capsys, prepared_dir):
    import pyarrow.parquet as pq

    row = int(pq.read_table(prepared_dir / "unlabeled.parquet", columns=["index"]).column("index")[0].as_py())
    params = tmp_path / "params.yaml"
    params.write_text(f"data:\n  source: digits\n  extra_labels: {tmp_path / 'extra.csv'}\n")
    (tmp_path / "labels.csv").write_bytes(f"\ufeffrow_id,label\r\n{row},3\r\n".encode())  # Excel's "CSV UTF-8"
    main(["add-labels", str(tmp_path / "labels.csv"), "--params", str(params), "--data", str(prepared_dir)])
    assert (tmp_path / "extra.csv").read_text() == f"row_id,label\n{row},3\n"
