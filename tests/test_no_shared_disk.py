"""A cluster that shares no disk, on this machine: a Ray head, and a worker node in its own mount
namespace where the project folder and the driver's data folder are empty tmpfs mounts (so ssgan's
editable install is gone too: the driver ships its ssgan with SSGAN_SHIP_CODE=1); storage is an
S3-compatible server (moto, as Ray's own tests use) and tracking an `mlflow server`, both on
127.0.0.1. The training workers are forced onto the hidden node by a custom resource.

One cluster for the module: a 2-worker training that loses a worker (SIGKILL) after a checkpoint
reached the bucket and goes on from it, then loses its driver, whose rerun resumes from the bucket
and finishes with every epoch logged once; a 2-trial sweep with its
parent and child runs on the server; evaluate, promote and predict against the server; and the
refusals a new cluster user meets (a node without ssgan, storage the node cannot see, a bucket
that does not exist, a server that does not answer), each one line before training.
"""
from __future__ import annotations

import csv
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import TINY_PARAMS

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "ssgan-runs"
pytestmark = pytest.mark.slow

WORKER_RESOURCE = "ssgan_hidden_node"
CLUSTER_TRAIN = {**TINY_PARAMS["train"], "epochs": 8, "steps_per_epoch": 150, "max_failures": 1,
                 "resources_per_worker": {"CPU": 1, WORKER_RESOURCE: 1}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _can_unshare() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True)
    return probe.returncode == 0


def _wait(predicate, timeout_s: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: process exited {proc.returncode}: {log.read_text()[-3000:] if log else ''}")
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout_s} s{': ' + log.read_text()[-3000:] if log else ''}")


def _http_ok(url: str) -> bool:
    import requests

    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _node_script(hidden: list[Path], venv: Path, view: Path, ray_args: list[str]) -> str:
    """Inside the new mount namespace: keep a view of the virtualenv (it may live in the project),
    hide each folder behind an empty tmpfs, then run the Ray node with the view's python."""
    lines = ["set -e"]
    python = Path(sys.executable)
    if any(venv == h or h in venv.parents for h in hidden):
        lines += [f"mkdir -p '{view}'", f"mount --bind '{venv}' '{view}'"]
        python = view / Path(sys.executable).relative_to(venv) if Path(sys.executable).is_relative_to(venv) else python
    lines += [f"mount -t tmpfs tmpfs '{h}'" for h in hidden]
    lines.append("exec " + " ".join(f"'{a}'" for a in [str(python), "-m", "ray.scripts.scripts", "start", *ray_args]))
    return "\n".join(lines) + "\n"


class Cluster:
    def __init__(self, base: Path, prepared: Path) -> None:
        self.base, self.procs = base, []
        self.project = base / "project"
        shutil.copytree(prepared, self.project / "data" / "prepared")
        params = {**TINY_PARAMS, "train": CLUSTER_TRAIN,
                  "tune": {"space": {"train.lr": {"grid": [0.003, 0.01]}}, "num_samples": 1, "max_concurrent_trials": 2,
                           "workers_per_trial": 1, "epochs": 2, "scheduler": "fifo"}}
        (self.project / "params.yaml").write_text(yaml.safe_dump(params))
        self.hidden = [ROOT, self.project]

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        self.s3 = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
        self.s3.start()
        host, port = self.s3.get_host_and_port()
        self.aws = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                    "AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_EC2_METADATA_DISABLED": "true"}
        self.bucket().create_bucket(Bucket=BUCKET)
        token = secrets.token_hex(32)
        clean = {k: v for k, v in os.environ.items()
                 if not k.startswith(("RAY_", "MLFLOW_", "SSGAN_", "AWS_")) and k != "DVC_ROOT"}
        # PYTHONPATH: the head imports the ssgan under test (the hidden node cannot see it: it gets the shipped one).
        self.env = {**clean, **self.aws, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token, "PYTHONPATH": str(ROOT),
                    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        mlflow_port = _free_port()
        self.tracking = f"http://127.0.0.1:{mlflow_port}"
        (self.base / "server").mkdir()
        self._spawn("mlflow", [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(mlflow_port),
                               "--backend-store-uri", f"sqlite:///{self.base / 'server' / 'mlflow.db'}",
                               "--artifacts-destination", str(self.base / "server" / "artifacts"), "--workers", "1"],
                    cwd=self.base / "server")
        self.gcs = f"127.0.0.1:{_free_port()}"
        common = ["--disable-usage-stats", "--block", "--node-ip-address", "127.0.0.1",
                  "--dashboard-agent-listen-port", None, "--metrics-export-port", None]
        head = ["--head", "--port", self.gcs.split(":")[1], "--num-cpus", "1", "--dashboard-port", None,
                "--ray-client-server-port", None, *common]
        self._spawn("head", [sys.executable, "-m", "ray.scripts.scripts", "start", *self._ports(head)], cwd=self.base)
        node_args = self._ports(["--address", self.gcs, "--num-cpus", "2", "--resources", json.dumps({WORKER_RESOURCE: 2}),
                                 *common])
        venv = Path(sys.prefix)
        script = self.base / "node.sh"
        script.write_text(_node_script(self.hidden, venv, self.base / "venv-view", node_args))
        self._spawn("node", ["unshare", "-m", "--propagation", "private", "bash", str(script)], cwd=self.base)
        self.node_pid = self.procs[-1][1].pid
        _wait(lambda: _http_ok(f"{self.tracking}/health"), 120, "mlflow server", *self.procs[0][1:])
        _wait(lambda: self.nodes() == 2, 180, "two Ray nodes")

    @staticmethod
    def _ports(args: list) -> list[str]:
        return [str(_free_port()) if a is None else a for a in args]

    def _spawn(self, name: str, cmd: list[str], cwd: Path) -> None:
        log = self.base / f"{name}.log"
        proc = subprocess.Popen(cmd, cwd=cwd, env=self.env, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs.append((name, proc, log))

    def bucket(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.aws["AWS_ENDPOINT_URL"], aws_access_key_id="testing",
                            aws_secret_access_key="testing", region_name="us-east-1")

    def objects(self, prefix: str = "") -> list[str]:
        pages = self.bucket().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def driver_env(self, **extra: str) -> dict[str, str]:
        return {**self.env, "RAY_ADDRESS": self.gcs, "MLFLOW_TRACKING_URI": self.tracking,
                "SSGAN_RAY_STORAGE": f"s3://{BUCKET}/ray", "SSGAN_SHIP_CODE": "1", "PYTHONPATH": str(ROOT), **extra}

    def ssgan(self, *args: str, timeout: float = 600, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "ssgan", *args], cwd=self.project, env=self.driver_env(**extra),
                              capture_output=True, text=True, timeout=timeout)

    def ray_python(self, code: str) -> str:
        """Run `code` as a Ray driver on this cluster; returns its stdout."""
        proc = subprocess.run([sys.executable, "-c", code], cwd=self.base, env=self.driver_env(),
                              capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    def nodes(self) -> int:
        code = f"import ray; ray.init(address='{self.gcs}', log_to_driver=False); print(sum(n['Alive'] for n in ray.nodes()))"
        proc = subprocess.run([sys.executable, "-c", code], cwd=self.base, env=self.driver_env(), capture_output=True,
                              text=True, timeout=120)
        return int(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 and proc.stdout.strip() else 0

    def hidden_listing(self) -> dict[str, list[str]]:
        """What the hidden node sees at the driver's paths (a task pinned to it by its resource)."""
        code = ("import json, os, ray\n"
                f"ray.init(address='{self.gcs}', log_to_driver=False)\n"
                f"f = ray.remote(num_cpus=0, resources={{'{WORKER_RESOURCE}': 0.01}})(lambda ps: {{p: os.listdir(p) for p in ps}})\n"
                f"print(json.dumps(ray.get(f.remote({[str(h) for h in self.hidden]!r}))))\n")
        return json.loads(self.ray_python(code).strip().splitlines()[-1])

    def stop(self) -> None:
        for _, proc, _ in reversed(self.procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for _, proc, _ in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
        if getattr(self, "s3", None) is not None:
            self.s3.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, prepared_dir):
    if not _can_unshare():
        pytest.skip("needs root and `unshare -m` (a node in its own mount namespace); CI runs as root")
    c = Cluster(tmp_path_factory.mktemp("no-shared-disk"), prepared_dir)
    try:
        c.start()
        yield c
    finally:
        c.stop()


def _train_workers() -> dict[int, str]:
    """pid -> mount namespace of every Ray Train worker process on this machine."""
    found = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (proc / "cmdline").read_bytes().startswith(b"ray::RayTrainWorker"):
                    found[int(proc.name)] = os.readlink(proc / "ns" / "mnt")
            except OSError:
                continue
    return found


def _one_line_error(proc: subprocess.CompletedProcess, command: str) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith(f"ssgan {command}: error: ")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return errors[0]


def test_refusals_before_training(cluster):
    """Each refused in one line before anything trains, and nothing half-written in the project."""
    line = _one_line_error(cluster.ssgan("train", SSGAN_SHIP_CODE="0"), "train")
    assert "cannot import ssgan" in line and "SSGAN_SHIP_CODE=1" in line
    local = cluster.project / "local-storage"  # a path on the driver's disk, hidden from the worker node
    line = _one_line_error(cluster.ssgan("train", SSGAN_RAY_STORAGE=str(local)), "train")
    assert "does not see" in line and "s3://" in line
    line = _one_line_error(cluster.ssgan("train", SSGAN_RAY_STORAGE="s3://no-such-bucket/ray"), "train")
    assert "s3://no-such-bucket/ray" in line and "bucket" in line
    started = time.monotonic()
    line = _one_line_error(cluster.ssgan("train", MLFLOW_TRACKING_URI=f"http://127.0.0.1:{_free_port()}"), "train")
    assert "no MLflow tracking server answers" in line and time.monotonic() - started < 60
    assert not (cluster.project / "models").exists() and not (cluster.project / "mlflow.db").exists()


def _checkpoints(cluster) -> list[str]:
    return [k for k in cluster.objects("ray/") if "/checkpoint_" in k and k.endswith("state.pt")]


def test_training_survives_a_dead_worker_and_a_dead_driver_from_the_bucket(cluster):
    """SIGKILL a worker once a checkpoint is in the bucket (Ray restarts the group from it, max_failures
    1), then the driver once a later one is (the rerun resumes from it): every epoch logged once."""
    import mlflow

    train = [sys.executable, "-m", "ssgan", "train"]
    log = cluster.base / "killed-driver.log"
    proc = subprocess.Popen(train, cwd=cluster.project, env=cluster.driver_env(), stdout=open(log, "w"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        first = _wait(lambda: _checkpoints(cluster), 300, "a checkpoint object in the bucket", proc, log)
        here = os.readlink("/proc/self/ns/mnt")
        workers = _wait(lambda: {p: ns for p, ns in _train_workers().items() if ns != here}, 60, "train workers")
        os.kill(next(iter(workers)), signal.SIGKILL)  # on the hidden node: its mount namespace is not ours
        _wait(lambda: set(_checkpoints(cluster)) - set(first), 300, "a checkpoint after the restart", proc, log)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert _checkpoints(cluster)  # the killed driver's run is resumable from the bucket
    rerun = cluster.ssgan("train")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "resuming run" in rerun.stdout
    client = mlflow.MlflowClient(cluster.tracking)
    (run,) = client.search_runs([client.get_experiment_by_name("ssgan-digits").experiment_id],
                                "tags.`ssgan.mode` = 'ssgan'")
    assert run.info.status == "FINISHED"
    # Every epoch once: a restart from scratch (not from the bucket's checkpoint) would log the early ones twice.
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_error")]
    assert sorted(steps) == list(range(1, CLUSTER_TRAIN["epochs"] + 1))
    assert (cluster.project / "models" / "model.pt").exists() and _checkpoints(cluster) == []  # finished: pruned
    assert not (cluster.project / "mlflow.db").exists() and not (cluster.project / "mlruns").exists()
    assert not (cluster.project / ".ray_results").exists()
    assert cluster.hidden_listing() == {str(h): [] for h in cluster.hidden}  # nothing reached the driver's paths


def test_sweep_promote_and_predict_against_the_server(cluster):
    import mlflow

    tune = cluster.ssgan("tune", "--name", "cluster-sweep")
    assert tune.returncode == 0, tune.stdout + tune.stderr
    client = mlflow.MlflowClient(cluster.tracking)
    experiment = client.get_experiment_by_name("ssgan-digits").experiment_id
    parent = client.search_runs([experiment], "tags.`ssgan.sweep` = 'cluster-sweep' and tags.`ssgan.mode` = 'sweep'")
    assert len(parent) == 1 and parent[0].info.status == "FINISHED"
    children = client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{parent[0].info.run_id}'")
    assert len(children) == 2 and all(c.info.status == "FINISHED" for c in children)

    if not (cluster.project / "models" / "model.pt").exists():
        pytest.skip("needs the training of the previous test")
    for command in ("evaluate", "promote"):
        proc = cluster.ssgan(command)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    metrics = json.loads((cluster.project / "metrics.json").read_text())
    out = cluster.base / "predictions.csv"
    proc = cluster.ssgan("predict", "--model", "models:/ssgan-digits-classifier@champion",
                         "data/prepared/test.parquet", "--output", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    from ssgan.data.parquet import read_split

    test = read_split(cluster.project / "data" / "prepared" / "test.parquet")
    names = test.meta["class_names"]
    rows = list(csv.DictReader(out.open()))
    accuracy = sum(r["class"] == names[int(y)] for r, y in zip(rows, test.labels)) / len(rows)
    assert len(rows) == len(test.labels) and accuracy == pytest.approx(metrics["test_accuracy"])
    assert not (cluster.project / "mlflow.db").exists() and not (cluster.project / "mlruns").exists()
    assert [k for k in cluster.objects("ray/") if "cluster-sweep" in k] == []  # the sweep's trial runs were pruned
    assert cluster.hidden_listing() == {str(h): [] for h in cluster.hidden}
