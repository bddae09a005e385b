"""Faults on demand for a running sandbox: a slow link, a broken or garbage GID table, a stopped, hung or re-keyed sshd.

Each fault has its undo, returns one line saying what it did, and is safe to repeat. Every function
takes the node as a name (``"node03"``) or a SandboxNode and raises SandboxError for an unknown node
or a failed command.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import time
from pathlib import Path

from clusterproof.errors import SandboxError
from clusterproof.sandbox import procs
from clusterproof.sandbox.gids import write_gid_table
from clusterproof.sandbox.nodes import SSHD, port_answers, wait_for_pid_file, wait_for_sshd
from clusterproof.sandbox.procs import run
from clusterproof.sandbox.state import SandboxCluster, SandboxNode, require_root, write_state

_RATE_RE = re.compile(r"^(\d+(?:\.\d+)?)(bit|kbit|mbit|gbit)$", re.IGNORECASE)
_RATE_UNITS = {"bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9}
_DELAY_RE = re.compile(r"^\d+(?:\.\d+)?(us|ms|s)$")


def _node(cluster: SandboxCluster, node: str | SandboxNode) -> SandboxNode:
    return cluster.node(node if isinstance(node, str) else node.name)


def _rail_devices(n: SandboxNode, rail: int) -> tuple[str, str]:
    """(host-side veth, node-side interface) of ``rail`` (0: eth0, 1: eth1 on the second bridge)."""
    if rail == 0:
        return n.veth, "eth0"
    if rail == 1 and n.veth1:
        return n.veth1, "eth1"
    raise SandboxError(f"{n.name}: no rail {rail} (this sandbox has {'2 rails' if n.veth1 else '1 rail'}; "
                       "start it with a second rail subnet for rail 1)")


def _shape_both_sides(n: SandboxNode, qdisc: list[str], step: str, rail: int = 0) -> None:
    # Egress of the host-side veth is traffic TO the node; egress of the node's eth0 is traffic FROM it.
    veth, dev = _rail_devices(n, rail)
    run(["tc", "qdisc", "replace", "dev", veth, "root", *qdisc], step)
    run(["tc", "-n", n.netns, "qdisc", "replace", "dev", dev, "root", *qdisc], step)


def slow_link(cluster: SandboxCluster, node: str | SandboxNode, rate: str = "20mbit", delay: str = "5ms", rail: int = 0) -> str:
    """Throttle one node's link in both directions to ``rate`` and add ``delay`` (tc on its veth pair).

    Uses netem (rate + delay) when the kernel has it, else tbf (rate only: the returned line then says
    that the delay was not applied). Returns a line saying what was applied.

    Cost: all_reduce busbw through the slowed node drops to about 0.01 GB/s at 200mbit on this machine
    (healthy: 0.2-1 GB/s), and the sandbox inventory's 64K-4M sweep over it takes ~11 s at 200mbit but
    ~100 s at the default 20mbit: tests want ``rate="200mbit"``.

    ``rail`` 1 slows the node's second-rail interface (eth1) only.

    Raises:
        SandboxError: bad rate/delay syntax, unknown node or rail, or tc failed.
    """
    require_root()
    n = _node(cluster, node)
    veth, dev = _rail_devices(n, rail)
    where = f"{veth} and {n.name}:{dev}" + (f" (rail {rail})" if rail else "")
    m = _RATE_RE.match(rate)
    if not m:
        raise SandboxError(f"slow_link: rate must look like 20mbit (units bit, kbit, mbit, gbit), got {rate!r}")
    if not _DELAY_RE.match(delay):
        raise SandboxError(f"slow_link: delay must look like 5ms (units us, ms, s), got {delay!r}")
    try:
        _shape_both_sides(n, ["netem", "delay", delay, "rate", rate], f"slow {n.name} (netem)", rail)
        return f"{n.name}: link limited to {rate} with {delay} delay each way (netem on {where})"
    except SandboxError as e:
        if "qdisc kind is unknown" not in str(e):
            raise
    # Token bucket: a burst of ~4 ms of traffic (at least two frames) keeps the rate smooth without
    # letting whole small messages through at full speed.
    burst = max(3028, int(float(m.group(1)) * _RATE_UNITS[m.group(2).lower()] / 8 * 0.004))
    _shape_both_sides(n, ["tbf", "rate", rate, "burst", str(burst), "latency", "100ms"], f"slow {n.name} (tbf)", rail)
    return (f"{n.name}: link limited to {rate} each way (tbf on {where}); "
            f"delay {delay} not applied: this kernel has no netem qdisc")


def clear_slow_link(cluster: SandboxCluster, node: str | SandboxNode, rail: int = 0) -> str:
    """Remove what ``slow_link`` put on the node's link of ``rail`` (nothing to remove is fine). Returns a line."""
    require_root()
    n = _node(cluster, node)
    veth, dev = _rail_devices(n, rail)
    for argv in (["tc", "qdisc", "del", "dev", veth, "root"], ["tc", "-n", n.netns, "qdisc", "del", "dev", dev, "root"]):
        try:
            run(argv, f"clear slow link on {n.name}")
        except SandboxError as e:  # deleting the default qdisc: there was nothing to clear
            if "handle of zero" not in str(e) and "No such file" not in str(e):
                raise
    return f"{n.name}: link{f' (rail {rail})' if rail else ''} back to full speed"


def break_gid_table(cluster: SandboxCluster, node: str | SandboxNode, mode: str) -> str:
    """Rewrite the node's GID table while it runs: ``no_rocev2`` (no RoCE v2 entry at all) or
    ``other_index`` (the RoCE v2 IPv4 GID at index 3 instead of 5). Returns a line.

    Raises:
        SandboxError: unknown mode or node.
    """
    n = _node(cluster, node)
    if mode not in ("no_rocev2", "other_index"):
        raise SandboxError(f"break_gid_table: mode must be 'no_rocev2' or 'other_index', got {mode!r}")
    write_gid_table(n.state_dir / "ib", n.ip, mode)
    what = "has no RoCE v2 entry" if mode == "no_rocev2" else "has its RoCE v2 IPv4 GID at index 3"
    return f"{n.name}: mlx5_0 port 1 GID table now {what}"


def restore_gid_table(cluster: SandboxCluster, node: str | SandboxNode) -> str:
    """Put the node's standard GID table back (RoCE v2 IPv4 at index 5). Returns a line."""
    n = _node(cluster, node)
    write_gid_table(n.state_dir / "ib", n.ip, "standard")
    return f"{n.name}: GID table restored (RoCE v2 IPv4 at index 5)"


def stop_sshd(cluster: SandboxCluster, node: str | SandboxNode) -> str:
    """Stop the node's sshd listener by its recorded pid (open sessions stay, as with a real sshd stop).

    Afterwards connections to the node's port 22 are refused. Returns a line.
    """
    require_root()
    n = _node(cluster, node)
    if not procs.alive_in_netns(n.sshd_pid, n.netns):
        return f"{n.name}: sshd was not running"
    procs.terminate([n.sshd_pid])
    return f"{n.name}: sshd (pid {n.sshd_pid}) stopped"


def start_sshd(cluster: SandboxCluster, node: str | SandboxNode) -> str:
    """Start the node's sshd again inside the node's own namespaces and wait until it greets.

    Updates the node's ``sshd_pid`` in ``cluster`` and in the state file. Returns a line.

    Raises:
        SandboxError: the node's namespaces are gone (bring the sandbox down and up), or sshd did not start.
    """
    require_root()
    n = _node(cluster, node)
    if procs.alive_in_netns(n.sshd_pid, n.netns) and port_answers(n.ip):
        return f"{n.name}: sshd already running (pid {n.sshd_pid})"
    if not procs.alive_in_netns(n.holder_pid, n.netns):
        raise SandboxError(f"{n.name}: its namespaces are gone (holder pid {n.holder_pid} is dead): "
                           "bring the sandbox down and up again")
    pid_file = n.state_dir / "sshd.pid"
    pid_file.unlink(missing_ok=True)
    run(["nsenter", f"--target={n.holder_pid}", "--mount", "--uts", "--net",
         SSHD, "-f", str(n.state_dir / "sshd_config"), "-E", str(n.state_dir / "sshd.log")], f"start sshd on {n.name}")
    n.sshd_pid = wait_for_pid_file(n, deadline=time.monotonic() + 10)
    wait_for_sshd([n])
    write_state(cluster)
    return f"{n.name}: sshd started (pid {n.sshd_pid})"


def hang_sshd(cluster: SandboxCluster, node: str | SandboxNode) -> str:
    """Freeze the node's sshd listener with SIGSTOP: the kernel still accepts TCP connections into its backlog,
    but no SSH banner ever comes, like an sshd stuck on a dead NFS home or a swapping node. Sessions that were
    already open keep working (they are forked children). Undo: :func:`continue_sshd`. Returns a line."""
    require_root()
    n = _node(cluster, node)
    if not procs.alive_in_netns(n.sshd_pid, n.netns):
        raise SandboxError(f"{n.name}: sshd (pid {n.sshd_pid}) is not running; start it first")
    os.kill(n.sshd_pid, signal.SIGSTOP)
    return f"{n.name}: sshd (pid {n.sshd_pid}) frozen with SIGSTOP: connections are accepted and never answered"


def continue_sshd(cluster: SandboxCluster, node: str | SandboxNode) -> str:
    """Undo :func:`hang_sshd`: SIGCONT the node's sshd and wait until it greets again. Returns a line."""
    require_root()
    n = _node(cluster, node)
    if not procs.alive_in_netns(n.sshd_pid, n.netns):
        raise SandboxError(f"{n.name}: sshd (pid {n.sshd_pid}) is not running; use start-sshd")
    os.kill(n.sshd_pid, signal.SIGCONT)
    wait_for_sshd([n])
    return f"{n.name}: sshd (pid {n.sshd_pid}) continued"


#: What garbage_gids writes into a GID file: bytes that are not UTF-8 and not a GID (a firmware/driver bug).
GARBAGE_GID = b"\xff\xfe\x00\x9cgid?\x80\n"


def garbage_gids(cluster: SandboxCluster, node: str | SandboxNode, index: int = 5) -> str:
    """Overwrite one entry of the node's GID table (default the RoCE v2 IPv4 one, index 5) with undecodable bytes,
    while the node runs. Undo: :func:`restore_gid_table`. Returns a line."""
    n = _node(cluster, node)
    path = n.state_dir / "ib" / "mlx5_0" / "ports" / "1" / "gids" / str(index)
    if not path.exists():
        raise SandboxError(f"{n.name}: no GID file {path}")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(GARBAGE_GID)
    os.replace(tmp, path)
    return f"{n.name}: mlx5_0 port 1 GID {index} now holds {len(GARBAGE_GID)} undecodable bytes"


def _host_key(n: SandboxNode) -> tuple[Path, Path]:
    return n.state_dir / "ssh_host_ed25519_key", n.state_dir / "ssh_host_ed25519_key.orig"


def _reload_sshd(n: SandboxNode) -> None:
    # sshd re-executes itself on SIGHUP (same pid) and reads its host keys again.
    os.kill(n.sshd_pid, signal.SIGHUP)
    time.sleep(0.2)
    wait_for_sshd([n])


def rekey_sshd(cluster: SandboxCluster, node: str | SandboxNode) -> str:
    """Give the node's sshd a new host key (like a re-imaged node), so the sandbox known_hosts entry is wrong:
    strict host-key checking must refuse the node by name. Undo: :func:`restore_sshd_key`. Returns a line."""
    require_root()
    n = _node(cluster, node)
    key, orig = _host_key(n)
    if not orig.exists():
        shutil.copy2(key, orig)  # keeps mode 0600: sshd ignores a private host key others can read
        shutil.copy2(f"{key}.pub", f"{orig}.pub")
    key.unlink(missing_ok=True)
    Path(f"{key}.pub").unlink(missing_ok=True)
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{n.name}-rekeyed", "-f", str(key)], f"re-key {n.name}")
    _reload_sshd(n)
    return f"{n.name}: sshd has a new host key; known_hosts still holds the old one"


def restore_sshd_key(cluster: SandboxCluster, node: str | SandboxNode) -> str:
    """Undo :func:`rekey_sshd`: put the original host key back and reload sshd. Returns a line."""
    require_root()
    n = _node(cluster, node)
    key, orig = _host_key(n)
    if not orig.exists():
        return f"{n.name}: host key was not changed"
    orig.chmod(0o600)
    os.replace(orig, key)
    os.replace(f"{orig}.pub", f"{key}.pub")
    _reload_sshd(n)
    return f"{n.name}: original host key restored"

STANDIN_FAULTS = "standin_faults"


def _standin_faults(n: SandboxNode) -> dict[str, float]:
    path = n.state_dir / STANDIN_FAULTS
    out: dict[str, float] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key and value:
                out[key] = float(value)
    return out


def _write_standin_faults(n: SandboxNode, faults: dict[str, float]) -> None:
    path = n.state_dir / STANDIN_FAULTS
    if not faults:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_name(f".{STANDIN_FAULTS}.tmp")
    tmp.write_text("".join(f"{k} {v!r}\n" for k, v in sorted(faults.items())))  # repr: 1048576.0, never 1.04858e+06
    tmp.replace(path)  # a stand-in starting now reads the old or the new file, never half of one


def flaky(cluster: SandboxCluster, node: str | SandboxNode, probability: float) -> str:
    """Make the CPU stand-in on ``node`` damage one validated result per run with ``probability`` (0..1), as an
    intermittent link or GPU fault would: runs through the node then show ``#wrong > 0`` now and then.
    Undo: :func:`clear_flaky`. Returns a line.

    Raises:
        SandboxError: unknown node, or a probability outside 0..1.
    """
    n = _node(cluster, node)
    if not 0.0 <= probability <= 1.0:
        raise SandboxError(f"flaky: probability must be between 0 and 1, got {probability!r}")
    _write_standin_faults(n, {**_standin_faults(n), "flaky": probability})
    return f"{n.name}: the stand-in damages one result per run with probability {probability:g}"


def clear_flaky(cluster: SandboxCluster, node: str | SandboxNode) -> str:
    """Undo :func:`flaky` (nothing to undo is fine). Returns a line."""
    n = _node(cluster, node)
    faults = _standin_faults(n)
    faults.pop("flaky", None)
    _write_standin_faults(n, faults)
    return f"{n.name}: the stand-in no longer damages results"


def slow_node(cluster: SandboxCluster, node: str | SandboxNode, factor: float, from_bytes: int = 0) -> str:
    """Make every timed iteration of the stand-in on ``node`` take ``factor`` times as long, without touching the
    link (measured: at 1.5 the node's pairs run at 55% of the others' busbw on the loaded 2-core machine). Undo:
    :func:`clear_slow_node`. With ``from_bytes`` only sizes from there up are slowed: busbw dips at that size.
    Returns a line.

    Raises:
        SandboxError: unknown node, or a factor below 1.
    """
    n = _node(cluster, node)
    if not factor >= 1.0:
        raise SandboxError(f"slow-node: factor must be >= 1, got {factor!r}")
    _write_standin_faults(n, {**_standin_faults(n), "slow": factor, "slow_from": float(from_bytes)})
    where = f" from {from_bytes} bytes up" if from_bytes else ""
    return f"{n.name}: every timed iteration of the stand-in on this node takes {factor:g}x as long{where}"


def clear_slow_node(cluster: SandboxCluster, node: str | SandboxNode) -> str:
    """Undo :func:`slow_node` (nothing to undo is fine). Returns a line."""
    n = _node(cluster, node)
    faults = _standin_faults(n)
    faults.pop("slow", None)
    faults.pop("slow_from", None)
    _write_standin_faults(n, faults)
    return f"{n.name}: the stand-in runs at full speed again"
