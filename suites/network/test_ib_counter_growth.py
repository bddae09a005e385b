"""IB/RoCE port error counters read before the collective sweep (``ib_counters_before``, requested by
test_collectives.py) and again here, after it: a counter that grew beyond ``health.counter_growth`` names the
node, the HCA, the port, the counter and the run. Runs in the collectives' xdist group, after them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from clusterproof.findings import RUN, Criterion, not_tested
from clusterproof.inventory import Inventory
from clusterproof.nodes.health_checks_ib import check_counter_growth
from clusterproof.nodes.health_counters import CounterRead
from clusterproof.nodes.ssh import SshPool
from fixtures.findings import FindingRecorder
from fixtures.health import read_counters_after

pytestmark = [pytest.mark.nccl, pytest.mark.health, pytest.mark.exclusive, pytest.mark.xdist_group("fabric")]


def test_ib_counters_quiet_during_sweep(ib_counters_before: CounterRead, ssh_pool: SshPool, inventory: Inventory,
                                        report_dir: Path, run_id: str, findings: FindingRecorder) -> None:
    after = read_counters_after(ssh_pool, inventory, report_dir)
    run = f"the collective sweep of run {run_id}"
    extra = [not_tested(Criterion.IB_PORTS, RUN, f"{node}: counters not readable {when}: {err}")
             for when, read in (("before", ib_counters_before), ("after", after)) for node, err in read.errors.items()]
    evidence = {node: f"logs/counters/after/{node}.txt" for node in after.raw}
    findings.check(check_counter_growth(ib_counters_before.snapshot, after.snapshot, inventory.health, run, evidence), extra,
                   empty_reason="no node has an IB/RoCE port to read counters from")
