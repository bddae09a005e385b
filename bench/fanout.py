"""SSH fan-out speed of the suite against OpenSSH and pdsh, measured side by side in one run.

Every method runs the same command on the same nodes: the suite's facts command (hostname, clock, kernel,
CPU, memory, NICs, GPUs, mpirun, GID table) from :func:`clusterproof.nodes.facts.facts_command`, and every run's
output is parsed and checked, so no method can win by doing less.

=============================  ================================================================================
method                         what is timed (wall clock, median of ``--runs``)
=============================  ================================================================================
suite, 1 node, fresh           new SshPool for one node: connect + facts + GID read + parse + close
ssh curve25519, 1 node         ``ssh -o KexAlgorithms=curve25519-sha256 node cmd`` (one process)
suite, N nodes, fresh          new SshPool, strict host keys, ``gather_facts`` on every node, close
pdsh, N nodes                  ``pdsh -R ssh`` with Debian's defaults (OpenSSH's default post-quantum kex)
pdsh curve25519, N nodes       the same with ``-o KexAlgorithms=curve25519-sha256``
suite, N nodes, open           ``gather_facts`` on a pool whose connections are already open
=============================  ================================================================================

Targets (issue 5, "Speed"): 1 node <= 0.4x ssh; N fresh <= 0.5x pdsh and <= 1.0x pdsh-curve25519;
N open <= 0.3x pdsh. The script exits 1 when a target is missed.

Usage (root, from the repository)::

    .venv/bin/python bench/fanout.py                  # own 32-node sandbox, torn down at the end
    .venv/bin/python bench/fanout.py --nodes 8 --runs 3
    .venv/bin/python bench/fanout.py --cluster my-cluster.yaml
    .venv/bin/python bench/fanout.py --slurm          # facts through one srun step vs the SSH pool, 8 and 32 nodes

pdsh and ssh reach the nodes through an ssh_config written from the inventory (strict host keys with the
inventory's known_hosts, its key, its jump host), passed to pdsh with ``PDSH_SSH_ARGS_APPEND="-F <config>"``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from clusterproof.errors import ClusterproofError  # noqa: E402
from clusterproof.inventory import Inventory, load_inventory  # noqa: E402
from clusterproof.nodes.facts import NodeFacts, facts_command, gather_facts, parse_facts  # noqa: E402
from clusterproof.nodes.ssh import SshPool  # noqa: E402

CURVE = "KexAlgorithms=curve25519-sha256"
PAUSE_S = 0.5  # between runs, so that sshd finishes cleaning up the previous connections


@dataclass
class Measurement:
    label: str
    nodes: int
    wall_ms: list[float]
    cpu_ms: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.wall_ms)


def write_ssh_config(inv: Inventory, path: Path) -> None:
    """An OpenSSH client config equivalent to the inventory's SSH settings (node names as Host aliases)."""
    s = inv.ssh
    lines = []
    for n in inv.nodes:
        lines += [f"Host {n.name}", f"    HostName {n.host}", f"    Port {n.port}", f"    User {n.user}"]
    lines += ["Host *", "    BatchMode yes", f"    ConnectTimeout {max(1, int(s.connect_timeout_s))}", "    LogLevel ERROR"]
    lines += ["    ControlMaster no", "    ControlPath none"]
    if s.key_file is not None:
        lines += [f"    IdentityFile {s.key_file}"]
        if not s.use_agent:
            lines += ["    IdentitiesOnly yes"]
    if s.known_hosts is not None:
        lines += [f"    UserKnownHostsFile {s.known_hosts}", "    GlobalKnownHostsFile /dev/null"]
    lines += [f"    StrictHostKeyChecking {'yes' if s.strict_host_keys else 'no'}"]
    if s.jump_host is not None:
        j = s.jump_host
        lines += [f"    ProxyJump {j.user or s.user}@{j.host}:{j.port}"]
    path.write_text("\n".join(lines) + "\n")


def check_facts(results: dict[str, NodeFacts | Exception], names: Sequence[str]) -> None:
    bad = {n: r for n, r in results.items() if not isinstance(r, NodeFacts)}
    if bad or list(results) != list(names):
        raise SystemExit(f"suite run failed on {len(bad)} node(s): " + "; ".join(f"{n}: {e}" for n, e in bad.items()))


def check_pdsh_output(stdout: str, names: Sequence[str]) -> None:
    """Split pdsh's ``node: line`` output per node and parse each node's facts."""
    per_node: dict[str, list[str]] = {n: [] for n in names}
    for line in stdout.splitlines():
        name, sep, rest = line.partition(": ")
        if not sep and line.endswith(":"):
            name, rest = line[:-1], ""
        if name in per_node:
            per_node[name].append(rest)
    for name, lines in per_node.items():
        parse_facts(name, "\n".join(lines))


def timed(fn: Callable[[], None], runs: int) -> tuple[list[float], list[float]]:
    """One warm-up call, then ``runs`` measured calls: wall ms and client CPU ms (this process + children)."""
    fn()
    walls, cpus = [], []
    for _ in range(runs):
        time.sleep(PAUSE_S)
        r0s, r0c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        fn()
        walls.append(1000 * (time.perf_counter() - t0))
        r1s, r1c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (r1s.ru_utime + r1s.ru_stime - r0s.ru_utime - r0s.ru_stime) + (r1c.ru_utime + r1c.ru_stime - r0c.ru_utime - r0c.ru_stime)
        cpus.append(1000 * cpu)
    return walls, cpus


def run_bench(inv: Inventory, runs: int, workdir: Path) -> list[Measurement]:
    names = [n.name for n in inv.nodes]
    first = names[0]
    command = facts_command(inv.network.sysfs_root)
    config = workdir / "ssh_config"
    write_ssh_config(inv, config)
    env_default = dict(os.environ, PDSH_SSH_ARGS_APPEND=f"-F {config}")
    env_curve = dict(os.environ, PDSH_SSH_ARGS_APPEND=f"-F {config} -o {CURVE}")
    user = inv.nodes[0].user
    pdsh_argv = ["pdsh", "-R", "ssh", "-l", user, "-w", ",".join(names), command]

    def suite_fresh(nodes: list[str]) -> Callable[[], None]:
        def go() -> None:
            with SshPool([inv.node(n) for n in nodes], inv.ssh) as pool:
                check_facts(gather_facts(pool, sysfs_root=inv.network.sysfs_root), nodes)

        return go

    def ssh_one() -> None:
        out = subprocess.run(["ssh", "-F", str(config), "-o", CURVE, first, command], capture_output=True, text=True, check=True)
        parse_facts(first, out.stdout)

    def pdsh(env: dict[str, str]) -> Callable[[], None]:
        def go() -> None:
            out = subprocess.run(pdsh_argv, capture_output=True, text=True, env=env)
            if out.returncode != 0:
                raise SystemExit(f"pdsh failed (rc {out.returncode}):\n{out.stderr[-2000:]}")
            check_pdsh_output(out.stdout, names)

        return go

    open_pool = SshPool.from_inventory(inv)

    def suite_open() -> None:
        check_facts(gather_facts(open_pool, sysfs_root=inv.network.sysfs_root), names)

    plan: list[tuple[str, int, Callable[[], None]]] = [
        ("suite, fresh (connect+facts+GIDs)", 1, suite_fresh([first])),
        ("ssh -o KexAlgorithms=curve25519-sha256", 1, ssh_one),
        ("suite, fresh, strict host keys", len(names), suite_fresh(names)),
        ("pdsh -R ssh (defaults)", len(names), pdsh(env_default)),
        ("pdsh -R ssh + curve25519", len(names), pdsh(env_curve)),
        ("suite, connections already open", len(names), suite_open),
    ]
    out = []
    try:
        unreachable = {n: e for n, e in open_pool.connect_all().items() if e is not None}
        if unreachable:
            raise SystemExit("cannot reach: " + "; ".join(f"{e}" for e in unreachable.values()))
        for label, count, fn in plan:
            walls, cpus = timed(fn, runs)
            out.append(Measurement(label, count, walls, cpus))
            print(f"  measured {label:<42} {statistics.median(walls):8.1f} ms", file=sys.stderr, flush=True)
    finally:
        open_pool.close()
    return out


def report(ms: list[Measurement], runs: int, where: str) -> bool:
    print(f"\nSSH fan-out, {where}; median of {runs} runs (+1 warm-up), {PAUSE_S}s between runs\n")
    print(f"{'method':<42} {'nodes':>5} {'median ms':>10} {'min':>8} {'max':>8} {'client CPU ms':>14}")
    for m in ms:
        print(f"{m.label:<42} {m.nodes:>5} {m.median:>10.1f} {min(m.wall_ms):>8.1f} {max(m.wall_ms):>8.1f} {statistics.median(m.cpu_ms):>14.1f}")
    one, ssh1, fresh, pdsh_d, pdsh_c, reused = ms
    n = fresh.nodes
    checks = [
        ("1 node: suite / ssh curve25519", one.median / ssh1.median, 0.4),
        (f"{n} nodes fresh: suite / pdsh", fresh.median / pdsh_d.median, 0.5),
        (f"{n} nodes fresh: suite / pdsh curve25519", fresh.median / pdsh_c.median, 1.0),
        (f"{n} nodes open: suite / pdsh", reused.median / pdsh_d.median, 0.3),
    ]
    print(f"\n{'ratio':<42} {'value':>6} {'target':>8}  verdict")
    ok = True
    for label, value, target in checks:
        hit = value <= target
        ok &= hit
        print(f"{label:<42} {value:>6.2f} {'<= ' + format(target, '.1f'):>8}  {'PASS' if hit else 'MISS'}")
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cluster", type=Path, help="inventory of an existing cluster (default: start a sandbox)")
    ap.add_argument("--nodes", type=int, default=32, help="sandbox size (default 32)")
    ap.add_argument("--runs", type=int, default=5, help="measured runs per method (default 5)")
    ap.add_argument("--state-dir", type=Path, default=Path("/tmp/cp-fanout-bench"), help="sandbox state directory")
    ap.add_argument("--subnet", default="192.168.89", help="sandbox /24 (first three octets)")
    ap.add_argument("--prefix", default="cpf_", help="sandbox namespace/interface prefix")
    ap.add_argument("--slurm", action="store_true",
                    help="instead: node facts through one srun step vs the SSH pool at 8 and 32 nodes (bench/fanout_slurm.py)")
    args = ap.parse_args(argv)
    if args.slurm:
        from fanout_slurm import main as slurm_main

        return slurm_main(["--runs", str(args.runs)])
    for tool in ("ssh", "pdsh"):
        if shutil.which(tool) is None:
            print(f"fanout: {tool} is not installed (apt-get install openssh-client pdsh)", file=sys.stderr)
            return 2
    cluster = None
    workdir = Path(tempfile.mkdtemp(prefix="cp-fanout-"))
    try:
        if args.cluster:
            inv = load_inventory(args.cluster)
            where = f"{len(inv.nodes)} nodes of {args.cluster}"
        else:
            from clusterproof.sandbox.cluster import down, up

            t0 = time.perf_counter()
            cluster = up(args.nodes, state_dir=args.state_dir, subnet=args.subnet, prefix=args.prefix)
            inv = load_inventory(cluster.inventory_path)
            where = f"sandbox of {len(inv.nodes)} nodes on this machine ({os.cpu_count()} CPUs; up in {time.perf_counter() - t0:.1f}s)"
        ok = report(run_bench(inv, args.runs, workdir), args.runs, where)
        return 0 if ok else 1
    except ClusterproofError as e:
        print(f"fanout: {e}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if cluster is not None:
            down(args.state_dir)


if __name__ == "__main__":
    sys.exit(main())
