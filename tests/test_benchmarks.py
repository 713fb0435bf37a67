import sys
from pathlib import Path

import yaml

from tests.conftest import TINY_PARAMS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import ssl_gain  # noqa: E402


def test_ssl_gain_runs_both_modes_and_prints_the_ratio(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(TINY_PARAMS))
    ssl_gain.main(["--params", str(params), "--seeds", "1", "--jobs", "1", "--set", "train.epochs=1"])
    out = capsys.readouterr().out
    assert "SSL gain on digits, 3 labels/class, 1 seeds; epochs=1" in out
    assert "| ssgan |" in out and "| supervised |" in out
    ratio = float(out.rsplit("ratio ssgan / supervised = ", 1)[1].split()[0])
    assert ratio > 0
