"""Transport proof from NCCL's own debug logs: every rank used the expected network, GPUDirect RDMA, the detected
GID and one NCCL version. Bandwidth alone hides a silent fallback to TCP sockets.

When the run cannot be judged, the criterion says why (:func:`~clusterproof.network.nccl_debug_checks.transport_gate`):
``debug: off`` (NCCL's logs were not requested) and the CPU stand-in are not tested; a real cluster whose debug files
hold no NCCL line fails.
"""

from __future__ import annotations

import pytest

from clusterproof import findings as fd
from clusterproof.findings import Criterion, Finding
from clusterproof.inventory import Inventory
from clusterproof.network import nccl_debug, nccl_debug_checks, nccl_debug_model
from clusterproof.network.collective import CollectiveResult
from clusterproof.network.verdict import run_subject
from fixtures.findings import FindingRecorder
from fixtures.nccl import GroupSpec

pytestmark = [pytest.mark.transport, pytest.mark.nccl, pytest.mark.exclusive, pytest.mark.xdist_group("fabric"),
              pytest.mark.criterion(Criterion.TRANSPORT)]


def _evidence_path(res: CollectiveResult) -> str:
    return f"logs/{res.job_id}/"


def _report(res: CollectiveResult, group: GroupSpec, inventory: Inventory,
            findings: FindingRecorder) -> nccl_debug_model.TransportReport:
    """The parsed debug logs, or the test ends here with the gate's finding (not tested, or a failure)."""
    standin = inventory.standin or (res.run is not None and res.run.standin)
    report = None
    if inventory.nccl_tests.debug != "off" and not standin:
        report = nccl_debug.parse_debug_files(res.debug_files)
    gate = nccl_debug_checks.transport_gate(
        report, debug=inventory.nccl_tests.debug, standin=bool(standin), n_files=len(res.debug_files),
        subject=run_subject(group.collective, group.n_nodes, group.node_set), evidence_path=_evidence_path(res))
    if gate is not None:
        findings.check(gate)
    assert report is not None
    return report


def _check(findings: FindingRecorder, found: list[Finding]) -> None:
    __tracebackhide__ = True
    findings.check(found)


def test_transport_network_as_expected(nccl_group: GroupSpec, collective_result: CollectiveResult, inventory: Inventory,
                                       findings: FindingRecorder) -> None:
    report = _report(collective_result, nccl_group, inventory, findings)
    _check(findings, nccl_debug_checks.check_network(report, expected=inventory.nccl_tests.expect_net,
                                                     evidence_path=_evidence_path(collective_result)))


def test_transport_gdr_on_every_channel(nccl_group: GroupSpec, collective_result: CollectiveResult, inventory: Inventory,
                                        findings: FindingRecorder) -> None:
    report = _report(collective_result, nccl_group, inventory, findings)
    if not inventory.nccl_tests.expect_gdr:
        findings.check(fd.not_tested(Criterion.TRANSPORT, run_subject(nccl_group.collective, nccl_group.n_nodes,
                                                                      nccl_group.node_set), "nccl_tests.expect_gdr is false"))
    _check(findings, nccl_debug_checks.check_gdr(report, evidence_path=_evidence_path(collective_result)))


def test_transport_gid_matches_detected(
    nccl_group: GroupSpec, collective_result: CollectiveResult, inventory: Inventory, gid_index: int | None,
    findings: FindingRecorder,
) -> None:
    report = _report(collective_result, nccl_group, inventory, findings)
    if gid_index is None:
        findings.check(fd.failed(Criterion.TRANSPORT, run_subject(nccl_group.collective, nccl_group.n_nodes, nccl_group.node_set),
                                 "no GID index was detected, so the one NCCL used cannot be checked "
                                 "(see test_rdma_gid_index_consistent)"))
        return
    _check(findings, nccl_debug_checks.check_gid(report, expected_index=gid_index, evidence_path=_evidence_path(collective_result)))


def test_transport_same_nccl_version(nccl_group: GroupSpec, collective_result: CollectiveResult, inventory: Inventory,
                                     findings: FindingRecorder) -> None:
    report = _report(collective_result, nccl_group, inventory, findings)
    _check(findings, nccl_debug_checks.check_same_version(report, evidence_path=_evidence_path(collective_result)))


def test_transport_no_nvls_inflation(nccl_group: GroupSpec, collective_result: CollectiveResult, inventory: Inventory,
                                     findings: FindingRecorder) -> None:
    report = _report(collective_result, nccl_group, inventory, findings)
    _check(findings, nccl_debug_checks.check_nvls(report, n_nodes=nccl_group.n_nodes,
                                                  evidence_path=_evidence_path(collective_result)))
