"""Health checks (pure functions -> findings) on outputs built from the captured real ones, and the validated
``health:`` inventory section."""

from __future__ import annotations

from pathlib import Path

import pytest

from clusterproof.errors import InventoryError
from clusterproof.findings import Criterion, Status
from clusterproof.inventory import parse_inventory
from clusterproof.nodes import health_checks as hc
from clusterproof.nodes import health_checks_ib as ib
from clusterproof.nodes.health import NodeHealth, parse_health
from clusterproof.nodes.health_nccl import launch_settings
from clusterproof.nodes.health_settings import HealthSettings
from clusterproof.sandbox import health_standins as st
from clusterproof.unfit import unfit_nodes

DATA = Path(__file__).parent / "data" / "health"
M = "::clusterproof-facts"
S = HealthSettings(gpu_models=("NVIDIA A100-SXM4-80GB",), min_pcie_gen=4, link_layer="Ethernet", min_roce_mtu=1500)


def _port(state: str = "4: ACTIVE", rate: str = st.RATE, counters: dict[str, int] | None = None) -> list[str]:
    lines = [f"attr mlx5_0 1 state {state}", "attr mlx5_0 1 phys_state 5: LinkUp", f"attr mlx5_0 1 rate {rate}",
             "attr mlx5_0 1 link_layer Ethernet", "netdev mlx5_0 1 eth0 1500"]
    return lines + [f"counters mlx5_0 1 {k} {v}" for k, v in {**st.COUNTERS, **(counters or {})}.items()]


def facts_text(n_gpus: int = 8, ecc_on: int | None = None, kmsg: str = st.KMSG, port: list[str] | None = None,
               gpu_width: str = "16", nccl: tuple[str, ...] = (), smi_fails: str | None = None) -> str:
    smi = [smi_fails, "rc 9"] if smi_fails else [*st.gpu_csv(n_gpus, ecc_on).splitlines(), "rc 0"]
    xml = [smi_fails, "rc 9"] if smi_fails else [*st.gpu_xml(n_gpus, ecc_on).splitlines(), "rc 0"]
    pcie = [f"gpu\t{st.gpu_bdf(i)}\t{st.gpu_bdf(i)}\t16.0 GT/s PCIe\t16.0 GT/s PCIe\t{gpu_width if i == 0 else '16'}\t16" for i in range(8)]
    pcie.append(f"hca\tmlx5_0\t{st.HCA_BDF}\t32.0 GT/s PCIe\t32.0 GT/s PCIe\t16\t16")
    sections = {"h.gpu_csv": smi, "h.gpu_xml": xml, "h.kmsg": [*kmsg.splitlines(), "rc 0", "src dmesg"], "h.pcie": pcie,
                "h.ib": port if port is not None else _port(), "h.modules": ["nvidia", "nvidia_peermem", "mlx5_ib"],
                "h.nccl": list(nccl), "h.lspci": ["absent"]}
    return "\n".join(f"{M} {k}\n" + "\n".join(v) for k, v in sections.items()) + "\n"


def health(**kw: object) -> NodeHealth:
    return parse_health("node07", facts_text(**kw), "logs/facts/node07.txt")  # type: ignore[arg-type]


def statuses(findings: list) -> set[Status]:  # type: ignore[type-arg]
    return {f.status for f in findings}


def test_healthy_node_passes_every_check() -> None:
    h = health()
    for check in (hc.check_gpu_count, hc.check_gpu_model, hc.check_gpu_ecc, hc.check_gpu_persistence, hc.check_gpu_throttle,
                  hc.check_xids, hc.check_pcie_links, ib.check_port_active, ib.check_port_rate, ib.check_roce_mtu,
                  ib.check_port_counters, ib.check_gpudirect_module, ib.check_nccl_config):
        assert statuses(check(h, S)) == {Status.PASS}, check.__name__
    assert statuses(hc.check_pcie_acs(h, S)) == {Status.NOT_TESTED}


def test_gpu_missing_names_node_and_counts() -> None:
    (f,) = hc.check_gpu_count(health(n_gpus=7), S, sysfs_gpus=8)
    assert f.status is Status.FAIL and f.subject.node == "node07"
    assert "nvidia-smi lists 7 GPUs, expected 8" in f.message and "sysfs lists 8 NVIDIA PCI devices" in f.message


def test_ecc_fault_fails_that_gpu() -> None:
    out = hc.check_gpu_ecc(health(ecc_on=1), S)
    bad = [f for f in out if f.failed]
    assert len(bad) == 1 and bad[0].subject.name == "node07/0000:2a:00.0" and "2 uncorrectable ECC errors (volatile), limit 0" in bad[0].message


def test_smi_failure_is_a_finding_with_its_words() -> None:
    words = (DATA / "nvidia-smi-driver-failed.txt").read_text().strip()
    (f,) = hc.check_gpu_count(health(smi_fails=words), S)
    assert f.failed and "couldn't communicate with the NVIDIA driver" in f.message
    assert statuses(hc.check_pcie_links(health(smi_fails=words), S)) == {Status.PASS}  # the node's other checks still run


def test_xid_fatal_and_not() -> None:
    fatal = st.KMSG + "[ 8659.726062] NVRM: Xid (PCI:0000:18:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.\n"
    (f,) = hc.check_xids(health(kmsg=fatal), S)
    assert f.failed and "XID 79 (GPU has fallen off the bus) x1 on 0000:18:00" in f.message and f.evidence[0].lines
    (ok,) = hc.check_xids(health(kmsg=st.KMSG + "[1.0] NVRM: Xid (PCI:0000:18:00): 13, Graphics Exception\n"), S)
    assert ok.status is Status.PASS and "13 (Graphics engine exception" in ok.message


def test_unreadable_kernel_log() -> None:
    text = facts_text().replace("rc 0\nsrc dmesg", "dmesg: read kernel buffer failed: Operation not permitted\nrc 1\nsrc dmesg")
    (f,) = hc.check_xids(parse_health("node07", text), S)
    assert f.failed and "Operation not permitted" in f.message


def test_pcie_downgrade() -> None:
    out = hc.check_pcie_links(health(gpu_width="8"), S)
    bad = [f for f in out if f.failed]
    assert len(bad) == 1 and "GPU 0000:18:00.0: link at Gen4 x8, capable of Gen4 x16" in bad[0].message


def test_port_down_rate_and_counters() -> None:
    (down,) = ib.check_port_active(health(port=_port(state="1: DOWN")), S, "mlx5_0")
    assert down.failed and down.subject.name == "node07/mlx5_0:1" and "state DOWN" in down.message
    (rate,) = ib.check_port_rate(health(port=_port(rate="200 Gb/sec (4X HDR)")), S, "mlx5_0")
    assert rate.failed and "expected 400 Gb/sec" in rate.message
    (cnt,) = ib.check_port_counters(health(port=_port(counters={"symbol_error": 500})), S, "mlx5_0")
    assert cnt.failed and "symbol_error = 500 > 100" in cnt.message
    (missing,) = ib.check_port_active(health(), S, "mlx5_3")
    assert missing.failed and "HCA mlx5_3 not found" in missing.message


def test_unreadable_counter_is_a_finding() -> None:
    port = [ln.replace("symbol_error 0", "symbol_error ?unreadable") for ln in _port()]
    (f,) = ib.check_port_counters(health(port=port), S, "mlx5_0")
    assert f.failed and "unreadable" in f.message


def test_counter_growth_names_node_hca_port_counter_and_run() -> None:
    before = {"node07": {("mlx5_0", "1"): {"symbol_error": "3", "link_downed": "1"}}, "node08": {("mlx5_0", "1"): {"symbol_error": "0"}}}
    after = {"node07": {("mlx5_0", "1"): {"symbol_error": "9", "link_downed": "1"}}, "node08": {("mlx5_0", "1"): {"symbol_error": "0"}}}
    out = ib.check_counter_growth(before, after, S, "run r1")
    bad = [f for f in out if f.failed]
    assert len(bad) == 1 and bad[0].subject.node == "node07"
    assert "node07 mlx5_0 port 1: during run r1: symbol_error grew by 6 (3 -> 9, limit 0)" in bad[0].message
    assert unfit_nodes(out) and "node07" in str(unfit_nodes(out))


def test_nccl_forced_settings_and_prefix() -> None:
    h = health(nccl=("file /etc/nccl.conf", "line NCCL_PROTO=LL", "env NCCL_SOCKET_IFNAME=eth0"))
    (f,) = ib.check_nccl_config(h, S, launch_settings({"NCCL_ALGO": "Tree", "NCCL_DEBUG": "INFO"}))
    assert f.failed and "NCCL_PROTO=LL forced by /etc/nccl.conf" in f.message and "NCCL_ALGO=Tree forced by inventory" in f.message
    allowed = HealthSettings(allowed_nccl=("NCCL_PROTO", "NCCL_ALGO"))
    assert ib.check_nccl_config(h, allowed, launch_settings({"NCCL_ALGO": "Tree"}))[0].status is Status.PASS
    port = _port() + [ln.replace("mlx5_0", "mlx5_01") for ln in _port()]
    (p,) = ib.check_nccl_config(health(port=port, nccl=("env NCCL_IB_HCA=mlx5_0",)), S)
    assert p.failed and "prefix match for mlx5_0, mlx5_01" in p.message and p.criterion is Criterion.NCCL_CONFIG


def _inv(health: object) -> dict:  # type: ignore[type-arg]
    return {"nodes": [{"name": "node01", "host": "10.0.0.1"}], "ssh": {"known_hosts": "/dev/null"}, "health": health}


def test_inventory_health_defaults_and_overrides() -> None:
    inv = parse_inventory(_inv(None), "c.yaml")
    assert inv.health.gpus_per_node == 8 and inv.health.min_pcie_gen == 5 and 79 in inv.health.fatal_xids
    inv = parse_inventory(_inv({"gpus_per_node": 4, "counter_limits": {"symbol_error": 5}, "gpu_models": []}), "c.yaml")
    assert inv.health.gpus_per_node == 4 and inv.health.counter_limits["symbol_error"] == 5
    assert inv.health.counter_limits["link_downed"] == 10 and inv.health.gpu_models == ()


@pytest.mark.parametrize(("health", "message"), [
    ({"min_pcie_width": "x"}, "c.yaml: health.min_pcie_width: expected an integer, got 'x'"),
    ({"min_pcie_widht": 16}, "health.min_pcie_widht: unknown key (did you mean 'min_pcie_width'?)"),
    ({"link_layer": "IB"}, "health.link_layer: expected one of any, InfiniBand, Ethernet"),
    ({"fatal_xids": [79, "x"]}, "health.fatal_xids: expected a list of XID numbers"),
    ({"counter_growth": {"symbol_error": -1}}, "health.counter_growth: symbol_error: expected an integer >= 0"),
    ({"failing_throttle_reasons": ["hot"]}, "health.failing_throttle_reasons: unknown reason 'hot'"),
])
def test_inventory_health_errors_name_file_and_field(health: object, message: str) -> None:
    with pytest.raises(InventoryError) as e:
        parse_inventory(_inv(health), "c.yaml")
    assert message in str(e.value)
