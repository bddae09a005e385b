"""Asking Slurm over SSH: the controller's view of the nodes in one round trip to the head node, and node facts
through one ``srun`` step across all nodes (Slurm as the fan-out engine: the scheduler already holds a
connection to every slurmd, so N nodes cost one SSH exec instead of N handshakes).

The head node is the inventory's first node, as for the collective launcher; ``scontrol``/``srun`` run there
with the node's own Slurm configuration.
"""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from clusterproof.errors import ClusterproofError, CommandFailed, ParseError
from clusterproof.nodes.facts import NodeFacts, facts_command, parse_facts
from clusterproof.nodes.slurm_state import (
    SlurmNode,
    SlurmPartition,
    parse_nodes,
    parse_partitions,
    parse_version,
)
from clusterproof.nodes.ssh import SshPool
from clusterproof.slurm_settings import SlurmSettings

_SEP = "::clusterproof-slurm"
_NODE_MARK = "::clusterproof-node"
_LABEL_RE = re.compile(r"^\s*(\d+): ?(.*)$")


@dataclass
class SlurmView:
    """What slurmctld says, with the raw text it was parsed from (kept as evidence)."""

    head: str
    nodes: dict[str, SlurmNode]
    partitions: dict[str, SlurmPartition]
    controller_version: str | None
    raw: str
    errors: list[str] = field(default_factory=list)


def query_command() -> str:
    return (f"scontrol show node -o 2>&1; echo '{_SEP} partitions'; scontrol show partition -o 2>&1; "
            f"echo '{_SEP} version'; scontrol version 2>&1; true")


def parse_query(head: str, text: str) -> SlurmView:
    """Split :func:`query_command` output and parse each part. Raises ParseError when the node list is unreadable."""
    parts = re.split(rf"^{re.escape(_SEP)} (\w+)$", text, flags=re.M)
    sections = {"nodes": parts[0], **{parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}}
    errors: list[str] = []
    nodes = parse_nodes(sections["nodes"])
    partitions: dict[str, SlurmPartition] = {}
    version: str | None = None
    try:
        partitions = parse_partitions(sections.get("partitions", ""))
    except ParseError as e:
        errors.append(f"partitions: {e}")
    try:
        version = parse_version(sections.get("version", ""))
    except ParseError as e:
        errors.append(f"version: {e}")
    return SlurmView(head, nodes, partitions, version, text, errors)


def query(pool: SshPool, head: str, timeout: float = 30.0) -> SlurmView:
    """slurmctld's nodes, partitions and version, asked from ``head`` in one round trip.

    Raises:
        NodeUnreachable: the head node cannot be reached. CommandFailed/ParseError: scontrol gave no node list
        (Slurm not installed, slurmctld down: the message quotes what scontrol said).
    """
    res = pool.run(head, query_command(), timeout=timeout)
    try:
        return parse_query(head, res.stdout)
    except ParseError as e:
        raise CommandFailed(head, "scontrol show node -o", res.rc, res.stdout[-2000:] + res.stderr[-1000:], reason=str(e)) from None


def srun_prefix(slurm: SlurmSettings | None, nodes: Sequence[str], ntasks_per_node: int = 1) -> list[str]:
    """``srun -N n --ntasks-per-node=k --nodelist=... -l [partition/account/...]`` for a step on ``nodes``."""
    s = slurm or SlurmSettings()
    return [s.srun, "-N", str(len(nodes)), f"--ntasks-per-node={ntasks_per_node}", f"--nodelist={','.join(nodes)}",
            "--label", *s.srun_options()]


def srun_facts_command(slurm: SlurmSettings | None, nodes: Sequence[str], sysfs_root: str = "/sys",
                       binaries: Sequence[str] = (), timeout_s: int = 60) -> str:
    """One srun step printing every node's facts, each task's output tagged by srun (``-l``) and headed by its
    Slurm node name."""
    inner = f'echo "{_NODE_MARK} $SLURMD_NODENAME"; {facts_command(sysfs_root, binaries)}'
    return shlex.join([*srun_prefix(slurm, nodes), f"--time={max(1, timeout_s // 60 + 1)}", "--job-name=clusterproof-facts",
                       "sh", "-c", inner])


def split_labelled(text: str) -> dict[str, str]:
    """``srun -l`` output -> Slurm node name -> that task's output (tasks name their node on their first line)."""
    per_task: dict[int, list[str]] = {}
    for line in text.splitlines():
        m = _LABEL_RE.match(line)
        if m:
            per_task.setdefault(int(m.group(1)), []).append(m.group(2))
    out = {}
    for task, lines in sorted(per_task.items()):
        head = next((x for x in lines if x.startswith(_NODE_MARK + " ")), None)
        if head is None:
            raise ParseError(f"srun task {task} printed no node name")
        out[head.split(" ", 1)[1].strip()] = "\n".join(x for x in lines if x is not head)
    return out


def gather_facts_srun(pool: SshPool, head: str, nodes: Sequence[str], slurm: SlurmSettings | None = None,
                      sysfs_root: str = "/sys", binaries: Sequence[str] = (), timeout: float = 120.0) -> dict[str, NodeFacts | Exception]:
    """Every node's facts through one srun step launched on ``head``: node name -> facts, or the error for that node.

    The clock offset of a node is ``epoch - midpoint of the step``, so it is only as precise as half the step's
    duration (the SSH pool's per-node round trip is tighter): use the SSH facts for the clock-skew check.
    """
    t_send = time.time()
    res = pool.run(head, srun_facts_command(slurm, nodes, sysfs_root, binaries, int(timeout)), timeout=timeout)
    t_recv = t_send + res.seconds
    try:
        per_node = split_labelled(res.stdout)
    except ParseError as e:
        return {n: e for n in nodes}
    out: dict[str, NodeFacts | Exception] = {}
    for name in nodes:
        if name not in per_node:
            why = res.stderr.strip().splitlines()[-3:] if res.stderr.strip() else [f"srun exited {res.rc}"]
            out[name] = ClusterproofError(f"{name}: no output from the srun step ({' / '.join(why)})")
            continue
        try:
            facts = parse_facts(name, per_node[name])
        except ParseError as e:
            out[name] = e
            continue
        facts.probe_rtt_s = t_recv - t_send
        facts.clock_offset_s = facts.epoch - (t_send + t_recv) / 2
        facts.host = pool.node(name).host if name in pool.node_names else name
        out[name] = facts
    return out
