"""A real Slurm (Debian's slurm-wlm 22.05) in the sandbox: munged, slurmctld on the first node, slurmd on every
node, one partition holding all nodes.

Nothing under the host's /etc/slurm or /etc/munge is used: the configuration lives in ``<state_dir>/slurm/etc``,
which ``node_init.sh`` binds over ``/etc/slurm`` inside every node (so ``srun``/``scontrol`` run over SSH on a node
find it at the default path, as on a real cluster); host-side commands get ``SLURM_CONF``. munged has its own key
and socket under ``<state_dir>/munge`` (``AuthInfo=socket=...``). Every daemon runs inside a node's namespaces
(``nsenter --target <holder pid>``), so ``cluster.down`` finds and ends them with the node's other processes.

What the start-up needed (``../shared/notes/sandbox-cluster.md``): slurmctld checks that its hostname is the
``SlurmctldHost`` (it runs in node01's UTS namespace); slurmd needs the cgroup tree under /sys (node_init.sh moves
it back over the node's own sysfs); pmix needs a private /tmp per node (``spmix_appdir`` collides otherwise);
``MailProg=/bin/true`` (the default mail program does not exist).
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clusterproof.errors import SandboxError
from clusterproof.sandbox import procs
from clusterproof.sandbox.procs import ENV, run

if TYPE_CHECKING:
    from clusterproof.sandbox.state import SandboxCluster, SandboxNode

MUNGED, SLURMCTLD, SLURMD = "/usr/sbin/munged", "/usr/sbin/slurmctld", "/usr/sbin/slurmd"
TOOLS = {MUNGED: "munge", SLURMCTLD: "slurmctld", SLURMD: "slurmd", "/usr/bin/srun": "slurm-client",
         "/usr/bin/scontrol": "slurm-client", "/usr/bin/sinfo": "slurm-client"}
PARTITION = "sandbox"
STATE_FILE = "slurm.json"


@dataclass(frozen=True)
class SlurmPorts:
    """slurmctld's and every slurmd's TCP port (each node has its own network namespace, so one slurmd port)."""

    slurmctld: int = 6817
    slurmd: int = 6818


#: What every sandbox node offers as GRES (eight "GPUs" by count, with no device files: nothing binds them), so the
#: suites' GRES check reads a real ``scontrol show node`` answer.
SANDBOX_GRES = "gpu:8"


def slurm_dir(c: SandboxCluster) -> Path:
    return c.state_dir / "slurm"


def conf_path(c: SandboxCluster) -> Path:
    return slurm_dir(c) / "etc" / "slurm.conf"


def enabled(c: SandboxCluster) -> bool:
    """True when this sandbox was brought up with Slurm."""
    return (slurm_dir(c) / STATE_FILE).exists() or conf_path(c).exists()


def env(c: SandboxCluster) -> dict[str, str]:
    """The environment for Slurm commands run on the host (``SLURM_CONF`` names the sandbox's slurm.conf)."""
    return {**ENV, "SLURM_CONF": str(conf_path(c))}


def check_host() -> None:
    """Raise SandboxError naming the Debian packages of missing Slurm binaries."""
    missing = {p for b, p in TOOLS.items() if not os.access(b, os.X_OK)}
    if missing:
        raise SandboxError(f"--slurm needs {', '.join(sorted(missing))}: run scripts/system-deps.sh "
                           f"(apt-get install {' '.join(sorted(missing))})")


def _conf(c: SandboxCluster, ports: SlurmPorts) -> str:
    head = c.nodes[0]
    cpus = os.cpu_count() or 1
    sd = slurm_dir(c)
    lines = [
        f"# clusterproof sandbox {c.state_dir}: Slurm for the sandbox nodes only",
        f"ClusterName={c.prefix.replace('_', '')}sandbox",
        f"SlurmctldHost={head.name}({head.ip})",
        f"SlurmctldPort={ports.slurmctld}", f"SlurmdPort={ports.slurmd}",
        "SlurmUser=root", "SlurmdUser=root",
        "AuthType=auth/munge", f"AuthInfo=socket={c.state_dir}/munge/munge.socket.2", "CredType=cred/munge",
        f"StateSaveLocation={sd}/ctld", f"SlurmdSpoolDir={sd}/spool/%n",
        f"SlurmctldPidFile={sd}/slurmctld.pid", f"SlurmdPidFile={sd}/slurmd.%n.pid",
        f"SlurmctldLogFile={sd}/slurmctld.log", f"SlurmdLogFile={sd}/slurmd.%n.log",
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
        "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core",
        "MpiDefault=none", "ReturnToService=2", "SwitchType=switch/none",
        "JobAcctGatherType=jobacct_gather/none", "AccountingStorageType=accounting_storage/none",
        "JobCompType=jobcomp/none", "MailProg=/bin/true",
        # Short timers: a stopped slurmd is "not responding" within seconds, a cancelled step is gone in 2 s.
        "KillWait=2", "MinJobAge=2", "SlurmdTimeout=10", "MessageTimeout=5", "InactiveLimit=0", "TCPTimeout=2",
    ]
    lines.append("GresTypes=gpu")
    lines += [f"NodeName={n.name} NodeAddr={n.ip} CPUs={cpus} Gres={SANDBOX_GRES} State=UNKNOWN" for n in c.nodes]
    lines.append(f"PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4")
    return "\n".join(lines) + "\n"


def write_files(c: SandboxCluster, ports: SlurmPorts) -> None:
    """slurm.conf, an empty cgroup.conf, the spool and state dirs, and munge's own key. Must run before the nodes
    start: node_init.sh binds ``slurm/etc`` over each node's /etc/slurm."""
    sd = slurm_dir(c)
    for d in (sd / "etc", sd / "ctld", *(sd / "spool" / n.name for n in c.nodes), c.state_dir / "munge"):
        d.mkdir(parents=True, exist_ok=True)
    (c.state_dir / "munge").chmod(0o700)
    conf_path(c).write_text(_conf(c, ports))
    # slurmd counts a gpu GRES by its device files: eight character devices like /dev/null (1,3) stand in
    gres_name, _, gres_count = SANDBOX_GRES.partition(":")
    devices = sd / "dev"
    devices.mkdir(exist_ok=True)
    for i in range(int(gres_count)):
        dev = devices / f"nvidia{i}"
        if not dev.exists():
            os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    (conf_path(c).parent / "gres.conf").write_text(
        f"Name={gres_name} File={devices}/nvidia[0-{int(gres_count) - 1}]\n")
    key = c.state_dir / "munge" / "munge.key"
    key.write_bytes(secrets.token_bytes(1024))
    key.chmod(0o600)
    (sd / STATE_FILE).write_text(json.dumps({"ports": ports.__dict__, "partition": PARTITION}) + "\n")


def _in_node(n: SandboxNode, argv: list[str], step: str) -> None:
    if not procs.alive_in_netns(n.holder_pid, n.netns):
        raise SandboxError(f"{step}: {n.name}'s namespaces are gone (holder pid {n.holder_pid})")
    run(["nsenter", f"--target={n.holder_pid}", "--mount", "--uts", "--net", *argv], step)


def _wait_pid(path: Path, what: str, log: Path, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = procs.read_pid(path)
        if pid and procs.alive(pid):
            return pid
        time.sleep(0.05)
    raise SandboxError(f"{what} did not start (no live pid in {path}) {_tail(log)}")


def _tail(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").strip().splitlines()[-4:]
    except OSError:
        return ""
    return "| " + log.name + ": " + " / ".join(lines) if lines else ""


def launch_slurmd(c: SandboxCluster, n: SandboxNode) -> int:
    """Start slurmd inside node ``n``; return its pid."""
    sd = slurm_dir(c)
    pid_file = sd / f"slurmd.{n.name}.pid"
    pid_file.unlink(missing_ok=True)
    _in_node(n, [SLURMD, "-f", str(conf_path(c)), "-N", n.name], f"start slurmd on {n.name}")
    return _wait_pid(pid_file, f"slurmd on {n.name}", sd / f"slurmd.{n.name}.log")


def start(c: SandboxCluster, timeout: float = 60.0) -> dict[str, int]:
    """Start munged and slurmctld on the first node and slurmd on every node; wait until every node is idle.

    Returns the daemons' pids by name (``munged``, ``slurmctld``, ``slurmd@node01``...).

    Raises:
        SandboxError: a daemon did not start (with its log tail), or nodes are not idle within ``timeout``.
    """
    check_host()
    head, m, sd = c.nodes[0], c.state_dir / "munge", slurm_dir(c)
    _in_node(head, [MUNGED, "--force", f"--socket={m}/munge.socket.2", f"--key-file={m}/munge.key",
                    f"--pid-file={m}/munged.pid", f"--log-file={m}/munged.log", f"--seed-file={m}/munged.seed"],
             "start munged")
    pids = {"munged": _wait_pid(m / "munged.pid", "munged", m / "munged.log")}
    _in_node(head, [SLURMCTLD, "-i", "-f", str(conf_path(c))], "start slurmctld")
    pids["slurmctld"] = _wait_pid(sd / "slurmctld.pid", "slurmctld", sd / "slurmctld.log")
    for n in c.nodes:
        pids[f"slurmd@{n.name}"] = launch_slurmd(c, n)
    wait_idle(c, [n.name for n in c.nodes], timeout)
    return pids


def node_states(c: SandboxCluster) -> dict[str, str]:
    """Node name -> Slurm state as sinfo prints it (``idle``, ``down*``, ``drain``...); {} when slurmctld is silent."""
    try:
        out = run(["sinfo", "-h", "-N", "-o", "%N %t"], "sinfo", timeout=15, env=env(c))
    except SandboxError:
        return {}
    return dict(line.split(None, 1) for line in out.splitlines() if len(line.split()) == 2)


def wait_idle(c: SandboxCluster, names: list[str], timeout: float = 60.0) -> None:
    """Wait until every named node is idle (or allocated/mixed). Raises SandboxError naming the others."""
    deadline, states = time.monotonic() + timeout, {}
    while time.monotonic() < deadline:
        states = node_states(c)
        if all(states.get(n, "").rstrip("~#$@") in ("idle", "mix", "alloc") for n in names):
            return
        time.sleep(0.25)
    raise SandboxError(f"Slurm nodes not idle after {timeout:g} s: "
                       ", ".join(f"{n}={states.get(n, 'unknown')}" for n in names) + " " + _tail(slurm_dir(c) / "slurmctld.log"))


def status(c: SandboxCluster) -> dict[str, Any]:
    """``{"partition", "slurmctld_alive", "nodes": {name: state}, "slurmd_alive": {name: bool}}``."""
    sd = slurm_dir(c)
    return {
        "partition": PARTITION,
        "conf": str(conf_path(c)),
        "slurmctld_alive": procs.alive(procs.read_pid(sd / "slurmctld.pid")),
        "munged_alive": procs.alive(procs.read_pid(c.state_dir / "munge" / "munged.pid")),
        "nodes": node_states(c),
        "slurmd_alive": {n.name: procs.alive_in_netns(procs.read_pid(sd / f"slurmd.{n.name}.pid"), n.netns) for n in c.nodes},
    }


def scontrol(c: SandboxCluster, *args: str) -> str:
    """Run ``scontrol ARGS`` on the host against the sandbox's slurmctld; return its stdout."""
    return run(["scontrol", *args], f"scontrol {' '.join(args)}", timeout=20, env=env(c))


# ------------------------------------------------------------------------------------------------ faults


def _require(c: SandboxCluster) -> None:
    if not enabled(c):
        raise SandboxError(f"sandbox {c.state_dir} has no Slurm: bring it up with `clusterproof sandbox up --slurm`")


def _state_of(c: SandboxCluster, name: str) -> str:
    out = scontrol(c, "show", "node", "-o", name)
    m = next((tok for tok in out.split() if tok.startswith("State=")), "State=")
    return m.split("=", 1)[1]


def stop_slurmd(c: SandboxCluster, node: str, wait_s: float = 45.0) -> str:
    """Stop the node's slurmd by its pid and wait until slurmctld marks the node DOWN (not responding), as it
    does on a real cluster after ``SlurmdTimeout``. Returns a line with the state and the seconds it took."""
    _require(c)
    n = c.node(node)
    pid = procs.read_pid(slurm_dir(c) / f"slurmd.{n.name}.pid")
    if not procs.alive_in_netns(pid, n.netns):
        return f"{n.name}: slurmd was not running"
    procs.terminate([pid])
    t0, state = time.monotonic(), ""
    while time.monotonic() - t0 < wait_s:
        state = _state_of(c, n.name)
        if state.startswith("DOWN"):
            break
        time.sleep(0.5)
    return f"{n.name}: slurmd (pid {pid}) stopped; Slurm state {state or 'unknown'} after {time.monotonic() - t0:.1f} s"


def start_slurmd(c: SandboxCluster, node: str, wait_s: float = 30.0) -> str:
    """Start the node's slurmd again and wait until the node is idle (ReturnToService=2 returns it). Returns a line."""
    _require(c)
    n = c.node(node)
    pid = procs.read_pid(slurm_dir(c) / f"slurmd.{n.name}.pid")
    if procs.alive_in_netns(pid, n.netns):
        return f"{n.name}: slurmd already running (pid {pid})"
    pid = launch_slurmd(c, n)
    wait_idle(c, [n.name], wait_s)
    return f"{n.name}: slurmd started (pid {pid}), node idle"


def drain(c: SandboxCluster, node: str, reason: str) -> str:
    """``scontrol update nodename=NODE state=drain reason=REASON``. Returns a line."""
    _require(c)
    n = c.node(node)
    if not reason.strip():
        raise SandboxError("drain: Slurm needs a reason")
    scontrol(c, "update", f"nodename={n.name}", "state=drain", f"reason={reason}")
    return f"{n.name}: drained (reason: {reason}); Slurm state {_state_of(c, n.name)}"


def resume(c: SandboxCluster, node: str) -> str:
    """Undo ``drain`` (or a DOWN left behind): ``scontrol update nodename=NODE state=resume``. Returns a line."""
    _require(c)
    n = c.node(node)
    state = _state_of(c, n.name)
    if "DRAIN" in state or state.startswith("DOWN"):
        scontrol(c, "update", f"nodename={n.name}", "state=resume")
    wait_idle(c, [n.name], 30)
    return f"{n.name}: resumed; Slurm state {_state_of(c, n.name)}"
