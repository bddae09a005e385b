"""Slurm sees every node up, in the inventory's partition, with its GRES and the controller's version.

Each node's state comes from ``scontrol show node``: a drained, down or not-responding node fails its own test
with Slurm's state and reason (``test_slurm_node_state[node03]``). Skipped, with the reason, when the inventory
has no ``slurm:`` section.
"""

from __future__ import annotations

import pytest

from clusterproof.errors import ClusterproofError
from clusterproof.findings import Criterion, Finding, Subject, failed, not_tested
from clusterproof.inventory import Inventory, Node
from clusterproof.nodes import slurm_checks
from clusterproof.nodes.slurm_remote import SlurmView
from fixtures.findings import FindingRecorder
from fixtures.slurm import SCONTROL_LOG

pytestmark = pytest.mark.nodes

View = SlurmView | ClusterproofError | None
SLURM_RUN = Subject("run", "slurm")


def _unavailable(view: View, subject: Subject) -> list[Finding] | None:
    """The finding to record when there is no Slurm view to judge (None when there is one)."""
    if view is None:
        return [not_tested(Criterion.SLURM, subject, "the inventory has no slurm: section")]
    if isinstance(view, ClusterproofError):
        return [failed(Criterion.SLURM, SLURM_RUN, f"cannot ask Slurm: {view}")]
    return None


def test_slurm_node_state(node: Node, slurm_view: View, findings: FindingRecorder) -> None:
    missing = _unavailable(slurm_view, Subject("node", node.name))
    if missing is not None or not isinstance(slurm_view, SlurmView):
        findings.check(missing or [])
        return
    findings.check(slurm_checks.node_state_findings(slurm_view.nodes, [node.name], source=SCONTROL_LOG))


def test_slurm_partition_holds_every_node(inventory: Inventory, slurm_view: View, findings: FindingRecorder) -> None:
    name = inventory.slurm.partition if inventory.slurm else None
    missing = _unavailable(slurm_view, Subject("partition", name or "(none)"))
    if missing is not None or not isinstance(slurm_view, SlurmView):
        findings.check(missing or [])
        return
    findings.check(slurm_checks.partition_findings(slurm_view.partitions, name, [n.name for n in inventory.nodes], source=SCONTROL_LOG))


def test_slurm_gres(node: Node, inventory: Inventory, slurm_view: View, findings: FindingRecorder) -> None:
    missing = _unavailable(slurm_view, Subject("node", node.name))
    if missing is not None or not isinstance(slurm_view, SlurmView):
        findings.check(missing or [])
        return
    gres = inventory.slurm.gres if inventory.slurm else None
    findings.check(slurm_checks.gres_findings(slurm_view.nodes, gres, [node.name], source=SCONTROL_LOG))


def test_slurm_version(node: Node, slurm_view: View, findings: FindingRecorder) -> None:
    missing = _unavailable(slurm_view, Subject("node", node.name))
    if missing is not None or not isinstance(slurm_view, SlurmView):
        findings.check(missing or [])
        return
    findings.check(slurm_checks.version_findings(slurm_view.nodes, slurm_view.controller_version, [node.name]))
