"""Slurm for real: a 4-node sandbox with munged, slurmctld and one slurmd per node, and the suites run through it.

Proves issue 13's "done when": the suites pass with ``launcher: srun`` and their rows say srun; a stopped slurmd
(and a drained node) fails that node's own test with Slurm's reason; a run under ``salloc`` inside the sandbox
takes its nodes from the allocation; a hung srun job is cancelled and leaves no step and no process behind.
One module-scoped sandbox (own state dir, subnet, prefix and Slurm ports), no RGW.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml

from clusterproof.sandbox import cluster, procs
from clusterproof.sandbox import slurm as sandbox_slurm
from clusterproof.sandbox.cluster import SandboxCluster

ROOT = Path(__file__).resolve().parents[1]
STATE_DIR = Path("/tmp/cp-i13-slurm-sbx")
SUBNET, PREFIX, PORTS = "192.168.132", "c13_", sandbox_slurm.SlurmPorts(21310, 21311)

pytestmark = [
    pytest.mark.needs_root,
    pytest.mark.needs_sandbox,
    pytest.mark.xdist_group("sandbox-slurm"),
    pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox needs root (network namespaces, one sshd per node)"),
    pytest.mark.skipif(not os.access("/usr/sbin/slurmctld", os.X_OK), reason="Slurm is not installed (scripts/system-deps.sh)"),
]


@pytest.fixture(scope="module")
def sbx() -> Iterator[SandboxCluster]:
    """Yields: a 4-node sandbox with Slurm. Scope: module. Cleans up: takes it down, also when a test fails."""
    cluster.down(STATE_DIR)  # a leftover of a killed run (our own state dir)
    c = cluster.up(4, STATE_DIR, subnet=SUBNET, prefix=PREFIX, slurm=PORTS)
    try:
        yield c
    finally:
        cluster.down(STATE_DIR)


def run_suites(c: SandboxCluster, *args: str, inventory: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pytest", "--cluster", str(inventory or c.inventory_path), "--reports-dir", str(c.state_dir / "reports"),
           "-p", "no:cacheprovider", "-q", "-rfEs", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def ssh(c: SandboxCluster, node: str, command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ssh", "-F", str(c.ssh_config), node, command], capture_output=True, text=True, timeout=timeout)


def variant(c: SandboxCluster, out: Path, **changes: object) -> Path:
    doc = yaml.safe_load(c.inventory_path.read_text())
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            doc.setdefault(section, {})[field] = value
        elif value is None:
            doc.pop(section, None)
        else:
            doc[section] = value
    out.write_text(yaml.safe_dump(doc))
    return out


def test_sandbox_slurm_is_up_and_status_shows_it(sbx: SandboxCluster) -> None:
    st = cluster.status(STATE_DIR)
    assert st["up"] and st["slurm"]["slurmctld_alive"] and st["slurm"]["munged_alive"]
    assert st["slurm"]["nodes"] == {n.name: "idle" for n in sbx.nodes}
    assert all(st["slurm"]["slurmd_alive"].values())
    r = ssh(sbx, "node02", "sinfo -h -o '%P %a %D %N'; srun -N4 -l hostname | sort")  # /etc/slurm inside every node
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["sandbox* up 4 node[01-04]", "0: node01", "1: node02", "2: node03", "3: node04"]


def test_suites_pass_with_srun_and_rows_say_srun(sbx: SandboxCluster) -> None:
    res = run_suites(sbx, "suites")
    assert res.returncode == 0, res.stdout[-5000:] + res.stderr[-2000:]
    run = (sbx.state_dir / "reports" / "latest").resolve()
    df = pd.read_parquet(run / "results.parquet")
    assert len(df) > 0 and set(df["launcher"]) == {"srun"}
    assert set(df["collective"]) == {"all_reduce", "all_gather", "reduce_scatter", "alltoall", "sendrecv", "broadcast"}
    assert (df["wrong"] == 0).all()
    logs = sorted((run / "logs").glob("all_reduce-4n-*.log"))
    text = logs[0].read_text()
    assert "srun -N 4 --ntasks-per-node=1 --mpi=pmix --nodelist=node01,node02,node03,node04 --export=ALL --label" in text
    assert "NCCL_DEBUG_SUBSYS=INIT,BOOTSTRAP,ENV,NET,GRAPH" in text  # a value with commas, through env + --export=ALL
    assert "0: # clusterproof CPU stand-in" in text  # srun -l tags, stripped by the parser


def test_gres_is_read_from_slurm_and_a_shortfall_names_every_node(sbx: SandboxCluster, tmp_path: Path) -> None:
    ok = run_suites(sbx, "suites/nodes/test_slurm.py", "-k", "gres")
    assert ok.returncode == 0 and "4 passed" in ok.stdout, ok.stdout[-3000:]
    more = variant(sbx, tmp_path / "gres16.yaml", slurm__gres="gpu:16")
    short = run_suites(sbx, "suites/nodes/test_slurm.py", "-k", "gres", inventory=more)
    assert short.returncode == 1 and "4 failed" in short.stdout, short.stdout[-3000:]
    assert "node03: Gres=gpu:8, expected gpu:16 (8 < 16)" in short.stdout, short.stdout[-3000:]


def test_two_launchers_make_one_run_and_one_report(sbx: SandboxCluster, tmp_path: Path) -> None:
    """make demo's shape: the collectives through mpirun, then through srun joining that run (``--join-run``)."""
    reports = sbx.state_dir / "reports"
    before = {p.name for p in reports.iterdir()} if reports.is_dir() else set()
    mpirun = variant(sbx, tmp_path / "mpirun.yaml", nccl_tests__launcher="mpirun")
    first = run_suites(sbx, "suites/network/test_collectives.py", "-k", "all_reduce", inventory=mpirun)
    assert first.returncode == 0, first.stdout[-4000:]
    run = (reports / "latest").resolve()
    second = run_suites(sbx, "suites/network/test_collectives.py", "-k", "all_reduce", "--join-run", str(run))
    assert second.returncode == 0, second.stdout[-4000:]
    assert (reports / "latest").resolve() == run and {p.name for p in reports.iterdir()} - before - {"latest"} == {run.name}
    df = pd.read_parquet(run / "results.parquet")
    assert set(df["launcher"]) == {"mpirun", "srun"}
    assert df.groupby("launcher").size().nunique() == 1  # the same rows through each launcher
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["launcher"] == "mpirun+srun"
    assert {p.name for p in (run / "findings").glob("main*.jsonl")} == {"main.jsonl", "main-j1.jsonl"}
    assert (run / "junit.xml").is_file() and (run / "junit-j1.xml").is_file()
    page = (run / "index.html").read_text()
    assert "<th>Launcher</th>" in page and ">srun<" in page and ">mpirun<" in page
    bad = run_suites(sbx, "suites/network/test_collectives.py", "--join-run", str(tmp_path / "nowhere"))
    assert bad.returncode == 4 and f"--join-run {tmp_path / 'nowhere'}: not a clusterproof run directory" in bad.stdout + bad.stderr


def test_stopped_slurmd_and_drained_node_fail_their_own_tests_with_slurms_reason(sbx: SandboxCluster) -> None:
    stopped = sandbox_slurm.stop_slurmd(sbx, "node03")
    assert "Slurm state DOWN" in stopped, stopped
    drained = sandbox_slurm.drain(sbx, "node02", "clusterproof test: bad fan")
    try:
        res = run_suites(sbx, "suites/nodes/test_slurm.py", "-k", "node_state")
    finally:
        undo = [sandbox_slurm.start_slurmd(sbx, "node03"), sandbox_slurm.resume(sbx, "node02")]
    assert "IDLE+DRAIN" in drained
    assert res.returncode == 1, res.stdout[-4000:]
    out = res.stdout
    assert "FAILED suites/nodes/test_slurm.py::test_slurm_node_state[node03]" in out, out[-4000:]
    assert "node03: Slurm state DOWN+NOT_RESPONDING (down), reason: Not responding" in out
    assert "FAILED suites/nodes/test_slurm.py::test_slurm_node_state[node02]" in out
    assert "node02: Slurm state IDLE+DRAIN (drained), reason: clusterproof test: bad fan" in out
    assert "2 failed, 2 passed" in out  # nothing else fails
    assert all("idle" in line.lower() for line in undo), undo
    assert sandbox_slurm.node_states(sbx) == {n.name: "idle" for n in sbx.nodes}


def test_run_under_salloc_takes_its_nodes_from_the_allocation(sbx: SandboxCluster) -> None:
    if Path(ROOT).resolve().is_relative_to("/tmp"):  # every sandbox node has a /tmp of its own
        pytest.skip(f"the checkout {ROOT} is under /tmp, which the sandbox nodes do not see: pytest cannot run on a node")
    inv = variant(sbx, sbx.state_dir / "inventory-salloc.yaml", nodes=None, slurm__from_allocation=True)  # no node list
    reports = sbx.state_dir / "reports-salloc"
    python = node_python()
    env, _, exe = python.rpartition(" ")
    cmd = (f"cd {ROOT} && {env} salloc -N 3 -p sandbox --nodelist=node02,node03,node04 {exe} -m pytest suites/nodes/test_slurm.py "
           f"suites/network/test_collectives.py -k 'node_state or all_reduce' --cluster {inv} --reports-dir {reports} "
           "-p no:cacheprovider -q -rA")
    res = ssh(sbx, "node01", cmd, timeout=300)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    ids = sorted(line.split("[")[1].split("]")[0] for line in res.stdout.splitlines() if line.startswith("PASSED") and "node_state[" in line)
    assert ids == ["node02", "node03", "node04"], res.stdout[-3000:]
    assert "salloc: Granted job allocation" in res.stderr
    df = pd.read_parquet((reports / "latest").resolve() / "results.parquet")
    assert "node02,node03,node04" in set(df["node_set"]) and set(df["launcher"]) == {"srun"}
    assert all(set(s.split(",")) <= {"node02", "node03", "node04"} for s in df["node_set"])
    log = next(((reports / "latest").resolve() / "logs").glob("all_reduce-3n-*.log")).read_text()
    assert "--jobid=" in log  # a step of the allocation, not a job of its own


def node_python() -> str:
    """A Python command line that works inside a sandbox node: the venv's interpreter may live under /root, which
    the nodes hide behind their own home, so Debian's python3.11 runs with the venv's site-packages instead."""
    exe = os.path.realpath(sys.executable)
    if not exe.startswith(("/root/", "/tmp/")):
        return sys.executable
    return f"PYTHONPATH={sysconfig.get_paths()['purelib']}:{ROOT} /usr/bin/python3"


def _leftovers(c: SandboxCluster) -> dict[str, str]:
    """Per node: processes of a clusterproof job (marker in their environment, or a stand-in binary), and steps."""
    out = {}
    for n in c.nodes:
        r = ssh(c, n.name, "grep -lsz CLUSTERPROOF_JOB= /proc/[0-9]*/environ; ps -eo args | grep -E '_perf( |$)' | grep -v grep; true")
        out[n.name] = r.stdout.strip()
    r = ssh(c, "node01", "squeue -h -s -o '%i %j'; squeue -h -o '%i %j'")
    out["squeue"] = r.stdout.strip()
    return out


def test_hung_srun_job_is_cancelled_and_leaves_no_step(sbx: SandboxCluster, tmp_path: Path) -> None:
    inv = variant(sbx, tmp_path / "inventory.yaml", nccl_tests={**yaml.safe_load(sbx.inventory_path.read_text())["nccl_tests"], "timeout_s": 3,
                                             "collectives": ["all_reduce"], "node_counts": [],
                                             "sweep": {"min_bytes": "64M", "max_bytes": "64M", "step_factor": 2, "iters": 1000,
                                                       "warmup_iters": 1, "gpus_per_rank": 1, "check": 1}})
    res = run_suites(sbx, "suites/network/test_collectives.py", "-k", "sane", inventory=inv)
    assert res.returncode == 1
    assert "the run did not finish (timed out or was killed)" in res.stdout, res.stdout[-4000:]
    assert _leftovers(sbx) == {**{n.name: "" for n in sbx.nodes}, "squeue": ""}
    run = (sbx.state_dir / "reports" / "latest").resolve()
    log = next((run / "logs").glob("all_reduce-4n-*.log")).read_text()
    assert "--job-name=clusterproof-all_reduce-4n-" in log


def test_exclude_unfit_leaves_the_nodes_out_and_passes_them_to_srun(sbx: SandboxCluster, tmp_path: Path) -> None:
    (tmp_path / "unfit_nodes.txt").write_text("node04\tnode04: Slurm state DOWN+NOT_RESPONDING (down), reason: Not responding\n")
    res = run_suites(sbx, "suites/nodes/test_slurm.py", "suites/network/test_collectives.py", "-k", "node_state or (all_reduce and sane)",
                     "--exclude-unfit", str(tmp_path))
    assert res.returncode == 0, res.stdout[-4000:]
    assert "node04" not in "".join(line for line in res.stdout.splitlines() if "PASSED" in line or "FAILED" in line)
    run = (sbx.state_dir / "reports" / "latest").resolve()
    log = next((run / "logs").glob("all_reduce-3n-*.log")).read_text()
    assert "--nodelist=node01,node02,node03" in log and "--exclude=node04" in log


def test_cli_faults_reach_slurm_and_down_removes_it(sbx: SandboxCluster) -> None:
    cli = [sys.executable, "-m", "clusterproof.cli", "sandbox", "--state-dir", str(STATE_DIR)]
    r = subprocess.run([*cli, "fault", "drain", "node01", "disk", "full"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and "node01: drained (reason: disk full); Slurm state IDLE+DRAIN" in r.stdout, r.stdout + r.stderr
    r = subprocess.run([*cli, "fault", "resume", "node01"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and "Slurm state IDLE" in r.stdout, r.stdout + r.stderr
    r = subprocess.run([*cli, "status"], capture_output=True, text=True, cwd=ROOT)
    assert "slurmctld_alive: true" in r.stdout
    daemons = [procs.read_pid(sandbox_slurm.slurm_dir(sbx) / "slurmctld.pid"), procs.read_pid(STATE_DIR / "munge" / "munged.pid"),
               *(procs.read_pid(sandbox_slurm.slurm_dir(sbx) / f"slurmd.{n.name}.pid") for n in sbx.nodes)]
    assert all(procs.alive(p) for p in daemons)
    cluster.down(STATE_DIR)
    assert not any(procs.alive(p) for p in daemons) and not STATE_DIR.exists()
