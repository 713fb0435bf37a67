"""Two trainings at once on one machine (two checkouts, or a teammate on a shared box): each starts its
own private Ray and prints nothing that looks like a failure.

Without a private instance, Ray Train's placement-group cleaner looked for "the" cluster on the
machine and printed a 30-line `ConnectionError: Found multiple active Ray instances` traceback.
"""
import os
import subprocess
import sys

import yaml

from tests.conftest import TINY_PARAMS

NOISE = ("Traceback", "Found multiple active Ray instances", "Token authentication is enabled",
         "PreemptionWatcher", "ERROR", "Error")


def test_two_concurrent_trainings_are_clean(ray_local, prepared_dir, tmp_path):
    # ray_local keeps a third Ray instance alive in this process for the whole time.
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "DVC_ROOT")}
    procs = []
    for name in ("alice", "bob"):
        project = tmp_path / name
        project.mkdir()
        (project / "params.yaml").write_text(yaml.safe_dump(TINY_PARAMS))
        procs.append(subprocess.Popen([sys.executable, "-m", "ssgan", "train", "--data", str(prepared_dir)],
                                      cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    for proc, out in zip(procs, outputs):
        assert proc.returncode == 0, out
        assert "[ssgan] trained (ssgan)" in out
        assert [word for word in NOISE if word in out] == [], out
    for name in ("alice", "bob"):
        assert (tmp_path / name / "models/model.pt").exists()
