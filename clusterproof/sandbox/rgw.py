"""A throwaway single-node Ceph with RadosGW on loopback: one mon, one memstore OSD, radosgw (beast), no mgr.

Built from Debian's ceph 16.2 packages without systemd or containers. Every daemon runs in the foreground (``-f``)
as a detached child with stdio in log files; its pid is recorded under ``state_dir/pids``. Stopping kills only
recorded pids whose ``/proc/PID/cmdline`` still names our ``ceph.conf`` (pid reuse guard).

The admin user gets the caps the credential issuers need (users, buckets, metadata, usage, roles, user-policy)
and its keys go to ``state_dir/admin.env`` (mode 0600) as ``CP_RGW_ADMIN_ACCESS_KEY=...`` lines: never printed.
STS is enabled with a short minimum session duration (read by RGW only at start) so expiry is testable in seconds.

Command line (for scripts that may not import the sandbox, e.g. bench/):
``python -m clusterproof.sandbox.rgw start|stop|status|restart --state-dir DIR [--port N] [--mon-port N]``
(``restart``: radosgw alone, mon and OSD keep running).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import secrets
import shutil
import signal
import string
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clusterproof.errors import SandboxError
from clusterproof.redact import REDACTOR
from clusterproof.sandbox.rgw_procs import (
    answers,
    log_tail,
    ours,
    port_in_use,
    recorded_pid,
    run_setup,
    running,
    spawn,
)

ACCESS_KEY_ENV = "CP_RGW_ADMIN_ACCESS_KEY"
SECRET_KEY_ENV = "CP_RGW_ADMIN_SECRET_KEY"
CREDENTIALS_TOKEN_ENV = "CP_CREDENTIALS_TOKEN"
ADMIN_UID = "cp-admin"
ADMIN_CAPS = "users=*;buckets=*;metadata=*;usage=*;roles=*;user-policy=*"
_BINARIES = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph", "ceph-authtool", "monmaptool")
_MARKER = ".clusterproof-rgw"  # only directories carrying this file are ever deleted by stop()
_DAEMONS = ("rgw", "osd", "mon")  # kill order
#: Popen objects of daemons this process started, so killed children are reaped instead of left as zombies.


@dataclass(frozen=True)
class RgwInfo:
    """A running sandbox RGW. ``admin_secret_key`` is hidden from repr."""

    endpoint: str
    admin_access_key: str
    admin_secret_key: str = field(repr=False)
    secrets_file: Path
    pids: dict[str, int]
    state_dir: Path
    ceph_conf: Path
    start_seconds: float = 0.0


@dataclass(frozen=True)
class RgwStatus:
    """What ``status()`` found: ``up`` is True only when every daemon runs and RGW answers HTTP."""

    up: bool
    endpoint: str | None
    daemons: dict[str, int | None]

    def __str__(self) -> str:
        parts = ", ".join(f"{name}={pid if pid else 'down'}" for name, pid in self.daemons.items())
        return f"rgw {'up' if self.up else 'down'} {self.endpoint or ''} ({parts})".replace("  ", " ")


def start(state_dir: Path, port: int = 7480, mon_port: int = 16789, sts_min_duration: int = 5) -> RgwInfo:
    """Start (or reuse, when already healthy) a single-node Ceph + RGW whose files all live in ``state_dir``.

    Returns:
        RgwInfo with the endpoint, the admin keys (also written to ``state_dir/admin.env``, mode 0600) and pids.
    Raises:
        SandboxError: a binary is missing, a port is taken, or a daemon failed; the message carries the log
            tail. Whatever was started is stopped first.
    """
    state_dir = Path(state_dir).resolve()
    current = status(state_dir)
    if current.up:
        return _read_info(state_dir)
    missing = [b for b in _BINARIES if shutil.which(b) is None]
    if missing:
        raise SandboxError(
            f"missing Ceph binaries: {', '.join(missing)} "
            "(apt-get install --no-install-recommends ceph-mon ceph-osd radosgw ceph-common)"
        )
    stop(state_dir)
    for what, p in (("RGW", port), ("mon", mon_port)):
        if port_in_use(p):
            raise SandboxError(f"{what} port 127.0.0.1:{p} is already in use; choose another port")
    t0 = time.monotonic()
    try:
        info = _bootstrap(state_dir, port, mon_port, sts_min_duration)
    except BaseException as exc:
        tail = log_tail(state_dir)
        stop(state_dir, keep_logs=True)
        if isinstance(exc, SandboxError):
            raise SandboxError(f"{exc}\n--- log tail ({state_dir / 'log'}) ---\n{tail}") from None
        raise
    elapsed = time.monotonic() - t0
    print(f"clusterproof: rgw up at {info.endpoint} in {elapsed:.1f} s (state in {state_dir})", file=sys.stderr)
    return dataclasses.replace(info, start_seconds=elapsed)


def stop(state_dir: Path, keep_logs: bool = False) -> list[str]:
    """Kill the daemons recorded in ``state_dir`` (only ours) and delete the directory.

    Returns:
        One line per daemon that was killed, e.g. ``"radosgw pid 1234 killed"``.
    """
    state_dir = Path(state_dir).resolve()
    conf = state_dir / "ceph.conf"
    killed: list[str] = []
    pids: list[int] = []
    for name in _DAEMONS:
        pid = recorded_pid(state_dir, name)
        if pid is not None and ours(pid, conf):
            try:
                # SIGKILL: a throwaway memstore cluster has nothing to flush; SIGTERM costs ~2 s per daemon.
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            pids.append(pid)
            killed.append(f"{name} pid {pid} killed")
    deadline = time.monotonic() + 10
    while any(running(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    if (state_dir / _MARKER).exists():
        if keep_logs:
            shutil.rmtree(state_dir / "pids", ignore_errors=True)
        else:
            shutil.rmtree(state_dir, ignore_errors=True)
    return killed


def status(state_dir: Path) -> RgwStatus:
    """Report whether the sandbox RGW in ``state_dir`` is running; never raises."""
    state_dir = Path(state_dir).resolve()
    conf = state_dir / "ceph.conf"
    daemons: dict[str, int | None] = {}
    for name in reversed(_DAEMONS):
        pid = recorded_pid(state_dir, name)
        daemons[name] = pid if pid is not None and ours(pid, conf) else None
    endpoint = None
    try:
        endpoint = json.loads((state_dir / "rgw.json").read_text())["endpoint"]
    except (OSError, ValueError, KeyError):
        pass
    up = all(daemons.values()) and endpoint is not None and answers(endpoint)
    return RgwStatus(up=bool(up), endpoint=endpoint, daemons=daemons)


def storage_inventory_section(info: RgwInfo, http_base_url: str | None = None) -> dict[str, Any]:
    """The inventory's ``storage:`` mapping for this RGW: names of env vars, never the secrets.

    The ``http`` issuer is listed only when ``http_base_url`` (the reference credential service) is given.
    """
    issuers = ["rgw-user", "sts"] + (["http"] if http_base_url else [])
    return {
        "endpoint": info.endpoint,
        "region": "default",
        "issuers": issuers,
        "admin_access_key_env": ACCESS_KEY_ENV,
        "admin_secret_key_env": SECRET_KEY_ENV,
        "http_base_url": http_base_url,
        "http_token_env": CREDENTIALS_TOKEN_ENV,
    }


def read_secrets_file(path: Path) -> dict[str, str]:
    """Parse a ``KEY=VALUE`` secrets file (the admin.env this module writes); values are registered for redaction.

    Raises:
        SandboxError: the file is missing or has a line that is not ``KEY=VALUE``.
    """
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as e:
        raise SandboxError(f"{path}: cannot read the RGW secrets file: {e.strerror or e}") from None
    out: dict[str, str] = {}
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise SandboxError(f"{path}:{n}: expected KEY=VALUE")
        out[key.strip()] = value.strip()
        REDACTOR.add(value.strip())
    return out


# --- bootstrap -----------------------------------------------------------------------------------------------


def _bootstrap(state_dir: Path, port: int, mon_port: int, sts_min_duration: int) -> RgwInfo:
    for sub in ("pids", "log", "run", "crash", "mon.a", "osd.0", "rgw.a"):
        (state_dir / sub).mkdir(parents=True, exist_ok=True)
    (state_dir / _MARKER).write_text("created by clusterproof.sandbox.rgw; deleted by stop()\n")
    conf = state_dir / "ceph.conf"
    keyring = state_dir / "keyring"
    fsid, osd_uuid = str(uuid.uuid4()), str(uuid.uuid4())
    endpoint = f"http://127.0.0.1:{port}"
    # rgw_sts_key must be exactly 16 characters (AES-128 key for the session tokens).
    sts_key = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(16))
    conf.write_text(_ceph_conf(state_dir, fsid, port, mon_port, sts_key, sts_min_duration))
    conf.chmod(0o600)

    run_setup(["ceph-authtool", "--create-keyring", str(keyring), "--gen-key", "-n", "mon.", "--cap", "mon", "allow *"])
    for entity, caps in (
        ("client.admin", ["mon", "allow *", "osd", "allow *", "mgr", "allow *", "mds", "allow *"]),
        ("osd.0", ["mon", "allow profile osd", "mgr", "allow profile osd", "osd", "allow *"]),
        ("client.rgw.a", ["mon", "allow rw", "osd", "allow rwx", "mgr", "allow rw"]),
    ):
        cap_args = [a for i in range(0, len(caps), 2) for a in ("--cap", caps[i], caps[i + 1])]
        run_setup(["ceph-authtool", str(keyring), "--gen-key", "-n", entity, *cap_args])
    monmap = state_dir / "monmap"
    run_setup(["monmaptool", "--create", "--fsid", fsid, "--addv", "a", f"[v2:127.0.0.1:{mon_port}]", str(monmap)])
    # mon --mkfs imports every entity of the keyring into the auth database: one keyring serves all daemons.
    run_setup(["ceph-mon", "-c", str(conf), "--mkfs", "-i", "a", "--monmap", str(monmap), "--keyring", str(keyring)])
    pids = {"mon": spawn(state_dir, "mon", ["ceph-mon", "-c", str(conf), "-f", "-i", "a"])}

    osd_id = run_setup(["ceph", "-c", str(conf), "--connect-timeout", "15", "osd", "new", osd_uuid]).strip()
    if osd_id != "0":
        raise SandboxError(f"ceph osd new returned id {osd_id!r}, expected 0")
    run_setup(["ceph-osd", "-c", str(conf), "-i", "0", "--mkfs", "--osd-uuid", osd_uuid])
    pids["osd"] = spawn(state_dir, "osd", ["ceph-osd", "-c", str(conf), "-f", "-i", "0"])
    # No wait for "osd.0 up" with the ceph CLI (0.4 s per poll): radosgw blocks on its pools until the OSD
    # serves them, and polling RGW's port is cheap. A dead daemon is noticed in the loop below.
    pids["rgw"] = spawn(state_dir, "rgw", ["radosgw", "-c", str(conf), "-f", "-n", "client.rgw.a"])
    deadline = time.monotonic() + 60
    while not answers(endpoint):
        for name, pid in pids.items():
            if not running(pid):
                raise SandboxError(f"{name} (pid {pid}) died during start")
        if time.monotonic() > deadline:
            raise SandboxError(f"RGW did not answer on {endpoint} within 60 s")
        time.sleep(0.1)

    access_key = "CP" + "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(18))
    secret_key = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(40))
    REDACTOR.add(access_key)
    REDACTOR.add(secret_key)
    run_setup(
        [
            "radosgw-admin", "-c", str(conf), "user", "create", f"--uid={ADMIN_UID}", "--display-name=clusterproof admin",
            f"--access-key={access_key}", f"--secret-key={secret_key}", f"--caps={ADMIN_CAPS}",
        ],
        secret=True,
    )
    secrets_file = state_dir / "admin.env"
    fd = os.open(secrets_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"{ACCESS_KEY_ENV}={access_key}\n{SECRET_KEY_ENV}={secret_key}\n")
    os.chmod(secrets_file, 0o600)  # O_CREAT's mode is masked by umask and ignored for an existing file
    state = {"endpoint": endpoint, "port": port, "mon_port": mon_port, "sts_min_duration": sts_min_duration}
    (state_dir / "rgw.json").write_text(json.dumps(state, indent=1) + "\n")
    return RgwInfo(
        endpoint=endpoint, admin_access_key=access_key, admin_secret_key=secret_key, secrets_file=secrets_file,
        pids=pids, state_dir=state_dir, ceph_conf=conf,
    )


def _ceph_conf(d: Path, fsid: str, port: int, mon_port: int, sts_key: str, sts_min_duration: int) -> str:
    return f"""[global]
fsid = {fsid}
mon host = [v2:127.0.0.1:{mon_port}]
mon initial members = a
public addr = 127.0.0.1
ms bind msgr1 = false
ms bind ipv6 = false
keyring = {d}/keyring
run dir = {d}/run
crash dir = {d}/crash
admin socket = {d}/run/$name.asok
log file = {d}/log/$name.log
mon cluster log file = {d}/log/cluster.log
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
mon max pg per osd = 1000
[mon]
# The default paxos propose interval (1 s) makes every pool creation cost ~2 s; RGW creates six at boot.
paxos propose interval = 0.05
paxos min wait = 0.01
mon data = {d}/mon.$id
[osd]
osd data = {d}/osd.$id
osd objectstore = memstore
memstore device bytes = 2147483648
osd op num shards = 1
osd op num threads per shard = 2
# A radosgw that dies (SIGKILL, a crash) leaves its cache watches on the control objects; every metadata write
# (create or delete a user) then waits for them to time out: 30 s by default, measured 29.8 s. A sandbox that
# restarts RGW under test keeps that to 10 s (at 5 s, with RGW's pings every 5 s, live watches timed out on a busy
# machine: RGWWatcher::handle_error ENOTCONN in its log).
osd client watch timeout = 10
[client.rgw.a]
rgw data = {d}/rgw.a
rgw frontends = beast endpoint=127.0.0.1:{port}
rgw thread pool size = 32
# Ping its watches every second, well inside the 10 s watch timeout.
objecter tick interval = 1
rgw dns name = 127.0.0.1
rgw sts key = {sts_key}
rgw s3 auth use sts = true
# Read only at startup: lets tests request STS sessions of a few seconds.
rgw sts min session duration = {sts_min_duration}
# Deleted objects' data (every tail past the first 4 MiB, multipart parts) waits for RGW's garbage collector,
# by default 2 h and then hourly: the data-path tests would fill the 2 GiB memstore OSD. Collect at once.
rgw gc obj min wait = 0
rgw gc processor period = 2
rgw gc processor max time = 2
"""


# --- processes -----------------------------------------------------------------------------------------------


def _read_info(state_dir: Path) -> RgwInfo:
    state = json.loads((state_dir / "rgw.json").read_text())
    env = read_secrets_file(state_dir / "admin.env")
    pids = {name: pid for name in _DAEMONS if (pid := recorded_pid(state_dir, name)) is not None}
    return RgwInfo(
        endpoint=state["endpoint"], admin_access_key=env[ACCESS_KEY_ENV], admin_secret_key=env[SECRET_KEY_ENV],
        secrets_file=state_dir / "admin.env", pids=pids, state_dir=state_dir, ceph_conf=state_dir / "ceph.conf",
    )


def restart_gateway(state_dir: Path, timeout_s: float = 60.0) -> str:
    """Restart radosgw alone (mon and OSD keep running): SIGTERM, SIGKILL after 10 s, start it again with the
    same configuration, wait until it answers HTTP.

    Returns:
        What happened, e.g. ``"radosgw pid 1234 -> 1300: down 1.42 s"``.
    Raises:
        SandboxError: no RGW of ours runs in ``state_dir``, or the new radosgw did not answer in time.
    """
    state_dir = Path(state_dir).resolve()
    conf = state_dir / "ceph.conf"
    old = recorded_pid(state_dir, "rgw")
    if old is None or not ours(old, conf):
        raise SandboxError(f"no radosgw of ours runs in {state_dir}")
    endpoint = json.loads((state_dir / "rgw.json").read_text())["endpoint"]
    t0 = time.monotonic()
    _terminate(old)
    new = spawn(state_dir, "rgw", ["radosgw", "-c", str(conf), "-f", "-n", "client.rgw.a"])
    deadline = time.monotonic() + timeout_s
    while not answers(endpoint):
        if not running(new) or time.monotonic() > deadline:
            raise SandboxError(f"radosgw did not come back on {endpoint}\n{log_tail(state_dir)}")
        time.sleep(0.05)
    return f"radosgw pid {old} -> {new}: down {time.monotonic() - t0:.2f} s"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m clusterproof.sandbox.rgw start|stop|status --state-dir DIR``; prints no secret."""
    ap = argparse.ArgumentParser(prog="python -m clusterproof.sandbox.rgw", description=__doc__.splitlines()[0])
    ap.add_argument("action", choices=("start", "stop", "status", "restart"))
    ap.add_argument("--state-dir", type=Path, required=True)
    ap.add_argument("--port", type=int, default=7480)
    ap.add_argument("--mon-port", type=int, default=16789)
    ap.add_argument("--sts-min-duration", type=int, default=5)
    args = ap.parse_args(argv)
    try:
        if args.action == "start":
            info = start(args.state_dir, args.port, args.mon_port, args.sts_min_duration)
            print(json.dumps({"endpoint": info.endpoint, "secrets_file": str(info.secrets_file), "pids": info.pids}))
        elif args.action == "stop":
            print("\n".join(stop(args.state_dir)) or "nothing to stop")
        elif args.action == "restart":
            print(restart_gateway(args.state_dir))
        else:
            st = status(args.state_dir)
            print(st)
            return 0 if st.up else 1
    except SandboxError as e:
        print(f"clusterproof: {e}", file=sys.stderr)
        return 1
    return 0



def kill_radosgw(state_dir: Path) -> str:
    """Fault: SIGKILL the sandbox's radosgw (mon and osd stay up), as when RGW crashes mid-run. Undo: start_radosgw."""
    state_dir = Path(state_dir).resolve()
    pid = recorded_pid(state_dir, "rgw")
    if pid is None or not ours(pid, state_dir / "ceph.conf"):
        return "radosgw was not running"
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return f"radosgw pid {pid} killed"


def stop_radosgw(state_dir: Path) -> str:
    """Fault: stop the sandbox's radosgw the way an upgrade does (SIGTERM, SIGKILL after 10 s); mon and osd stay
    up. Undo: start_radosgw."""
    state_dir = Path(state_dir).resolve()
    pid = recorded_pid(state_dir, "rgw")
    if pid is None or not ours(pid, state_dir / "ceph.conf"):
        return "radosgw was not running"
    _terminate(pid)
    return f"radosgw pid {pid} stopped"


def _terminate(pid: int) -> None:
    """SIGTERM ``pid`` (a radosgw of ours), SIGKILL after 10 s; returns once it is gone."""
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if running(pid):
        os.kill(pid, signal.SIGKILL)
        while running(pid):
            time.sleep(0.05)


def start_radosgw(state_dir: Path) -> str:
    """Undo :func:`kill_radosgw`: start radosgw again on the same config and wait until it answers."""
    state_dir = Path(state_dir).resolve()
    conf = state_dir / "ceph.conf"
    pid = recorded_pid(state_dir, "rgw")
    if pid is not None and ours(pid, conf):
        return f"radosgw already running (pid {pid})"
    endpoint = json.loads((state_dir / "rgw.json").read_text())["endpoint"]
    pid = spawn(state_dir, "rgw", ["radosgw", "-c", str(conf), "-f", "-n", "client.rgw.a"])
    deadline = time.monotonic() + 60
    while not answers(endpoint):
        if not running(pid) or time.monotonic() > deadline:
            raise SandboxError(f"radosgw (pid {pid}) did not come back on {endpoint}; see {state_dir / 'log'}")
        time.sleep(0.1)
    return f"radosgw started again (pid {pid}) on {endpoint}"


if __name__ == "__main__":
    sys.exit(main())
