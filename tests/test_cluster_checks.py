"""The pieces that let a cluster share no disk, one at a time: the data's content digest and its check
on a rank, the code digest, functions that reach a node without ssgan, the storage and tracking
checks, and train.resources_per_worker. The whole cluster runs in tests/test_no_shared_disk.py."""
from __future__ import annotations

import dataclasses
import http.server
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from ssgan.config import ConfigError, from_mapping
from ssgan.data.identity import content_digest
from ssgan.data.parquet import Split
from ssgan.driver.cluster import ClusterError, _runtime_env, check_storage, quiet_worker_notices
from ssgan.driver.nodes import node_report
from ssgan.tracking.server import TrackingError, check_server
from ssgan.util.code import package_digest, package_dir
from tests.conftest import TINY_PARAMS


def _split(labels=True) -> Split:
    images = np.arange(4 * 8 * 8, dtype=np.uint8).reshape(4, 8, 8, 1)
    return Split(images, np.array([0, 1, 2, 1]) if labels else None, {"num_classes": 3, "shape": [8, 8, 1], "class_names": ["a", "b", "c"], "source": "t"})


def test_content_digest_sees_every_pixel_label_and_key():
    base = _split()
    assert content_digest(base) == content_digest(_split())
    pixel = base.images.copy()
    pixel[3, 7, 7, 0] ^= 1
    changed = [dataclasses.replace(base, images=pixel), dataclasses.replace(base, labels=np.array([0, 1, 2, 2])),
               dataclasses.replace(base, meta={**base.meta, "num_classes": 4}), _split(labels=False),
               dataclasses.replace(base, images=base.images.reshape(4, 8, 1, 8))]
    digests = {content_digest(s) for s in changed} | {content_digest(base)}
    assert len(digests) == len(changed) + 1


def test_a_rank_refuses_data_that_is_not_the_runs(ray_local):
    from ssgan.driver.data_refs import DataIdentityError, ShippedSplits, fetch, put_split

    part = put_split("labeled.parquet", _split())
    assert content_digest(fetch(part)) == part.digest
    forged = dataclasses.replace(part, digest="0" * 32)  # what a rank would see if the object were other rows
    with pytest.raises(DataIdentityError, match="labeled.parquet: the rows this worker received .* are not the ones"):
        fetch(forged)
    shipped = ShippedSplits(labeled=part, validation=part, shards=(put_split("unlabeled shard 1/1", _split(labels=False)),))
    assert shipped.worker_data(0, 1).unlabeled_total == 4
    with pytest.raises(ClusterError, match="shipped as 1 shard"):
        shipped.worker_data(0, 2)


def test_a_worker_with_other_code_refuses_to_train(ray_local):
    from ssgan.driver.worker import check_code

    check_code(package_digest())
    with pytest.raises(ClusterError, match=r"differs from the driver's \(digest 0+\).*SSGAN_SHIP_CODE=1"):
        check_code("0" * 32)


@pytest.mark.parametrize("function, args", [(node_report, (None,)), (quiet_worker_notices, ())])
def test_functions_sent_to_nodes_run_where_ssgan_is_not_installed(function, args):
    """Pickled by value: a process that cannot import ssgan loads and runs them."""
    from ray import cloudpickle

    blob = cloudpickle.dumps(function)
    code = ("import pickle, sys\n"
            "sys.modules['ssgan'] = None  # as on a node without ssgan: any import of it fails\n"
            "f = pickle.loads(sys.stdin.buffer.read())\n"
            f"print(repr(f(*{args!r})))\n")
    out = subprocess.run([sys.executable, "-c", code], input=blob, capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr.decode()
    if function is node_report:
        assert "'digest': None" in out.stdout.decode()


def test_shipped_code_is_the_package_itself():
    env = _runtime_env({}, ship_code=True)
    assert env["py_modules"] == [str(package_dir())] and "__pycache__" in env["excludes"]
    assert "py_modules" not in _runtime_env({})


def test_unreachable_tracking_server_is_one_line_in_seconds():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(TrackingError, match=f"MLFLOW_TRACKING_URI=http://127.0.0.1:{port}: no MLflow tracking server answers"):
        check_server(f"http://127.0.0.1:{port}", timeout_s=5)
    assert time.monotonic() - started < 30
    check_server("sqlite:///nowhere/mlflow.db")  # a local store has nothing to reach


def test_a_server_that_is_not_mlflow_is_named():
    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_error(404)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(TrackingError, match="answered HTTP 404; is this an MLflow tracking server"):
            check_server(f"http://user:secret@127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()


def test_a_server_that_refuses_the_credentials_is_named():
    class Guarded(http.server.BaseHTTPRequestHandler):
        def _answer(self):
            if self.path == "/health":
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"OK")
            else:
                self.send_response(401)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"You are not authenticated.")

        do_GET = do_POST = _answer

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Guarded)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        started = time.monotonic()
        with pytest.raises(TrackingError, match="the tracking server refused ssgan .*MLFLOW_TRACKING_USERNAME"):
            check_server(f"http://127.0.0.1:{server.server_port}")
        assert time.monotonic() - started < 30  # 401 is not retried
    finally:
        server.shutdown()


def test_storage_bucket_that_does_not_exist_is_one_line(monkeypatch):
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://{host}:{port}",
                       "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(key, value)
    try:
        with pytest.raises(ClusterError, match="s3://no-such-bucket/runs: cannot write the Ray Train storage .*bucket"):
            check_storage("s3://no-such-bucket/runs")
        import boto3

        boto3.client("s3").create_bucket(Bucket="ssgan-ok")
        check_storage("s3://ssgan-ok/runs")
        assert [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="ssgan-ok").get("Contents", [])
                if not o["Key"].endswith("/")] == []  # the write check cleans up after itself
    finally:
        server.stop()


@pytest.mark.parametrize("train, message", [
    ({"resources_per_worker": {"GPU": 1}}, "train.resources_per_worker.GPU: got 1.0; allowed: > 0 with use_gpu: true"),
    ({"resources_per_worker": {"CPU": -1}}, "train.resources_per_worker.CPU: got -1.0; allowed: a number >= 0"),
    ({"resources_per_worker": [1]}, "train.resources_per_worker: got [1]; allowed: a mapping of resource names"),
    ({"resources_per_worker": {"CPU": 0}}, "train.resources_per_worker: got {'CPU': 0.0}; allowed: at least one"),
    ({"accelerator_type": "H100"}, "train.accelerator_type: got 'H100'; allowed: null, or a Ray accelerator type"),
])
def test_bad_worker_resources_are_one_line(train, message):
    with pytest.raises(ConfigError) as err:
        from_mapping({**TINY_PARAMS, "train": {**TINY_PARAMS["train"], **train}})
    assert str(err.value).startswith(message)


def test_worker_resources_default_and_pass_through():
    cfg = from_mapping({**TINY_PARAMS, "train": {**TINY_PARAMS["train"], "resources_per_worker": {"CPU": 0.5, "big": 1}}})
    assert cfg.train.worker_resources() == {"CPU": 0.5, "big": 1.0}
    assert from_mapping(TINY_PARAMS).train.worker_resources() == {"CPU": 1.0}
    gpu = from_mapping({**TINY_PARAMS, "train": {**TINY_PARAMS["train"], "use_gpu": True, "accelerator_type": "H100"}})
    assert gpu.train.worker_resources() == {"GPU": 1.0} and gpu.train.accelerator_type == "H100"


def test_a_resource_the_cluster_lacks_is_one_line(ray_local):
    from ssgan.driver.cluster import check_resources

    with pytest.raises(ClusterError, match=r"train.resources_per_worker.gpu_node: 2 worker\(s\) x 1 needs 2; the Ray "
                                           r"cluster has 0: start nodes with `ray start --resources"):
        check_resources(2, False, {"CPU": 1, "gpu_node": 1})
    check_resources(1, False, {"CPU": 1})


def test_ship_code_setting(monkeypatch, tmp_path):
    from pipelines.params import cluster

    monkeypatch.delenv("SSGAN_SHIP_CODE", raising=False)
    assert not cluster(tmp_path).ship_code
    monkeypatch.setenv("SSGAN_SHIP_CODE", "1")
    assert cluster(tmp_path).ship_code
    monkeypatch.setenv("SSGAN_SHIP_CODE", "yes please")
    with pytest.raises(ConfigError, match="SSGAN_SHIP_CODE='yes please': use 1"):
        cluster(tmp_path)
    assert os.environ["SSGAN_SHIP_CODE"] == "yes please"  # read, never changed
