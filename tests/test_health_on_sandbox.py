"""Node health on a 4-node sandbox: healthy, every health test passes; then each health fault, applied with
``clusterproof sandbox fault``, fails exactly the test that should fail, naming the node, and nothing else;
its undo brings the node back. ``-k node03`` gives node03's whole health. A counter grown while a collective runs
(``--during-run``) fails only the counter-growth test, naming node, HCA, port, counter and the run.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from clusterproof.findings import read_findings
from clusterproof.sandbox import cluster
from tests.own_sandbox import SANDBOX_MARKS, own_sandbox

ROOT = Path(__file__).resolve().parents[1]
STATE_DIR = Path("/tmp/cp-i11-health")

pytestmark = [
    *SANDBOX_MARKS,
]


@dataclass
class Sandbox:
    inventory: Path
    reports: Path


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """Yields: a 4-node sandbox without storage, on its own subnet and prefix. Scope: module.
    Cleans up: the whole sandbox, also when a test fails."""
    with own_sandbox(STATE_DIR, 4, with_storage=False, subnet="192.168.111", prefix="c11h_") as inv:
        yield Sandbox(inv, tmp_path_factory.mktemp("health-reports"))


def fault(*args: str) -> str:
    cmd = [sys.executable, "-m", "clusterproof.cli", "sandbox", "--state-dir", str(STATE_DIR), "fault", *args]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


def undo_fault(kind: str, node: str, *values: str) -> None:
    """Undo in-process (the CLI path is proven by the apply): saves a Python start per fault."""
    from clusterproof.sandbox import health_faults as hf

    sbx = cluster.SandboxCluster.from_state(STATE_DIR)
    undo = {"clear-xid": hf.clear_xid, "restore-gpus": hf.restore_gpus, "restore-pcie": hf.restore_pcie, "port-up": hf.port_up,
            "restore-port-rate": hf.restore_port_rate, "clear-ecc": hf.clear_ecc}
    if kind == "clear-counter":
        hf.clear_counter(sbx, node, values[0])
    else:
        undo[kind](sbx, node)


def run(sbx: Sandbox, *args: str, suite: str = "suites/nodes") -> tuple[set[str], str]:
    """Run a suite; return the ids of the failed tests (``test_x[node02]``) and the output."""
    cmd = [sys.executable, "-m", "pytest", suite, "--cluster", str(sbx.inventory), "--reports-dir", str(sbx.reports),
           "-p", "no:cacheprovider", "-q", "-rf", *args]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    failed = set(re.findall(r"^FAILED \S+::(\S+)", res.stdout, re.M))
    assert res.returncode in (0, 1), res.stdout[-3000:] + res.stderr[-2000:]
    return failed, res.stdout


def test_healthy_sandbox_passes_every_health_test(sandbox: Sandbox) -> None:
    failed, out = run(sandbox)
    assert failed == set(), out[-3000:]
    assert re.search(r"\b\d+ passed", out)
    run_dir = sandbox.reports / "latest"
    assert (run_dir / "logs" / "facts" / "node03.txt").read_text().count("::clusterproof-facts h.") == 8
    health = [f for f in read_findings(run_dir) if f.criterion.value.startswith("reliability.") and f.test_id and "test_health" in f.test_id]
    assert health and all(f.status.value in ("pass", "not tested") for f in health)
    assert all(e.path == f"logs/facts/{f.subject.node}.txt" for f in health for e in f.evidence)


FAULTS = [
    (("xid", "node02", "79"), ("clear-xid", "node02"), "test_no_fatal_xid[node02]", "XID 79 (GPU has fallen off the bus)"),
    (("gpu-missing", "node03"), ("restore-gpus", "node03"), "test_gpu_count[node03]", "node03: nvidia-smi lists 7 GPUs, expected 8"),
    (("pcie-downgrade", "node04"), ("restore-pcie", "node04"), "test_pcie_links[node04]", "node04 GPU 0000:18:00.0: link at Gen3 x8"),
    (("port-down", "node01"), ("port-up", "node01"), "test_ib_port_active[node01-mlx5_0]", "node01 mlx5_0:1: state DOWN"),
    (("port-rate", "node02", "200"), ("restore-port-rate", "node02"), "test_ib_port_rate[node02-mlx5_0]", "expected 400 Gb/sec"),
    (("counter", "node03", "symbol_error", "500"), ("clear-counter", "node03", "symbol_error"), "test_ib_error_counters[node03-mlx5_0]",
     "symbol_error = 500 > 100"),
    (("ecc", "node04"), ("clear-ecc", "node04"), "test_gpu_ecc[node04]", "node04 GPU 0000:2a:00.0: 2 uncorrectable ECC errors"),
]


def test_each_fault_fails_only_its_test(sandbox: Sandbox) -> None:
    for i, (apply, undo, expected, words) in enumerate(FAULTS):
        fault(*apply)
        try:  # the first fault's run writes a report: the unfit list names the node and why
            failed, out = run(sandbox, "-k", "test_health", *(() if i == 0 else ("--no-report",)))
            assert failed == {expected}, f"{apply}: failed {sorted(failed)}, expected only {expected}\n{out[-3000:]}"
            assert words in out, f"{apply}: {words!r} not in the failure\n{out[-3000:]}"
            if i == 0:
                unfit = (sandbox.reports / "latest" / "unfit_nodes.txt").read_text().splitlines()
                assert len(unfit) == 1 and unfit[0].startswith(f"{apply[1]}\t") and words in unfit[0], unfit
                assert f"**{apply[1]}**" in (sandbox.reports / "latest" / "summary.md").read_text()
        finally:
            undo_fault(*undo)
    failed, out = run(sandbox, "-k", "test_health")
    assert failed == set(), out[-2000:]
    assert (sandbox.reports / "latest" / "unfit_nodes.txt").read_text() == ""


def test_dash_k_node03_is_node03s_whole_health(sandbox: Sandbox) -> None:
    failed, out = run(sandbox, "-k", "node03", "-rA", "--no-report")
    ids = re.findall(r"^PASSED \S+::(test_\w+)\[([^\]]+)\]", out, re.M)
    assert ids and all("node03" in param for _, param in ids) and not failed, out[-2000:]
    health_tests = {name for name, _ in ids}
    for name in ("test_gpu_count", "test_gpu_ecc", "test_no_fatal_xid", "test_pcie_links", "test_ib_port_active",
                 "test_ib_port_rate", "test_ib_error_counters", "test_roce_mtu", "test_gpudirect_rdma_module", "test_nccl_config"):
        assert name in health_tests, f"{name} not selected by -k node03:\n{out[-2000:]}"


def test_counter_grown_during_the_sweep_names_node_hca_port_counter_and_run(sandbox: Sandbox) -> None:
    out_fault = fault("counter", "node03", "symbol_error", "5", "--during-run")
    assert "while the next collective runs" in out_fault
    try:
        failed, out = run(sandbox, "-k", "test_nccl_run_sane and all_reduce-4nodes or test_ib_counters_quiet_during_sweep",
                          suite="suites/network")
        assert failed == {"test_ib_counters_quiet_during_sweep"}, out[-3000:]
        assert re.search(r"node03 mlx5_0 port 1: during the collective sweep of run \S+: symbol_error grew by 5 \(0 -> 5, limit 0\)", out), out[-3000:]
    finally:
        fault("clear-counter", "node03", "symbol_error")  # the CLI undo, once
    failed, out = run(sandbox, "-k", "test_ib_error_counters")
    assert failed == set(), out[-2000:]
