"""The exclude list a scheduler can take: every node that a failing finding names, with the reasons.

A node is unfit when a finding of an unfit-making criterion (:data:`UNFIT_CRITERIA`: reachability, health,
Slurm state, bad-node search, node-level collectives) fails with that node as its subject's ``node``. The same
list is written three ways: ``unfit_nodes.txt`` (one node a line, a tab, the reasons), a Slurm hostlist
(``node[03,07]``, ClusterShell's own hostlist code) and the ``scontrol update ... state=drain`` line a person
would run (printed, never run).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ClusterShell.NodeSet import NodeSet

from clusterproof.findings import Criterion, Finding, Status

UNFIT_FILE = "unfit_nodes.txt"
HOSTLIST_FILE = "unfit_hostlist.txt"
DRAIN_FILE = "drain_command.txt"

#: Criteria whose failure on a node means "leave this node out of the next run".
UNFIT_CRITERIA: frozenset[Criterion] = frozenset({
    Criterion.NODES_REACHABLE, Criterion.NODE_FACTS, Criterion.CLOCKS, Criterion.GPU_HEALTH, Criterion.XID,
    Criterion.PCIE, Criterion.IB_PORTS, Criterion.SLURM, Criterion.BAD_NODE, Criterion.NODE_COLLECTIVES,
    Criterion.RAILS, Criterion.GID_INDEX, Criterion.NCCL_CONFIG, Criterion.SOAK,
})


@dataclass(frozen=True)
class UnfitNode:
    node: str
    reasons: tuple[str, ...]


def unfit_nodes(findings: Iterable[Finding]) -> list[UnfitNode]:
    """Nodes named by a failing finding of an unfit-making criterion, sorted by name, reasons in record order
    (each reason once)."""
    reasons: dict[str, list[str]] = {}
    for f in findings:
        node = f.subject.node
        if f.status is not Status.FAIL or node is None or f.criterion not in UNFIT_CRITERIA:
            continue
        text = f.message if f.subject.name == node else f"{f.subject.name}: {f.message}"
        bucket = reasons.setdefault(node, [])
        if text not in bucket:
            bucket.append(text)
    return [UnfitNode(n, tuple(reasons[n])) for n in sorted(reasons)]


def hostlist(nodes: Iterable[str]) -> str:
    """The Slurm hostlist of ``nodes`` (``node[03,07-08]``); empty text for no node."""
    return str(NodeSet.fromlist(list(nodes)))  # an empty NodeSet prints as ""


def _one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def render_unfit_file(unfit: Iterable[UnfitNode]) -> str:
    """``unfit_nodes.txt``: ``node<TAB>reason; reason`` a line (a file with no line when every node is fit)."""
    return "".join(f"{u.node}\t{_one_line('; '.join(u.reasons), 1000)}\n" for u in unfit)


def drain_command(unfit: Iterable[UnfitNode]) -> str | None:
    """The ``scontrol`` line that drains the unfit nodes, or None when there is none. Never run by clusterproof."""
    items = list(unfit)
    if not items:
        return None
    first = items[0]
    why = _one_line(f"clusterproof: {first.node}: {first.reasons[0]}" + (f" (+{len(items) - 1} more nodes)" if len(items) > 1 else ""), 120)
    return f"scontrol update nodename={hostlist(u.node for u in items)} state=drain reason={shlex.quote(why)}"


@dataclass(frozen=True)
class ExcludeList:
    """What :func:`write_exclude_list` wrote: the unfit nodes, their hostlist and the drain line."""

    path: Path
    unfit: tuple[UnfitNode, ...]
    hostlist: str
    drain: str | None

    def lines(self) -> list[str]:
        """What a person reads at the end of the run."""
        if not self.unfit:
            return [f"exclude list: no unfit node ({self.path})"]
        out = [f"exclude list: {self.path} ({len(self.unfit)} node(s))", f"  hostlist: {self.hostlist}"]
        out += [f"  {u.node}: {'; '.join(u.reasons)}" for u in self.unfit]
        if self.drain:
            out.append(f"  to drain them (not run by clusterproof): {self.drain}")
        return out


def write_exclude_list(run_dir: Path, findings: Iterable[Finding]) -> ExcludeList:
    """Write ``<run_dir>/unfit_nodes.txt``, ``unfit_hostlist.txt`` and ``drain_command.txt`` (the last two empty
    when every node is fit) from the run's findings."""
    items = tuple(unfit_nodes(findings))
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / UNFIT_FILE
    path.write_text(render_unfit_file(items))
    hosts = hostlist(u.node for u in items)
    drain = drain_command(items)
    (run_dir / HOSTLIST_FILE).write_text(hosts + ("\n" if hosts else ""))
    (run_dir / DRAIN_FILE).write_text((drain + "\n") if drain else "")
    return ExcludeList(path, items, hosts, drain)
