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
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from clusterproof.errors import ClusterproofError
from clusterproof.units import parse_size

CREDENTIALS_TOKEN_ENV = "CP_CREDENTIALS_TOKEN"
#: ``clusterproof sandbox fault KIND``: every fault and its undo.
FAULT_KINDS = ["slow-link", "clear-slow-link", "break-gids", "garbage-gids", "restore-gids", "stop-sshd", "start-sshd",
               "hang-sshd", "continue-sshd", "rekey-sshd", "restore-sshd-key", "flaky", "clear-flaky", "slow-node",
               "clear-slow-node", "stop-slurmd", "start-slurmd", "drain", "resume"]
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
    slurm_ports: tuple[int, int] | None = None,
) -> Path:
    """Start the sandbox cluster, RGW and the credentials service; return the inventory path.

    Everything started is stopped again when any step fails. Different subnet/prefix/ports/state_dir let two
    sandboxes (say ``make demo`` and ``make test``) run side by side. ``slurm_ports`` (slurmctld, slurmd) also
    starts a real Slurm and makes srun the inventory's launcher.
    """
    from clusterproof.sandbox import cluster, credentials, rgw
    from clusterproof.sandbox.slurm import SlurmPorts

    t0 = time.monotonic()
    ports = SlurmPorts(*slurm_ports) if slurm_ports else None
    sbx = cluster.up(nodes=nodes, state_dir=state_dir, subnet=subnet, prefix=prefix, slurm=ports)
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
            service = credentials.start(state_dir, info.endpoint, admin, service_port, rgw_port, node_bind=f"{subnet}.1")
            doc = yaml.safe_load(sbx.inventory_path.read_text())
            doc["storage"] = rgw.storage_inventory_section(info, http_base_url=service.url)
            doc["storage"]["http_token_env"] = CREDENTIALS_TOKEN_ENV
            doc["storage"].update(sandbox_storage_extras(state_dir, service.node_rgw_endpoint))
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


def sandbox_storage_extras(state_dir: Path, node_endpoint: str | None) -> dict[str, object]:
    """The sandbox inventory's data-path and resilience settings: sizes for a memstore OSD (2 GiB, in RAM), and
    the two disruptions, each a command a provider would write its own way (``kubectl rollout restart ...``)."""
    me = [sys.executable, "-m", "clusterproof.cli", "sandbox", "--state-dir", str(state_dir), "rolling-restart"]
    return {
        "node_endpoint": node_endpoint,
        "performance": {
            # Measured on this 2-core machine (memstore RGW, other jobs running): PUT 0.08-0.11 GB/s, GET
            # 0.2-0.5 GB/s from 1M up; the limits sit ~10x below, to catch a broken path, not to rank a laptop.
            "sizes": ["4K", "1M", "16M", "256M"], "node_sizes": ["4K", "1M", "16M"], "concurrency": [1, 4],
            "objects": 1, "part_size": "16M", "list_keys": 300, "max_inflight_bytes": "512M", "deadline_s": 300,
            "thresholds": {"1M": {"min_put_gbs": 0.005, "min_get_gbs": 0.005, "max_p99_ms": 30000}},
        },
        "disruption_command": [*me, "credentials"],
        "disruption_runs": 1,
        # Not set: an RGW restart takes the storage away from every test running beside it. Run it alone:
        # storage.rgw_restart_command: [..., "rolling-restart", "rgw"] and `pytest -k rgw_restart`.
        "race_rounds": 2,
    }


def sandbox_down(state_dir: Path) -> None:
    from clusterproof.sandbox import cluster, credentials, rgw

    for line in credentials.stop(state_dir):
        print(line)
    for line in _stop_service(state_dir):
        print(line)
    if (state_dir / "rgw").exists():
        for line in rgw.stop(state_dir / "rgw"):
            print(line)
    for line in cluster.down(state_dir):
        print(line)


def _storage_status(state_dir: Path) -> dict[str, object]:
    """RGW, its mon and osd, and the credentials service: pid (None when down) and whether each answers."""
    from clusterproof.sandbox import rgw

    if not (state_dir / "rgw").exists():
        return {"configured": False}
    st = rgw.status(state_dir / "rgw")
    pid_file = state_dir / "credentials-service.pid"
    service_pid = int(pid_file.read_text()) if pid_file.exists() else None
    service_up = service_pid is not None and _alive(service_pid)
    return {"configured": True, "rgw_up": st.up, "endpoint": st.endpoint, "daemons": dict(st.daemons),
            "credentials_service": {"pid": service_pid, "up": service_up}}


def _cmd_sandbox(args: argparse.Namespace) -> int:
    from clusterproof.sandbox import cluster, faults, health_faults
    from clusterproof.sandbox import slurm as sandbox_slurm

    state_dir = _state_dir(args)
    if args.action == "up":
        sandbox_up(args.nodes, state_dir, with_storage=not args.no_storage, slurm_ports=(6817, 6818) if args.slurm else None)
    elif args.action == "down":
        sandbox_down(state_dir)
    elif args.action == "rolling-restart":
        return _rolling_restart(state_dir, args.what)
    elif args.action == "status":
        st = cluster.status(state_dir)
        if st.get("status") != "down":
            st["storage"] = _storage_status(state_dir)
        print(yaml.safe_dump(st, sort_keys=False))
    elif args.action == "fault":
        sbx = cluster.SandboxCluster.from_state(state_dir)
        kind, node = args.kind, args.node
        actions = {
            "slow-link": lambda: faults.slow_link(sbx, node, rate=args.rate, delay=args.delay),
            "clear-slow-link": lambda: faults.clear_slow_link(sbx, node),
            "break-gids": lambda: faults.break_gid_table(sbx, node, mode=args.mode),
            "restore-gids": lambda: faults.restore_gid_table(sbx, node),
            "stop-sshd": lambda: faults.stop_sshd(sbx, node),
            "start-sshd": lambda: faults.start_sshd(sbx, node),
            "hang-sshd": lambda: faults.hang_sshd(sbx, node),
            "continue-sshd": lambda: faults.continue_sshd(sbx, node),
            "garbage-gids": lambda: faults.garbage_gids(sbx, node),
            "rekey-sshd": lambda: faults.rekey_sshd(sbx, node),
            "restore-sshd-key": lambda: faults.restore_sshd_key(sbx, node),
            **_health_actions(health_faults, sbx, node, args),
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


def _rolling_restart(state_dir: Path, what: str) -> int:
    from clusterproof.inventory import read_env_file
    from clusterproof.sandbox import credentials, rgw

    t0 = time.monotonic()
    if what == "rgw":
        print(rgw.restart_gateway(state_dir / "rgw"))
    else:
        for line in credentials.rolling_restart(state_dir, read_env_file(state_dir / "secrets.env")):
            print(line)
    print(f"rolling restart of {what} finished after {time.monotonic() - t0:.2f} s")
    return 0


HEALTH_FAULTS = ("xid", "clear-xid", "gpu-missing", "restore-gpus", "pcie-downgrade", "restore-pcie", "port-down", "port-up",
                 "port-rate", "restore-port-rate", "counter", "clear-counter", "ecc", "clear-ecc")


def _health_actions(hf: Any, sbx: Any, node: str, args: argparse.Namespace) -> dict[str, Any]:
    """The node-health faults (clusterproof.sandbox.health_faults) and their undos. Positional VALUES: the XID code
    (xid), Gb/s (port-rate), COUNTER DELTA (counter), COUNTER (clear-counter)."""
    v = list(args.value)

    def need(n: int, what: str) -> list[str]:
        if len(v) != n:
            raise SystemExit(f"clusterproof sandbox fault {args.kind} {node}: expects {what}")
        return v

    def number(text: str, what: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise SystemExit(f"clusterproof sandbox fault {args.kind}: {what} must be an integer, got {text!r}") from None

    return {
        "xid": lambda: hf.xid(sbx, node, number(need(1, "CODE")[0], "CODE")),
        "clear-xid": lambda: hf.clear_xid(sbx, node),
        "gpu-missing": lambda: hf.gpu_missing(sbx, node),
        "restore-gpus": lambda: hf.restore_gpus(sbx, node),
        "pcie-downgrade": lambda: hf.pcie_downgrade(sbx, node),
        "restore-pcie": lambda: hf.restore_pcie(sbx, node),
        "port-down": lambda: hf.port_down(sbx, node),
        "port-up": lambda: hf.port_up(sbx, node),
        "port-rate": lambda: hf.port_rate(sbx, node, number(need(1, "GBPS")[0], "GBPS")),
        "restore-port-rate": lambda: hf.restore_port_rate(sbx, node),
        "counter": lambda: hf.counter(sbx, node, need(2, "COUNTER DELTA")[0], number(v[1], "DELTA"), during_run=args.during_run),
        "clear-counter": lambda: hf.clear_counter(sbx, node, need(1, "COUNTER")[0]),
        "ecc": lambda: hf.ecc(sbx, node),
        "clear-ecc": lambda: hf.clear_ecc(sbx, node),
    }


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
    if done.problems:  # one more pass: a deletion that timed out has often gone through (RGW just restarted)
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
    up.add_argument("--slurm", action="store_true", help="also a real Slurm: munged, slurmctld on node01, slurmd on every node")
    sba.add_parser("down")
    sba.add_parser("status")
    rr = sba.add_parser("rolling-restart", help="restart the credential API replicas one at a time (graceful), or the RGW")
    rr.add_argument("what", choices=["credentials", "rgw"])
    fault = sba.add_parser("fault", help="inject or clear a fault on one node")
    fault.add_argument("kind", choices=[*FAULT_KINDS, *HEALTH_FAULTS], help="each fault's undo: clear-slow-link, "
                       "restore-gids (break-gids and garbage-gids), start-sshd, continue-sshd, restore-sshd-key, clear-flaky, "
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
