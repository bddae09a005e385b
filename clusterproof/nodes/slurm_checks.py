"""Slurm checks: pure functions from parsed Slurm records to :class:`~clusterproof.findings.Finding` lists
(criterion :attr:`~clusterproof.findings.Criterion.SLURM`).

* :func:`node_state_findings` -- every inventory node is known to Slurm and can take work; a drained, down or
  not-responding node fails with Slurm's own state and reason.
* :func:`partition_findings` -- the inventory's partition exists, is UP and holds every node.
* :func:`gres_findings` -- every node offers the GRES the inventory expects (``gpu:8``).
* :func:`version_findings` -- every node's slurmd runs the controller's Slurm version.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from clusterproof.findings import (
    Criterion,
    Evidence,
    Finding,
    Subject,
    failed,
    node_subject,
    not_tested,
    passed,
)
from clusterproof.nodes.slurm_state import SlurmNode, SlurmPartition

C = Criterion.SLURM


def _evidence(path: str | None, *lines: str) -> tuple[Evidence, ...]:
    return (Evidence(path, tuple(line for line in lines if line)),)


def node_state_findings(nodes: Mapping[str, SlurmNode], expected: Sequence[str], source: str | None = None) -> list[Finding]:
    """One finding per expected node: PASS when Slurm can schedule on it, FAIL (with state and reason) otherwise."""
    out = []
    for name in expected:
        sn = nodes.get(name)
        if sn is None:
            out.append(failed(C, node_subject(name), f"{name}: not a Slurm node (scontrol show node does not list it)",
                              evidence=_evidence(source)))
        elif sn.problem:
            out.append(failed(C, node_subject(name), f"{name}: {sn.problem}",
                              evidence=_evidence(source, f"NodeName={name} State={sn.state} Reason={sn.reason or ''}"),
                              values={"state": sn.state, "reason": sn.reason}))
        else:
            out.append(passed(C, node_subject(name), f"{name}: Slurm state {sn.state}", values={"state": sn.state}))
    return out


def partition_findings(partitions: Mapping[str, SlurmPartition], name: str | None, expected: Sequence[str],
                       source: str | None = None) -> list[Finding]:
    """The partition is UP and holds every expected node (a missing node fails as that node's finding)."""
    subject = Subject("partition", name or "(none)")
    if not name:
        return [not_tested(C, subject, "the inventory names no slurm.partition")]
    part = partitions.get(name)
    if part is None:
        return [failed(C, subject, f"partition {name!r} does not exist (partitions: {', '.join(sorted(partitions)) or 'none'})",
                       evidence=_evidence(source))]
    out = []
    if part.state != "UP":
        out.append(failed(C, subject, f"partition {name} is {part.state}, not UP", evidence=_evidence(source, f"PartitionName={name} State={part.state}")))
    members = set(part.nodes)
    for node in expected:
        if node not in members:
            out.append(failed(C, node_subject(node), f"{node}: not in partition {name}", evidence=_evidence(source)))
    if not out:
        out.append(passed(C, subject, f"partition {name} is UP and holds all {len(expected)} node(s)",
                          values={"nodes": len(part.nodes)}))
    return out


def gres_findings(nodes: Mapping[str, SlurmNode], expected_gres: str | None, expected: Sequence[str],
                  source: str | None = None) -> list[Finding]:
    """Every node offers at least the expected GRES (``gpu:8``, or typed ``gpu:h100:8``)."""
    if not expected_gres:
        return [not_tested(C, node_subject(n), "the inventory names no slurm.gres") for n in expected]
    m = re.fullmatch(r"([^:]+)(?::([^:]+))?:(\d+)", expected_gres)
    if not m:
        raise ValueError(f"slurm.gres {expected_gres!r} is not name[:type]:count")
    gname, kind, want = m.group(1), m.group(2), int(m.group(3))
    out = []
    for name in expected:
        sn = nodes.get(name)
        if sn is None:
            out.append(not_tested(C, node_subject(name), f"{name}: not a Slurm node, no GRES to compare"))
            continue
        have = sn.gres_count(gname, kind)
        text = ",".join(sn.gres) or "(null)"
        if have < want:
            out.append(failed(C, node_subject(name), f"{name}: Gres={text}, expected {expected_gres} ({have} < {want})",
                              evidence=_evidence(source, f"NodeName={name} Gres={text}"), values={"gres": have, "expected": want}))
        else:
            out.append(passed(C, node_subject(name), f"{name}: Gres={text}", values={"gres": have, "expected": want}))
    return out


def version_findings(nodes: Mapping[str, SlurmNode], controller: str | None, expected: Sequence[str]) -> list[Finding]:
    """Every node's slurmd reports the controller's version (``Version=`` of scontrol show node)."""
    versions = {n: nodes[n].version for n in expected if n in nodes}
    known = sorted({v for v in versions.values() if v})
    reference = controller or (known[0] if len(known) == 1 else None)
    out = []
    for name in expected:
        v = versions.get(name)
        if v is None:
            out.append(not_tested(C, node_subject(name), f"{name}: slurmd reported no version (never registered, or not a Slurm node)"))
        elif reference is None:
            out.append(failed(C, node_subject(name), f"{name}: slurmd {v}; the nodes disagree ({', '.join(known)})",
                              values={"version": v}))
        elif v != reference:
            out.append(failed(C, node_subject(name), f"{name}: slurmd {v}, controller {reference}", values={"version": v, "expected": reference}))
        else:
            out.append(passed(C, node_subject(name), f"{name}: slurmd {v}" + (" (same as slurmctld)" if controller else ""),
                              values={"version": v}))
    return out
