"""End to end: the acceptance suites, unchanged, against a real sandbox cluster and a real Ceph RGW.

A healthy sandbox passes every suite and leaves a report. Then faults are injected one at a time; each must be
caught with a message that names the node: a broken GID table, a dead sshd, a slowed link (named by the
slow-node search and flagged against the healthy run as baseline), corrupted results, a run that times out
(whose processes must be gone from every node afterwards), and an RGW that does not answer.

One verdict (:func:`assert_one_verdict`): for every run, the pytest exit status, ``scorecard.json``'s verdict, the
failing criteria, the failed testcases of ``junit.xml`` and ``clusterproof report build`` on the saved run agree.
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml

from clusterproof.findings import Criterion, read_findings
from clusterproof.sandbox import cluster, faults
from tests.own_sandbox import SANDBOX_MARKS, own_sandbox

ROOT = Path(__file__).resolve().parents[1]
STATE_DIR = Path("/tmp/cp-e2e-sandbox")

pytestmark = [
    *SANDBOX_MARKS,
]


@dataclass
class Sandbox:
    inventory: Path
    cluster: cluster.SandboxCluster
    reports: Path


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """Yields: a 4-node sandbox with RGW and the credentials service, on its own subnet, prefix and ports.

    Scope: module. Cleans up: everything it started (sandbox_down), also when a test fails.
    """
    with own_sandbox(STATE_DIR, 4, subnet="192.168.86", prefix="cpe_", rgw_port=7486, mon_port=16786, service_port=7487) as inv:
        yield Sandbox(inv, cluster.SandboxCluster.from_state(STATE_DIR), tmp_path_factory.mktemp("reports"))


def run_suites(sbx: Sandbox, *args: str, inventory: Path | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pytest", "--cluster", str(inventory or sbx.inventory), "--reports-dir", str(sbx.reports),
           "-p", "no:cacheprovider", "-q", "-rfEs", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def newest_run(sbx: Sandbox) -> Path:
    return (sbx.reports / "latest").resolve()


def assert_one_verdict(sbx: Sandbox, res: subprocess.CompletedProcess[str], failing: set[str]) -> Path:
    """The run's exit status, its scorecard, the failing criteria (``failing`` must be among them, and nothing fails
    when it is empty), junit.xml and a rebuild from the saved data all say the same. Returns the run directory."""
    run = newest_run(sbx)
    card = json.loads((run / "scorecard.json").read_text())
    failed = {c["id"] for c in card["scorecard"] if c["status"] == "fail"}
    out = res.stdout[-5000:] + res.stderr[-2000:]
    assert failing <= failed and bool(failed) == bool(failing), f"failing criteria {sorted(failed)}\n{out}"
    assert card["verdict"] == ("fail" if failing else "pass")
    assert (res.returncode != 0) == bool(failing), f"exit {res.returncode}, report {card['verdict']}\n{out}"
    suite = ET.parse(run / "junit.xml").getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")  # type: ignore[assignment]
    assert suite is not None
    assert (int(suite.get("failures", "0")) + int(suite.get("errors", "0")) > 0) == bool(failing)
    criteria = {tc.get("name") for tc in suite.findall("testcase") if tc.get("classname") == "clusterproof.scorecard"}
    assert criteria == failed  # one failed testcase per failing criterion
    again = subprocess.run([sys.executable, "-m", "clusterproof.cli", "report", "build", str(run)], cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert (again.returncode != 0) == bool(failing) and f"verdict: {card['verdict'].upper()}" in again.stdout, again.stdout
    rebuilt = json.loads((run / "scorecard.json").read_text())
    assert {c["id"] for c in rebuilt["scorecard"] if c["status"] == "fail"} == failed
    return run


def test_healthy_sandbox_passes_every_suite_and_leaves_a_report(sandbox: Sandbox) -> None:
    res = run_suites(sandbox, "suites", "-n", "4")
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-3000:]
    out = res.stdout
    assert "stand-in: no NCCL" in out  # not tested with the reason, never faked
    run = assert_one_verdict(sandbox, res, set())
    card = {c["id"]: c for c in json.loads((run / "scorecard.json").read_text())["scorecard"]}
    assert card["networking.transport"]["status"] == "not tested"
    assert card["networking.transport"]["evidence"].startswith("stand-in: no NCCL")
    assert card["networking.collectives"]["status"] == "pass" and card["storage.access_matrix"]["status"] in ("pass", "known limitation")
    # The GID index in metadata.json is the detected consensus of the nodes, not a row's value.
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["gid_index"] == 5 and meta["extra"]["gid_source"] == "detected consensus of 4 nodes"
    for name in ("index.html", "summary.md", "results.parquet", "results.csv", "storage.csv", "nodes.csv", "junit.xml", "metadata.json"):
        assert (run / name).exists(), f"{name} missing from {run}"
    df = pd.read_parquet(run / "results.parquet")
    assert set(df["collective"]) == {"all_reduce", "all_gather", "reduce_scatter", "alltoall", "sendrecv", "broadcast"}
    assert df["standin"].all() and (df["wrong"] == 0).all()
    assert set(df["n_nodes"]) == {2, 4} and df["gid_index"].eq(5).all()
    assert sorted(pd.read_csv(run / "nodes.csv")["node"]) == ["node01", "node02", "node03", "node04"]
    assert len(pd.read_csv(run / "storage.csv")) > 0
    assert "stand-in" in (run / "summary.md").read_text().lower()
    (sandbox.reports / "healthy").symlink_to(run)


def test_broken_gid_table_names_the_node(sandbox: Sandbox) -> None:
    faults.break_gid_table(sandbox.cluster, "node02", mode="other_index")
    try:
        res = run_suites(sandbox, "suites/network/test_gids.py")
    finally:
        faults.restore_gid_table(sandbox.cluster, "node02")
    assert res.returncode == 1, res.stdout[-4000:]
    assert_one_verdict(sandbox, res, {"networking.gid_index"})
    assert "FAILED suites/network/test_gids.py::test_rdma_gid_index_consistent" in res.stdout, res.stdout[-4000:]
    assert "GID index 5 on 3 of 4 node(s); odd node(s): node02" in res.stdout, res.stdout[-4000:]
    assert "--- node02: GID index 3" in res.stdout

    faults.break_gid_table(sandbox.cluster, "node03", mode="no_rocev2")
    try:
        res = run_suites(sandbox, "suites/network/test_gids.py", "-k", "present")
    finally:
        faults.restore_gid_table(sandbox.cluster, "node03")
    assert res.returncode == 1
    assert_one_verdict(sandbox, res, {"networking.gid_index"})
    assert "FAILED suites/network/test_gids.py::test_rdma_rocev2_ipv4_gid_present[node03]" in res.stdout, res.stdout[-4000:]
    assert "no RoCE v2" in res.stdout


def test_dead_node_is_named(sandbox: Sandbox) -> None:
    faults.stop_sshd(sandbox.cluster, "node04")
    try:
        res = run_suites(sandbox, "suites/nodes", "-k", "reachable")
    finally:
        faults.start_sshd(sandbox.cluster, "node04")
    assert res.returncode == 1
    assert_one_verdict(sandbox, res, {"reliability.nodes_reachable"})
    assert "FAILED suites/nodes/test_nodes.py::test_node_reachable_over_ssh[node04]" in res.stdout, res.stdout[-4000:]
    assert "node04: unreachable: connection refused" in res.stdout
    assert "3 passed" in res.stdout


def test_slow_node_is_named_and_regresses_against_baseline(sandbox: Sandbox) -> None:
    baseline = (sandbox.reports / "healthy").resolve()
    assert baseline.exists(), "needs the healthy run first"
    # 160 mbit is ~0.02 GB/s: far below the sandbox threshold, yet fast enough to keep the test short.
    faults.slow_link(sandbox.cluster, "node03", rate="160mbit", delay="1ms")
    try:
        res = run_suites(sandbox, "suites/network/test_collectives.py", "-k", "all_reduce and 4nodes", "--baseline", str(baseline))
    finally:
        faults.clear_slow_link(sandbox.cluster, "node03")
    assert res.returncode == 1, res.stdout[-4000:]
    assert "all_reduce (slow): bad node(s): node03" in res.stdout, res.stdout[-6000:]
    assert "busbw" in res.stdout and "< threshold" in res.stdout
    assert "REGRESSION against baseline" in res.stdout
    run = assert_one_verdict(sandbox, res, {"networking.collectives", "networking.baseline"})
    df = pd.read_parquet(run / "results.parquet")
    pairs = df[df["n_nodes"] == 2]
    assert len(pairs) and all("node03" in p for p in set(pairs[pairs["verdict"] == "fail"]["node_set"]))
    # node03's pairs either measured below the limit (their rows above) or were cut once their round's other pairs
    # were done (localize.slow_peer_cut), with no number and no row; the search in the finding quotes every pair
    failing = [f for f in read_findings(run) if f.criterion is Criterion.COLLECTIVES and f.failed]
    search = [ln.strip() for ln in failing[0].message.splitlines() if "+" in ln and ": " in ln]
    bad = [ln for ln in search if ln.endswith("BAD")]
    assert bad and all("node03" in ln and ("slow: cut after" in ln or "< limit" in ln) for ln in bad), search
    assert all("node03" not in ln for ln in search if not ln.endswith("BAD")), search


def _variant(sbx: Sandbox, tmp_path: Path, **nccl_tests: object) -> Path:
    doc = yaml.safe_load(sbx.inventory.read_text())
    doc["nccl_tests"].update(nccl_tests)
    out = tmp_path / "inventory.yaml"
    out.write_text(yaml.safe_dump(doc))
    return out


def test_corrupted_results_fail_sanity(sandbox: Sandbox, tmp_path: Path) -> None:
    doc = yaml.safe_load(sandbox.inventory.read_text())
    env = {**doc["nccl_tests"].get("env", {}), "CLUSTERPROOF_STANDIN_CORRUPT_RANK": "1"}
    inv = _variant(sandbox, tmp_path, env=env, collectives=["all_reduce"], node_counts=[])
    res = run_suites(sandbox, "suites/network/test_collectives.py", "-k", "sane", inventory=inv)
    assert res.returncode == 1
    assert_one_verdict(sandbox, res, {"reliability.data_integrity"})
    assert "#wrong = " in res.stdout and "(corrupted results)" in res.stdout, res.stdout[-4000:]


def test_rgw_down_fails_the_storage_criterion(sandbox: Sandbox, tmp_path: Path) -> None:
    """The RGW does not answer (the inventory points at a port nothing listens on: the client's view of an RGW that
    is down, with nothing to undo on the sandbox)."""
    doc = yaml.safe_load(sandbox.inventory.read_text())
    doc["storage"]["endpoint"] = "http://127.0.0.1:20997"
    inv = tmp_path / "inventory.yaml"
    inv.write_text(yaml.safe_dump(doc))
    res = run_suites(sandbox, "suites/storage/test_access_matrix.py", "-k", "rgw-user and read-write and inside",
                     inventory=inv)
    assert res.returncode == 1, res.stdout[-4000:]
    assert_one_verdict(sandbox, res, {"storage.access_matrix"})
    assert "127.0.0.1:20997" in res.stdout or "Could not connect" in res.stdout, res.stdout[-4000:]


def _marked_processes(sbx: Sandbox) -> dict[str, str]:
    out = {}
    for n in sbx.cluster.nodes:
        cmd = ["ssh", "-F", str(sbx.cluster.ssh_config), n.name, "grep -lsz CLUSTERPROOF_JOB= /proc/[0-9]*/environ || true"]
        out[n.name] = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    return out


def test_timeout_kills_the_run_on_every_node(sandbox: Sandbox, tmp_path: Path) -> None:
    inv = _variant(sandbox, tmp_path, timeout_s=3, collectives=["all_reduce"], node_counts=[],
                   sweep={"min_bytes": "64M", "max_bytes": "64M", "step_factor": 2, "iters": 1000, "warmup_iters": 1, "gpus_per_rank": 1, "check": 1})
    res = run_suites(sandbox, "suites/network/test_collectives.py", "-k", "sane", inventory=inv)
    assert res.returncode == 1
    assert_one_verdict(sandbox, res, {"networking.collectives"})
    assert "the run did not finish (timed out or was killed)" in res.stdout, res.stdout[-4000:]
    assert _marked_processes(sandbox) == {n.name: "" for n in sandbox.cluster.nodes}


def test_runner_fetches_debug_files_and_leaves_nothing_behind(sandbox: Sandbox, tmp_path: Path) -> None:
    from clusterproof.inventory import load_inventory
    from clusterproof.network.collective import CollectiveRunner
    from clusterproof.nodes.ssh import SshPool

    inv = load_inventory(sandbox.inventory)
    with SshPool.from_inventory(inv) as pool:
        runner = CollectiveRunner(pool, inv, "e2e-runner", tmp_path / "logs", lock_dir=tmp_path)
        res = runner.run("all_reduce", list(inv.nodes), extra_env={"NCCL_IB_GID_INDEX": "5"})
        assert res.rc == 0 and res.run is not None and res.run.complete, res.log_text[-2000:]
        assert res.log_path.read_text().startswith(f"# clusterproof job {res.job_id} on node01,node02,node03,node04")
        # one NCCL_DEBUG_FILE per rank, fetched from the node that wrote it (%h = its hostname)
        assert sorted(name.split("/")[0] for name in res.debug_files) == ["node01", "node02", "node03", "node04"]
        assert all("NCCL_IB_GID_INDEX set by environment to 5" in text for text in res.debug_files.values())
        kept = sorted(p.name for p in (tmp_path / "logs" / res.job_id).iterdir())  # the raw evidence stays
        assert len(kept) == 4 and all(name.startswith(f"node0{i + 1}-nccl.node0{i + 1}.") for i, name in enumerate(kept))
        leftovers = pool.run_all("ls -d /tmp/clusterproof/e2e-runner 2>/dev/null; true")  # scratch and run dir gone
        assert {node: r.stdout.strip() for node, r in leftovers.items()} == {n.name: "" for n in inv.nodes}  # type: ignore[union-attr]
    assert not res.cleanup_errors
