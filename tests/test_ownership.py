"""One owner per live run: a run key or sweep name held by a live process is refused to a second one in
one line naming the holder, and nothing of the first is touched; a dead holder's lease is taken over."""
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import torch
import yaml

from ssgan.config import Cluster
from ssgan.driver import launch, lease
from ssgan.driver.lease import Holder, RunInUseError
from ssgan.driver.resume import run_key
from ssgan.sweep import curve as curve_mod
from ssgan.sweep import tune as tune_mod
from ssgan.sweep import tuner
from ssgan.tracking.runs import RUN_KEY_TAG
from ssgan.sweep.trial_log import SWEEP_TAG
from tests.conftest import TINY_PARAMS

ROOT = Path(__file__).resolve().parents[1]
HELD_BY_ME = f"held by pid {os.getpid()} on {socket.gethostname()} since "


def _outputs(tmp_path):
    return launch.TrainOutputs(model=tmp_path / "model.pt", history=tmp_path / "train.csv",
                               samples=tmp_path / "samples.png", curves=tmp_path / "curves.png")


def _running_run(uri, tags):
    client = mlflow.MlflowClient(uri)
    return client, client.create_run(client.create_experiment("other"), tags=tags).info.run_id


def _no_ray(*_, **__):
    pytest.fail("Ray started")


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_live_run_is_refused_to_a_second_train_and_nothing_of_it_is_touched(tiny_config, prepared_dir, tmp_path,
                                                                              monkeypatch):
    monkeypatch.setattr(launch, "connect", _no_ray)
    storage, uri = tmp_path / "ray", f"sqlite:///{tmp_path}/mlflow.db"
    key = run_key(tiny_config, prepared_dir)
    checkpoint = storage / f"ssgan-{key}" / "checkpoint_2026-12-04_10-00-00.000000"
    checkpoint.mkdir(parents=True)
    torch.save({"run_key": key, "epoch": 1, "history": []}, checkpoint / "state.pt")
    client, run_id = _running_run(uri, {RUN_KEY_TAG: key})
    first = lease.acquire(str(storage), f"ssgan-{key}", "first", "")  # this process stands in for the live first run
    with pytest.raises(RunInUseError) as err:  # --restart would otherwise delete its checkpoints first
        launch.train(tiny_config, prepared_dir, _outputs(tmp_path), uri, None, Cluster(storage_path=str(storage)),
                     restart=True)
    message = str(err.value)
    assert message.startswith(f"run key {key} (Ray Train run ssgan-{key}) is {HELD_BY_ME}") and "\n" not in message
    assert (checkpoint / "state.pt").exists() and client.get_run(run_id).info.status == "RUNNING"
    assert lease.read_lease(*_fs(storage, f"ssgan-{key}")).token == first.token


def _fs(storage, name):
    from pyarrow import fs

    filesystem, root = fs.FileSystem.from_uri(str(storage))
    return filesystem, lease.lease_path(root, name)


@pytest.mark.parametrize("holder, live", [
    (lambda now: Holder(socket.gethostname(), os.getpid(), now, now - 1e6, "x", lease.process_start(os.getpid())), True),
    (lambda now: Holder(socket.gethostname(), _dead_pid(), now, now, "x"), False),  # killed: taken over at once
    (lambda now: Holder(socket.gethostname(), os.getpid(), now, now, "x", "not-its-start"), False),  # a reused pid
    (lambda now: Holder("elsewhere", 1, now, now - 5, "x"), True),
    (lambda now: Holder("elsewhere", 1, now, now - 2 * lease.LIVE_FOR_S, "x"), False),  # stopped renewing
])
def test_live_and_stale_leases(tmp_path, holder, live):
    lease.write_lease(str(tmp_path), "ssgan-k", holder(time.time()))
    if live:
        with pytest.raises(RunInUseError, match="if that process is gone, delete"):
            lease.acquire(str(tmp_path), "ssgan-k", "run k", "wait")
    else:
        me = lease.acquire(str(tmp_path), "ssgan-k", "run k", "wait")
        lease.release(str(tmp_path), "ssgan-k", me)
        assert not (tmp_path / "ssgan-k.lease").exists()


def _contender(storage, ready, done, results):
    ready.wait()
    try:
        lease.acquire(storage, "sweep-race", "sweep 'sweep-race'", "wait")
        results.put(("won", os.getpid()))
    except RunInUseError as err:
        results.put(("refused", str(err)))
    done.wait()  # stay alive until every contender has tried: a dead winner's lease is rightly taken over


def test_taking_a_lease_is_race_safe(tmp_path):
    ctx = multiprocessing.get_context("fork")
    n = 6
    ready, done, results = ctx.Barrier(n), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_contender, args=(str(tmp_path), ready, done, results)) for _ in range(n)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    done.set()
    for p in procs:
        p.join(timeout=60)
    winners = [pid for what, pid in outcomes if what == "won"]
    assert len(winners) == 1, outcomes
    assert all(f"held by pid {winners[0]} on " in text for what, text in outcomes if what == "refused")


def test_the_lease_is_renewed_while_held_and_released_after(tmp_path, monkeypatch):
    monkeypatch.setattr(lease, "RENEW_EVERY_S", 0.01)
    with lease.hold(str(tmp_path), "ssgan-k", "run k", "wait") as me:
        for _ in range(2000):
            if lease.read_lease(*_fs(tmp_path, "ssgan-k")).renewed > me.renewed:
                break
            time.sleep(0.01)
        assert lease.read_lease(*_fs(tmp_path, "ssgan-k")).renewed > me.renewed
    assert not (tmp_path / "ssgan-k.lease").exists()


def _sweep_params():
    return {**TINY_PARAMS, "train": {**TINY_PARAMS["train"], "num_workers": 1},
            "tune": {"num_samples": 1, "epochs": 1, "space": {"train.lr": {"grid": [0.01]}}},
            "curve": {"labels": [1], "seeds": 1, "modes": ["supervised"], "epochs": 1}}


def _live_sweep(tmp_path, name):
    """A sweep `name` in progress, as this process: its Tune folder, a trial's run, a RUNNING parent."""
    storage = tmp_path / "ray"
    for folder in (name, f"{name}-0a1b2c_00000"):
        (storage / folder).mkdir(parents=True)
        (storage / folder / "sentinel").write_text("x")
    client, parent = _running_run(f"sqlite:///{tmp_path}/mlflow.db", {SWEEP_TAG: name, "ssgan.mode": "sweep"})
    lease.acquire(str(storage), name, "first", "")
    return storage, lambda: (client.get_run(parent).info.status == "RUNNING"
                             and all((storage / f / "sentinel").exists() for f in (name, f"{name}-0a1b2c_00000")))


@pytest.mark.parametrize("resume", [False, True])
def test_a_live_sweep_is_refused_to_a_second_tune_and_nothing_of_it_is_touched(prepared_dir, tmp_path, monkeypatch,
                                                                               resume):
    monkeypatch.setattr(tuner, "connect", _no_ray)
    storage, untouched = _live_sweep(tmp_path, "sw")
    outputs = tune_mod.SweepOutputs(best=tmp_path / "best.yaml", trials=tmp_path / "trials.csv")
    with pytest.raises(RunInUseError, match=f"^sweep 'sw' is {HELD_BY_ME}"):
        tune_mod.sweep(_sweep_params(), prepared_dir, outputs, f"sqlite:///{tmp_path}/mlflow.db", None,
                       Cluster(storage_path=str(storage)), name="sw", resume=resume)
    assert untouched()


def test_a_live_curve_is_refused_to_a_second_curve_before_its_splits_are_rewritten(tmp_path, monkeypatch):
    monkeypatch.setattr(tuner, "connect", _no_ray)
    monkeypatch.setattr(curve_mod, "prepare", lambda *_: pytest.fail("splits rewritten"))
    storage, untouched = _live_sweep(tmp_path, "cv")
    outputs = curve_mod.CurveOutputs(csv=tmp_path / "c.csv", png=tmp_path / "c.png")
    with pytest.raises(RunInUseError, match=f"^curve 'cv' is {HELD_BY_ME}"):
        curve_mod.curve(_sweep_params(), outputs, tmp_path / "work", f"sqlite:///{tmp_path}/mlflow.db", None,
                        Cluster(storage_path=str(storage)), name="cv")
    assert untouched() and not (tmp_path / "work").exists()


def _env():
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "DVC_ROOT",
                                                            "SSGAN_RAY_STORAGE")}
    return {**env, "PYTHONPATH": str(ROOT)}


def _project(tmp_path, params):
    project = tmp_path / "project"
    project.mkdir()
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    return project


def _cli(project, *args):
    return subprocess.Popen([sys.executable, "-m", "ssgan", *args], cwd=project, env=_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def test_a_second_ssgan_tune_process_is_refused_in_one_line(prepared_dir, tmp_path):
    """The real CLI in its own process against a live holder (this test process)."""
    project = _project(tmp_path, _sweep_params())
    storage, untouched = _live_sweep(project, "sw")
    (storage.parent / ".ray_results").symlink_to(storage)
    proc = _cli(project, "tune", "--data", str(prepared_dir), "--name", "sw")
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 1, out
    assert out.strip().splitlines() == [out.strip()] and out.startswith(f"ssgan tune: error: sweep 'sw' is {HELD_BY_ME}")
    assert untouched() and not (project / "tune").exists()


@pytest.mark.slow
def test_a_second_ssgan_train_is_refused_while_the_first_finishes(prepared_dir, tmp_path):
    project = _project(tmp_path, {**TINY_PARAMS, "train": {**TINY_PARAMS["train"], "epochs": 1}})
    first = _cli(project, "train", "--data", str(prepared_dir))
    try:
        for _ in range(3000):  # the first takes its lease before Ray starts
            leases = list((project / ".ray_results").glob("ssgan-*.lease"))
            if leases or first.poll() is not None:
                break
            time.sleep(0.1)
        assert leases, first.communicate()[0]
        # Paused while the second asks, so the overlap does not depend on how fast either runs.
        os.kill(first.pid, signal.SIGSTOP)
        try:
            second = _cli(project, "train", "--data", str(prepared_dir))
            out = second.communicate(timeout=300)[0]
        finally:
            os.kill(first.pid, signal.SIGCONT)
        first_out = first.communicate(timeout=600)[0]
    finally:
        if first.poll() is None:
            first.kill()
    assert second.returncode == 1, out
    assert out.strip().splitlines() == [out.strip()], out
    assert out.startswith(f"ssgan train: error: run key {leases[0].name[len('ssgan-'):-len('.lease')]} ")
    assert f"held by pid {first.pid} on {socket.gethostname()} since " in out
    assert first.returncode == 0, first_out
    assert (project / "models" / "model.pt").exists() and (project / "plots" / "train.csv").exists()
    client = mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert run.info.status == "FINISHED"
    assert not list((project / ".ray_results").glob("ssgan-*"))  # its directory pruned, its lease released
