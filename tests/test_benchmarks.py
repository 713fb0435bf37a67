import sys
from pathlib import Path

import yaml

from tests.conftest import TINY_PARAMS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import ssl_gain  # noqa: E402
import step_speed  # noqa: E402


def test_ssl_gain_runs_both_modes_and_prints_the_ratio(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(TINY_PARAMS))
    ssl_gain.main(["--params", str(params), "--seeds", "1", "--jobs", "1", "--set", "train.epochs=1"])
    out = capsys.readouterr().out
    assert "SSL gain on digits, 3 labels/class, 1 seeds; epochs=1" in out
    assert "| ssgan |" in out and "| supervised |" in out
    ratio = float(out.rsplit("ratio ssgan / supervised = ", 1)[1].split()[0])
    assert ratio > 0


def test_step_speed_times_both_modes(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(TINY_PARAMS))
    step_speed.main(["--params", str(params), "--steps", "2", "--warmup", "1"])
    out = capsys.readouterr().out
    assert "arch=mlp image=1x8x8 batch=16" in out
    rows = [line.split("|") for line in out.splitlines() if line.startswith(("| ssgan", "| supervised"))]
    assert [r[1].strip() for r in rows] == ["ssgan", "supervised"]
    assert all(float(r[2]) > 0 for r in rows)


def test_step_speed_needs_a_shape_for_user_images(tmp_path):
    import pytest

    from ssgan.config import DataConfig

    with pytest.raises(SystemExit, match="set data.image_size and data.channels"):
        step_speed.image_shape(DataConfig(source="idx", path=str(tmp_path)))
