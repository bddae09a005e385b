"""The sandbox cluster for real: network namespaces, one OpenSSH sshd per node, OpenMPI across nodes.

One 3-node sandbox serves most tests of this module. It has its own state dir, prefix and subnet, so it
never meets the demo's sandbox or another test run's. The last tests take it down and check that
nothing is left, then build their own sandboxes (a killed ``up``, 32 nodes) with the same names.
Needs root; under xdist the module stays on one worker (``xdist_group``, run with ``--dist loadgroup``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clusterproof.errors import SandboxError
from clusterproof.inventory import load_inventory
from clusterproof.sandbox import cluster, faults, procs
from clusterproof.sandbox.cluster import SandboxCluster

pytestmark = [
    pytest.mark.needs_root,
    pytest.mark.xdist_group("sandbox-cluster"),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: network namespaces, bridges and one sshd per node"),
]

_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0)  # one sandbox per xdist worker at most
STATE_DIR = Path(f"/tmp/cp-sbx-test{f'-{_WORKER}' if _WORKER else ''}")
PREFIX = f"cpsbx{_WORKER or ''}_"
SUBNET = "192.168.79" if not _WORKER else f"10.79.{_WORKER}"
STANDIN_LINE = "# clusterproof CPU stand-in for nccl-tests (not NVIDIA nccl-tests; numbers are MPI over TCP on CPUs)"
PORT1 = "/sys/class/infiniband/mlx5_0/ports/1"


@pytest.fixture(scope="module")
def sbx() -> Iterator[SandboxCluster]:
    """Yields: a running 3-node sandbox. Scope: module. Cleans up: takes it down, also when a test fails."""
    cluster.down(STATE_DIR)  # a leftover of a killed run
    c = cluster.up(3, STATE_DIR, subnet=SUBNET, prefix=PREFIX)
    try:
        yield c
    finally:
        cluster.down(STATE_DIR)


def ssh(c: SandboxCluster, host: str, command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ssh", "-F", str(c.ssh_config), host, command], capture_output=True, text=True, timeout=timeout)


def mpirun(c: SandboxCluster, binary: str, args: str, nodes: list[str] | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Launch a stand-in binary with mpirun from node01, the way the suites do on a real cluster."""
    hosts = ",".join(f"{n}:1" for n in nodes or [n.name for n in c.nodes])
    exports = " ".join(f"-x {k}={v}" for k, v in (env or {}).items())
    return ssh(c, "node01", f"mpirun -H {hosts} -mca coll ^hcoll -mca pml ob1 -mca btl tcp,self {exports} {c.bin_dir}/{binary} {args}")


def rows(out: str) -> list[list[str]]:
    """The data rows of an nccl-tests table, split into tokens."""
    return [line.split() for line in out.splitlines() if line.strip() and line.split()[0].isdigit()]


def gid_table(c: SandboxCluster, node: str) -> dict[int, tuple[str, str]]:
    """index -> (gid, type) as the node sees it under /sys/class/infiniband."""
    r = ssh(c, node, f'cd {PORT1} && for i in $(seq 0 15); do echo "$i $(cat gids/$i) $(cat gid_attrs/types/$i)"; done')
    assert r.returncode == 0, r.stderr
    table = {}
    for line in r.stdout.splitlines():
        index, gid, *kind = line.split(maxsplit=2)
        table[int(index)] = (gid, kind[0] if kind else "")
    return table


def v4_mapped(ip: str) -> str:
    return "0000:0000:0000:0000:0000:ffff:" + "{:02x}{:02x}:{:02x}{:02x}".format(*map(int, ip.split(".")))


def busbw_at(c: SandboxCluster, nodes: list[str], size: str) -> float:
    r = mpirun(c, "all_reduce_perf", f"-b {size} -e {size} -n 5 -w 1 -c 0", nodes=nodes)
    assert r.returncode == 0, r.stdout + r.stderr
    return float(rows(r.stdout)[0][7])


def test_sandbox_every_node_answers_ssh_with_its_hostname(sbx: SandboxCluster) -> None:
    for n in sbx.nodes:
        for host in (n.name, n.ip):  # known_hosts has "nodeNN,IP": strict checking works both ways
            r = ssh(sbx, host, "hostname")
            assert (r.returncode, r.stdout.strip()) == (0, n.name), f"{host}: {r.stderr}"
    r = ssh(sbx, "node02", "ssh node03 hostname")  # node to node, as mpirun's launcher does
    assert r.stdout.strip() == "node03", r.stderr


def test_sandbox_node_tmp_is_private_and_state_dir_shared(sbx: SandboxCluster) -> None:
    marker = "/tmp/cp-sbx-private-marker"
    assert ssh(sbx, "node01", f"echo node01 > {marker}").returncode == 0
    assert ssh(sbx, "node01", f"cat {marker}").stdout.strip() == "node01"
    assert ssh(sbx, "node02", f"test -e {marker}").returncode == 1
    assert not Path(marker).exists()
    assert ssh(sbx, "node03", f"test -x {sbx.bin_dir}/all_reduce_perf && test -f {sbx.inventory_path}").returncode == 0


def test_sandbox_node_has_own_netns_hosts_and_bare_root_home(sbx: SandboxCluster) -> None:
    r = ssh(sbx, "node02", "ls /sys/class/net; ip route; getent hosts node03; ls -A /root; echo $OMPI_ALLOW_RUN_AS_ROOT")
    assert r.returncode == 0, r.stderr
    out = r.stdout.split()
    assert "eth0" in out and "lo" in out and "default" not in out  # no route out of the sandbox
    assert sbx.node("node03").ip in out
    assert ".bashrc" in out and ".pyenv" not in out and ".cargo" not in out
    assert out[-1] == "1"  # sshd SetEnv: OpenMPI may run as root inside the sandbox only


def test_sandbox_gid_table_has_rocev2_ipv4_at_index_5(sbx: SandboxCluster) -> None:
    for n in sbx.nodes:
        table = gid_table(sbx, n.name)
        assert table[5] == (v4_mapped(n.ip), "RoCE v2")
        assert table[4] == (v4_mapped(n.ip), "IB/RoCE v1")
        assert table[0][0].startswith("fe80:") and table[1][1] == "RoCE v2"
        assert all(table[i] == ("0000:0000:0000:0000:0000:0000:0000:0000", "") for i in range(6, 16))
    r = ssh(sbx, "node01", f"cat {PORT1}/gid_attrs/ndevs/5 {PORT1}/link_layer")
    assert r.stdout.split() == ["eth0", "Ethernet"]


def test_sandbox_standin_all_reduce_across_three_nodes(sbx: SandboxCluster) -> None:
    r = mpirun(sbx, "all_reduce_perf", "-b 64K -e 1M -f 4 -n 3 -w 1 -c 1")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == STANDIN_LINE
    assert re.search(r"^# nThread 1 nGpus 1 minBytes 65536 maxBytes 1048576 step: 4\(factor\) warmup iters: 1 iters: 3 "
                     r"agg iters: 1 validation: 1 graph: 0", r.stdout, re.M)
    ranks = re.findall(r"^#  Rank +(\d+) Group +0 Pid +\d+ on +(\S+) device +0 \[0000:00:00\] CPU stand-in$", r.stdout, re.M)
    assert ranks == [("0", "node01"), ("1", "node02"), ("2", "node03")]
    table = rows(r.stdout)
    assert [int(t[0]) for t in table] == [64 << 10, 256 << 10, 1 << 20]
    for t in table:
        assert t[2:5] == ["float", "sum", "-1"]
        assert (t[8], t[12]) == ("0", "0")  # #wrong, out of place and in place
        for algbw, busbw in ((float(t[6]), float(t[7])), (float(t[10]), float(t[11]))):
            assert busbw == pytest.approx(algbw * 2 * 2 / 3, abs=0.015)  # 2(n-1)/n, values printed to 0.01
    assert "# Out of bounds values : 0 OK" in lines


@pytest.mark.parametrize(
    ("coll", "factor", "scaled", "redop", "root"),
    [
        ("all_gather", 2 / 3, True, "none", "-1"),
        ("reduce_scatter", 2 / 3, True, "sum", "-1"),
        ("alltoall", 2 / 3, True, "none", "-1"),
        ("sendrecv", 1.0, False, "none", "-1"),
        ("broadcast", 1.0, False, "none", "0"),
    ],
)
def test_sandbox_standin_collective_has_its_busbw_factor(sbx: SandboxCluster, coll: str, factor: float, scaled: bool, redop: str, root: str) -> None:
    r = mpirun(sbx, f"{coll}_perf", "-b 1M -e 1M -n 3 -w 1 -c 1")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[0] == STANDIN_LINE
    [t] = rows(r.stdout)
    count = int(t[1])
    assert t[2:5] == ["float", redop, root]
    # nccl-tests' size rules: per-rank counts for gather/scatter/alltoall, algbw over count*n elements
    assert int(t[0]) == (count * 3 * 4 if scaled else count * 4) and count == ((1 << 18) // 3 if scaled else 1 << 18)
    assert t[8] == "0" and t[12] == ("N/A" if coll == "alltoall" else "0")  # nccl-tests skips in-place alltoall checks
    algbw_bytes = count * 4 * (3 if scaled else 1)
    for time_us, algbw, busbw in ((float(t[5]), float(t[6]), float(t[7])), (float(t[9]), float(t[10]), float(t[11]))):
        assert algbw == pytest.approx(algbw_bytes / 1e9 / (time_us / 1e6), rel=0.01, abs=0.006)
        assert busbw == pytest.approx(algbw * factor, abs=0.012)


def test_sandbox_standin_counts_real_corruption(sbx: SandboxCluster) -> None:
    r = mpirun(sbx, "all_reduce_perf", "-b 64K -e 256K -f 4 -n 2 -w 1 -c 1", env={"CLUSTERPROOF_STANDIN_CORRUPT_RANK": "1"})
    assert r.returncode == 7, r.stdout + r.stderr
    table = rows(r.stdout)
    assert table and all(int(t[8]) > 0 and int(t[12]) > 0 for t in table)
    assert "# Out of bounds values : 4 FAILED" in r.stdout.splitlines()


def test_sandbox_inventory_loads_and_describes_the_sandbox(sbx: SandboxCluster) -> None:
    inv = load_inventory(sbx.inventory_path)
    assert inv.standin and inv.name == "sandbox"
    assert [(n.name, n.host, n.port, n.user, n.slots) for n in inv.nodes] == [(n.name, n.ip, 22, "root", 1) for n in sbx.nodes]
    assert (inv.ssh.key_file, inv.ssh.known_hosts, inv.ssh.strict_host_keys, inv.ssh.use_agent) == (sbx.key_file, sbx.known_hosts, True, False)
    assert inv.nccl_tests.bin_dir == str(sbx.bin_dir) and inv.nccl_tests.mca["btl"] == "tcp,self"
    assert inv.nccl_tests.sweep.sizes() == [64 << 10, 256 << 10, 1 << 20, 4 << 20]
    assert inv.thresholds.lookup("all_reduce", 3, 4 << 20) == cluster.ALL_REDUCE_MIN_BUSBW_GBS
    assert inv.thresholds.lookup("all_reduce", 3, 256 << 10) is None
    assert inv.network.hcas == ("mlx5_0",) and inv.network.gid_index == "auto"


def test_sandbox_up_refuses_a_second_sandbox_on_the_same_names(sbx: SandboxCluster) -> None:
    with pytest.raises(SandboxError, match="already up in"):
        cluster.up(3, STATE_DIR, subnet=SUBNET, prefix=PREFIX)
    other = Path(f"{STATE_DIR}-other")
    with pytest.raises(SandboxError, match=f"already in use: link {PREFIX.replace('_', '')}br0"):
        cluster.up(2, other, subnet=SUBNET, prefix=PREFIX)
    assert not other.exists()
    assert cluster.status(STATE_DIR)["up"]


def _closed_to_others(path: Path) -> Path | None:
    """The first directory above ``path`` that other users cannot enter (a ``mktemp -d`` checkout), or None."""
    for d in [path, *path.parents]:
        if not d.stat().st_mode & 0o001:
            return d
    return None


def test_sandbox_refuses_to_start_without_root() -> None:
    closed = _closed_to_others(Path(__file__).resolve().parents[1])
    if closed is not None:  # uid 65534 could not even import the library from here
        pytest.skip(f"{closed} is closed to other users, so the checkout cannot be run as nobody")
    code = "from clusterproof.sandbox import cluster; cluster.up(2, '/tmp/cp-sbx-never')"
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", code],
                       capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert "SandboxError: the sandbox needs root (network namespaces, sshd per node): run as root" in r.stderr, r.stderr
    assert not Path("/tmp/cp-sbx-never").exists()


def test_sandbox_fault_slow_link_slows_the_node_and_clears(sbx: SandboxCluster) -> None:
    pair = ["node01", "node02"]
    healthy = busbw_at(sbx, pair, "256K")
    try:
        line = faults.slow_link(sbx, "node02", rate="200mbit")
        assert "node02: link limited to 200mbit" in line
        qdisc = subprocess.run(["tc", "qdisc", "show", "dev", sbx.node("node02").veth], capture_output=True, text=True).stdout
        assert "tbf" in qdisc or "netem" in qdisc
        slowed = busbw_at(sbx, pair, "256K")
    finally:
        faults.clear_slow_link(sbx, "node02")
    cleared = busbw_at(sbx, pair, "256K")
    assert slowed < healthy / 3, (healthy, slowed)
    assert cleared > slowed * 3, (cleared, slowed)
    qdisc = subprocess.run(["tc", "-n", sbx.node("node02").netns, "qdisc", "show", "dev", "eth0"], capture_output=True, text=True).stdout
    assert "tbf" not in qdisc and "netem" not in qdisc
    assert faults.clear_slow_link(sbx, "node02") == "node02: link back to full speed"  # nothing left to clear is fine


def test_sandbox_fault_gid_table_breaks_and_restores(sbx: SandboxCluster) -> None:
    ip = sbx.node("node02").ip
    try:
        faults.break_gid_table(sbx, "node02", "no_rocev2")
        table = gid_table(sbx, "node02")
        assert not [i for i, (_, kind) in table.items() if kind == "RoCE v2"]
        assert (v4_mapped(ip), "IB/RoCE v1") in table.values()
        faults.break_gid_table(sbx, "node02", "other_index")
        table = gid_table(sbx, "node02")
        assert [i for i, e in table.items() if e == (v4_mapped(ip), "RoCE v2")] == [3]
        assert gid_table(sbx, "node01")[5] == (v4_mapped(sbx.node("node01").ip), "RoCE v2")  # only node02 changed
        with pytest.raises(SandboxError, match="mode must be"):
            faults.break_gid_table(sbx, "node02", "bogus")
    finally:
        faults.restore_gid_table(sbx, "node02")
    assert gid_table(sbx, "node02")[5] == (v4_mapped(ip), "RoCE v2")


def test_sandbox_fault_sshd_stops_and_restarts_in_the_same_node(sbx: SandboxCluster) -> None:
    n = sbx.node("node03")
    old_pid = n.sshd_pid
    try:
        assert faults.stop_sshd(sbx, "node03") == f"node03: sshd (pid {old_pid}) stopped"
        r = ssh(sbx, "node03", "hostname")
        assert r.returncode == 255 and "Connection refused" in r.stderr
        st = {x["name"]: x for x in cluster.status(STATE_DIR)["nodes"]}
        assert (st["node03"]["sshd_alive"], st["node03"]["port_answers"], st["node02"]["port_answers"]) == (False, False, True)
    finally:
        faults.start_sshd(sbx, "node03")
    assert n.sshd_pid != old_pid and procs.alive(n.sshd_pid)
    assert ssh(sbx, "node03", "hostname").stdout.strip() == "node03"
    for ns in ("mnt", "uts", "net"):  # restarted inside the node's own namespaces, not new ones
        assert os.readlink(f"/proc/{n.sshd_pid}/ns/{ns}") == os.readlink(f"/proc/{n.holder_pid}/ns/{ns}")
    assert SandboxCluster.from_state(STATE_DIR).node("node03").sshd_pid == n.sshd_pid
    assert cluster.status(STATE_DIR)["up"]


def test_sandbox_down_removes_processes_namespaces_links_and_files(sbx: SandboxCluster) -> None:
    r = ssh(sbx, "node02", "sleep 300 </dev/null >/dev/null 2>&1 & echo $!")  # a stray job left on a node
    stray = int(r.stdout.strip())
    pids = [stray] + [p for n in sbx.nodes for p in (n.sshd_pid, n.holder_pid)]
    assert all(procs.alive(p) for p in pids)
    removed = cluster.down(STATE_DIR)
    assert removed[-1] == f"removed {STATE_DIR}" and any(line.startswith("deleted network namespaces") for line in removed)
    assert not [p for p in pids if procs.alive(p)]
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    assert PREFIX not in netns and PREFIX.replace("_", "") not in links
    assert not STATE_DIR.exists()
    assert cluster.down(STATE_DIR) == [] and cluster.status(STATE_DIR)["status"] == "down"


def _leftovers(prefix: str) -> list[str]:
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return [line for line in netns.splitlines() + links.splitlines() if prefix in line or prefix.replace("_", "") in line]


def test_sandbox_down_cleans_up_after_a_killed_up() -> None:
    cluster.down(STATE_DIR)  # same names as the module's sandbox: make sure it is gone
    state_dir = Path(f"{STATE_DIR}-killed")
    code = f"from clusterproof.sandbox import cluster; cluster.up(32, {str(state_dir)!r}, subnet={SUBNET!r}, prefix={PREFIX!r})"
    child = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).parents[1], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not Path(f"/run/netns/{PREFIX}node32").exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        child.send_signal(signal.SIGKILL)  # mid-way: namespaces made, nodes starting
        child.wait()
        raw = json.loads((state_dir / "state.json").read_text())
        assert raw["status"] == "starting", "up finished before it could be killed"
        assert _leftovers(PREFIX)
    finally:
        removed = cluster.down(state_dir)
    assert removed[-1] == f"removed {state_dir}"
    assert _leftovers(PREFIX) == [] and not state_dir.exists()


@pytest.mark.slow
def test_sandbox_32_nodes_come_up_answer_and_go_down() -> None:
    cluster.down(STATE_DIR)  # same names as the module's sandbox: make sure it is gone
    state_dir = Path(f"{STATE_DIR}-32")
    t0 = time.monotonic()
    c = cluster.up(32, state_dir, subnet=SUBNET, prefix=PREFIX, extra_inventory={"nccl_tests": {"node_counts": [2, 4, 8]}})
    try:
        took = time.monotonic() - t0
        assert [n.name for n in c.nodes] == [f"node{i:02d}" for i in range(1, 33)]
        assert c.node("node32").ip == f"{SUBNET}.42"
        st = cluster.status(state_dir)
        assert st["up"] and len(st["nodes"]) == 32
        inv = load_inventory(c.inventory_path)  # extra_inventory deep-merged into the sandbox's own
        assert inv.nccl_tests.node_counts == (2, 4, 8) and inv.nccl_tests.bin_dir == str(c.bin_dir)
        r = ssh(c, "node32", "hostname; ssh node01 hostname")
        assert r.stdout.split() == ["node32", "node01"], r.stderr
    finally:
        t1 = time.monotonic()
        cluster.down(state_dir)
    print(f"32 nodes: up {took:.2f} s ({c.timings_s}), down {time.monotonic() - t1:.2f} s")
    assert _leftovers(PREFIX) == []
