"""A real two-node Ray cluster on this machine (ray.cluster_utils.Cluster, as Ray's own tests do), one CPU
per node: the two training workers land on different nodes, the Train controller (and with it the
MLflow callback) on the driver's node, and the run is logged to the driver's store."""
import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml

from tests.conftest import TINY_PARAMS

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

SCRIPT = """
import json, socket, sys
from pathlib import Path

import ray
import yaml
from ray.cluster_utils import Cluster
from ray.util.state import list_actors, list_nodes

from ssgan.driver import launch
from ssgan.config import Cluster as Where, from_mapping

tmp, prepared = Path(sys.argv[1]), sys.argv[2]
with socket.socket() as s:  # another Ray on this machine may hold the default dashboard port
    s.bind(("127.0.0.1", 0))
    dashboard_port = s.getsockname()[1]
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "dashboard_port": dashboard_port})
cluster.add_node(num_cpus=1)
cluster.wait_for_nodes()
try:
    cfg = from_mapping(yaml.safe_load((tmp / "params.yaml").read_text()))
    outputs = launch.TrainOutputs(model=tmp / "model.pt", history=tmp / "train.csv", samples=tmp / "samples.png",
                                  curves=tmp / "curves.png")
    result = launch.train(cfg, prepared, outputs, f"sqlite:///{tmp / 'mlflow.db'}", tmp / "mlruns",
                          Where(address=cluster.address, storage_path=str(tmp / "shared-storage")))
    actors = list_actors(address=cluster.address, limit=1000, detail=True)
    head = [n.node_id for n in list_nodes(address=cluster.address, detail=True) if n.is_head_node]
    print("RESULT " + json.dumps({"run_id": result["run_id"], "head": head,
                                  "workers": sorted({a.node_id for a in actors if a.class_name == "RayTrainWorker"}),
                                  "controller": sorted({a.node_id for a in actors if a.class_name == "TrainController"})}))
finally:
    ray.shutdown()
    cluster.shutdown()
"""


def test_two_node_cluster_spreads_workers_and_logs_from_the_driver(prepared_dir, tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(TINY_PARAMS))
    (tmp_path / "run.py").write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "DVC_ROOT")}
    env.update(PYTHONPATH=str(ROOT), RAY_AUTH_MODE="token")
    proc = subprocess.run([sys.executable, str(tmp_path / "run.py"), str(tmp_path), str(prepared_dir)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    assert len(result["workers"]) == 2  # one worker per node: each node has one CPU
    assert result["controller"] == result["head"]  # the MLflow callback runs on the driver's node
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.get_run(result["run_id"])
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_error")] == [1, 2]
    assert (tmp_path / "model.pt").exists()
