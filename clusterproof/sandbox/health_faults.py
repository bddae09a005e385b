"""Node-health faults for a running sandbox, each with its undo: they rewrite a node's stand-ins
(:mod:`health_standins`) while it runs. Each returns one line saying what it did and is safe to repeat.

===============================  =================================================  ==========================
fault                            what the node then shows                           undo
===============================  =================================================  ==========================
``xid NODE CODE``                an ``NVRM: Xid`` line with CODE in its kernel log  ``clear_xid``
``gpu_missing NODE``             nvidia-smi lists 7 of its 8 GPUs                   ``restore_gpus``
``pcie_downgrade NODE``          GPU 0000:18:00.0 at Gen3 x8 (capable of Gen4 x16)  ``restore_pcie``
``port_down NODE``               mlx5_0 port 1 DOWN / Disabled                      ``port_up``
``port_rate NODE GBPS``          mlx5_0 port 1 at GBPS Gb/sec                       ``restore_port_rate``
``counter NODE COUNTER DELTA``   the counter DELTA higher (``during_run``: only     ``clear_counter``
                                 once a collective runs on the node)
``ecc NODE``                     GPU 0000:2a:00.0 with 2 uncorrectable ECC errors   ``clear_ecc``
===============================  =================================================  ==========================
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from clusterproof.errors import SandboxError
from clusterproof.nodes.health_xid import XID_TABLE
from clusterproof.sandbox import health_standins as st
from clusterproof.sandbox.gids import HCA, PORT
from clusterproof.sandbox.state import SandboxCluster, SandboxNode

_RATE_NAMES = {100: "4X EDR", 200: "4X HDR", 400: "4X NDR", 800: "4X XDR", 50: "2X HDR", 25: "1X EDR", 10: "4X QDR"}
WATCH_PID = "counter-watch.pid"


def _node(cluster: SandboxCluster, node: str | SandboxNode) -> SandboxNode:
    return cluster.node(node if isinstance(node, str) else node.name)


def xid(cluster: SandboxCluster, node: str | SandboxNode, code: int, gpu: int = 0) -> str:
    n = _node(cluster, node)
    if not 1 <= code <= 999:
        raise SandboxError(f"xid: code must be 1-999, got {code}")
    meaning = XID_TABLE.get(code, ("unknown", False))[0]
    bus = st.gpu_bdf(gpu)[:-2]  # the kernel prints PCI:dddd:bb:dd
    line = f"[ 8659.726062] NVRM: Xid (PCI:{bus}): {code}, pid='<unknown>', name=<unknown>, {meaning}.\n"
    log = st.standin_dir(n.state_dir) / "kmsg.log"
    st.write_kmsg(n.state_dir, log.read_text().removeprefix(st.KMSG) + line)
    return f"{n.name}: kernel log now has XID {code} ({meaning}) on {bus}"


def clear_xid(cluster: SandboxCluster, node: str | SandboxNode) -> str:
    n = _node(cluster, node)
    st.write_kmsg(n.state_dir)
    return f"{n.name}: kernel log back to its boot lines (no XID)"


def gpu_missing(cluster: SandboxCluster, node: str | SandboxNode) -> str:
    n = _node(cluster, node)
    st.write_gpus(n.state_dir, n.name, n_gpus=len(st.GPU_BUSES) - 1)
    return f"{n.name}: nvidia-smi lists {len(st.GPU_BUSES) - 1} GPUs ({st.gpu_bdf(len(st.GPU_BUSES) - 1)} missing; still on the PCI bus)"


def restore_gpus(cluster: SandboxCluster, node: str | SandboxNode) -> str:
    n = _node(cluster, node)
    st.write_gpus(n.state_dir, n.name)
    return f"{n.name}: nvidia-smi lists all {len(st.GPU_BUSES)} GPUs, no ECC error"


def pcie_downgrade(cluster: SandboxCluster, node: str | SandboxNode, gpu: int = 0) -> str:
    n = _node(cluster, node)
    speed, width = st.GPU_PCIE
    st.write_pcie(n.state_dir, st.gpu_bdf(gpu), "8.0 GT/s PCIe", "8", max_speed=speed, max_width=width)
    return f"{n.name}: GPU {st.gpu_bdf(gpu)} PCIe link at 8.0 GT/s x8 (max {speed} x{width})"


def restore_pcie(cluster: SandboxCluster, node: str | SandboxNode) -> str:
    n = _node(cluster, node)
    for i in range(len(st.GPU_BUSES)):
        st.write_pcie(n.state_dir, st.gpu_bdf(i), *st.GPU_PCIE)
    return f"{n.name}: every GPU PCIe link back at {st.GPU_PCIE[0]} x{st.GPU_PCIE[1]}"


def port_down(cluster: SandboxCluster, node: str | SandboxNode) -> str:
    n = _node(cluster, node)
    rate = (st.port_dir(n.state_dir) / "rate").read_text().strip()
    st.write_port(n.state_dir, state="1: DOWN", phys_state="3: Disabled", rate=rate)
    return f"{n.name}: {HCA} port {PORT} DOWN (phys_state Disabled)"


def port_up(cluster: SandboxCluster, node: str | SandboxNode) -> str:
    n = _node(cluster, node)
    rate = (st.port_dir(n.state_dir) / "rate").read_text().strip()
    st.write_port(n.state_dir, rate=rate)
    return f"{n.name}: {HCA} port {PORT} ACTIVE, LinkUp"


def port_rate(cluster: SandboxCluster, node: str | SandboxNode, gbps: int) -> str:
    n = _node(cluster, node)
    if gbps not in _RATE_NAMES:
        raise SandboxError(f"port-rate: GBPS must be one of {', '.join(map(str, sorted(_RATE_NAMES)))}, got {gbps}")
    state = (st.port_dir(n.state_dir) / "state").read_text().strip()
    phys = (st.port_dir(n.state_dir) / "phys_state").read_text().strip()
    st.write_port(n.state_dir, state=state, phys_state=phys, rate=f"{gbps} Gb/sec ({_RATE_NAMES[gbps]})")
    return f"{n.name}: {HCA} port {PORT} rate {gbps} Gb/sec ({_RATE_NAMES[gbps]})"


def restore_port_rate(cluster: SandboxCluster, node: str | SandboxNode) -> str:
    n = _node(cluster, node)
    state = (st.port_dir(n.state_dir) / "state").read_text().strip()
    phys = (st.port_dir(n.state_dir) / "phys_state").read_text().strip()
    st.write_port(n.state_dir, state=state, phys_state=phys)
    return f"{n.name}: {HCA} port {PORT} rate {st.RATE}"


def _known_counter(counter: str) -> None:
    if counter not in st.COUNTERS and counter not in st.HW_COUNTERS:
        raise SandboxError(f"counter: unknown counter {counter!r} (known: {', '.join(sorted([*st.COUNTERS, *st.HW_COUNTERS]))})")


def counter(cluster: SandboxCluster, node: str | SandboxNode, name: str, delta: int, during_run: bool = False) -> str:
    """Grow ``name`` by ``delta`` now, or (``during_run``) once a collective runs on the node: a watcher process
    (pid in ``standin/counter-watch.pid``) waits for an ``*_perf`` process in the node's network namespace."""
    n = _node(cluster, node)
    _known_counter(name)
    if delta < 1:
        raise SandboxError(f"counter: DELTA must be >= 1, got {delta}")
    if not during_run:
        st.write_counter(n.state_dir, name, st.read_counter(n.state_dir, name) + delta)
        return f"{n.name}: {HCA} port {PORT} {name} +{delta} (now {st.read_counter(n.state_dir, name)})"
    _stop_watch(n)
    proc = subprocess.Popen([sys.executable, "-m", "clusterproof.sandbox.counter_watch", str(n.state_dir), n.netns, name, str(delta)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    (st.standin_dir(n.state_dir) / WATCH_PID).write_text(f"{proc.pid}\n")
    return f"{n.name}: {HCA} port {PORT} {name} will grow by {delta} while the next collective runs on it (watcher pid {proc.pid})"


def _stop_watch(n: SandboxNode) -> None:
    pid_file = st.standin_dir(n.state_dir) / WATCH_PID
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        if b"counter_watch" in cmdline:  # only our watcher, never a recycled pid
            os.kill(pid, signal.SIGTERM)
    except OSError:
        pass
    pid_file.unlink(missing_ok=True)


def clear_counter(cluster: SandboxCluster, node: str | SandboxNode, name: str) -> str:
    n = _node(cluster, node)
    _known_counter(name)
    _stop_watch(n)
    st.write_counter(n.state_dir, name, {**st.COUNTERS, **st.HW_COUNTERS}[name])
    return f"{n.name}: {HCA} port {PORT} {name} back to {st.read_counter(n.state_dir, name)}"


def ecc(cluster: SandboxCluster, node: str | SandboxNode, gpu: int = 1) -> str:
    n = _node(cluster, node)
    st.write_gpus(n.state_dir, n.name, ecc_dbe_on=gpu)
    return f"{n.name}: GPU {st.gpu_bdf(gpu)} reports 2 uncorrectable (DRAM) ECC errors, volatile and aggregate"


def clear_ecc(cluster: SandboxCluster, node: str | SandboxNode) -> str:
    return restore_gpus(cluster, node)
