"""Node facts through one ``srun`` step against facts through the SSH pool, at several sandbox sizes.

Both gather the same facts command (:func:`clusterproof.nodes.facts.facts_command`) and both outputs are parsed
and checked per node, so neither can win by doing less:

=================================  ==========================================================================
method                             what is timed (wall clock, median of ``--runs``)
=================================  ==========================================================================
SSH pool, fresh                    new SshPool (strict host keys): connect to every node, facts, close
SSH pool, connections open         ``gather_facts`` on a pool whose connections are already open
srun step (one SSH exec on head)   ``srun -N n -l sh -c <facts>`` run on the head node over its open connection
=================================  ==========================================================================

For every size it prints the table and the ratio srun / SSH-fresh and srun / SSH-open, then the crossover: the
smallest measured size from which srun is faster than each SSH way. No target to miss (the numbers decide what the
README says); exits 2 when a run fails.

Usage (root, from the repository)::

    .venv/bin/python bench/fanout.py --slurm                 # 8 and 32 nodes, own sandboxes with Slurm
    .venv/bin/python bench/fanout_slurm.py --sizes 8 32 --runs 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fanout import Measurement, check_facts, timed  # noqa: E402

from clusterproof.errors import ClusterproofError  # noqa: E402
from clusterproof.inventory import Inventory, load_inventory  # noqa: E402
from clusterproof.nodes.facts import gather_facts  # noqa: E402
from clusterproof.nodes.slurm_remote import gather_facts_srun  # noqa: E402
from clusterproof.nodes.ssh import SshPool  # noqa: E402


def measure(inv: Inventory, runs: int) -> list[Measurement]:
    names = [n.name for n in inv.nodes]
    root = inv.network.sysfs_root

    def fresh() -> None:
        with SshPool.from_inventory(inv) as pool:
            check_facts(gather_facts(pool, sysfs_root=root), names)

    pool = SshPool.from_inventory(inv)

    def opened() -> None:
        check_facts(gather_facts(pool, sysfs_root=root), names)

    def srun() -> None:
        check_facts(gather_facts_srun(pool, names[0], names, inv.slurm, sysfs_root=root), names)

    out = []
    try:
        pool.connect(names[0])
        for label, fn in (("SSH pool, fresh", fresh), ("SSH pool, connections open", opened), ("srun step (one SSH exec on head)", srun)):
            walls, cpus = timed(fn, runs)
            out.append(Measurement(label, len(names), walls, cpus))
            print(f"  {len(names):>3} nodes  {label:<34} {statistics.median(walls):8.1f} ms", file=sys.stderr, flush=True)
    finally:
        pool.close()
    return out


def report(results: dict[int, list[Measurement]], runs: int) -> None:
    print(f"\nNode facts: srun step vs SSH pool, sandbox on this machine ({os.cpu_count()} CPUs); median of {runs} runs (+1 warm-up)\n")
    print(f"{'nodes':>5} {'method':<34} {'median ms':>10} {'min':>8} {'max':>8} {'client CPU ms':>14}")
    for n, ms in sorted(results.items()):
        for m in ms:
            print(f"{n:>5} {m.label:<34} {m.median:>10.1f} {min(m.wall_ms):>8.1f} {max(m.wall_ms):>8.1f} {statistics.median(m.cpu_ms):>14.1f}")
    print(f"\n{'nodes':>5} {'srun / SSH fresh':>17} {'srun / SSH open':>16}")
    for n, (fresh, opened, srun) in sorted(results.items()):
        print(f"{n:>5} {srun.median / fresh.median:>17.2f} {srun.median / opened.median:>16.2f}")
    for idx, what in ((0, "SSH fresh"), (1, "SSH open")):
        faster = [n for n, ms in sorted(results.items()) if ms[2].median < ms[idx].median]
        print(f"crossover vs {what}: " + (f"srun is faster from {faster[0]} nodes on (of those measured)" if faster
                                           else "srun was slower at every measured size"))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[8, 32], help="sandbox sizes (default 8 32)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--cluster", type=Path, help="an existing cluster with a slurm: section (measured at its size only)")
    ap.add_argument("--state-dir", type=Path, default=Path("/tmp/cp-fanout-slurm-bench"))
    ap.add_argument("--subnet", default="192.168.133")
    ap.add_argument("--prefix", default="c13_b")
    ap.add_argument("--ports", type=int, nargs=2, default=[21320, 21321], help="slurmctld and slurmd ports")
    args = ap.parse_args(argv)
    results: dict[int, list[Measurement]] = {}
    try:
        if args.cluster:
            inv = load_inventory(args.cluster)
            results[len(inv.nodes)] = measure(inv, args.runs)
        else:
            from clusterproof.sandbox.cluster import down, up
            from clusterproof.sandbox.slurm import SlurmPorts

            for size in args.sizes:
                t0 = time.perf_counter()
                c = up(size, state_dir=args.state_dir, subnet=args.subnet, prefix=args.prefix, slurm=SlurmPorts(*args.ports))
                try:
                    print(f"sandbox of {size} nodes with Slurm up in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
                    results[size] = measure(load_inventory(c.inventory_path), args.runs)
                finally:
                    down(args.state_dir)
    except (ClusterproofError, SystemExit) as e:
        print(f"fanout_slurm: {e}", file=sys.stderr)
        return 2
    report(results, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
