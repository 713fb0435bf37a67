"""A registry anyone can write must not run code on the user who loads from it: ssgan loads only the
weights-only payload of a model version; a planted pickle runs nothing and ends in one line."""
import os
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from pipelines.cli import main
from ssgan.tracking import registry
from ssgan.tracking import runs as tracking
from ssgan.tracking.serving import PAYLOAD, load_classifier
from ssgan.training.checkpoint import DataMeta, LoadedModel, ModelFileError
from ssgan.training.models import build_models


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # what an attacker's pickle does when it is loaded
        return (os.system, (f"touch {self.marker}",))


def _registered(tmp_path, tiny_config, class_names):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ref = tracking.start_run(uri, "ssgan-test", {}, tmp_path / "mlruns")
    torch.manual_seed(0)
    d, g = build_models(tiny_config.model, (1, 8, 8), len(class_names))
    model = LoadedModel(tiny_config, DataMeta((1, 8, 8), len(class_names), tuple(class_names), "digits"), d.eval(), g.eval(), 2, 1.0)
    registry.register_models(ref, registry.log_models(ref, model, ["torch"]), {"classifier": "c", "generator": "g"}, {}, "md5")
    tracking.end_run(ref)
    return uri, d


def _payloads(tmp_path):
    found = [p for p in (tmp_path / "mlruns").rglob(PAYLOAD) if p.is_file()]
    assert found, "the logged models hold no payload"
    return found


def test_a_planted_pickle_runs_nothing_and_ends_in_one_line(tmp_path, tiny_config, monkeypatch, capsys):
    uri, d = _registered(tmp_path, tiny_config, [str(i) for i in range(10)])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    image = tmp_path / "x.png"
    Image.fromarray(np.full((8, 8), 200, np.uint8)).save(image)
    with tracking.using_tracking_uri(uri):  # the untouched version serves what D computes
        served = load_classifier("models:/c/1")
    pixels = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 1), dtype=np.uint8)
    expected = torch.softmax(d(torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255)[0], 1).detach().numpy()
    np.testing.assert_allclose(served.probabilities(pixels), expected, rtol=1e-5, atol=1e-6)

    marker = tmp_path / "pwned"
    for f in _payloads(tmp_path):  # what someone with write access to the artifact store could do
        f.write_bytes(pickle.dumps(_Exploit(marker)))
    capsys.readouterr()  # what registering and the first load printed is not the commands' output
    for argv in (["predict", "--model", "models:/c/1", str(image)], ["sample", "--model", "models:/g/1", "--out", "s.png"],
                 ["suggest", "--model", "models:/c/1"]):  # `fid` reads a generator URI as `sample` does
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 1, argv
        err = capsys.readouterr().err.strip().splitlines()
        uri = argv[argv.index("--model") + 1]
        assert len(err) == 1 and uri in err[0] and "not a weights-only ssgan payload" in err[0], (argv, err)
        assert not marker.exists(), argv
    assert not (tmp_path / "s.png").exists() and not (tmp_path / "suggest").exists()


def test_a_version_without_the_payload_is_refused(tmp_path, tiny_config):
    uri, _ = _registered(tmp_path, tiny_config, [str(i) for i in range(10)])
    for f in _payloads(tmp_path):
        f.unlink()  # as a version logged by an older ssgan or another tool
    with tracking.using_tracking_uri(uri), pytest.raises(ModelFileError, match="not an ssgan weights-only model"):
        load_classifier("models:/c/1")


def test_class_names_of_any_size_travel_with_the_model(tmp_path, tiny_config):
    names = [f"class-{i}-" + "x" * 40 for i in range(700)]  # ~33 kB: four times what an MLflow tag holds
    uri, _ = _registered(tmp_path, tiny_config, names)
    with tracking.using_tracking_uri(uri):
        assert load_classifier("models:/c/1").class_names == names


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # starts an MLflow scoring server (a process of its own)
def test_mlflow_models_serve_answers_class_names_and_probabilities(tmp_path, tiny_config):
    import json
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.request

    names = [f"digit {i}" for i in range(10)]
    uri, d = _registered(tmp_path, tiny_config, names)
    registry.set_version_aliases(uri, "c", "1", ["champion"])
    port = _free_port()
    # as with an activated venv: the server runs `uvicorn` from PATH
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}"}
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/c@champion",
                               "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)],
                              cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    pixels = np.random.default_rng(1).integers(0, 256, (3, 8, 8, 1), dtype=np.uint8)
    request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", json.dumps({"inputs": pixels.tolist()}).encode(),
                                     {"Content-Type": "application/json"})
    try:
        for _ in range(600):  # up to ~5 min on a loaded machine; no wall-clock assert, just a bound
            if server.poll() is not None:
                pytest.fail(f"mlflow models serve exited: {server.stderr.read()[-2000:]}")
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    answer = json.loads(response.read())
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.5)
        else:
            pytest.fail("mlflow models serve never answered")
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    rows = answer["predictions"]
    expected = torch.softmax(d(torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255)[0], 1).detach().numpy()
    assert [row["class"] for row in rows] == [names[i] for i in expected.argmax(1)]
    np.testing.assert_allclose([row["probabilities"] for row in rows], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose([row["probability"] for row in rows], expected.max(1), rtol=1e-5, atol=1e-6)
