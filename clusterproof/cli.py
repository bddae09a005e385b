"""``clusterproof``: the sandbox, the demo, reports, and the reference credentials service.

    clusterproof sandbox up [--nodes 4] [--slurm]   start N nodes + a real Ceph RGW + the credentials service (+ Slurm)
    clusterproof sandbox status | down
    clusterproof sandbox fault slow-link node03 [--rail 1] | clear node03 | break-gids node02 [--mode other_index] | stop-sshd node04 ...
    clusterproof sandbox fault hang-link node05 | clear-hang-link node05 | crash-node node02 | corrupt-node node02 | clear-node-fault node02
    clusterproof sandbox fault stop-slurmd node03 | start-slurmd node03 | drain node02 "bad fan" | resume node02
    clusterproof demo [--nodes 4] [--keep]   sandbox up, every suite against it, reports/latest/, sandbox down
    clusterproof report build reports/<run-id> [--baseline DIR]
    clusterproof report history reports/
    clusterproof calibrate reports/<run> [reports/<run> ...] --class NAME > references.yaml
    clusterproof serve-credentials --port 7499
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import yaml

from clusterproof.errors import ClusterproofError
from clusterproof.units import parse_size

CREDENTIALS_TOKEN_ENV = "CP_CREDENTIALS_TOKEN"
SERVICE_PORT = 7499


def _state_dir(args: argparse.Namespace) -> Path:
    from clusterproof.sandbox.cluster import DEFAULT_STATE_DIR

    return Path(args.state_dir) if args.state_dir else DEFAULT_STATE_DIR


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _start_service(state_dir: Path, endpoint: str, secrets_env: dict[str, str], port: int) -> tuple[int, str]:
    """Start the reference credentials service (for the http issuer) as a child process; record its pid."""
    log = open(state_dir / "credentials-service.log", "ab")
    env = {**os.environ, **secrets_env, "CP_RGW_ENDPOINT": endpoint}
    proc = subprocess.Popen(
        [sys.executable, "-m", "clusterproof.cli", "serve-credentials", "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    (state_dir / "credentials-service.pid").write_text(str(proc.pid))
    url = f"http://127.0.0.1:{port}"
    import urllib.request

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ClusterproofError(f"credentials service exited with code {proc.returncode}; see {state_dir / 'credentials-service.log'}")
        try:
            urllib.request.urlopen(f"{url}/healthz", timeout=1).read()
            return proc.pid, url
        except OSError:
            time.sleep(0.1)
    raise ClusterproofError(f"credentials service did not answer on {url} within 15 s; see {state_dir / 'credentials-service.log'}")


def _stop_service(state_dir: Path) -> list[str]:
    pid_file = state_dir / "credentials-service.pid"
    if not pid_file.exists():
        return []
    pid = int(pid_file.read_text())
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        cmdline = b""
    done = []
    if b"serve-credentials" in cmdline and _alive(pid):  # only the process we started, by pid
        os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            if not _alive(pid):
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
        done.append(f"stopped credentials service pid {pid}")
    pid_file.unlink()
    return done


def sandbox_up(
    nodes: int,
    state_dir: Path,
    with_storage: bool = True,
    *,
    subnet: str = "192.168.77",
    prefix: str = "cp_",
    rgw_port: int = 7480,
    mon_port: int = 16789,
    service_port: int = SERVICE_PORT,
    rail1_subnet: str = "",
    extra_inventory: dict[str, object] | None = None,
    slurm_ports: tuple[int, int] | None = None,
) -> Path:
    """Start the sandbox cluster, RGW and the credentials service; return the inventory path.

    Everything started is stopped again when any step fails. Different subnet/prefix/ports/state_dir let two
    sandboxes (say ``make demo`` and ``make test``) run side by side. ``slurm_ports`` (slurmctld, slurmd) also
    starts a real Slurm and makes srun the inventory's launcher.
    """
    from clusterproof.sandbox import cluster, rgw
    from clusterproof.sandbox.slurm import SlurmPorts

    t0 = time.monotonic()
    ports = SlurmPorts(*slurm_ports) if slurm_ports else None
    sbx = cluster.up(nodes=nodes, state_dir=state_dir, subnet=subnet, prefix=prefix, slurm=ports, rail1_subnet=rail1_subnet,
                     extra_inventory=extra_inventory)
    try:
        if with_storage:
            info = rgw.start(state_dir / "rgw", port=rgw_port, mon_port=mon_port)
            token = secrets.token_urlsafe(24)
            secrets_file = state_dir / "secrets.env"
            admin = {
                "CP_RGW_ADMIN_ACCESS_KEY": info.admin_access_key,
                "CP_RGW_ADMIN_SECRET_KEY": info.admin_secret_key,
                CREDENTIALS_TOKEN_ENV: token,
            }
            fd = os.open(secrets_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.writelines(f"{k}={v}\n" for k, v in admin.items())
            _, url = _start_service(state_dir, info.endpoint, admin, service_port)
            doc = yaml.safe_load(sbx.inventory_path.read_text())
            doc["storage"] = rgw.storage_inventory_section(info, http_base_url=url)
            doc["storage"]["http_token_env"] = CREDENTIALS_TOKEN_ENV
            doc["env_file"] = str(secrets_file)
            sbx.inventory_path.write_text(yaml.safe_dump(doc, sort_keys=False))
    except BaseException:
        sandbox_down(state_dir)
        raise
    extras = (" + RGW" if with_storage else "") + (" + Slurm (srun --mpi=pmix)" if ports else "")
    print(f"sandbox: {len(sbx.nodes)} nodes{extras} up in {time.monotonic() - t0:.1f} s")
    for n in sbx.nodes:
        print(f"  {n.name}  {n.ip}")
    print(f"inventory: {sbx.inventory_path}")
    print(f"run the suites: pytest suites --cluster sandbox   (or --cluster {sbx.inventory_path})")
    return sbx.inventory_path


def sandbox_down(state_dir: Path) -> None:
    from clusterproof.sandbox import cluster, rgw

    for line in _stop_service(state_dir):
        print(line)
    if (state_dir / "rgw").exists():
        for line in rgw.stop(state_dir / "rgw"):
            print(line)
    for line in cluster.down(state_dir):
        print(line)


def _cmd_sandbox(args: argparse.Namespace) -> int:
    from clusterproof.sandbox import cluster, fault_fabric, faults
    from clusterproof.sandbox import slurm as sandbox_slurm

    state_dir = _state_dir(args)
    if args.action == "up":
        sandbox_up(args.nodes, state_dir, with_storage=not args.no_storage, slurm_ports=(6817, 6818) if args.slurm else None,
                   rail1_subnet=args.rail1_subnet or "")
    elif args.action == "down":
        sandbox_down(state_dir)
    elif args.action == "status":
        st = cluster.status(state_dir)
        print(yaml.safe_dump(st, sort_keys=False) if st else f"no sandbox in {state_dir}")
    elif args.action == "fault":
        sbx = cluster.SandboxCluster.from_state(state_dir)
        kind, node = args.kind, args.node
        actions = {
            "slow-link": lambda: faults.slow_link(sbx, node, rate=args.rate, delay=args.delay, rail=args.rail),
            "clear-slow-link": lambda: faults.clear_slow_link(sbx, node, rail=args.rail),
            "hang-link": lambda: fault_fabric.hang_link(sbx, node),
            "clear-hang-link": lambda: fault_fabric.clear_hang_link(sbx, node),
            "crash-node": lambda: fault_fabric.node_fault(sbx, node, "crash"),
            "corrupt-node": lambda: fault_fabric.node_fault(sbx, node, "corrupt"),
            "clear-node-fault": lambda: fault_fabric.clear_node_fault(sbx, node),
            "break-gids": lambda: faults.break_gid_table(sbx, node, mode=args.mode),
            "restore-gids": lambda: faults.restore_gid_table(sbx, node),
            "stop-sshd": lambda: faults.stop_sshd(sbx, node),
            "start-sshd": lambda: faults.start_sshd(sbx, node),
            "flaky": lambda: faults.flaky(sbx, node, float(args.value[0]) if args.value else 0.2),
            "clear-flaky": lambda: faults.clear_flaky(sbx, node),
            "slow-node": lambda: faults.slow_node(sbx, node, float(args.value[0]) if args.value else 1.5,
                                                      parse_size(args.from_size)),
            "clear-slow-node": lambda: faults.clear_slow_node(sbx, node),
            "stop-slurmd": lambda: sandbox_slurm.stop_slurmd(sbx, node),
            "start-slurmd": lambda: sandbox_slurm.start_slurmd(sbx, node),
            "drain": lambda: sandbox_slurm.drain(sbx, node, " ".join(args.value) or "clusterproof sandbox fault"),
            "resume": lambda: sandbox_slurm.resume(sbx, node),
        }
        print(actions[kind]())  # each fault says what it actually applied
    return 0


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
    state_dir = _state_dir(args)
    with_slurm = os.access("/usr/sbin/slurmctld", os.X_OK) and not args.no_slurm
    inventory = sandbox_up(args.nodes, state_dir, slurm_ports=(6817, 6818) if with_slurm else None)
    reports = Path("reports")
    before = {p.name for p in reports.iterdir()} if reports.is_dir() else set()
    try:
        rc = 0
        if with_slurm:  # the network suite once through mpirun; then every suite through srun (reports/latest)
            doc = yaml.safe_load(inventory.read_text())
            doc["nccl_tests"]["launcher"] = "mpirun"
            mpirun_inventory = inventory.with_name("inventory-mpirun.yaml")
            mpirun_inventory.write_text(yaml.safe_dump(doc, sort_keys=False))
            rc = run_suites(mpirun_inventory, args.pytest_args or [], paths=["suites/network"])
        # Node and storage tests spread over the workers; fabric tests stay together on one (xdist_group).
        rc = run_suites(inventory, args.pytest_args or ["-n", "auto"]) or rc
    finally:
        if not args.keep:
            sandbox_down(state_dir)
    latest = reports / "latest"
    print(f"\nreport: {latest / 'index.html'}\nsummary: {latest / 'summary.md'}")
    if with_slurm and reports.is_dir():
        runs = sorted(p for p in reports.iterdir() if p.name not in before and p.is_dir() and not p.is_symlink())
        print("network rows by launcher (the launcher column of each run's results.parquet / results.csv):")
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
    fault = sba.add_parser("fault", help="inject or clear a fault on one node")
    fault.add_argument("kind", choices=["slow-link", "clear-slow-link", "break-gids", "restore-gids", "stop-sshd", "start-sshd",
                                        "hang-link", "clear-hang-link", "crash-node", "corrupt-node", "clear-node-fault",
                                        "flaky", "clear-flaky", "slow-node", "clear-slow-node",
                                        "stop-slurmd", "start-slurmd", "drain", "resume"])
    fault.add_argument("node")
    fault.add_argument("value", nargs="*", default=[],
                       help="flaky: probability per run (default 0.2); slow-node: factor (default 1.5); "
                            "drain: the reason Slurm records")
    fault.add_argument("--from-size", default="0", help="slow-node: slow only sizes from this up (a dip there), e.g. 1M")
    fault.add_argument("--mode", default="no_rocev2", choices=["no_rocev2", "other_index"])
    fault.add_argument("--rate", default="160mbit", help="slow-link rate (tc); 160mbit is ~0.02 GB/s")
    fault.add_argument("--delay", default="1ms", help="slow-link delay (needs netem in the kernel)")
    fault.add_argument("--rail", type=int, default=0, choices=[0, 1], help="slow-link: the rail (1 = eth1, the second bridge)")
    sb.set_defaults(func=_cmd_sandbox)

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
