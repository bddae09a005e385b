"""nccl-tests collectives across all nodes and sub-sets: sane first (rc, ranks, sizes, #wrong == 0), then fast
enough (bus bandwidth at each size at or above the inventory's threshold). When the all-node run is slow, smaller
groups are run to name the slow node.
"""

from __future__ import annotations

import pytest

from clusterproof.inventory import Inventory
from clusterproof.network import verdict
from clusterproof.network.collective import CollectiveResult
from clusterproof.network.localize import FailureKind
from clusterproof.network.nccl import printed_size
from clusterproof.units import human_size
from fixtures.nccl import CollectiveRuns, GroupSpec, explain_failure

pytestmark = [pytest.mark.nccl, pytest.mark.exclusive, pytest.mark.xdist_group("fabric")]

# NCCL WARN lines are judged by the transport tests (a WARN about libibverbs is a Socket fallback, not a crash);
# an unfinished log is judged by `complete`. Everything else the parser lists makes the run insane.
_NOT_FATAL = ("NCCL WARN", "log ends before")


def is_fatal(error: str) -> bool:
    return not any(marker in error for marker in _NOT_FATAL)


def expected_ranks(group: GroupSpec, inventory: Inventory) -> int:
    return sum(inventory.node(n).slots * inventory.nccl_tests.sweep.gpus_per_rank for n in group.nodes)


def test_nccl_run_sane(nccl_group: GroupSpec, collective_result: CollectiveResult, inventory: Inventory) -> None:
    res = collective_result
    if res.run is None:
        pytest.fail(f"{nccl_group.id}: output is not nccl-tests output ({res.parse_error})\n{explain_failure(res)}")
    sweep = inventory.nccl_tests.sweep
    ranks = expected_ranks(nccl_group, inventory)
    problems = verdict.sanity(
        res.run.results,
        collective=nccl_group.collective,
        n_nodes=nccl_group.n_nodes,
        expected_sizes=[printed_size(nccl_group.collective, s, ranks) for s in sweep.sizes()],
        expected_ranks=ranks,
        nranks=res.run.nranks,
        complete=res.run.complete,
        rc=res.rc,
        errors=[e for e in res.run.errors if is_fatal(e)],
        require_validation=sweep.check > 0,
    )
    assert not problems, "\n".join(map(str, problems)) + "\n" + explain_failure(res)
    assert not res.cleanup_errors, "\n".join(res.cleanup_errors)


def test_nccl_busbw_meets_threshold(
    nccl_group: GroupSpec, nccl_size: int, collective_result: CollectiveResult, collective_runs: CollectiveRuns, inventory: Inventory
) -> None:
    res = collective_result
    label = f"{nccl_group.collective} {nccl_group.n_nodes} nodes {human_size(nccl_size)}"
    if res.run is None:
        pytest.fail(f"{label}: no parsable output (see test_nccl_run_sane[{nccl_group.id}])\n{explain_failure(res)}")
    printed = printed_size(nccl_group.collective, nccl_size, expected_ranks(nccl_group, inventory))
    rows = res.run.results[res.run.results["size_bytes"] == printed]
    if rows.empty:
        pytest.fail(f"{label}: no result at this size (the run died or skipped it; see test_nccl_run_sane[{nccl_group.id}])")
    problems = verdict.performance(rows, inventory.thresholds, collective=nccl_group.collective, n_nodes=nccl_group.n_nodes)
    if not problems:
        return
    message = "\n".join(map(str, problems))
    standin = "\n(numbers from the CPU stand-in for nccl-tests, not GPUs)" if inventory.standin or res.run.standin else ""
    if nccl_group.n_nodes == len(inventory.nodes) and nccl_group.n_nodes >= 3:
        loc = collective_runs.localize(nccl_group.collective, collective_runs.failure_of(res) or FailureKind.SLOW)
        message += f"\nslow-node search with 2-node {nccl_group.collective} runs:\n{loc.explain()}"
    pytest.fail(message + standin + f"\nraw log: {res.log_path}")
