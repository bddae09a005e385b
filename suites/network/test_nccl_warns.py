"""NCCL WARN lines are judged on every run, whatever ``nccl_tests.debug`` says: with ``debug: off`` NCCL still
prints its WARNs to stdout when ``NCCL_DEBUG=WARN`` comes from the environment or ``/etc/nccl.conf``; with it on
they are in the debug files. When NCCL printed nothing at all the criterion is not tested, with the reason.
"""

from __future__ import annotations

import pytest

from clusterproof.findings import RUN, Criterion, not_tested
from clusterproof.inventory import Inventory
from clusterproof.network.collective import CollectiveResult
from clusterproof.network.nccl_debug_checks import STANDIN_REASON
from clusterproof.network.nccl_log_checks import check_warns
from fixtures.findings import FindingRecorder
from fixtures.nccl import GroupSpec

pytestmark = [pytest.mark.transport, pytest.mark.nccl, pytest.mark.exclusive, pytest.mark.xdist_group("fabric"),
              pytest.mark.criterion(Criterion.TRANSPORT)]


def test_nccl_warns_judged(
    nccl_group: GroupSpec, collective_result: CollectiveResult, inventory: Inventory, findings: FindingRecorder
) -> None:
    res = collective_result
    if inventory.standin or (res.run is not None and res.run.standin):
        findings.check(not_tested(Criterion.TRANSPORT, RUN, STANDIN_REASON))
    text = "\n".join([*res.debug_files.values(), res.log_text])
    findings.check(check_warns(text, where=f"logs/{res.log_path.name}"))
