"""The sandbox's credential API as a provider runs it: two replicas of the reference service behind HAProxy
(Debian's ``haproxy``), with health checks and draining, and a rolling restart that takes the replicas down one
at a time without failing a request. HAProxy also forwards the RGW to the bridge address, so the sandbox nodes
(network namespaces, which cannot reach the host's loopback) reach the RGW like cluster nodes reach a load
balancer.

Files under ``<state_dir>/credentials/``: ``haproxy.cfg``, ``haproxy.sock`` (runtime API, mode 0600),
``state.json`` (ports, pids), one log per replica and one for HAProxy. The replicas read the RGW admin keys and the
bearer token from the sandbox's ``secrets.env`` (mode 0600); nothing secret is written anywhere else.

Rolling restart, per replica: ``set server ... state drain`` (HAProxy sends it nothing new), wait until its
current sessions reach 0, SIGTERM (uvicorn finishes what is in flight and exits), start it again on the same
port, wait for its /healthz, ``state ready``, wait until HAProxy's health check says UP, then the next replica.
HAProxy retries a request whose connection to a replica failed on the other one (``retry-on conn-failure``,
``option redispatch``): a request is never sent twice.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clusterproof.errors import SandboxError
from clusterproof.sandbox import procs

REPLICAS = 2
BACKEND = "replicas"
#: Cleanups of one customer always go to the same replica (consistent hash of the path), so two overlapping cron
#: runs are serialised by that replica's in-process claim and never both report an id; the other replica takes
#: over while one is drained.
CLEANUP_BACKEND = "cleanups"
BACKENDS = (BACKEND, CLEANUP_BACKEND)
HAPROXY = "/usr/sbin/haproxy"


@dataclass(frozen=True)
class CredentialService:
    """What ``start`` brought up: the URL the clients use (HAProxy) and the RGW address the nodes use."""

    url: str
    node_rgw_endpoint: str | None
    folder: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _folder(state_dir: Path) -> Path:
    return Path(state_dir) / "credentials"


def _read_state(state_dir: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((_folder(state_dir) / "state.json").read_text()))
    except (OSError, ValueError):
        return {}


def _write_state(state_dir: Path, state: dict[str, Any]) -> None:
    (_folder(state_dir) / "state.json").write_text(json.dumps(state, indent=1) + "\n")


def _haproxy_cfg(folder: Path, front_port: int, replica_ports: list[int], rgw_port: int,
                 node_bind: str | None) -> str:
    servers = "\n".join(f"    server r{i} 127.0.0.1:{p}" for i, p in enumerate(replica_ports, 1))
    rgw = f"""
frontend rgw_for_nodes
    mode tcp
    bind {node_bind}:{rgw_port}
    default_backend rgw

backend rgw
    mode tcp
    server rgw 127.0.0.1:{rgw_port}
""" if node_bind else ""
    return f"""# Written by clusterproof sandbox: the credential API's replicas behind HAProxy.
global
    stats socket {folder / 'haproxy.sock'} mode 600 level admin
    maxconn 512

defaults
    mode http
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    timeout queue 30s
    retries 5
    option redispatch 1
    retry-on conn-failure

frontend credentials
    bind 127.0.0.1:{front_port}
    use_backend {CLEANUP_BACKEND} if {{ path_end /cleanup }}
    default_backend {BACKEND}

backend {BACKEND}
    balance roundrobin
    # One request per server connection: a replica that is shutting down has no idle keep-alive to lose.
    option http-server-close
    option httpchk GET /healthz
    http-check expect status 200
    default-server check inter 250ms fall 2 rise 1
{servers}

backend {CLEANUP_BACKEND}
    balance uri
    hash-type consistent
    option http-server-close
    option httpchk GET /healthz
    http-check expect status 200
    default-server check inter 250ms fall 2 rise 1
{servers}
{rgw}"""


def _spawn_replica(state_dir: Path, index: int, port: int, env: dict[str, str]) -> int:
    folder = _folder(state_dir)
    log = open(folder / f"replica-{index}.log", "ab")  # noqa: SIM115 - handed to the child, closed below
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "clusterproof.cli", "serve-credentials", "--host", "127.0.0.1", "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    finally:
        log.close()
    return procs.adopt(proc)


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def _wait(what: str, ok: Any, timeout_s: float, pid: int | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while not ok():
        if pid is not None and not procs.child_alive(pid):
            raise SandboxError(f"{what}: process {pid} exited")
        if time.monotonic() > deadline:
            raise SandboxError(f"{what}: not within {timeout_s:g} s")
        time.sleep(0.05)


def _service_env(secrets_env: dict[str, str], endpoint: str) -> dict[str, str]:
    return {**procs.ENV, "HOME": os.environ.get("HOME", "/root"), **secrets_env, "CP_RGW_ENDPOINT": endpoint}


def start(state_dir: Path, endpoint: str, secrets_env: dict[str, str], front_port: int, rgw_port: int,
          node_bind: str | None = None) -> CredentialService:
    """Start the replicas and HAProxy in front of them (and of the RGW on ``node_bind:rgw_port`` when given).

    Raises:
        SandboxError: haproxy is missing (``apt-get install haproxy``), a port is taken, or something did not
            come up; whatever was started is stopped again.
    """
    if not os.access(HAPROXY, os.X_OK):
        raise SandboxError(f"{HAPROXY} is missing: apt-get install haproxy (scripts/system-deps.sh does it)")
    folder = _folder(state_dir)
    folder.mkdir(parents=True, exist_ok=True)
    env = _service_env(secrets_env, endpoint)
    ports = [_free_port() for _ in range(REPLICAS)]
    state: dict[str, Any] = {"front_port": front_port, "replica_ports": ports, "replica_pids": [], "endpoint": endpoint,
                             "rgw_port": rgw_port, "node_bind": node_bind}
    try:
        for i, port in enumerate(ports, 1):
            state["replica_pids"].append(_spawn_replica(state_dir, i, port, env))
            _write_state(state_dir, state)
        for port, pid in zip(ports, state["replica_pids"], strict=True):
            _wait(f"credential replica on port {port}", lambda p=port: _healthy(p), 30, pid)
        cfg = folder / "haproxy.cfg"
        cfg.write_text(_haproxy_cfg(folder, front_port, ports, rgw_port, node_bind))
        procs.run([HAPROXY, "-c", "-q", "-f", str(cfg)], "check the HAProxy configuration")
        log = open(folder / "haproxy.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            proc = subprocess.Popen([HAPROXY, "-db", "-f", str(cfg)], stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=procs.ENV, start_new_session=True)
        finally:
            log.close()
        procs.adopt(proc)
        state["haproxy_pid"] = proc.pid
        _write_state(state_dir, state)
        url = f"http://127.0.0.1:{front_port}"
        _wait("HAProxy in front of the credential replicas", lambda: _front_healthy(url), 15, proc.pid)
        _wait("both replicas UP in HAProxy", lambda: all(s == "UP" for s in server_states(state_dir).values()), 15)
    except BaseException:
        stop(state_dir)
        raise
    node_rgw = f"http://{node_bind}:{rgw_port}" if node_bind else None
    return CredentialService(url=url, node_rgw_endpoint=node_rgw, folder=folder)


def _front_healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def _ours(pid: int, marker: bytes) -> bool:
    try:
        return marker in Path(f"/proc/{pid}/cmdline").read_bytes() and procs.child_alive(pid)
    except OSError:
        return False


def stop(state_dir: Path) -> list[str]:
    """Stop HAProxy and the replicas this sandbox started (by recorded pid, checked against its command line)."""
    state = _read_state(state_dir)
    if not state:
        return []
    done = []
    victims = [(pid, b"serve-credentials") for pid in state.get("replica_pids", [])]
    if state.get("haproxy_pid"):
        victims.insert(0, (state["haproxy_pid"], b"haproxy"))
    mine = [pid for pid, marker in victims if _ours(pid, marker)]
    if mine:
        procs.terminate(mine, grace_s=10)
        for pid in mine:
            procs.child_alive(pid)  # reap our children
        done.append(f"stopped HAProxy and credential replicas (pids {' '.join(map(str, mine))})")
    (_folder(state_dir) / "state.json").unlink(missing_ok=True)
    return done


# --- HAProxy runtime API --------------------------------------------------------------------------------------


def _runtime(state_dir: Path, command: str) -> str:
    path = str(_folder(state_dir) / "haproxy.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(path)
        s.sendall(command.encode() + b"\n")
        chunks = []
        while True:
            c = s.recv(65536)
            if not c:
                break
            chunks.append(c)
    return b"".join(chunks).decode(errors="replace")


def _stat_rows(state_dir: Path) -> list[dict[str, str]]:
    text = _runtime(state_dir, "show stat")
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not lines[0].startswith("# "):
        raise SandboxError(f"HAProxy 'show stat' answered {text[:200]!r}")
    header = lines[0][2:].split(",")
    return [dict(zip(header, line.split(","), strict=False)) for line in lines[1:]]


def server_states(state_dir: Path) -> dict[str, str]:
    """Replica name (r1, r2) -> HAProxy's status (UP, DOWN, DRAIN, MAINT...)."""
    states: dict[str, str] = {}
    for r in _stat_rows(state_dir):
        if r.get("pxname") in BACKENDS and r.get("svname") not in ("FRONTEND", "BACKEND"):
            name = r["svname"]
            states[name] = r["status"] if states.get(name, "UP") == "UP" else states[name]
    return states


def _sessions(state_dir: Path, server: str) -> int:
    rows = [r for r in _stat_rows(state_dir) if r.get("pxname") in BACKENDS and r.get("svname") == server]
    if not rows:
        raise SandboxError(f"HAProxy has no server {server} in backends {', '.join(BACKENDS)}")
    return sum(int(r.get("scur") or 0) for r in rows)


def rolling_restart(state_dir: Path, secrets_env: dict[str, str]) -> list[str]:
    """Restart every replica, one at a time, without failing a request (see the module docstring).

    Returns:
        One line per step, with timings.
    Raises:
        SandboxError: no service runs in this sandbox, or a replica did not drain, stop or come back.
    """
    state = _read_state(state_dir)
    if not state.get("haproxy_pid") or not _ours(state["haproxy_pid"], b"haproxy"):
        raise SandboxError(f"no credential service with HAProxy runs in {state_dir} (clusterproof sandbox up starts it)")
    env = _service_env(secrets_env, state["endpoint"])
    lines = []
    for i, port in enumerate(state["replica_ports"], 1):
        name, t0 = f"r{i}", time.monotonic()
        old = state["replica_pids"][i - 1]
        for backend in BACKENDS:
            _runtime(state_dir, f"set server {backend}/{name} state drain")
        _wait(f"replica {name} to drain", lambda n=name: _sessions(state_dir, n) == 0, 60)
        drained = time.monotonic() - t0
        if _ours(old, b"serve-credentials"):
            os.kill(old, signal.SIGTERM)
            try:
                _wait(f"replica {name} (pid {old}) to finish and exit", lambda p=old: not procs.child_alive(p), 30)
            except SandboxError:
                os.kill(old, signal.SIGKILL)
                raise
        new = _spawn_replica(state_dir, i, port, env)
        state["replica_pids"][i - 1] = new
        _write_state(state_dir, state)
        _wait(f"replica {name} (pid {new}) to answer /healthz", lambda p=port: _healthy(p), 30, new)
        for backend in BACKENDS:
            _runtime(state_dir, f"set server {backend}/{name} state ready")
        _wait(f"replica {name} UP in HAProxy", lambda n=name: server_states(state_dir).get(n) == "UP", 15)
        lines.append(f"replica {name}: drained in {drained:.2f} s, pid {old} -> {new}, UP again after "
                     f"{time.monotonic() - t0:.2f} s")
    return lines
