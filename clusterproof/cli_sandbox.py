"""The ``clusterproof sandbox`` commands: bring the sandbox up and down (with RGW, the credentials service and
Slurm), its status, rolling restarts, and every fault with its undo. Only :mod:`clusterproof.cli` imports this."""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time
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
FABRIC_FAULTS = ["hang-link", "clear-hang-link", "crash-node", "corrupt-node", "clear-node-fault"]
SERVICE_PORT = 7499


def state_dir_of(args: argparse.Namespace) -> Path:
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
    from clusterproof.sandbox import cluster, credentials, rgw
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


def cmd_sandbox(args: argparse.Namespace) -> int:
    from clusterproof.sandbox import cluster, fault_fabric, faults, health_faults
    from clusterproof.sandbox import slurm as sandbox_slurm
    from clusterproof.sandbox.state import SandboxCluster

    state_dir = state_dir_of(args)
    if args.action == "up":
        sandbox_up(args.nodes, state_dir, with_storage=not args.no_storage, slurm_ports=(6817, 6818) if args.slurm else None,
                   rail1_subnet=args.rail1_subnet or "")
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
        sbx = SandboxCluster.from_state(state_dir)
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
