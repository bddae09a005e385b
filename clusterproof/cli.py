"""``clusterproof``: the sandbox, the demo, reports, and the reference credentials service.

    clusterproof sandbox up [--nodes 4] [--slurm]   start N nodes + a real Ceph RGW + the credentials service (+ Slurm)
    clusterproof sandbox status | down
    clusterproof sandbox rolling-restart credentials | rgw   restart the API replicas one at a time, or the RGW
    clusterproof sandbox fault KIND NODE     slow-link | clear-slow-link | break-gids [--mode other_index] |
                                             garbage-gids | restore-gids | stop-sshd | start-sshd |
                                             hang-sshd | continue-sshd | rekey-sshd | restore-sshd-key |
                                             flaky P | clear-flaky | slow-node F [--from-size 1M] | clear-slow-node
    clusterproof sandbox fault xid node03 79 | gpu-missing | pcie-downgrade | port-down | port-rate node03 200 | ecc node03
    clusterproof sandbox fault counter node03 symbol_error 5 [--during-run]   (undo: clear-xid, restore-gpus, ...)
    clusterproof sandbox fault slow-link node03 [--rail 1]
    clusterproof sandbox fault hang-link node05 | clear-hang-link node05 | crash-node node02 | corrupt-node node02 | clear-node-fault node02
    clusterproof sandbox fault stop-slurmd node03 | start-slurmd node03 | drain node02 "bad fan" | resume node02
    clusterproof demo [--nodes 4] [--keep]   sandbox up, every suite against it, reports/latest/, sandbox down
    clusterproof report build reports/<run-id> [--baseline DIR]
    clusterproof report history reports/
    clusterproof calibrate reports/<run> [reports/<run> ...] --class NAME > references.yaml
    clusterproof serve-credentials --port 7499
    clusterproof storage cleanup --cluster my-cluster.yaml   remove everything the storage suite ever left on that RGW
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from clusterproof.cli_sandbox import (
    FABRIC_FAULTS,
    FAULT_KINDS,
    HEALTH_FAULTS,
    SERVICE_PORT,
    cmd_sandbox,
    sandbox_down,
    sandbox_up,
    state_dir_of,
)
from clusterproof.errors import ClusterproofError


def run_suites(inventory: Path, extra: Sequence[str] = (), reports_dir: str = "reports", paths: Sequence[str] = ("suites",)) -> int:
    """Run the suites (``paths``) against ``inventory`` in a child pytest; return its exit code."""
    cmd = [sys.executable, "-m", "pytest", *paths, "--cluster", str(inventory), "--reports-dir", reports_dir, "-p", "no:cacheprovider", *extra]
    print("+ " + " ".join(cmd), flush=True)
    return subprocess.call(cmd)


def _launcher_rows(runs: Sequence[Path]) -> list[str]:
    """One line per (run, launcher): how many network rows it produced and how many passed."""
    import pandas as pd

    lines = []
    for run in runs:
        path = run / "results.parquet"
        if not path.is_file():
            continue
        df = pd.read_parquet(path)
        for launcher, rows in (df.groupby("launcher") if len(df) else []):
            passed = int((rows["verdict"] == "pass").sum()) if "verdict" in rows else 0
            lines.append(f"  {launcher:<7} {len(rows):>4} rows, {passed:>4} pass   {run / 'index.html'}")
    return lines


def _cmd_demo(args: argparse.Namespace) -> int:
    state_dir = state_dir_of(args)
    with_slurm = os.access("/usr/sbin/slurmctld", os.X_OK) and not args.no_slurm
    inventory = sandbox_up(args.nodes, state_dir, slurm_ports=(6817, 6818) if with_slurm else None)
    reports = Path("reports")
    before = {p.name for p in reports.iterdir()} if reports.is_dir() else set()
    try:
        rc, join = 0, []
        if with_slurm:  # the network suite once through mpirun, then every suite through srun: one run, one report
            doc = yaml.safe_load(inventory.read_text())
            doc["nccl_tests"]["launcher"] = "mpirun"
            mpirun_inventory = inventory.with_name("inventory-mpirun.yaml")
            mpirun_inventory.write_text(yaml.safe_dump(doc, sort_keys=False))
            rc = run_suites(mpirun_inventory, args.pytest_args or [], paths=["suites/network"])
            first = (reports / "latest").resolve()
            if first.name not in before and (first / "metadata.json").is_file():
                join = ["--join-run", str(first)]
        # Node and storage tests spread over the workers; fabric tests stay together on one (xdist_group).
        rc = run_suites(inventory, [*(args.pytest_args or ["-n", "auto"]), *join]) or rc
    finally:
        if not args.keep:
            sandbox_down(state_dir)
    latest = reports / "latest"
    print(f"\nreport: {latest / 'index.html'}\nsummary: {latest / 'summary.md'}")
    if with_slurm and reports.is_dir():
        runs = sorted(p for p in reports.iterdir() if p.name not in before and p.is_dir() and not p.is_symlink())
        print("network rows by launcher (the launcher column of results.parquet / results.csv):")
        print("\n".join(_launcher_rows(runs)))
    print("(numbers come from the sandbox's CPU stand-in for nccl-tests, not from GPUs)")
    return rc


def _cmd_report(args: argparse.Namespace) -> int:
    from clusterproof import report

    if args.action == "build":
        summary = report.build(Path(args.path), baseline=Path(args.baseline) if args.baseline else None, tolerance_pct=args.tolerance)
        print(f"verdict: {summary.word.upper()}\nreport: {summary.html_path}\nsummary: {summary.md_path}")
        return 0 if summary.passed else 1
    root = Path(args.path)
    frame = report.history(root)
    if not len(frame):
        print(f"no runs under {root}")
        return 0
    print(frame.to_string(index=False))
    print(f"\n{frame['run_id'].nunique()} runs: {root / 'history.html'} (trend plot {root / 'history.png'})")
    return 0


def _cmd_storage(args: argparse.Namespace) -> int:
    """``storage cleanup``: remove every temporary user, key, role, policy and bucket of the storage suite."""
    from clusterproof.inventory import load_inventory, read_env_file
    from clusterproof.storage.admin import RgwAdminSession
    from clusterproof.storage.preflight import endpoint_answers, missing_keys
    from clusterproof.storage.suite_cleanup import count_suite_leftovers, remove_suite_leftovers

    inv = load_inventory(Path(args.cluster))
    if inv.env_file is not None:
        for key, value in read_env_file(inv.env_file).items():
            os.environ.setdefault(key, value)
    storage = inv.storage
    if storage is None:
        raise ClusterproofError(f"{inv.source}: no storage section: nothing to clean up")
    missing = missing_keys(storage)
    if missing:
        raise ClusterproofError(f"{inv.source}: admin keys not in the environment ({', '.join(missing)})")
    why = endpoint_answers(storage.endpoint)
    if why is not None:
        raise ClusterproofError(f"RGW at {storage.endpoint} does not answer ({why}); nothing removed")
    access, secret = storage.env_value("admin_access_key_env"), storage.env_value("admin_secret_key_env")
    assert access and secret
    admin = RgwAdminSession(storage.endpoint, access, secret, region=storage.region)
    done = remove_suite_leftovers(admin)
    if done.problems or any(count_suite_leftovers(admin).values()):
        # one more pass: a deletion that timed out has often gone through (RGW just restarted), and a bucket
        # an issuer was still making during the first pass is there now
        again = remove_suite_leftovers(admin)
        for mine, theirs in ((done.users, again.users), (done.roles, again.roles),
                             (done.helper_users, again.helper_users), (done.buckets, again.buckets)):
            mine.extend(theirs)
        done.problems = again.problems
    print(f"removed from {storage.endpoint}: {done.summary()}")
    for problem in done.problems:
        print(f"  could not remove: {problem}", file=sys.stderr)
    left = count_suite_leftovers(admin)
    print("left: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in left.items()))
    return 1 if done.problems or any(left.values()) else 0

def _cmd_calibrate(args: argparse.Namespace) -> int:
    from clusterproof.network import reference

    runs = reference.read_runs([Path(r) for r in args.runs])
    fc = reference.FabricClass(args.fabric_class, args.fabric, args.gpu_model, args.nic_gbps)
    refs = reference.calibrate(runs, fc, k=args.k, min_band_pct=args.min_band_pct, floor_gbs=args.floor)
    notes = [f"{name} ({len(df)} rows)" for name, df in runs]
    sys.stdout.write(reference.render(refs, k=args.k, min_band_pct=args.min_band_pct, floor_gbs=args.floor, run_notes=notes))
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from clusterproof.storage.service import serve_from_env

    serve_from_env(host=args.host, port=args.port)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="clusterproof", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    sb = sub.add_parser("sandbox", help="a multi-node sandbox cluster and a real Ceph RGW on this machine (root)")
    sb.add_argument("--state-dir", default=None, help="default: $CLUSTERPROOF_SANDBOX_DIR or /tmp/clusterproof-sandbox")
    sba = sb.add_subparsers(dest="action", required=True)
    up = sba.add_parser("up")
    up.add_argument("--nodes", type=int, default=4)
    up.add_argument("--no-storage", action="store_true", help="nodes only, no RGW")
    up.add_argument("--rail1-subnet", default=None, help="a second rail on this /24 (e.g. 192.168.78): eth1 on a second bridge")
    up.add_argument("--slurm", action="store_true", help="also a real Slurm: munged, slurmctld on node01, slurmd on every node")
    sba.add_parser("down")
    sba.add_parser("status")
    rr = sba.add_parser("rolling-restart", help="restart the credential API replicas one at a time (graceful), or the RGW")
    rr.add_argument("what", choices=["credentials", "rgw"])
    fault = sba.add_parser("fault", help="inject or clear a fault on one node")
    fault.add_argument("kind", choices=[*FAULT_KINDS, *HEALTH_FAULTS, *FABRIC_FAULTS], help="each fault's undo: "
                       "clear-slow-link, restore-gids (break-gids and garbage-gids), start-sshd, continue-sshd, "
                       "restore-sshd-key, clear-hang-link, clear-node-fault (crash-node and corrupt-node), clear-flaky, "
                       "clear-slow-node, start-slurmd, resume, clear-xid, restore-gpus, restore-pcie, port-up, "
                       "restore-port-rate, clear-counter, clear-ecc")
    fault.add_argument("node")
    fault.add_argument("value", nargs="*", default=[],
                       help="flaky: probability per run (default 0.2); slow-node: factor (default 1.5); "
                            "drain: the reason Slurm records; xid CODE | port-rate GBPS | counter COUNTER DELTA | clear-counter COUNTER")
    fault.add_argument("--from-size", default="0", help="slow-node: slow only sizes from this up (a dip there), e.g. 1M")
    fault.add_argument("--during-run", action="store_true", help="counter: grow it only while the next collective runs")
    fault.add_argument("--mode", default="no_rocev2", choices=["no_rocev2", "other_index"])
    fault.add_argument("--rate", default="160mbit", help="slow-link rate (tc); 160mbit is ~0.02 GB/s")
    fault.add_argument("--delay", default="1ms", help="slow-link delay (needs netem in the kernel)")
    fault.add_argument("--rail", type=int, default=0, choices=[0, 1], help="slow-link: the rail (1 = eth1, the second bridge)")
    sb.set_defaults(func=cmd_sandbox)

    demo = sub.add_parser("demo", help="sandbox up, every suite, reports/latest/, sandbox down")
    demo.add_argument("--nodes", type=int, default=4)
    demo.add_argument("--keep", action="store_true", help="leave the sandbox running afterwards")
    demo.add_argument("--no-slurm", action="store_true", help="no Slurm: every suite through mpirun only")
    demo.add_argument("--state-dir", default=None)
    demo.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    demo.set_defaults(func=_cmd_demo)

    rep = sub.add_parser("report", help="rebuild a report or draw the history of runs")
    repa = rep.add_subparsers(dest="action", required=True)
    b = repa.add_parser("build")
    b.add_argument("path")
    b.add_argument("--baseline", default=None)
    b.add_argument("--tolerance", type=float, default=5.0)
    h = repa.add_parser("history")
    h.add_argument("path", nargs="?", default="reports")
    rep.set_defaults(func=_cmd_report)

    st = sub.add_parser("storage", help="storage housekeeping on the inventory's RGW")
    sta = st.add_subparsers(dest="action", required=True)
    clean = sta.add_parser("cleanup", help="remove every temporary user, key, role, policy and bucket the storage suite made")
    clean.add_argument("--cluster", required=True, help="the inventory (its storage section and admin key variables)")
    st.set_defaults(func=_cmd_storage)

    cal = sub.add_parser("calibrate", help="references (median, median - k*MAD) from healthy saved runs, as YAML")
    cal.add_argument("runs", nargs="+", help="run directories (reports/<run-id>) or results.parquet files")
    cal.add_argument("--class", dest="fabric_class", default="default", help="fabric class name (references per class)")
    cal.add_argument("--fabric", choices=["roce", "ib"], default=None)
    cal.add_argument("--gpu-model", default=None)
    cal.add_argument("--nic-gbps", type=float, default=None)
    cal.add_argument("--k", type=float, default=3.0, help="lower bound = median - k * MAD (default 3)")
    cal.add_argument("--min-band-pct", type=float, default=10.0,
                     help="the bound is at least this many percent below the median (default 10)")
    cal.add_argument("--floor", type=float, default=0.0, help="the bound is never below this, GB/s (default 0)")
    cal.set_defaults(func=_cmd_calibrate)

    srv = sub.add_parser("serve-credentials", help="the reference R2-style credentials API over RgwUserIssuer")
    srv.add_argument("--host", default="127.0.0.1")
    srv.add_argument("--port", type=int, default=SERVICE_PORT)
    srv.set_defaults(func=_cmd_serve)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ClusterproofError as e:
        print(f"clusterproof: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `clusterproof report history | head`: the reader left, nothing is wrong
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
