"""RoCE v2 IPv4 GIDs: present on every selected HCA, and at the same index on every node."""

from __future__ import annotations

import pandas as pd
import pytest

from clusterproof.findings import Criterion
from clusterproof.inventory import Inventory, Node
from clusterproof.network.gid_checks import check_gid_consistent, check_gid_present
from clusterproof.network.gid_choice import GidConsensus
from fixtures.findings import FindingRecorder
from fixtures.rdma import choose_kwargs

pytestmark = [pytest.mark.rdma, pytest.mark.criterion(Criterion.GID_INDEX)]


def test_rdma_rocev2_ipv4_gid_present(node: Node, gid_tables: dict[str, pd.DataFrame], inventory: Inventory,
                                      findings: FindingRecorder) -> None:
    fixed = inventory.network.gid_index
    findings.check(check_gid_present(node.name, gid_tables.get(node.name), sysfs_root=inventory.network.sysfs_root,
                                     fixed_index=fixed if isinstance(fixed, int) else None,
                                     choose_kwargs=choose_kwargs(inventory)))


def test_rdma_gid_index_consistent(gid_consensus: GidConsensus, inventory: Inventory, findings: FindingRecorder) -> None:
    findings.check(check_gid_consistent(gid_consensus, [n.name for n in inventory.nodes]))
