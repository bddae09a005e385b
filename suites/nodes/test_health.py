"""Node health, the passive checks every acceptance run starts with: GPUs (count, model, ECC, persistence, clock
events), XIDs in the kernel log, PCIe links and ACS, IB/RoCE ports (state, rate, MTU, error counters), the
GPUDirect RDMA module and NCCL settings that change results. One test per node (or node and HCA) per check, so
``pytest -k node07`` gives node07's whole health; every failure names node, device and value vs expectation.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from clusterproof.inventory import Inventory, Node
from clusterproof.nodes import health_checks as gpu_pcie
from clusterproof.nodes import health_checks_ib as ib
from clusterproof.nodes.health import NodeHealth, SectionError
from clusterproof.nodes.health_nccl import launch_settings
from fixtures.findings import FindingRecorder

pytestmark = [pytest.mark.nodes, pytest.mark.health]

HealthOf = Callable[[str], NodeHealth]


def _sysfs_gpus(h: NodeHealth) -> int | None:
    return None if isinstance(h.pcie, SectionError) else sum(1 for link in h.pcie if link.kind == "gpu")


def test_gpu_count(node: Node, health_of: HealthOf, inventory: Inventory, findings: FindingRecorder) -> None:
    h = health_of(node.name)
    findings.check(gpu_pcie.check_gpu_count(h, inventory.health, sysfs_gpus=_sysfs_gpus(h)))


def test_gpu_model(node: Node, health_of: HealthOf, inventory: Inventory, findings: FindingRecorder) -> None:
    findings.check(gpu_pcie.check_gpu_model(health_of(node.name), inventory.health))


def test_gpu_ecc(node: Node, health_of: HealthOf, inventory: Inventory, findings: FindingRecorder) -> None:
    findings.check(gpu_pcie.check_gpu_ecc(health_of(node.name), inventory.health))


def test_gpu_persistence_mode(node: Node, health_of: HealthOf, inventory: Inventory, findings: FindingRecorder) -> None:
    findings.check(gpu_pcie.check_gpu_persistence(health_of(node.name), inventory.health))


def test_gpu_clock_events(node: Node, health_of: HealthOf, inventory: Inventory, findings: FindingRecorder) -> None:
    findings.check(gpu_pcie.check_gpu_throttle(health_of(node.name), inventory.health))


def test_no_fatal_xid(node: Node, health_of: HealthOf, inventory: Inventory, findings: FindingRecorder) -> None:
    findings.check(gpu_pcie.check_xids(health_of(node.name), inventory.health))


def test_pcie_links(node: Node, health_of: HealthOf, inventory: Inventory, findings: FindingRecorder) -> None:
    findings.check(gpu_pcie.check_pcie_links(health_of(node.name), inventory.health))


def test_pcie_acs(node: Node, health_of: HealthOf, inventory: Inventory, findings: FindingRecorder) -> None:
    findings.check(gpu_pcie.check_pcie_acs(health_of(node.name), inventory.health))


def test_ib_port_active(node_hca: tuple[str, str | None], health_of: HealthOf, inventory: Inventory, findings: FindingRecorder) -> None:
    node, hca = node_hca
    findings.check(ib.check_port_active(health_of(node), inventory.health, hca))


def test_ib_port_rate(node_hca: tuple[str, str | None], health_of: HealthOf, inventory: Inventory, findings: FindingRecorder) -> None:
    node, hca = node_hca
    findings.check(ib.check_port_rate(health_of(node), inventory.health, hca))


def test_roce_mtu(node_hca: tuple[str, str | None], health_of: HealthOf, inventory: Inventory, findings: FindingRecorder) -> None:
    node, hca = node_hca
    findings.check(ib.check_roce_mtu(health_of(node), inventory.health, hca))


def test_ib_error_counters(node_hca: tuple[str, str | None], health_of: HealthOf, inventory: Inventory, findings: FindingRecorder) -> None:
    node, hca = node_hca
    findings.check(ib.check_port_counters(health_of(node), inventory.health, hca))


def test_gpudirect_rdma_module(node: Node, health_of: HealthOf, inventory: Inventory, findings: FindingRecorder) -> None:
    findings.check(ib.check_gpudirect_module(health_of(node.name), inventory.health))


def test_nccl_config(node: Node, health_of: HealthOf, inventory: Inventory, findings: FindingRecorder) -> None:
    launch = launch_settings(inventory.nccl_tests.env)
    findings.check(ib.check_nccl_config(health_of(node.name), inventory.health, launch))
