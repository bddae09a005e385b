"""GID checks as findings (:attr:`Criterion.GID_INDEX`): a RoCE v2 IPv4 GID on every selected HCA of a node (at the
inventory's index when it fixes one), and one index across the nodes (the odd ones named, with their tables)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from clusterproof import findings as fd
from clusterproof.errors import GidError
from clusterproof.findings import Criterion, Finding, Subject, node_subject
from clusterproof.network.gid_choice import GidConsensus, choose_gid_index
from clusterproof.network.rdma import format_gid_table


def check_gid_present(node: str, table: pd.DataFrame | None, *, sysfs_root: str, fixed_index: int | None,
                      choose_kwargs: Mapping[str, Any]) -> list[Finding]:
    """The node has a RoCE v2 IPv4 GID on every selected HCA, at ``fixed_index`` when the inventory fixes one."""
    subject = node_subject(node)
    if table is None:
        return [fd.failed(Criterion.GID_INDEX, subject, f"{node}: unreachable, no GID table read")]
    if table.empty:
        return [fd.failed(Criterion.GID_INDEX, subject, f"{node}: no GIDs under {sysfs_root}/class/infiniband (no RDMA device?)")]
    try:
        index = choose_gid_index(table, **choose_kwargs)
    except GidError as e:
        return [fd.failed(Criterion.GID_INDEX, subject, f"{node}: {e}\n{format_gid_table(table)}")]
    if fixed_index is not None and index != fixed_index:
        return [fd.failed(Criterion.GID_INDEX, subject, f"{node}: RoCE v2 IPv4 GID at index {index}, inventory requires "
                          f"{fixed_index}\n{format_gid_table(table)}", values={"gid_index": index})]
    return [fd.passed(Criterion.GID_INDEX, subject, f"{node}: RoCE v2 IPv4 GID at index {index}", values={"gid_index": index})]


def check_gid_consistent(consensus: GidConsensus, nodes: Sequence[str]) -> list[Finding]:
    """Every reachable node chose the same index: a failure per odd node (the consensus message shows the
    tables), a pass per agreeing node; ``values["consensus"]`` carries the majority index."""
    if len(consensus.per_node) < 2:
        return [fd.not_tested(Criterion.GID_INDEX, Subject("node_set", ",".join(nodes) or "all"), "fewer than two reachable nodes")]
    values = {"consensus": consensus.index}
    out: list[Finding] = []
    for node in consensus.per_node:
        if node in consensus.odd_nodes:
            out.append(fd.failed(Criterion.GID_INDEX, node_subject(node), f"{node}: {consensus.message}", values=values))
        else:
            out.append(fd.passed(Criterion.GID_INDEX, node_subject(node), f"{node}: GID index {consensus.index}, as the "
                                 f"other nodes", values=values))
    return out
