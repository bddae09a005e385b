"""The bad-node search against the sequential pairwise search and the exhaustive one, measured side by side.

For each node count (default 8 and 16 sandbox nodes) and each fault (a slowed link, a hung link, a node whose
runs crash) on one node, this script:

1. runs the all-node collective once and checks that its failure kind is the fault's (slow, hung, crashed);
2. times one healthy pair run alone (the unit a round costs on real nodes);
3. runs three searches with the same test (same size, same timeouts, same runner), alternating nothing else:
   * **concurrent**: this project's search (N/2 pairs at once, then re-pairing);
   * **sequential**: the same search, one pair at a time (what clusterproof did before);
   * **exhaustive**: every one of the N(N-1)/2 pairs, one at a time (GCM's ``--pairwise-exhaustive``);
4. prints rounds, collective runs and wall time of each, and the ratios, and checks the verdicts: the bad node
   named, and the exclude list (``unfit_nodes``) holding exactly that node.

Goals (issue 12): on 16 nodes a bad node is named in <= 3 rounds, and the concurrent search takes <= 0.5x the
wall time of the sequential one. The script exits 1 on a miss (or a wrong verdict). On this 2-core machine the
pairs of a round share the CPUs, so a round costs more than one pair run; on real nodes every pair has its own
nodes and NICs and a round costs about one pair run (the README says so).

Usage (root, from the repository, under the sandbox lock)::

    flock /tmp/cp-sandbox.lock .venv/bin/python bench/localize.py --nodes 8
    flock /tmp/cp-sandbox.lock .venv/bin/python bench/localize.py --nodes 16 --no-exhaustive
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from clusterproof import unfit  # noqa: E402
from clusterproof.inventory import Inventory, load_inventory  # noqa: E402
from clusterproof.network.collective import CollectiveRunner  # noqa: E402
from clusterproof.network.localize import FailureKind, Localization, exhaustive  # noqa: E402
from clusterproof.network.localize_driver import CollectiveRounds, search  # noqa: E402
from clusterproof.network.localize_findings import localization_findings  # noqa: E402
from clusterproof.network.localize_runs import failure_kind, search_test  # noqa: E402
from clusterproof.nodes.ssh import SshPool  # noqa: E402
from clusterproof.sandbox import cluster, fault_fabric, faults  # noqa: E402

COLLECTIVE = "all_reduce"
ROUNDS_GOAL = 3
WALL_GOAL = 0.5


@dataclass
class Fault:
    name: str
    kind: FailureKind
    apply: Callable[[cluster.SandboxCluster, str], str]
    undo: Callable[[cluster.SandboxCluster, str], str]


FAULTS = [
    Fault("slowed link", FailureKind.SLOW, lambda c, n: faults.slow_link(c, n, rate="160mbit", delay="1ms"), faults.clear_slow_link),
    Fault("hung link", FailureKind.HUNG, fault_fabric.hang_link, fault_fabric.clear_hang_link),
    Fault("crashing node", FailureKind.CRASHED, lambda c, n: fault_fabric.node_fault(c, n, "crash"), fault_fabric.clear_node_fault),
]


def one_pair_seconds(runner: CollectiveRunner, inv: Inventory, kind: FailureKind, nodes: tuple[str, str]) -> float:
    test = search_test(kind, inv.nccl_tests.sweep, timeout_s=inv.nccl_tests.timeout_s, hang_timeout_s=inv.localize.hang_timeout_s)
    t0 = time.monotonic()
    CollectiveRounds(runner, inv, COLLECTIVE, test)([nodes])
    return time.monotonic() - t0


def timed(fn: Callable[..., Localization], *args: object, **kwargs: object) -> tuple[Localization, float]:
    t0 = time.monotonic()
    loc = fn(*args, **kwargs)
    return loc, time.monotonic() - t0


def verdict_ok(loc: Localization, bad: str) -> tuple[bool, str]:
    excluded = [u.node for u in unfit.unfit_nodes(localization_findings(loc))]
    ok = loc.bad_nodes == [bad] and not loc.bad_links and excluded == [bad]
    links = f", bad links {loc.bad_links}" if loc.bad_links else ""
    return ok, f"named {loc.bad_nodes or loc.unresolved or '-'}{links}, exclude list {excluded}"


def bench(n: int, args: argparse.Namespace) -> list[str]:
    """Run every fault on an ``n``-node sandbox; return the misses (empty: every goal met)."""
    misses: list[str] = []
    state = Path(tempfile.mkdtemp(prefix=f"cp-i12-bench{n}-"))
    extra = {"localize": {"hang_timeout_s": args.hang_timeout, "hang_peer_floor_s": args.peer_floor},
             "nccl_tests": {"timeout_s": 120, "sweep": {"min_bytes": "1M", "max_bytes": "1M", "step_factor": 2, "iters": 5,
                                                         "warmup_iters": 1, "gpus_per_rank": 1, "check": 1}}}
    state.rmdir()
    sbx = cluster.up(n, state, subnet=args.subnet, prefix=args.prefix, extra_inventory=extra)
    bad = sbx.nodes[n // 2 + 1].name  # not the first node, not in the first pair
    try:
        inv = load_inventory(sbx.inventory_path)
        with SshPool.from_inventory(inv) as pool, tempfile.TemporaryDirectory() as logs:
            runner = CollectiveRunner(pool, inv, "bench-localize", Path(logs), lock_dir=Path(logs))
            names = [x.name for x in inv.nodes]
            for fault in [f for f in FAULTS if f.kind.value in args.faults]:
                print(f"\n== {n} nodes, {fault.name} on {bad}: {fault.apply(sbx, bad)}", flush=True)
                try:
                    t0 = time.monotonic()
                    full = runner.run(COLLECTIVE, list(inv.nodes), timeout_s=inv.localize.hang_timeout_s if fault.kind is FailureKind.HUNG else None)
                    kind = failure_kind(full, inv.thresholds, COLLECTIVE)
                    print(f"all-node run: {kind or 'no failure'} (rc {full.rc}, {time.monotonic() - t0:.1f} s)")
                    if kind is not fault.kind:
                        misses.append(f"{n} nodes {fault.name}: the all-node run failed as {kind}, expected {fault.kind}")
                        continue
                    pair = one_pair_seconds(runner, inv, FailureKind.SLOW, (names[0], names[1]))
                    conc, t_conc = timed(search, runner, inv, COLLECTIVE, kind)
                    seq, t_seq = timed(search, runner, inv, COLLECTIVE, kind, max_concurrent=1, strategy="pairs")
                    rows = [("concurrent search", conc, t_conc), ("sequential pairwise", seq, t_seq)]
                    if args.exhaustive:
                        test = search_test(kind, inv.nccl_tests.sweep, timeout_s=inv.nccl_tests.timeout_s,
                                           hang_timeout_s=inv.localize.hang_timeout_s)
                        limit = None if kind is not FailureKind.SLOW else inv.thresholds.lookup(COLLECTIVE, 2, test.size_bytes)
                        exh, t_exh = timed(exhaustive, names, kind, CollectiveRounds(runner, inv, COLLECTIVE, test), limit=limit)
                        rows.append(("exhaustive (all pairs)", exh, t_exh))
                finally:
                    print(fault.undo(sbx, bad))
                print(conc.explain())
                print(f"one healthy pair run alone: {pair:.2f} s")
                print(f"{'search':<24}{'rounds':>7}{'runs':>6}{'wall s':>9}{'x concurrent':>14}  verdict")
                for label, loc, wall in rows:
                    ok, what = verdict_ok(loc, bad)
                    print(f"{label:<24}{len(loc.rounds):>7}{loc.runs:>6}{wall:>9.2f}{wall / t_conc:>14.2f}  {what}{'' if ok else '  WRONG'}")
                    if not ok:
                        misses.append(f"{n} nodes {fault.name}: {label} {what}, expected [{bad!r}]")
                ratio = t_conc / t_seq
                print(f"concurrent/sequential wall time (measured, 2 shared cores): {ratio:.2f}x (goal <= {WALL_GOAL}x on 16 nodes); "
                      f"rounds {len(conc.rounds)} (goal <= {ROUNDS_GOAL})")
                # On real nodes a round costs its slowest run alone: the sequential search ran each pair alone.
                solo = {frozenset(g.nodes): g.measurement.seconds for r in seq.rounds for g in r.groups}
                # a pair the concurrent round cut (as hung or slow: its peers were done) counts with the time it was
                # cut at, not with the sequential search's whole run or timeout
                estimate = sum(max(min(solo.get(frozenset(g.nodes), pair), g.measurement.seconds)
                                   if g.measurement.failure in (FailureKind.HUNG, FailureKind.SLOW) else solo.get(frozenset(g.nodes), pair)
                                   for g in r.groups) for r in conc.rounds)
                print(f"real-node estimate (a round = its slowest pair run alone, timed in the sequential search; a cut pair "
                      f"at its cut time): "
                      f"{estimate:.2f} s vs {sum(solo.values()):.2f} s sequential = {estimate / sum(solo.values()):.2f}x")
                if n >= 16:
                    if len(conc.rounds) > ROUNDS_GOAL:
                        misses.append(f"{n} nodes {fault.name}: {len(conc.rounds)} rounds > {ROUNDS_GOAL}")
                    if ratio > WALL_GOAL:
                        misses.append(f"{n} nodes {fault.name}: concurrent/sequential {ratio:.2f}x > {WALL_GOAL}x")
            left = {k: v.stdout.strip() for k, v in pool.run_all("grep -lsz CLUSTERPROOF_JOB= /proc/[0-9]*/environ || true").items()}  # type: ignore[union-attr]
            if any(left.values()):
                misses.append(f"{n} nodes: processes left on the nodes: {left}")
            else:
                print(f"\nno clusterproof process left on any of the {n} nodes")
    finally:
        cluster.down(state)
    return misses


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, nargs="+", default=[8, 16])
    ap.add_argument("--hang-timeout", type=float, default=5.0, help="localize.hang_timeout_s of the sandbox inventory")
    ap.add_argument("--peer-floor", type=float, default=1.0,
                    help="localize.hang_peer_floor_s: a hung pair of a concurrent round is cut at 3x its finished peers, "
                         "not before this (the sequential search, one pair a round, has no peers and waits the timeout)")
    ap.add_argument("--no-exhaustive", dest="exhaustive", action="store_false", help="skip the N(N-1)/2 search (long at 16 nodes)")
    ap.add_argument("--faults", nargs="+", default=["slow", "hung", "crashed"], choices=["slow", "hung", "crashed"])
    ap.add_argument("--subnet", default="192.168.122")
    ap.add_argument("--prefix", default="c12b_")
    args = ap.parse_args()
    misses: list[str] = []
    for n in args.nodes:
        misses += bench(n, args)
    print()
    for m in misses:
        print(f"MISS: {m}")
    print("all goals met" if not misses else f"{len(misses)} miss(es)")
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
