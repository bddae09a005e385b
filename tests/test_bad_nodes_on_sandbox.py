"""One bad node never voids the run: a hung sshd (directly, behind a jump host, or the jump host itself), a
garbage GID file and a re-keyed node are each caught by name, and every healthy node's tests still pass.

The suites run unchanged in a child pytest against a 4-node sandbox (nodes only) on this helper's own subnet,
prefix and state dir; ``ssh.connect_timeout_s`` is lowered to 2 s so that a hung node costs seconds.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from clusterproof.sandbox import cluster, faults
from tests.own_sandbox import SANDBOX_MARKS, own_sandbox

ROOT = Path(__file__).resolve().parents[1]
STATE_DIR = Path("/tmp/cp-i16-badnodes")
SUITES = ("suites/nodes", "suites/network/test_gids.py")

pytestmark = [
    *SANDBOX_MARKS,
]


@dataclass
class Sandbox:
    inventory: Path
    cluster: cluster.SandboxCluster
    work: Path


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """Yields: a 4-node sandbox (no RGW) on 192.168.160.0/24, prefix c16_. Scope: module.
    Cleans up: the whole sandbox (sandbox_down), also when a test fails."""
    with own_sandbox(STATE_DIR, 4, with_storage=False, subnet="192.168.160", prefix="c16_") as inv:
        yield Sandbox(inv, cluster.SandboxCluster.from_state(STATE_DIR), tmp_path_factory.mktemp("badnodes"))


def variant(sbx: Sandbox, name: str, jump_via: str | None = None, drop: tuple[str, ...] = ()) -> Path:
    doc: dict[str, Any] = yaml.safe_load(sbx.inventory.read_text())
    doc["ssh"]["connect_timeout_s"] = 2
    if jump_via is not None:
        doc["ssh"]["jump_host"] = {"host": sbx.cluster.node(jump_via).ip, "port": 22}
    doc["nodes"] = [n for n in doc["nodes"] if n["name"] not in drop]
    out = sbx.work / f"{name}.yaml"
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    return out


@dataclass
class Outcome:
    rc: int
    out: str
    failed: list[str]
    passed: int
    errors: int


def run_suites(sbx: Sandbox, inventory: Path, *args: str) -> Outcome:
    cmd = [sys.executable, "-m", "pytest", *SUITES, "--cluster", str(inventory), "--reports-dir", str(sbx.work / "reports"),
           "-p", "no:cacheprovider", "-q", "-rfE", "--no-report", *args]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    out = res.stdout + res.stderr
    failed = re.findall(r"^FAILED (\S+)", res.stdout, re.M)
    passed = int(m.group(1)) if (m := re.search(r"(\d+) passed", res.stdout)) else 0
    errors = int(m.group(1)) if (m := re.search(r"(\d+) errors?\b", res.stdout)) else 0
    return Outcome(res.returncode, out, failed, passed, errors)


def only_node_failed(o: Outcome, node: str) -> None:
    assert o.rc == 1 and o.errors == 0, o.out[-5000:]
    assert o.failed, o.out[-5000:]
    strangers = [f for f in o.failed if f"[{node}" not in f]
    assert not strangers, f"healthy nodes failed: {strangers}\n{o.out[-5000:]}"
    assert "No existing session" not in o.out and "Traceback" not in o.out


def test_hung_garbage_and_rekeyed_nodes_each_fail_only_their_own_tests(sandbox: Sandbox) -> None:
    """Three faults at once, one per node; node01 stays healthy and passes everything."""
    inv = variant(sandbox, "direct")
    print(faults.hang_sshd(sandbox.cluster, "node03"))
    print(faults.garbage_gids(sandbox.cluster, "node02"))
    print(faults.rekey_sshd(sandbox.cluster, "node04"))
    try:
        o = run_suites(sandbox, inv)
    finally:
        faults.continue_sshd(sandbox.cluster, "node03")
        faults.restore_gid_table(sandbox.cluster, "node02")
        faults.restore_sshd_key(sandbox.cluster, "node04")
    assert o.rc == 1 and o.errors == 0, o.out[-5000:]
    assert "No existing session" not in o.out and "Traceback" not in o.out, o.out[-5000:]
    assert not [f for f in o.failed if "[node01" in f], o.out[-5000:]
    assert [f for f in o.failed if "[node02" in f] == ["suites/network/test_gids.py::test_rdma_rocev2_ipv4_gid_present[node02]"]
    assert "node02: facts section 'gids': " in o.out and "undecodable bytes" in o.out
    assert "test_node_reachable_over_ssh[node03]" in " ".join(o.failed)
    assert "node03: unreachable: timed out after 2s waiting for the SSH banner from 192.168.160.13:22 (step: banner" in o.out
    assert "test_node_reachable_over_ssh[node04]" in " ".join(o.failed)
    assert "node04: unreachable: host key mismatch for 192.168.160.14" in o.out, o.out[-3000:]
    again = run_suites(sandbox, inv, "-k", "reachable or present")
    assert again.rc == 0 and again.passed == 8, again.out[-3000:]  # every undo gives the node back


def test_hung_sshd_behind_a_jump_host_fails_only_that_node(sandbox: Sandbox) -> None:
    inv = variant(sandbox, "jump", jump_via="node01")
    print(faults.hang_sshd(sandbox.cluster, "node04"))
    try:
        o = run_suites(sandbox, inv)
    finally:
        faults.continue_sshd(sandbox.cluster, "node04")
    only_node_failed(o, "node04")
    assert "node04: unreachable: timed out after 2s waiting for the SSH banner from 192.168.160.14:22" in o.out, o.out[-3000:]


def test_hung_jump_host_is_named_by_every_node(sandbox: Sandbox) -> None:
    inv = variant(sandbox, "jump-hung", jump_via="node01", drop=("node01",))
    print(faults.hang_sshd(sandbox.cluster, "node01"))
    try:
        o = run_suites(sandbox, inv)
    finally:
        faults.continue_sshd(sandbox.cluster, "node01")
    assert o.rc == 1 and o.errors == 0, o.out[-5000:]
    assert "No existing session" not in o.out and "Traceback" not in o.out, o.out[-5000:]
    for node in ("node02", "node03", "node04"):
        assert (f"{node}: unreachable: via jump host 192.168.160.11:22: timed out after 2s waiting for the SSH banner"
                in o.out), o.out[-5000:]


# ---------------------------------------------------------------------------------------------- collectives

#: Every OpenMPI/nccl-tests process, session directory and scratch file in the node's own network namespace
#: (the nodes share the machine's pid namespace, so processes are told apart by their netns).
DEBRIS = (
    'me=$(readlink /proc/self/ns/net); for p in /proc/[0-9]*; do [ "$(readlink $p/ns/net 2>/dev/null)" = "$me" ] || continue; '
    'c=; read -r c 2>/dev/null <$p/comm; case $c in orted|mpirun|*_perf) echo "process ${p#/proc/} $c";; esac; done; '
    "for d in /tmp/ompi.* /tmp/clusterproof/*; do [ -e \"$d\" ] && echo \"file $d\"; done; true"
)


def debris(sbx: Sandbox) -> dict[str, str]:
    from clusterproof.inventory import load_inventory
    from clusterproof.nodes.ssh import SshPool

    with SshPool.from_inventory(load_inventory(sbx.inventory)) as pool:
        return {n: (r.stdout.strip() if not isinstance(r, Exception) else str(r)) for n, r in pool.run_all(DEBRIS).items()}


def collectives_variant(sbx: Sandbox, name: str, **nccl_tests: object) -> Path:
    path = variant(sbx, name)
    doc = yaml.safe_load(path.read_text())
    doc["nccl_tests"].update(nccl_tests)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def run_collectives(sbx: Sandbox, inventory: Path, *args: str) -> Outcome:
    global SUITES
    saved, SUITES = SUITES, ("suites/network/test_collectives.py",)
    try:
        return run_suites(sbx, inventory, *args)
    finally:
        SUITES = saved


def test_hung_collective_leaves_no_process_session_dir_or_scratch_file(sandbox: Sandbox) -> None:
    sweep = {"min_bytes": "64M", "max_bytes": "64M", "step_factor": 2, "iters": 1000, "warmup_iters": 1, "gpus_per_rank": 1, "check": 1}
    inv = collectives_variant(sandbox, "hung-collective", timeout_s=3, collectives=["all_reduce"], node_counts=[], sweep=sweep, debug="on")
    o = run_collectives(sandbox, inv, "-k", "sane or left_nothing")
    assert o.rc == 1 and "the run did not finish (timed out or was killed)" in o.out, o.out[-4000:]
    assert not any("left_nothing_behind" in f for f in o.failed), o.out[-4000:]
    assert debris(sandbox) == {n.name: "" for n in sandbox.cluster.nodes}


def test_collectives_skip_a_node_known_to_be_down(sandbox: Sandbox) -> None:
    inv = collectives_variant(sandbox, "down-collective", collectives=["all_reduce"], node_counts=[2])
    print(faults.hang_sshd(sandbox.cluster, "node03"))
    try:
        o = run_collectives(sandbox, inv, "-k", "sane")
    finally:
        faults.continue_sshd(sandbox.cluster, "node03")
    assert o.rc == 1 and o.errors == 0, o.out[-4000:]
    assert "not launched, 1 node(s) of the set already known to be down" in o.out, o.out[-4000:]
    assert "node03: unreachable: timed out after 2s waiting for the SSH banner" in o.out
    assert all("4nodes" in f for f in o.failed), o.failed  # the 2-node run without node03 still passes
    assert debris(sandbox) == {n.name: "" for n in sandbox.cluster.nodes}
