"""Transport proof from NCCL's own debug logs: every rank used the expected network, GPUDirect RDMA, the detected
GID and one NCCL version. Bandwidth alone hides a silent fallback to TCP sockets.
"""

from __future__ import annotations

import pytest

from clusterproof.inventory import Inventory
from clusterproof.network import nccl_debug, nccl_debug_checks, nccl_debug_model, nccl_log_checks
from clusterproof.network.collective import CollectiveResult
from fixtures.nccl import GroupSpec

pytestmark = [pytest.mark.transport, pytest.mark.nccl, pytest.mark.exclusive, pytest.mark.xdist_group("fabric")]


def _report(res: CollectiveResult, inventory: Inventory) -> nccl_debug_model.TransportReport:
    if inventory.nccl_tests.debug == "off":
        pytest.skip("nccl_tests.debug is off: NCCL was not asked for its logs")
    if inventory.standin or (res.run is not None and res.run.standin):
        pytest.skip("CPU stand-in: no NCCL, transport not provable")
    report = nccl_debug.parse_debug_files(res.debug_files)
    evidence = nccl_log_checks.check_nccl_evidence(report, len(res.debug_files), standin=False)
    if evidence[0].failed:  # a real run (the stand-in skipped above): say what happened, never "stand-in"
        pytest.fail(f"{res.collective} on {','.join(res.nodes)}: {evidence[0].message}; raw log: {res.log_path}")
    return report


def _assert_none(findings: list[nccl_debug_checks.Finding]) -> None:
    __tracebackhide__ = True
    assert not findings, "\n".join(f"{f.host} rank {f.rank}: {f.message}\n    {f.evidence}" for f in findings)


def test_transport_network_as_expected(nccl_group: GroupSpec, collective_result: CollectiveResult, inventory: Inventory) -> None:
    _assert_none(nccl_debug_checks.check_network(_report(collective_result, inventory), expected=inventory.nccl_tests.expect_net))


def test_transport_gdr_on_every_channel(nccl_group: GroupSpec, collective_result: CollectiveResult, inventory: Inventory) -> None:
    report = _report(collective_result, inventory)
    if not inventory.nccl_tests.expect_gdr:
        pytest.skip("nccl_tests.expect_gdr is false")
    _assert_none(nccl_debug_checks.check_gdr(report))


def test_transport_gid_matches_detected(
    nccl_group: GroupSpec, collective_result: CollectiveResult, inventory: Inventory, gid_index: int | None
) -> None:
    report = _report(collective_result, inventory)
    if gid_index is None:
        pytest.fail("no GID index was detected, so the one NCCL used cannot be checked (see test_rdma_gid_index_consistent)")
    _assert_none(nccl_debug_checks.check_gid(report, expected_index=gid_index))


def test_transport_same_nccl_version(nccl_group: GroupSpec, collective_result: CollectiveResult, inventory: Inventory) -> None:
    report = _report(collective_result, inventory)
    _assert_none(nccl_debug_checks.check_same_version(report))
    unproven = nccl_log_checks.check_version_provable(report)
    if unproven:
        pytest.skip(str(unproven[0].reason))


def test_transport_no_nvls_inflation(nccl_group: GroupSpec, collective_result: CollectiveResult, inventory: Inventory) -> None:
    _assert_none(nccl_debug_checks.check_nvls(_report(collective_result, inventory), n_nodes=nccl_group.n_nodes))
