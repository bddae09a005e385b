"""The bad-node search for real: the network suite, unchanged, against a 4-node sandbox with two rails.

One fault at a time, each caught by name with the exclude list (``reports/<run>/unfit_nodes.txt``) holding
exactly that node: a hung link (blackholed fabric, SSH kept; afterwards no process of the run is left on any
node), a node whose runs crash, a slowed link, and a slowed second rail (named with its rail while rail 0 and
the node-level collectives pass). The 8- and 16-node proofs and the speed ratios are in ``bench/localize.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from clusterproof.sandbox import cluster, fault_fabric, faults
from tests.own_sandbox import own_sandbox

ROOT = Path(__file__).resolve().parents[1]
STATE_DIR = Path("/tmp/cp-i12-localize")

pytestmark = [
    pytest.mark.needs_root,
    pytest.mark.needs_sandbox,
    pytest.mark.xdist_group("sandbox-localize"),
    pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox needs root (network namespaces, one sshd per node)"),
]

INVENTORY = {
    "nccl_tests": {"collectives": ["all_reduce"], "node_counts": [], "timeout_s": 8,
                   "sweep": {"min_bytes": "256K", "max_bytes": "1M", "step_factor": 4, "iters": 5, "warmup_iters": 1,
                             "gpus_per_rank": 1, "check": 1}},
    "localize": {"hang_timeout_s": 5},
    # two ranks on one node: the stand-in's intra-node all_reduce, then the same with P2P and SHM off
    "node_collectives": {"collective": "all_reduce", "ranks": 2, "min_busbw": {"1M": 0.05}, "ib_only_min_busbw": {"1M": 0.05}},
    # healthy rows at 1M on this machine: 0.05-0.19 GB/s (4 nodes, one or two rails); through one 160mbit link 0.01,
    # through two (MPI stripes over both rails) 0.03, which the stand-in prints rounded and so can pass: a slowed
    # node gets 64mbit on each rail (0.01)
    "thresholds": {"all_reduce": {"*": {"1M": 0.03}}},
    "rails": {"min_busbw": {"1M": 0.03}},
}


@dataclass
class Sandbox:
    inventory: Path
    cluster: cluster.SandboxCluster
    reports: Path


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """Yields: a 4-node sandbox with a second rail, no storage. Scope: module. Cleans up: sandbox_down."""
    with own_sandbox(STATE_DIR, 4, with_storage=False, subnet="192.168.124", prefix="c12_", rail1_subnet="192.168.125",
                     extra_inventory=INVENTORY) as inv:
        yield Sandbox(inv, cluster.SandboxCluster.from_state(STATE_DIR), tmp_path_factory.mktemp("reports"))


def run_suite(sbx: Sandbox, *args: str, inventory: Path | None = None) -> tuple[subprocess.CompletedProcess[str], Path]:
    cmd = [sys.executable, "-m", "pytest", "suites/network/test_localize.py", "--cluster", str(inventory or sbx.inventory),
           "--reports-dir", str(sbx.reports), "-p", "no:cacheprovider", "-q", "-rfEs", *args]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    return res, (sbx.reports / "latest").resolve()


def exclude_list(run: Path) -> list[str]:
    return [line.split("\t")[0] for line in (run / "unfit_nodes.txt").read_text().splitlines()]


def leftovers(sbx: Sandbox) -> dict[str, str]:
    """Per node: processes of a clusterproof job (marker in the environment) or of the stand-in binary."""
    out = {}
    for n in sbx.cluster.nodes:
        cmd = f"grep -lsz CLUSTERPROOF_JOB= /proc/[0-9]*/environ; ps -eo pid,args | grep -F {sbx.cluster.bin_dir} | grep -v grep; true"
        r = subprocess.run(["ssh", "-F", str(sbx.cluster.ssh_config), n.name, cmd], capture_output=True, text=True, timeout=30)
        out[n.name] = r.stdout.strip()
    return out


def test_hung_node_is_named_and_nothing_is_left_on_any_node(sandbox: Sandbox) -> None:
    print(fault_fabric.hang_link(sandbox.cluster, "node03"))
    try:
        res, run = run_suite(sandbox, "-k", "bad_node_localized")
        after = leftovers(sandbox)
    finally:
        print(fault_fabric.clear_hang_link(sandbox.cluster, "node03"))
    out = res.stdout
    assert res.returncode == 1, out[-4000:]
    assert "all_reduce (hung): bad node(s): node03" in out, out[-4000:]
    assert "node03+node01: hung: timed out after 5 s" in out
    assert exclude_list(run) == ["node03"]
    assert (run / "unfit_hostlist.txt").read_text().strip() == "node03"
    assert "scontrol update nodename=node03 state=drain reason=" in out  # printed, never run
    assert after == {n.name: "" for n in sandbox.cluster.nodes}


def test_a_hung_pair_is_cut_once_its_peers_are_done(sandbox: Sandbox, tmp_path: Path) -> None:
    """With a long hang timeout (30 s a pair) the search still ends in seconds: each round's hung pair is cut at
    3x its finished peers (floor 1 s), named as a hang with the times that decided it."""
    doc = yaml.safe_load(sandbox.inventory.read_text())
    doc["localize"] = {"hang_timeout_s": 30, "hang_peer_factor": 3, "hang_peer_floor_s": 1}
    inv = tmp_path / "peer-cut.yaml"
    inv.write_text(yaml.safe_dump(doc))
    print(fault_fabric.hang_link(sandbox.cluster, "node03"))
    try:
        t0 = time.monotonic()
        res, run = run_suite(sandbox, "-k", "bad_node_localized", inventory=inv)
        took = time.monotonic() - t0
        after = leftovers(sandbox)
    finally:
        print(fault_fabric.clear_hang_link(sandbox.cluster, "node03"))
    out = res.stdout
    assert res.returncode == 1, out[-4000:]
    assert "all_reduce (hung): bad node(s): node03" in out, out[-4000:]
    assert "hung: cut after " in out and "peer(s) had finished cleanly" in out, out[-4000:]
    assert took < 40, f"{took:.1f} s: two rounds of 30 s timeouts were waited out"  # the all-node run alone takes 8 s
    assert exclude_list(run) == ["node03"]
    assert after == {n.name: "" for n in sandbox.cluster.nodes}


def search_with_node_fault(sbx: Sandbox, node: str, mode: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The bad-node search with the stand-in on ``node`` faulted (``crash`` or ``corrupt``), the fault undone after."""
    print(fault_fabric.node_fault(sbx.cluster, node, mode))
    try:
        return run_suite(sbx, "-k", "bad_node_localized")
    finally:
        print(fault_fabric.clear_node_fault(sbx.cluster, node))


def test_crashing_node_is_named(sandbox: Sandbox) -> None:
    res, run = search_with_node_fault(sandbox, "node02", "crash")
    assert res.returncode == 1, res.stdout[-4000:]
    assert "all_reduce (crashed): bad node(s): node02" in res.stdout, res.stdout[-4000:]
    assert "Test NCCL failure" in res.stdout
    assert exclude_list(run) == ["node02"]


def test_slowed_node_is_named_with_numbers_never_zeros(sandbox: Sandbox) -> None:
    for rail in (0, 1):  # MPI stripes over both interfaces: the node is slow when both of its links are
        print(faults.slow_link(sandbox.cluster, "node04", rate="64mbit", delay="1ms", rail=rail))
    try:
        res, run = run_suite(sandbox, "-k", "bad_node_localized")
        after = leftovers(sandbox)
    finally:
        for rail in (0, 1):
            print(faults.clear_slow_link(sandbox.cluster, "node04", rail=rail))
    assert res.returncode == 1, res.stdout[-4000:]
    assert "all_reduce (slow): bad node(s): node04" in res.stdout, res.stdout[-4000:]
    assert "0.000" not in res.stdout
    assert exclude_list(run) == ["node04"]
    # node04's pairs were cut once their peers were done (localize.slow_peer_cut, on by default): slow, no number
    assert "slow: cut after " in res.stdout and "it cannot reach the limit" in res.stdout, res.stdout[-4000:]
    assert after == {n.name: "" for n in sandbox.cluster.nodes}


def test_slowed_second_rail_is_named_with_its_rail(sandbox: Sandbox) -> None:
    print(faults.slow_link(sandbox.cluster, "node01", rate="160mbit", delay="1ms", rail=1))
    try:
        res, run = run_suite(sandbox, "-k", "test_rail or test_node_collective")
    finally:
        print(faults.clear_slow_link(sandbox.cluster, "node01", rail=1))
    out = res.stdout
    assert res.returncode == 1, out[-4000:]
    assert "FAILED suites/network/test_localize.py::test_rail[rail1]" in out, out[-4000:]
    assert "test_rail[rail0]" not in out.split("short test summary")[-1]  # rail 0 passed
    assert "node01/rail1: node01 on rail1: slow" in out, out[-4000:]
    assert "1 failed, 9 passed" in out, out[-2000:]  # rail0 and the 8 node-level runs passed
    assert exclude_list(run) == ["node01"]
    assert "node01/rail1" in (run / "unfit_nodes.txt").read_text()


def test_corrupting_node_is_named_with_validation_on(sandbox: Sandbox) -> None:
    res, run = search_with_node_fault(sandbox, "node01", "corrupt")
    assert res.returncode == 1, res.stdout[-4000:]
    assert "all_reduce (wrong): bad node(s): node01" in res.stdout, res.stdout[-4000:]
    assert "#wrong = " in res.stdout
    assert exclude_list(run) == ["node01"]


def test_standin_splits_the_ranks_into_groups(sandbox: Sandbox) -> None:
    from clusterproof.network import nccl

    c = sandbox.cluster
    hosts = ",".join(f"{n.name}:2" for n in c.nodes)  # 8 ranks; MOD 2: one rank per node in each of two groups
    cmd = (f"mpirun -H {hosts} -mca coll ^hcoll -mca pml ob1 -mca btl tcp,self -x NCCL_TESTS_SPLIT='MOD 2' "
           f"{c.bin_dir}/all_reduce_perf -b 1M -e 1M -n 2 -w 1 -c 1")
    r = subprocess.run(["ssh", "-F", str(c.ssh_config), "node01", cmd], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    run = nccl.parse(r.stdout)
    assert run.nranks == 8 and sorted(run.devices["group"].tolist()) == [0, 0, 0, 0, 1, 1, 1, 1]
    assert run.ranks_per_group() == 4 and not run.errors  # busbw computed with the group size, as nccl-tests does
    assert (run.results["wrong"] == 0).all()
