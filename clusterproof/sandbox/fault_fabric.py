"""Faults that make collectives hang, crash or return wrong results on one node, each with its undo.

* :func:`hang_link`: every TCP packet between the node and the other nodes is dropped silently, on every rail,
  while SSH (port 22) between the nodes and from the head (the host, ``<subnet>.1``) still works. mpirun still
  starts its daemons over SSH, but their callbacks and the ranks' traffic vanish: a collective through the
  node hangs until its timeout, and the suite can still end the processes on the node. This kernel has no
  netem, iptables or nft, so it is done with policy routing inside the namespaces: rules send the packets to a
  routing table that holds only a blackhole route (``lookup local`` is moved behind them so that packets for
  the node's own addresses are dropped too). TCP only, so ARP and ICMP still work.
* :func:`node_fault`: ``crash`` (every rank on the node fails as NCCL does, exit 3) or ``corrupt`` (its ranks
  damage their results, ``#wrong > 0``), by a file the CPU stand-in reads from the node's private /tmp.
"""

from __future__ import annotations

from clusterproof.errors import SandboxError
from clusterproof.sandbox.procs import run
from clusterproof.sandbox.state import SandboxCluster, SandboxNode, require_root

HANG_TABLE = 4242
#: rule priorities: SSH exempt, then the blackhole table, then the local table again
_PREF_EXEMPT, _PREF_DROP, _PREF_LOCAL = 100, 101, 200
NODE_FAULT_FILE = "clusterproof-standin-fault"  # in the node's private /tmp (the stand-in reads /tmp/<this>)
NODE_FAULTS = ("crash", "corrupt")


def _node(cluster: SandboxCluster, node: str | SandboxNode) -> SandboxNode:
    return cluster.node(node if isinstance(node, str) else node.name)


def _rules_applied(netns: str) -> bool:
    return bool(run(["ip", "-n", netns, "rule", "show", "pref", str(_PREF_LOCAL)], f"read rules of {netns}").strip())


def _drop_from(netns: str, sources: list[tuple[str, str]], exempt: list[str]) -> None:
    """In ``netns``: drop TCP arriving from ``sources`` ((prefix, interface) pairs) except SSH; ``exempt`` sources
    keep everything. Only arriving packets (``iif``) match, never the namespace's own."""
    lines = [f"route replace blackhole default table {HANG_TABLE}"]
    lines += [f"rule add pref {_PREF_EXEMPT - 1} from {src} lookup local" for src in exempt]
    for src, dev in sources:
        lines += [f"rule add pref {_PREF_EXEMPT} from {src} iif {dev} ipproto tcp dport 22 lookup local",
                  f"rule add pref {_PREF_EXEMPT} from {src} iif {dev} ipproto tcp sport 22 lookup local",
                  f"rule add pref {_PREF_DROP} from {src} iif {dev} ipproto tcp lookup {HANG_TABLE}"]
    lines += [f"rule add pref {_PREF_LOCAL} lookup local", "rule del pref 0"]
    run(["ip", "-n", netns, "-batch", "-"], f"drop TCP in {netns}", stdin="\n".join(lines) + "\n")


def _restore(netns: str) -> None:
    if not _rules_applied(netns):
        return
    lines = ["rule add pref 0 lookup local"]
    out = run(["ip", "-n", netns, "rule", "show"], f"read rules of {netns}")
    for line in out.splitlines():
        pref = line.split(":", 1)[0].strip()
        if pref.isdigit() and _PREF_EXEMPT - 1 <= int(pref) <= _PREF_LOCAL:
            lines.append(f"rule del pref {pref} {line.split(':', 1)[1].strip()}")
    lines.append(f"route flush table {HANG_TABLE}")
    run(["ip", "-n", netns, "-batch", "-"], f"restore routing in {netns}", stdin="\n".join(lines) + "\n")


def _addresses(n: SandboxNode) -> list[tuple[str, str]]:
    return [(f"{ip}/32", dev) for ip, dev in ((n.ip, "eth0"), (n.ip1, "eth1")) if ip]


def hang_link(cluster: SandboxCluster, node: str | SandboxNode) -> str:
    """Drop every TCP packet between ``node`` and the other nodes, on every rail, SSH excepted. Returns a line.

    Raises:
        SandboxError: unknown node, or ``ip`` failed.
    """
    require_root()
    n = _node(cluster, node)
    if _rules_applied(n.netns):
        return f"{n.name}: fabric already hung"
    subnets = [(f"{s}.0/24", dev) for s, dev in ((cluster.subnet, "eth0"), (cluster.rail1_subnet, "eth1")) if s]
    hosts = [f"{s}.1/32" for s in (cluster.subnet, cluster.rail1_subnet) if s]
    _drop_from(n.netns, subnets, exempt=hosts)
    for other in cluster.nodes:
        if other.name != n.name:
            _drop_from(other.netns, _addresses(n), exempt=[])
    return (f"{n.name}: every TCP packet to and from the other nodes is dropped ({len(subnets)} rail(s)); "
            "SSH between the nodes and from the head still works")


def clear_hang_link(cluster: SandboxCluster, node: str | SandboxNode) -> str:
    """Undo :func:`hang_link` on every node (nothing to undo is fine). Returns a line."""
    require_root()
    n = _node(cluster, node)
    for other in cluster.nodes:
        _restore(other.netns)
    return f"{n.name}: fabric traffic flows again"


def node_fault(cluster: SandboxCluster, node: str | SandboxNode, mode: str) -> str:
    """Make the CPU stand-in on ``node`` ``crash`` or ``corrupt`` its results. Returns a line."""
    n = _node(cluster, node)
    if mode not in NODE_FAULTS:
        raise SandboxError(f"node_fault: mode must be one of {', '.join(NODE_FAULTS)}, got {mode!r}")
    (n.state_dir / "tmp" / NODE_FAULT_FILE).write_text(mode + "\n")
    what = "every rank on it fails as a broken NCCL does (exit 3)" if mode == "crash" else "its ranks damage their results"
    return f"{n.name}: nccl-tests stand-in fault '{mode}': {what}"


def clear_node_fault(cluster: SandboxCluster, node: str | SandboxNode) -> str:
    """Undo :func:`node_fault`. Returns a line."""
    n = _node(cluster, node)
    (n.state_dir / "tmp" / NODE_FAULT_FILE).unlink(missing_ok=True)
    return f"{n.name}: nccl-tests stand-in fault cleared"
