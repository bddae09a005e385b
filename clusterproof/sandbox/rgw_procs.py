"""The processes behind the sandbox's RGW: short setup commands, daemons spawned in their own session and their
pid files, and the liveness probes :mod:`clusterproof.sandbox.rgw` uses (pid reuse guarded by the ceph.conf
path on the daemon's command line)."""

from __future__ import annotations

import os
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from clusterproof.errors import SandboxError
from clusterproof.sandbox import procs


def run_setup(argv: Sequence[str], secret: bool = False) -> str:
    """Run a short setup command; raise SandboxError with its output when it fails."""
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise SandboxError(f"timed out after 60 s: {argv[0]} {argv[1] if len(argv) > 1 else ''}") from None
    if proc.returncode != 0:
        shown = argv[0] if secret else " ".join(argv)
        raise SandboxError(f"{shown} failed (exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()[-2000:]}")
    return proc.stdout


def spawn(state_dir: Path, name: str, argv: list[str]) -> int:
    log = open(state_dir / "log" / f"{name}.stdout", "ab")  # noqa: SIM115 - handed to the child, closed below
    try:
        # A new session: Ctrl-C on the caller does not reach the daemons; stop() ends them by pid.
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True)
    finally:
        log.close()
    procs.adopt(proc)
    (state_dir / "pids" / name).write_text(f"{proc.pid}\n")
    return proc.pid


def recorded_pid(state_dir: Path, name: str) -> int | None:
    try:
        return int((state_dir / "pids" / name).read_text().strip())
    except (OSError, ValueError):
        return None


def running(pid: int) -> bool:
    """Alive and not a zombie (pid 1 here reaps orphans only every ~2 s, so kill -0 is not enough)."""
    return procs.child_alive(pid)


def ours(pid: int, conf: Path) -> bool:
    """The pid still runs a daemon of this sandbox: its command line names our ceph.conf (guards pid reuse)."""
    if not running(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return os.fsencode(str(conf)) in cmdline


def answers(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(endpoint + "/", timeout=2) as r:
            return bool(r.status)
    except urllib.error.HTTPError:
        return True  # any HTTP answer means RGW is serving
    except (OSError, ValueError):
        return False


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def log_tail(state_dir: Path, lines: int = 15) -> str:
    out = []
    for name in ("mon.a.log", "osd.0.log", "client.rgw.a.log", "rgw.stdout", "osd.stdout", "mon.stdout"):
        path = state_dir / "log" / name
        try:
            text = path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            continue
        if text:
            out.append(f"== {name}\n" + "\n".join(text))
    return "\n".join(out) or "(no logs)"
