"""RoCE v2 IPv4 GIDs: present on every selected HCA, and at the same index on every node."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import pytest

from clusterproof.errors import GidError
from clusterproof.inventory import Inventory, Node
from clusterproof.network.gid_choice import GidConsensus, choose_gid_index
from clusterproof.network.rdma import format_gid_table
from clusterproof.nodes.facts import NodeFacts
from fixtures.rdma import choose_kwargs

pytestmark = pytest.mark.rdma

FactsOf = Callable[..., NodeFacts]


def test_rdma_rocev2_ipv4_gid_present(node: Node, gid_tables: dict[str, pd.DataFrame], inventory: Inventory, facts_of: FactsOf) -> None:
    if node.name not in gid_tables:
        facts_of(node.name, "gids")  # fails naming the node: unreachable, or the unreadable line of its table
        pytest.fail(f"{node.name}: no GID table read")
    table = gid_tables[node.name]
    if table.empty:
        pytest.fail(f"{node.name}: no GIDs under {inventory.network.sysfs_root}/class/infiniband (no RDMA device?)")
    try:
        index = choose_gid_index(table, **choose_kwargs(inventory))  # type: ignore[arg-type]
    except GidError as e:
        pytest.fail(f"{node.name}: {e}\n{format_gid_table(table)}")
    fixed = inventory.network.gid_index
    if isinstance(fixed, int):
        assert index == fixed, f"{node.name}: RoCE v2 IPv4 GID at index {index}, inventory requires {fixed}\n{format_gid_table(table)}"


def test_rdma_gid_index_consistent(gid_consensus: GidConsensus, gid_tables: dict[str, pd.DataFrame]) -> None:
    if len(gid_tables) < 2:
        pytest.skip("fewer than two reachable nodes")
    assert not gid_consensus.odd_nodes, gid_consensus.message
