"""A sweep launched through the suite vs the same mpirun command run by hand (target: at most 1.05x).

"By hand" is the engineer's way: ``ssh <head> '<command>'`` with OpenSSH, a fresh connection each time.
"Through the suite" is ``CollectiveRunner.run`` (reused paramiko connection, scratch dir, log fetch, cleanup).
Like with like: both sides run the *same* shell command, taken from the runner itself
(``CollectiveRunner.command_for``: the same launcher argv, the same exported environment and job marker, the
same scratch directory and log redirection), and NCCL debug files are off on both sides (the suite would
otherwise create and fetch per-rank files that the hand-run never has). Runs alternate so that drift hits
both; medians of --repeat runs. Exits 1 when the ratio misses the target.

    python bench/sweep.py                       # brings up its own 4-node sandbox (root), tears it down after
    python bench/sweep.py --cluster inv.yaml    # an existing cluster or sandbox inventory
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from clusterproof.inventory import Inventory, load_inventory
from clusterproof.network.collective import CollectiveRunner
from clusterproof.nodes.openssh_config import openssh_config
from clusterproof.nodes.ssh import SshPool


def by_hand(runner: CollectiveRunner, inv: Inventory, ssh_config: Path | None, collective: str) -> float:
    head = inv.nodes[0]
    scratch, cmd = runner.command_for(collective, list(inv.nodes))  # the very command the suite launches
    ssh = ["ssh"] + (["-F", str(ssh_config)] if ssh_config else []) + ["-p", str(head.port), f"{head.user}@{head.host}",
                                                                       f"{cmd}; rc=$?; rm -rf {shlex.quote(scratch)}; exit $rc"]
    t0 = time.monotonic()
    subprocess.run(ssh, check=True)
    return time.monotonic() - t0


def through_suite(runner: CollectiveRunner, inv: Inventory, collective: str) -> float:
    t0 = time.monotonic()
    res = runner.run(collective, list(inv.nodes))
    elapsed = time.monotonic() - t0
    if res.rc != 0:
        raise SystemExit(f"suite run failed: rc={res.rc}, log {res.log_path}")
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cluster", help="inventory path (default: start a 4-node sandbox)")
    ap.add_argument("--nodes", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--collective", default="all_reduce")
    ap.add_argument("--subnet", default="192.168.83", help="own sandbox: its /24")
    ap.add_argument("--prefix", default="cpb_", help="own sandbox: its name prefix")
    args = ap.parse_args()

    sandbox_dir = None
    ssh_config = None
    if args.cluster:
        inv_path = Path(args.cluster)
    else:
        from clusterproof.sandbox import cluster

        sandbox_dir = Path(tempfile.mkdtemp(prefix="cp-bench-sweep-"))
        sbx = cluster.up(nodes=args.nodes, state_dir=sandbox_dir, prefix=args.prefix, subnet=args.subnet)
        inv_path, ssh_config = sbx.inventory_path, sbx.ssh_config
    try:
        inv = load_inventory(inv_path)
        inv = dataclasses.replace(inv, nccl_tests=dataclasses.replace(inv.nccl_tests, debug="off"))  # both sides alike
        if ssh_config is None:  # the inventory's key, known_hosts and jump host, as OpenSSH options
            ssh_config = Path(tempfile.mkdtemp(prefix="cp-bench-ssh-")) / "ssh_config"
            ssh_config.write_text(openssh_config(inv))
        with SshPool.from_inventory(inv) as pool, tempfile.TemporaryDirectory() as logs:
            runner = CollectiveRunner(pool, inv, "bench", Path(logs), lock_dir=Path(logs))
            through_suite(runner, inv, args.collective)  # warm-up: connections open, page cache warm
            by_hand(runner, inv, ssh_config, args.collective)
            print(f"both sides run: {runner.command_for(args.collective, list(inv.nodes))[1]}")
            hand, suite = [], []
            for _ in range(args.repeat):
                hand.append(by_hand(runner, inv, ssh_config, args.collective))
                suite.append(through_suite(runner, inv, args.collective))
        h, s = statistics.median(hand), statistics.median(suite)
        sweep = inv.nccl_tests.sweep
        print(f"{args.collective} on {len(inv.nodes)} nodes, -b {sweep.min_bytes} -e {sweep.max_bytes} -f {sweep.step_factor} -n {sweep.iters}")
        print(f"  by hand (ssh + mpirun):   median {h:.3f} s  runs {', '.join(f'{x:.3f}' for x in hand)}")
        print(f"  through the suite:        median {s:.3f} s  runs {', '.join(f'{x:.3f}' for x in suite)}")
        ratio = s / h
        print(f"  ratio suite/by-hand: {ratio:.3f}x  (target <= 1.05x: {'PASS' if ratio <= 1.05 else 'MISS'})")
    finally:
        if sandbox_dir is not None:
            from clusterproof.sandbox import cluster

            cluster.down(sandbox_dir)
    return 0 if ratio <= 1.05 else 1


if __name__ == "__main__":
    sys.exit(main())
