"""Local processes for the sandbox: run commands (argv lists), find the sandbox's processes through the
namespaces it made, and end them by pid (never by name)."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from clusterproof.errors import SandboxError

T = TypeVar("T")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: The environment of every command and node daemon: never the caller's (it may hold secrets).
ENV = {"PATH": PATH, "LANG": "C.UTF-8"}


def run(argv: list[str], step: str, *, stdin: str | None = None, timeout: float = 30.0, env: dict[str, str] | None = None) -> str:
    """Run a local command (environment :data:`ENV`, or ``env``); return its stdout.

    Raises:
        SandboxError: naming the step, the command, its exit code and its stderr.
    """
    try:
        p = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout, env=env or ENV)
    except subprocess.TimeoutExpired:
        raise SandboxError(f"{step}: `{shlex.join(argv)}` did not finish within {timeout:g} s") from None
    except OSError as e:
        raise SandboxError(f"{step}: cannot run `{shlex.join(argv)}`: {e}") from None
    if p.returncode != 0:
        raise SandboxError(f"{step}: `{shlex.join(argv)}` exited {p.returncode}: {p.stderr.strip()}")
    return p.stdout


def parallel(fn: Callable[[T], Any], items: Iterable[T], workers: int = 8) -> list[Any]:
    """``[fn(x) for x in items]`` on a thread pool (the work is waiting for subprocesses and sockets)."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items))


def read_pid(path: Path) -> int:
    """The pid in a pid file, or 0 when the file is missing or empty."""
    try:
        return int(path.read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def _ns_id(pid: int, kind: str) -> int | None:
    """The inode of ``/proc/<pid>/ns/<kind>`` (``net:[4026532]`` -> 4026532), or None if gone."""
    try:
        link = os.readlink(f"/proc/{pid}/ns/{kind}")
    except OSError:
        return None
    return int(link[link.index("[") + 1 : -1])


def _netns_id(name: str) -> int | None:
    try:
        return os.stat(f"/run/netns/{name}").st_ino
    except OSError:
        return None


def alive(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie (some PID 1s reap orphans late, or never)."""
    if pid <= 0:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :][:1] not in ("Z", "X", "")


#: Children this process started (daemons, replicas): polled so that an exited child is reaped instead of left a
#: zombie, and never mistaken for a live one.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def adopt(proc: subprocess.Popen[bytes]) -> int:
    """Remember a child this process started (see :func:`child_alive`); returns its pid."""
    _CHILDREN[proc.pid] = proc
    return proc.pid


def child_alive(pid: int) -> bool:
    """:func:`alive`, reaping ``pid`` first when it is an exited child of ours (pid 1 here reaps orphans only every
    ~2 s, and never our own children)."""
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        del _CHILDREN[pid]
        return False
    return alive(pid)


def alive_in_netns(pid: int, netns: str) -> bool:
    """True when ``pid`` is alive inside network namespace ``netns`` (guards against a reused pid)."""
    ns = _netns_id(netns)
    return ns is not None and alive(pid) and _ns_id(pid, "net") == ns


def sandbox_pids(seeds: Iterable[int], netns: Iterable[str]) -> list[int]:
    """Every live process that belongs to the sandbox, sorted.

    That is: any process inside one of the ``netns`` network namespaces (what ``ip netns pids``
    lists), and any process sharing a mount namespace with a ``seed`` (recorded sshd/holder pids)
    that itself lives in one of those network namespaces -- a seed elsewhere is a reused pid.
    """
    nets = {i for i in (_netns_id(n) for n in netns) if i is not None}
    me = os.getpid()
    mounts = {_ns_id(p, "mnt") for p in seeds if alive(p) and _ns_id(p, "net") in nets} - {None, _ns_id(me, "mnt")}
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        if (_ns_id(pid, "net") in nets or _ns_id(pid, "mnt") in mounts) and alive(pid):
            found.append(pid)
    return sorted(found)


def terminate(pids: Iterable[int], grace_s: float = 3.0) -> list[int]:
    """SIGTERM ``pids``, then SIGKILL what is still alive after ``grace_s``. Returns the pids that needed SIGKILL."""
    pids, killed = list(pids), []
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 2.0)):
        for pid in pids:
            try:
                os.kill(pid, sig)
                if sig == signal.SIGTERM:  # a stopped process (the hang-sshd fault) handles SIGTERM only once continued
                    os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and any(alive(p) for p in pids):
            time.sleep(0.02)
        pids = [p for p in pids if alive(p)]
        if not pids or sig == signal.SIGKILL:
            break
        killed = list(pids)
    return killed
