import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import TINY_PARAMS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import active  # noqa: E402
import ssl_gain  # noqa: E402
import step_speed  # noqa: E402


def test_ssl_gain_runs_both_modes_and_prints_the_ratio(tmp_path, capfd):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(TINY_PARAMS))
    ssl_gain.main(["--params", str(params), "--seeds", "1", "--first-seed", "4", "--jobs", "1", "--set", "train.epochs=2"])
    out, err = capfd.readouterr()  # fd-level: the runs print their progress from child processes
    assert "SSL gain on digits, 3 labels/class, 1 seeds (4-4); epochs=2" in out
    for mode in ("ssgan", "supervised"):
        lines = [line.split() for line in err.splitlines()]
        assert [w[4] for w in lines if w[:4] == ["seed", "4", mode, "epoch"]] == ["1/2", "2/2"]
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
    assert [(r[1].strip(), r[2].strip()) for r in rows] == [("ssgan", "eager"), ("supervised", "eager")]
    assert all(float(r[3]) > 0 for r in rows)


def test_step_speed_needs_a_shape_for_user_images(tmp_path):
    import pytest

    from ssgan.config import DataConfig

    with pytest.raises(SystemExit, match="set data.image_size and data.channels"):
        step_speed.image_shape(DataConfig(source="idx", path=str(tmp_path)))


def test_ssl_gain_refuses_an_empty_seed_range(tmp_path):
    import pytest

    with pytest.raises(SystemExit, match="need at least one seed"):
        ssl_gain.main(["--seeds", "0"])


def test_step_speed_refuses_a_cuda_graph_on_the_cpu(tmp_path):
    import pytest

    with pytest.raises(SystemExit, match="--variant graph needs --device cuda"):
        step_speed.main(["--variant", "graph"])


def test_active_compares_each_rule_with_random_seed_by_seed(tmp_path, capfd):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(TINY_PARAMS))
    active.main(["--params", str(params), "--seeds", "2", "--epochs", "1", "--steps", "2", "--jobs", "1"])
    out = capfd.readouterr().out
    rows = {line.split("|")[1].strip(): line.split("|")[2:] for line in out.splitlines() if line.startswith("| ")}
    assert set(rows) == {"rule", "start", "random", "entropy", "margin", "fake"}
    for rule in ("entropy", "margin", "fake"):
        per_seed = [float(e) for e in rows[rule][2].split(",")]
        random = [float(e) for e in rows["random"][2].split(",")]
        diffs = [float(d) for d in rows[rule][3].split("(")[1].rstrip(") ").split(",")]
        assert diffs == pytest.approx([a - b for a, b in zip(per_seed, random)], abs=1e-4)
    vals = {rule: float(rows[rule][0]) for rule in ("random", "entropy", "margin", "fake")}
    chosen = out.split("chosen on val (lowest mean val error): ")[1].split()[0]
    assert vals[chosen] == min(vals.values())  # the choice reads val, never test


def test_ssl_gain_arms_zero_the_terms_only_in_the_faithful_arms():
    params = {**TINY_PARAMS, "train": {**TINY_PARAMS["train"], "vat_weight": 1.0, "consistency_weight": 0.1,
                                       "pseudo_label_weight": 1.0, "augment": True}}
    faithful, with_term = ssl_gain.arm_params(params, "ssgan"), ssl_gain.arm_params(params, "supervised+term")
    assert faithful["train"]["mode"] == "ssgan" and faithful["train"]["vat_weight"] == 0.0
    assert faithful["train"]["consistency_weight"] == 0.0 and faithful["train"]["entropy_weight"] == 0.0
    assert faithful["train"]["pseudo_label_weight"] == 0.0 and faithful["train"]["augment"] is False
    assert with_term["train"]["mode"] == "supervised" and with_term["train"]["vat_weight"] == 1.0
    assert with_term["train"]["pseudo_label_weight"] == 1.0 and with_term["train"]["augment"] is True
    assert params["train"]["vat_weight"] == 1.0  # the base params are not mutated


def test_bootstrap_ratio_known_values():
    assert ssl_gain.bootstrap_ratio([0.2, 0.4, 0.3], [0.1, 0.2, 0.15]) == pytest.approx((2.0, 2.0))
    lo, hi = ssl_gain.bootstrap_ratio([0.1, 0.3], [0.2, 0.2], draws=5000)
    assert lo == pytest.approx(0.5) and hi == pytest.approx(1.5)  # resamples: (0.1, 0.1), (0.3, 0.3), mixed


def test_ssl_gain_runs_four_arms_with_a_term(tmp_path, capfd):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(TINY_PARAMS))
    ssl_gain.main(["--params", str(params), "--seeds", "1", "--jobs", "1", "--set", "train.epochs=1",
                   "--term", "train.consistency_weight=0.5", "--out", str(tmp_path / "runs.json")])
    out, _ = capfd.readouterr()
    assert "term: consistency_weight=0.5" in out
    for arm in ("supervised", "supervised+term", "ssgan", "ssgan+term"):
        assert f"| {arm} |" in out
    assert "ratio ssgan+term / supervised+term = " in out
    import json
    runs = json.loads((tmp_path / "runs.json").read_text())["results"]
    assert sorted(r["arm"] for r in runs) == ["ssgan", "ssgan+term", "supervised", "supervised+term"]


def _no_terms():
    """TINY_PARAMS with the default recipe's consistency term off: only the two faithful arms apply."""
    return {**TINY_PARAMS, "train": {**TINY_PARAMS["train"], "consistency_weight": 0.0}}


def test_ssl_gain_term_arms_need_a_term(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(_no_terms()))
    with pytest.raises(SystemExit, match="the \\+term arms need a term"):
        ssl_gain.main(["--params", str(params), "--arms", "ssgan+term"])
    with pytest.raises(SystemExit, match="--arms 'gan': unknown arm gan"):
        ssl_gain.main(["--params", str(params), "--arms", "gan"])


def test_step_speed_times_the_term_arms(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(TINY_PARAMS))
    step_speed.main(["--params", str(params), "--steps", "2", "--warmup", "1", "--term", "train.vat_weight=1"])
    out = capsys.readouterr().out
    modes = [line.split("|")[1].strip() for line in out.splitlines() if line.startswith("| s")]
    assert modes == ["ssgan", "supervised", "ssgan+term", "supervised+term"]


def test_ssl_gain_prints_the_table_from_saved_runs(tmp_path, capsys):
    import json
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(_no_terms()))
    run = {"seconds": 1.0, "peak_rss_mib": 1.0, "best_epoch": 1, "val_error": 0.1}
    (tmp_path / "a.json").write_text(json.dumps({"results": [
        {**run, "arm": "ssgan", "mode": "ssgan", "seed": s, "test_error": 0.1} for s in (0, 1)]}))
    (tmp_path / "b.json").write_text(json.dumps({"results": [
        {**run, "arm": "supervised", "mode": "supervised", "seed": s, "test_error": 0.2} for s in (0, 1, 2)]}))
    ssl_gain.main(["--params", str(params), "--seeds", "2", "--from", str(tmp_path / "a.json"), "--from", str(tmp_path / "b.json")])
    out = capsys.readouterr().out
    assert "| ssgan | 10.00 % ± 0.00 | 10.00, 10.00 |" in out
    assert "ratio ssgan / supervised = 0.50 (95 % bootstrap over seeds 0.50-0.50)" in out
    with pytest.raises(SystemExit, match="no saved run for \\(arm, seed\\) \\('ssgan', 2\\)"):
        ssl_gain.main(["--params", str(params), "--seeds", "3", "--from", str(tmp_path / "a.json"), "--from", str(tmp_path / "b.json")])


@pytest.mark.slow  # starts a local Ray
def test_data_path_prints_each_way(capsys):
    import data_path

    data_path.main(["--pool", "2000", "--steps", "3"])
    out = capsys.readouterr().out
    rows = [line.split("|") for line in out.splitlines() if line.startswith(("| digits", "| synthetic"))]
    assert [(r[1].strip(), r[2].strip()) for r in rows] == [
        (data, way) for data in ("digits (params.yaml)", "synthetic 2,000 x 28x28") for way in data_path.WAYS]
    assert all(float(r[4].replace(",", "")) > 0 and float(r[7]) > 0 for r in rows)
