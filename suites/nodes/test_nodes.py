"""Every node is reachable, distinct, on time, and has what the collectives need.

Each test hands the findings of a pure check (:mod:`clusterproof.nodes.checks`) to the ``findings`` fixture, which
records them for the report and turns them into the test's outcome.
"""

from __future__ import annotations

import pytest

from clusterproof.findings import Criterion
from clusterproof.inventory import Inventory, Node
from clusterproof.nodes import checks
from clusterproof.nodes.facts import NodeFacts
from clusterproof.nodes.ssh import SshPool
from fixtures.findings import FindingRecorder
from fixtures.ssh import expected_binaries

pytestmark = pytest.mark.nodes

Facts = dict[str, NodeFacts | Exception]


@pytest.mark.criterion(Criterion.NODES_REACHABLE)
def test_node_reachable_over_ssh(node: Node, node_facts: Facts, findings: FindingRecorder) -> None:
    findings.check(checks.check_reachable(node.name, node.host, node_facts.get(node.name)))


@pytest.mark.criterion(Criterion.NODE_FACTS)
def test_nodes_hostnames_unique(node_facts: Facts, findings: FindingRecorder) -> None:
    findings.check(checks.check_hostnames_unique(node_facts))


@pytest.mark.criterion(Criterion.CLOCKS)
def test_nodes_clocks_within_skew(node_facts: Facts, inventory: Inventory, findings: FindingRecorder) -> None:
    findings.check(checks.check_clock_skew(node_facts, inventory.network.max_clock_skew_s))


@pytest.mark.criterion(Criterion.NODE_FACTS)
def test_node_has_nccl_tests_binaries(node: Node, node_facts: Facts, inventory: Inventory, findings: FindingRecorder) -> None:
    findings.check(checks.check_binaries(node.name, node_facts.get(node.name), expected_binaries(inventory),
                                         inventory.nccl_tests.bin_dir))


@pytest.mark.criterion(Criterion.NODE_FACTS)
def test_node_has_launcher(node: Node, node_facts: Facts, inventory: Inventory, findings: FindingRecorder) -> None:
    findings.check(checks.check_launcher(node.name, node_facts.get(node.name), inventory.nccl_tests.launcher))


@pytest.mark.criterion(Criterion.NODE_FACTS)
def test_node_facts_complete(node: Node, node_facts: Facts, findings: FindingRecorder) -> None:
    findings.check(checks.check_facts_complete(node.name, node_facts.get(node.name)))


@pytest.mark.criterion(Criterion.STRICT_HOST_KEYS)
def test_ssh_host_keys_strictly_checked(node: Node, node_facts: Facts, ssh_pool: SshPool, inventory: Inventory,
                                        findings: FindingRecorder) -> None:
    # connected (and so verified) during the facts round trip
    findings.check(checks.check_host_keys(node.name, node.host, node.port, node_facts.get(node.name),
                                          strict=inventory.ssh.strict_host_keys, source=str(inventory.source),
                                          unverified_hosts=ssh_pool.unverified_hosts))
