"""Before anything trains on a multi-node cluster: does every node run the driver's ssgan, reach the
run storage, and would a training started now fail there only after minutes of start-up?

A cluster shares no disk. A node without ssgan would fail when Ray unpickles the worker function (a
traceback per worker); one with another version would train other code under the same run key; a
storage path on the driver's disk would take rank 0's checkpoints to that rank's own disk, and the
driver's final read or a resume would fail. One task per node (no CPU) answers all three in a
second or two, each failure as one line saying what to set.
"""
from __future__ import annotations

import uuid
from pathlib import Path

from ssgan.driver.cluster import ClusterError
from ssgan.util.code import package_digest


def node_report(marker: str | None) -> dict:
    """Runs on one node: its ssgan (digest and place, or why it cannot be imported) and whether it sees `marker`."""
    import os
    import socket

    report = {"host": socket.gethostname(), "sees_storage": None if marker is None else os.path.exists(marker)}
    try:
        from ssgan.util.code import package_digest as digest, package_dir
    except ImportError as err:
        return {**report, "digest": None, "where": str(err)}
    return {**report, "digest": digest(), "where": str(package_dir())}


# Ray sends a function by reference when its module is importable, and a node without ssgan could not
# load it; under a module name no process imports, it travels by value and runs anywhere.
node_report.__module__ = "ssgan_node_probe"

SHIP_HINT = "set SSGAN_SHIP_CODE=1 so Ray ships the driver's ssgan to every node"


def check_nodes(storage: str, timeout_s: float = 120.0) -> None:
    """Refuse (ClusterError, one line) a cluster whose nodes lack the driver's ssgan or its storage.
    A single-node cluster needs no check: the driver's own node runs its own code and disk."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if len(nodes) <= 1:
        return
    marker = None if "://" in storage else Path(storage) / f".ssgan-shared-{uuid.uuid4().hex}"
    if marker is not None:
        marker.write_text("a multi-node training checks that every node sees its storage\n")
    try:
        probe = ray.remote(num_cpus=0)(node_report)
        refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                .remote(None if marker is None else str(marker)) for n in nodes]
        try:
            reports = ray.get(refs, timeout=timeout_s)
        except ray.exceptions.GetTimeoutError:
            raise ClusterError(f"a node of the Ray cluster did not answer within {timeout_s:g} s; check `ray status`") from None
    finally:
        if marker is not None:
            marker.unlink(missing_ok=True)
    mine = package_digest()
    for node, report in zip(nodes, reports):
        where = f"node {node['NodeManagerAddress']} ({report['host']})"
        if report["digest"] is None:
            raise ClusterError(f"{where} cannot import ssgan ({report['where']}): install the driver's ssgan there, "
                               f"or {SHIP_HINT}")
        if report["digest"] != mine:
            raise ClusterError(f"{where} runs other ssgan code ({report['where']}, digest {report['digest']}) than the "
                               f"driver ({mine}): install the same ssgan on every node, or {SHIP_HINT}")
        if report["sees_storage"] is False:
            raise ClusterError(f"{storage}: the run storage is a path on the driver's disk that {where} does not see; "
                               f"a cluster of {len(nodes)} nodes shares no disk: set SSGAN_RAY_STORAGE to "
                               f"s3://bucket/prefix or gs://bucket/prefix (or a path every node mounts)")
