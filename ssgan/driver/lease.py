"""One owner per live run: a run key (`ssgan train`) or a sweep name (`tune`, `curve`) is held by a lease
in the Ray storage, and a second process asking for a name a live process holds is refused in one line
naming the holder, before it touches anything of the first (its MLflow run, its directories).

The lease is the file `<storage>/<name>.lease`, beside the run's directory rather than in it: `--restart`
and a fresh sweep delete that directory while the lease protects it. Its holder rewrites it every
RENEW_EVERY_S seconds from a background thread. A lease is live when
- its holder is on this host: while that pid is alive (and is the process that took the lease, by
  its start time), however long ago it renewed, so a run killed with `kill -9` is taken over at once;
- its holder is on another host: while it was renewed within LIVE_FOR_S (3 renewal periods).
Any other lease is stale, and taken over as if absent.

Taking a lease is race-safe on a local (or NFS) storage: the check and the write happen under an
exclusive `flock` of `<storage>/.ssgan-leases.lock` (removed by its holder after each use, so a finished storage keeps none), which the kernel releases if its holder dies. On
an object store (s3://) there is no lock: the lease is written, then read back, and the loser of a
race (whose token was overwritten) is refused; best effort, as the store offers no more.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Iterator

from ssgan.driver.cluster import ClusterError

RENEW_EVERY_S = 30.0
LIVE_FOR_S = 3 * RENEW_EVERY_S
LEASE_SUFFIX = ".lease"
LOCK_FILE = ".ssgan-leases.lock"


class RunInUseError(ClusterError):
    """Another live process holds this run or sweep."""


@dataclass(frozen=True)
class Holder:
    host: str
    pid: int
    since: float  # when it took the lease (epoch seconds)
    renewed: float
    token: str  # tells this holder's lease from a later one of the same pid
    started: str | None = None  # the pid's start time on its host, to tell a reused pid

    def live(self, now: float) -> bool:
        if self.host == socket.gethostname():
            return _pid_alive(self.pid) and (self.started is None or self.started == process_start(self.pid))
        return now - self.renewed <= LIVE_FOR_S


def this_process(now: float | None = None) -> Holder:
    now = time.time() if now is None else now
    return Holder(socket.gethostname(), os.getpid(), now, now, uuid.uuid4().hex, process_start(os.getpid()))


def process_start(pid: int) -> str | None:
    """The pid's start time in clock ticks since boot (Linux's /proc), None where unknown."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _filesystem(storage: str):
    from pyarrow import fs

    filesystem, root = fs.FileSystem.from_uri(storage)
    return filesystem, root, isinstance(filesystem, fs.LocalFileSystem)


def lease_path(root: str, name: str) -> str:
    return f"{root}/{name}{LEASE_SUFFIX}"


def read_lease(filesystem, path: str) -> Holder | None:
    """The lease at `path`, or None when there is none or it is unreadable (then it protects nothing)."""
    try:
        with filesystem.open_input_stream(path) as f:
            raw = json.loads(f.read())
        return Holder(str(raw["host"]), int(raw["pid"]), float(raw["since"]), float(raw["renewed"]), str(raw["token"]),
                      None if raw.get("started") is None else str(raw["started"]))
    except (OSError, ValueError, KeyError, TypeError):  # missing (FileNotFoundError is an OSError) or garbage
        return None


def write_lease(storage: str, name: str, holder: Holder) -> None:
    """Write `holder` as the lease of `name`, unconditionally (taking a lease goes through `acquire`)."""
    filesystem, root, local = _filesystem(storage)
    _write(filesystem, root, lease_path(root, name), holder, local)


def _write(filesystem, root: str, path: str, holder: Holder, local: bool) -> None:
    data = json.dumps(asdict(holder)).encode()
    if not local:
        filesystem.create_dir(root, recursive=True)
        with filesystem.open_output_stream(path) as f:
            f.write(data)
        return
    os.makedirs(root, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".lease.", dir=root)  # readers without the lock see whole files only
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _locked(root: str, local: bool) -> Iterator[None]:
    if not local:
        yield
        return
    import fcntl

    os.makedirs(root, exist_ok=True)
    path = os.path.join(root, LOCK_FILE)
    while True:
        with open(path, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)  # released on close, or by the kernel when the process dies
            try:
                same = os.stat(path).st_ino == os.fstat(f.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # its holder removed it while we waited: lock the one there now
                continue
            try:
                yield
            finally:
                # Removed while still held, so the storage keeps no lock file once runs are done; a
                # waiter on the removed file sees that above and retries.
                os.unlink(path)
            return


def describe(holder: Holder, path: str, now: float) -> str:
    since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(holder.since))
    return (f"held by pid {holder.pid} on {holder.host} since {since} "
            f"(lease {path}, renewed {max(0.0, now - holder.renewed):.0f} s ago)")


def acquire(storage: str, name: str, what: str, hint: str, me: Holder | None = None) -> Holder:
    """Take the lease of `name` for this process, or raise RunInUseError naming its live holder."""
    me = me or this_process()
    filesystem, root, local = _filesystem(storage)
    path = lease_path(root, name)
    with _locked(root, local):
        current = read_lease(filesystem, path)
        now = time.time()
        if current is not None and current.token != me.token and current.live(now):
            raise RunInUseError(f"{what} is {describe(current, path, now)}; {hint}; if that process is gone, delete {path}")
        _write(filesystem, root, path, me, local)
    if not local:  # no lock on an object store: whoever wrote last holds it
        current = read_lease(filesystem, path)
        if current is None or current.token != me.token:
            now = time.time()
            held = describe(current, path, now) if current else f"taken by another process at the same time ({path})"
            raise RunInUseError(f"{what} is {held}; {hint}")
    return me


def renew(storage: str, name: str, me: Holder) -> Holder | None:
    """Rewrite the lease with a fresh `renewed`; None (and nothing written) when it is no longer ours."""
    filesystem, root, local = _filesystem(storage)
    path = lease_path(root, name)
    with _locked(root, local):
        current = read_lease(filesystem, path)
        if current is None or current.token != me.token:
            return None
        fresh = Holder(me.host, me.pid, me.since, time.time(), me.token, me.started)
        _write(filesystem, root, path, fresh, local)
    return fresh


def release(storage: str, name: str, me: Holder) -> None:
    """Delete the lease if it is still ours (a takeover's lease is left to its new holder)."""
    filesystem, root, local = _filesystem(storage)
    path = lease_path(root, name)
    with _locked(root, local):
        current = read_lease(filesystem, path)
        if current is not None and current.token == me.token:
            filesystem.delete_file(path)


@contextlib.contextmanager
def hold(storage: str, name: str, what: str, hint: str) -> Iterator[Holder]:
    """Hold the lease of `name` for the block, renewed every RENEW_EVERY_S seconds; released on exit."""
    me = acquire(storage, name, what, hint)
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.wait(RENEW_EVERY_S):
            try:
                if renew(storage, name, me) is None:
                    print(f"[ssgan] warning: {what}: the lease {name}{LEASE_SUFFIX} was taken over by another process",
                          flush=True)
                    return
            except OSError as err:  # a storage hiccup: the next beat tries again
                print(f"[ssgan] warning: {what}: could not renew its lease ({err})", flush=True)

    beat = threading.Thread(target=heartbeat, name=f"ssgan-lease-{name}", daemon=True)
    beat.start()
    try:
        yield me
    finally:
        stop.set()
        beat.join()
        release(storage, name, me)
