"""Every node is reachable, distinct, on time, and has what the collectives need."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from clusterproof.errors import NodeUnreachable
from clusterproof.inventory import Inventory, Node
from clusterproof.nodes.facts import NodeFacts
from clusterproof.nodes.hostkeys import wrong_known_hosts
from clusterproof.nodes.ssh import SshPool
from fixtures.ssh import expected_binaries

pytestmark = pytest.mark.nodes

FactsOf = Callable[..., NodeFacts]


def _reachable(node_facts: dict[str, NodeFacts | Exception], section: str) -> dict[str, NodeFacts]:
    """Nodes that answered and whose ``section`` was readable (the others fail their own per-node tests)."""
    return {k: v for k, v in node_facts.items() if isinstance(v, NodeFacts) and section not in v.section_errors}


def test_node_reachable_over_ssh(node: Node, facts_of: FactsOf) -> None:
    facts = facts_of(node.name, "hostname")
    assert facts.hostname, f"{node.name}: empty hostname from {node.host}"


def test_nodes_hostnames_unique(node_facts: dict[str, NodeFacts | Exception]) -> None:
    seen: dict[str, list[str]] = {}
    for name, facts in _reachable(node_facts, "hostname").items():
        seen.setdefault(facts.hostname, []).append(name)
    clashes = {h: ns for h, ns in seen.items() if len(ns) > 1}
    assert not clashes, "nodes share a hostname (MPI and NCCL key on it): " + "; ".join(
        f"{h!r} on {', '.join(ns)}" for h, ns in clashes.items()
    )


def test_nodes_clocks_within_skew(node_facts: dict[str, NodeFacts | Exception], inventory: Inventory) -> None:
    facts = _reachable(node_facts, "epoch")
    if len(facts) < 2:
        pytest.skip("fewer than two reachable nodes: no skew to measure")
    offsets = {name: f.clock_offset_s for name, f in facts.items()}
    spread = max(offsets.values()) - min(offsets.values())
    limit = inventory.network.max_clock_skew_s
    assert spread <= limit, f"clock skew {spread:.3f} s > {limit} s (network.max_clock_skew_s); offsets to this machine: " + ", ".join(
        f"{n} {o:+.3f} s" for n, o in sorted(offsets.items())
    )


def test_node_has_nccl_tests_binaries(node: Node, facts_of: FactsOf, inventory: Inventory) -> None:
    facts = facts_of(node.name, "bin")
    missing = [b for b in expected_binaries(inventory) if not facts.binaries.get(b)]
    assert not missing, f"{node.name}: missing or not executable: {', '.join(missing)} (nccl_tests.bin_dir = {inventory.nccl_tests.bin_dir})"


def test_node_has_launcher(node: Node, facts_of: FactsOf, inventory: Inventory) -> None:
    if inventory.nccl_tests.launcher != "mpirun":
        pytest.skip(f"launcher is {inventory.nccl_tests.launcher}; mpirun not required")
    facts = facts_of(node.name, "mpirun")
    assert facts.mpirun, f"{node.name}: mpirun not found on PATH (OpenMPI must be installed on every node for its daemons)"


def test_node_facts_complete(node: Node, facts_of: FactsOf) -> None:
    facts = facts_of(node.name, "cpu", "mem", "kernel", "nic")
    problems = []
    if facts.cpus < 1:
        problems.append(f"cpus = {facts.cpus}")
    if facts.mem_gib <= 0:
        problems.append(f"memory = {facts.mem_gib} GiB")
    if not facts.kernel:
        problems.append("no kernel version")
    if not facts.nics:
        problems.append("no network interfaces")
    assert not problems, f"{node.name}: incomplete facts: {'; '.join(problems)}"


def test_ssh_host_keys_strictly_checked(node: Node, facts_of: FactsOf, inventory: Inventory, tmp_path: Path) -> None:
    """Proved, not read from the inventory: with a wrong known_hosts entry for this node, the connection must be
    refused, naming the node. A pool that accepted it would let anybody on the path impersonate the node."""
    facts_of(node.name)  # reachable with the real known_hosts
    if not inventory.ssh.strict_host_keys:
        pytest.fail(f"{inventory.source}: ssh.strict_host_keys is false: host keys are accepted unverified, so anybody on "
                    "the path can impersonate a node")
    known = tmp_path / "known_hosts"
    known.write_text(wrong_known_hosts(node, inventory.ssh))
    settings = dataclasses.replace(inventory.ssh, known_hosts=known)
    with SshPool([node], settings) as pool:
        try:
            pool.connect(node.name)
        except NodeUnreachable as e:
            refused = "host key mismatch" in e.reason or "host key not in known_hosts" in e.reason
            assert e.node == node.name and refused, f"{node.name}: refused, but not for its host key: {e}"
        else:
            pytest.fail(f"{node.name}: connected although known_hosts holds a different key for {node.host}: host keys are not checked")
