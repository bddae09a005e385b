"""Is this number normal? Every collective run judged beyond its fixed threshold: against the reference of this
cluster's fabric class (how far each row is from it), as a fraction of the fabric's line rate, for dips from one
size to the next and for latency at small sizes; and the ring of node pairs, for a node that is slower than the
others even when every row is above the floor.

The collective runs are the ones ``test_collectives`` launched (shared per test run); the ring pairs are launched
here once per collective.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from clusterproof.inventory import Inventory
from clusterproof.network import line_rate, reference, reference_outliers, reference_shape
from clusterproof.network.collective import CollectiveResult
from clusterproof.network.run_cache import record_run
from clusterproof.nodes.ssh import CommandResult, SshPool
from fixtures.findings import FindingRecorder
from fixtures.nccl import CollectiveRuns, GroupSpec

pytestmark = [pytest.mark.nccl, pytest.mark.exclusive, pytest.mark.xdist_group("fabric")]


def rows_of(group: GroupSpec, res: CollectiveResult) -> pd.DataFrame:
    """The run's result rows with the columns the checks group on (empty when the run printed none)."""
    if res.run is None or not len(res.run.results):
        pytest.fail(f"{group.id}: no parsable result rows (see test_nccl_run_sane[{group.id}])")
    return res.run.results.assign(collective=group.collective, node_set=",".join(group.nodes), n_nodes=group.n_nodes,
                                  n_ranks=res.run.nranks)


@pytest.fixture(scope="session")
def fabric_line_rate(ssh_pool: SshPool, inventory: Inventory) -> line_rate.LineRate | None:
    """Yields: the fabric's line rate from the nodes' IB/RoCE port rates (sysfs), None when no port has a rate.

    Scope: session. Cleans up: nothing (read-only). In the sandbox the rates are stand-in facts (labelled).
    """
    cmd = line_rate.port_rates_command(inventory.network.sysfs_root)
    ports: dict[str, list[float]] = {}
    for node, res in ssh_pool.run_all(cmd).items():
        if isinstance(res, CommandResult) and res.ok:
            ports[node] = line_rate.parse_port_rates(node, res.stdout, inventory.network.hcas)
    gpus = {n.name: n.slots for n in inventory.nodes}
    return line_rate.fabric_line_rate(ports, gpus, standin=inventory.standin)


def test_busbw_within_reference(nccl_group: GroupSpec, collective_result: CollectiveResult, inventory: Inventory,
                                findings: FindingRecorder) -> None:
    findings.check(reference.check_reference(rows_of(nccl_group, collective_result), inventory.references.active))


def test_busbw_fraction_of_line_rate(nccl_group: GroupSpec, collective_result: CollectiveResult, inventory: Inventory,
                                     fabric_line_rate: line_rate.LineRate | None, findings: FindingRecorder) -> None:
    rows = rows_of(nccl_group, collective_result)
    findings.check(line_rate.check_line_rate(rows, fabric_line_rate, inventory.network_checks.min_line_rate_pct))


def test_busbw_no_dip_between_sizes(nccl_group: GroupSpec, collective_result: CollectiveResult, inventory: Inventory,
                                    findings: FindingRecorder) -> None:
    findings.check(reference_shape.check_dips(rows_of(nccl_group, collective_result), inventory.network_checks.max_dip_pct))


def test_small_size_latency(nccl_group: GroupSpec, collective_result: CollectiveResult, inventory: Inventory,
                            findings: FindingRecorder) -> None:
    checks = inventory.network_checks
    findings.check(reference_shape.check_latency(rows_of(nccl_group, collective_result), checks.latency_max_bytes,
                                                 checks.latency_limit_us))


def outlier_pairs(nodes: list[str], kind: str) -> list[tuple[str, str]]:
    """``ring``: node01-node02, ..., nodeN-node01 (every node in two pairs, N runs); ``all``: every pair, ordered
    so that no node's pairs all run back to back (a burst of load on the machine then cannot sink one node)."""
    if len(nodes) < 3 or kind == "none":
        return []
    if kind == "ring":
        return [(nodes[i], nodes[(i + 1) % len(nodes)]) for i in range(len(nodes))]
    by_distance = [(nodes[i], nodes[(i + d) % len(nodes)]) for d in range(1, len(nodes) // 2 + 1) for i in range(len(nodes))]
    seen: set[frozenset[str]] = set()
    out = []
    for a, b in by_distance:
        if frozenset((a, b)) not in seen:
            seen.add(frozenset((a, b)))
            out.append((a, b))
    return out


def partial_rows(table: pd.DataFrame, collective: str, n_all: int) -> pd.DataFrame:
    """The sub-set, pair and single-node rows of ``collective`` the results table already has."""
    if table.empty:
        return table
    return table[(table["collective"] == collective) & (table["n_nodes"].astype("float64") < n_all)]


@pytest.mark.parametrize("collective", ["all_reduce"])
def test_no_outlier_node(collective: str, collective_runs: CollectiveRuns, inventory: Inventory, results: Any,
                         request: pytest.FixtureRequest, findings: FindingRecorder) -> None:
    """Uses the partial runs the table has (sub-sets, pairs, single nodes); with ``network_checks.outlier_pairs``
    (ring or all) it also runs node pairs: the first round is shared with the rest of the run (cached, in the
    results table), further rounds (``outlier_pair_repeats``) are added to the results table here."""
    if collective not in inventory.nccl_tests.collectives:
        pytest.skip(f"{collective} is not in the inventory's collectives")
    names = [n.name for n in inventory.nodes]
    checks = inventory.network_checks
    pairs = outlier_pairs(names, checks.outlier_pairs)
    for pair in pairs:
        collective_runs.get(GroupSpec(collective, pair), request.node.nodeid)  # recorded in the results table
    for _ in range(checks.outlier_pair_repeats - 1 if pairs else 0):
        for pair in pairs:
            res = collective_runs.runner.run(collective, collective_runs.nodes(pair), extra_env=collective_runs.gid_env)
            record_run(results, GroupSpec(collective, pair), res, inventory, collective_runs.gid_index, request.node.nodeid)
    rows = partial_rows(results.frame("network"), collective, len(names))
    findings.check(reference_outliers.check_outliers(rows, names, k=checks.outlier_k_mad, min_drop_pct=checks.outlier_min_drop_pct))
