"""nccl-tests collectives across all nodes and sub-sets: sane first (rc, ranks, sizes, #wrong == 0), then fast
enough (bus bandwidth at each size at or above the inventory's threshold). When the all-node run is slow, smaller
groups are run to name the slow node.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from clusterproof import findings as fd
from clusterproof.findings import Criterion
from clusterproof.inventory import Inventory
from clusterproof.network import verdict
from clusterproof.network.collective import CollectiveResult, cleanup_findings
from clusterproof.network.localize import FailureKind
from clusterproof.network.nccl import printed_size
from clusterproof.units import human_size
from fixtures.findings import FindingRecorder
from fixtures.nccl import CollectiveRuns, GroupSpec, explain_failure

pytestmark = [pytest.mark.nccl, pytest.mark.exclusive, pytest.mark.xdist_group("fabric"),
              pytest.mark.criterion(Criterion.COLLECTIVES),
              pytest.mark.usefixtures("ib_counters_before")]  # counters read before the sweep (test_ib_counter_growth.py)

# NCCL WARN lines are judged by the transport tests (a WARN about libibverbs is a Socket fallback, not a crash);
# an unfinished log is judged by `complete`. Everything else the parser lists makes the run insane.
_NOT_FATAL = ("NCCL WARN", "log ends before")


def is_fatal(error: str) -> bool:
    return not any(marker in error for marker in _NOT_FATAL)


def expected_ranks(group: GroupSpec, inventory: Inventory) -> int:
    return sum(inventory.node(n).slots * inventory.nccl_tests.sweep.gpus_per_rank for n in group.nodes)


def _log(res: CollectiveResult) -> str:
    return f"logs/{res.log_path.name}"


def test_nccl_run_sane(nccl_group: GroupSpec, collective_result: CollectiveResult, inventory: Inventory,
                       findings: FindingRecorder) -> None:
    res = collective_result
    subject = verdict.run_subject(nccl_group.collective, nccl_group.n_nodes, nccl_group.node_set)
    if res.not_launched:
        findings.check(fd.failed(Criterion.COLLECTIVES, subject, f"{nccl_group.id}: {res.not_launched}"))
        return
    if res.run is None:
        findings.check(fd.failed(Criterion.COLLECTIVES, subject, f"{explain_failure(res)}\n{nccl_group.id}: output is not "
                                 f"nccl-tests output ({res.parse_error})", evidence=[fd.Evidence(_log(res))]))
        return
    sweep = inventory.nccl_tests.sweep
    ranks = expected_ranks(nccl_group, inventory)
    found = verdict.sanity(
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
        node_set=nccl_group.node_set,
        log_path=_log(res),
    )
    first = next((i for i, f in enumerate(found) if f.failed), None)
    if first is not None:  # where to look, once: the command, the raw log and its last lines
        message = found[first].message
        # no table: the cause found in the log comes first
        message = f"{explain_failure(res)}\n{message}" if res.run.results.empty else f"{message}\n{explain_failure(res)}"
        found[first] = replace(found[first], message=message)
    # Judged whatever the run did (a killed run most of all): one finding per node that kept something.
    findings.check(found, cleanup_findings(res, nccl_group.id))


def test_nccl_busbw_meets_threshold(
    nccl_group: GroupSpec, nccl_size: int, collective_result: CollectiveResult, collective_runs: CollectiveRuns,
    inventory: Inventory, findings: FindingRecorder,
) -> None:
    res = collective_result
    label = f"{nccl_group.collective} {nccl_group.n_nodes} nodes {human_size(nccl_size)}"
    subject = verdict.run_subject(nccl_group.collective, nccl_group.n_nodes, nccl_group.node_set)
    if res.run is None:
        findings.check(fd.failed(Criterion.COLLECTIVES, subject, f"{label}: no parsable output (see "
                                 f"test_nccl_run_sane[{nccl_group.id}])\n{explain_failure(res)}"))
        return
    printed = printed_size(nccl_group.collective, nccl_size, expected_ranks(nccl_group, inventory))
    rows = res.run.results[res.run.results["size_bytes"] == printed]
    if rows.empty:
        findings.check(fd.failed(Criterion.COLLECTIVES, subject, f"{label}: no result at this size (the run died or "
                                 f"skipped it; see test_nccl_run_sane[{nccl_group.id}])"))
        return
    found = verdict.performance(rows, inventory.thresholds, collective=nccl_group.collective, n_nodes=nccl_group.n_nodes,
                                node_set=nccl_group.node_set, log_path=_log(res))
    if any(f.failed for f in found):
        note = "\n(numbers from the CPU stand-in for nccl-tests, not GPUs)" if inventory.standin or res.run.standin else ""
        if nccl_group.n_nodes == len(inventory.nodes) and nccl_group.n_nodes >= 3:
            loc = collective_runs.localize(nccl_group.collective, collective_runs.failure_of(res) or FailureKind.SLOW)
            note = f"\nslow-node search with 2-node {nccl_group.collective} runs:\n{loc.explain()}" + note
        found = [replace(f, message=f"{f.message}{note}\nraw log: {res.log_path}") if f.failed else f for f in found]
    findings.check(found)
