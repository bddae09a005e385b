"""The sandbox cluster: N nodes on one machine, each a network namespace with its own sshd.

Each node is a network namespace (veth ``eth0`` on a bridge, no default route) plus a UTS and mount
namespace made by ``assets/node_init.sh``: its own hostname, /etc/hosts, ssh client config, /tmp, a
root home without the host's shell start-up files, and a fake RoCE GID table under
/sys/class/infiniband. A CPU stand-in for nccl-tests is compiled into ``<state_dir>/bin``, and
``<state_dir>/inventory.yaml`` describes the cluster for the suites.

Everything is named from ``state_dir``, ``prefix`` and ``subnet``, so sandboxes with different
values coexist. ``up`` refuses to start over a sandbox that is already up in ``state_dir`` (it never
returns an existing one: bring it ``down`` first). The sandbox is the one place where the library
shells out (``ip``, ``unshare``, ``nsenter``, ``ssh-keygen``, ``sshd``, ``ssh``, ``mpicc``), always
with argv lists.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from clusterproof.errors import InventoryError, SandboxError
from clusterproof.inventory import parse_inventory
from clusterproof.sandbox import neigh, procs
from clusterproof.sandbox import nodes as build
from clusterproof.sandbox import slurm as sandbox_slurm
from clusterproof.sandbox.health_standins import SANDBOX_HEALTH, SYSFS_IN_NODE
from clusterproof.sandbox.nodes import COLLECTIVES, SSHD
from clusterproof.sandbox.state import (
    SandboxCluster,
    SandboxNode,
    read_state,
    require_root,
    write_state,
)

log = logging.getLogger(__name__)

#: Where `up` records the neighbour-table limits it raised, for `down` to restore.
NEIGH_FILE = "neigh-limits.json"
DEFAULT_STATE_DIR = Path(os.environ.get("CLUSTERPROOF_SANDBOX_DIR", "/tmp/clusterproof-sandbox"))
MAX_NODES = 99  # node names have two digits; addresses are <subnet>.11 .. <subnet>.109
#: Minimum all_reduce busbw (GB/s) from 1M up, written into the sandbox inventory. Measured on this
#: 2-core machine while other jobs loaded it (load average 4-10; sweep 64K-4M, -n 5), rows at 1M and 4M:
#: healthy 0.19-0.99 GB/s on 4 nodes (14 runs) and 0.26-1.56 GB/s on 2 nodes (8 runs); with one node
#: slowed by faults.slow_link to 200mbit, 0.01 GB/s on 4 and on 2 nodes (20mbit: 0.00). So 0.05 sits
#: ~4x below the worst healthy row and 5x above a slowed one.
ALL_REDUCE_MIN_BUSBW_GBS = 0.05
#: Above 4 nodes the ranks share the same 2 cores, so busbw falls with N: at 32 nodes (neighbour limits raised)
#: all_reduce measured 0.02 GB/s at 1M and 0.03 GB/s at 4M (one run, 2026-12-01, machine shared with other jobs),
#: below the 4-node threshold. The all-node threshold is therefore scaled by 4/N: 0.00625 GB/s at 32 nodes,
#: ~3x below that healthy row (2-node groups keep the 4-node threshold).
def all_reduce_min_busbw_gbs(n_nodes: int) -> float:
    """The sandbox's all_reduce threshold for a group of ``n_nodes`` (see ALL_REDUCE_MIN_BUSBW_GBS)."""
    return ALL_REDUCE_MIN_BUSBW_GBS if n_nodes <= 4 else round(ALL_REDUCE_MIN_BUSBW_GBS * 4 / n_nodes, 5)


#: Minimum all_reduce busbw (GB/s) at 4M on one rail (one interface per node): measured on 4 nodes with
#: btl_tcp_if_include=eth0 or eth1, healthy 0.11-0.18 GB/s, with one node's eth1 at 160mbit 0.01 GB/s.
RAIL_MIN_BUSBW_GBS = 0.04
_TOOLS = {  # binary -> Debian package that ships it
    "ip": "iproute2", "tc": "iproute2", "unshare": "util-linux", "nsenter": "util-linux",
    "mountpoint": "util-linux", "mount": "mount", "umount": "mount", "ssh-keygen": "openssh-client", "ssh": "openssh-client",
    SSHD: "openssh-server", "mpicc": "libopenmpi-dev", "mpirun": "openmpi-bin",
}
_PREFIX_RE = re.compile(r"^[a-z][a-z0-9_]{0,7}$")
_SUBNET_RE = re.compile(r"^(\d{1,3})\.(\d{1,3})\.(\d{1,3})$")


def _check_host() -> None:
    """Raise SandboxError naming the Debian packages of missing tools, or a locked root account."""
    missing = [t for t in _TOOLS if not (os.access(t, os.X_OK) if "/" in t else shutil.which(t, path=procs.PATH))]
    if missing:
        raise SandboxError(f"the sandbox needs {', '.join(f'{t} (Debian package {_TOOLS[t]})' for t in missing)}: "
                           f"apt-get install {' '.join(sorted({_TOOLS[t] for t in missing}))}")
    # With UsePAM no, sshd refuses accounts whose password is locked with '!', even for key logins.
    try:
        root = next((line.split(":") for line in Path("/etc/shadow").read_text().splitlines() if line.startswith("root:")), [])
    except OSError:
        return
    if len(root) > 1 and root[1].startswith("!"):
        raise SandboxError("root's password is locked ('!' in /etc/shadow), so sshd refuses root logins even with keys: "
                           "run `usermod -p '*' root` (no password, not locked) and try again")


def _check_subnet(subnet: str, what: str) -> None:
    m = _SUBNET_RE.match(subnet)
    if not m or any(int(o) > 255 for o in m.groups()):
        raise SandboxError(f"{what} must be three octets like 192.168.77 (a /24), got {subnet!r}")


def _plan(nodes: int, state_dir: Path, subnet: str, prefix: str, rail1_subnet: str = "") -> SandboxCluster:
    """Check the arguments and name everything up front (also what ``down`` deletes after a failed ``up``)."""
    if isinstance(nodes, bool) or not isinstance(nodes, int) or not 1 <= nodes <= MAX_NODES:
        raise SandboxError(f"nodes must be an integer from 1 to {MAX_NODES}, got {nodes!r}")
    _check_subnet(subnet, "subnet")
    if rail1_subnet:
        _check_subnet(rail1_subnet, "rail1_subnet")
        if rail1_subnet == subnet:
            raise SandboxError(f"rail1_subnet must differ from subnet, both are {subnet}")
    if not _PREFIX_RE.match(prefix):
        raise SandboxError(f"prefix must be 1-8 of a-z, 0-9, '_' starting with a letter (it names netns and links), got {prefix!r}")
    state_dir = Path(os.path.abspath(state_dir))
    if len(state_dir.parts) < 3:
        raise SandboxError(f"state_dir {state_dir} is too close to / (`down` deletes it): use e.g. /tmp/clusterproof-sandbox")
    tag = prefix.replace("_", "")
    members = [
        SandboxNode(name=f"node{i:02d}", ip=f"{subnet}.{10 + i}", netns=f"{prefix}node{i:02d}", sshd_pid=0,
                    state_dir=state_dir / f"node{i:02d}", veth=f"{tag}v{i:02d}",
                    ip1=f"{rail1_subnet}.{10 + i}" if rail1_subnet else "", veth1=f"{tag}w{i:02d}" if rail1_subnet else "")
        for i in range(1, nodes + 1)
    ]
    return SandboxCluster(state_dir=state_dir, nodes=members, inventory_path=state_dir / "inventory.yaml",
                          bin_dir=state_dir / "bin", key_file=state_dir / "client" / "id_ed25519",
                          known_hosts=state_dir / "known_hosts", ssh_config=state_dir / "ssh_config",
                          bridge=f"{tag}br0", subnet=subnet, prefix=prefix,
                          rail1_subnet=rail1_subnet, bridge1=f"{tag}br1" if rail1_subnet else "")


def _links() -> dict[str, dict[str, Any]]:
    """Network interfaces of the host (root netns) by name, with their addresses (``ip -j addr``)."""
    return {x["ifname"]: x for x in json.loads(procs.run(["ip", "-j", "addr", "show"], "list links") or "[]")}


def _check_free(c: SandboxCluster) -> None:
    """Raise SandboxError when a name or the subnet is taken (another sandbox, or a leftover)."""
    links = _links()
    names = [c.bridge, c.bridge1, *(x.veth for x in c.nodes), *(x.veth1 for x in c.nodes)]
    taken = [f"link {n}" for n in names if n and n in links]
    taken += [f"netns {x.netns}" for x in c.nodes if os.path.exists(f"/run/netns/{x.netns}")]
    taken += [f"subnet {net}.0/24 (on {name})" for net in filter(None, (c.subnet, c.rail1_subnet)) for name, link in links.items()
              if any(a.get("family") == "inet" and str(a.get("local", "")).startswith(f"{net}.") for a in link.get("addr_info", []))]
    if taken:
        raise SandboxError(f"cannot start a sandbox with prefix {c.prefix!r} and subnet {c.subnet}: already in use: "
                           f"{', '.join(taken)}. Bring that sandbox down, or pick another prefix/subnet.")


def _tmpfs_name(prefix: str) -> str:
    return f"{prefix}sandbox"


def _our_tmpfs(state_dir: Path, prefix: str) -> bool:
    """True when ``state_dir`` is the tmpfs that ``up`` mounted (never unmount anything else)."""
    where = str(state_dir).replace(" ", "\\040")
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        tail = fields[fields.index("-") + 1 :]
        if fields[4] == where and tail[:2] == ["tmpfs", _tmpfs_name(prefix)]:
            return True
    return False


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), dict) else v
    return out


def _inventory_doc(c: SandboxCluster, extra: Mapping[str, Any] | None, with_slurm: bool = False) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": "sandbox",
        "standin": True,
        "nodes": [{"name": n.name, "host": n.ip, "port": 22, "user": "root", "slots": 1} for n in c.nodes],
        "ssh": {"user": "root", "key_file": str(c.key_file), "known_hosts": str(c.known_hosts), "strict_host_keys": True,
                "use_agent": False, "connect_timeout_s": 5, "command_timeout_s": 60},
        "network": {"hcas": ["mlx5_0"], "gid_index": "auto", "max_clock_skew_s": 1.0, "sysfs_root": SYSFS_IN_NODE},
        "health": SANDBOX_HEALTH,
        "nccl_tests": {
            "bin_dir": str(c.bin_dir), "launcher": "mpirun", "mpirun": "mpirun", "collectives": list(COLLECTIVES),
            "node_counts": [2], "mca": {"coll": "^hcoll", "pml": "ob1", "btl": "tcp,self"},
            "sweep": {"min_bytes": "64K", "max_bytes": "4M", "step_factor": 4, "iters": 5, "warmup_iters": 1,
                      "gpus_per_rank": 1, "check": 1},
            "timeout_s": 120, "debug": "on", "expect_net": "IB", "expect_gdr": True,
        },
        "thresholds": {"all_reduce": {"*": {"1M": ALL_REDUCE_MIN_BUSBW_GBS},
                                      **({len(c.nodes): {"1M": all_reduce_min_busbw_gbs(len(c.nodes))}} if len(c.nodes) > 4 else {})}},
    }
    if c.rail1_subnet:  # one rank per node on one rail: the stand-in's MPI traffic kept to that rail's interface
        doc["rails"] = {"collective": "all_reduce", "min_busbw": {"4M": RAIL_MIN_BUSBW_GBS},
                        "rails": [{"name": f"rail{r}", "mca": {"btl_tcp_if_include": f"eth{r}"}} for r in range(2)]}
    if with_slurm:  # collectives through srun --mpi=pmix, in the sandbox's one partition
        doc["nccl_tests"]["launcher"] = "srun"
        doc["slurm"] = {"partition": sandbox_slurm.PARTITION, "mpi": "pmix", "gres": sandbox_slurm.SANDBOX_GRES}
    return _merge(doc, extra or {})


def up(nodes: int = 4, state_dir: Path = DEFAULT_STATE_DIR, subnet: str = "192.168.77", prefix: str = "cp_",
       extra_inventory: Mapping[str, Any] | None = None, slurm: sandbox_slurm.SlurmPorts | None = None,
       rail1_subnet: str = "") -> SandboxCluster:
    """Bring up a sandbox of ``nodes`` nodes and return it (also written to ``<state_dir>/state.json``,
    with the seconds each step took in ``timings_s``).

    ``extra_inventory`` is merged into the inventory (mappings deep-merged, other values replaced). ``slurm``
    (its ports) also starts a real Slurm (:mod:`clusterproof.sandbox.slurm`) and makes ``srun`` the inventory's
    launcher. ``rail1_subnet`` (a /24) adds a second rail: a second bridge and an ``eth1`` on every node, and a
    ``rails`` section in the inventory (rail0 = eth0, rail1 = eth1).

    Raises:
        SandboxError: not root; a tool is missing (naming its Debian package); a sandbox is already up
            in ``state_dir`` or the prefix/subnet is taken; or a step failed (naming the step and its
            stderr) -- in that case everything made so far has been torn down again.
    """
    require_root()
    _check_host()
    if slurm is not None:
        sandbox_slurm.check_host()
    c = _plan(nodes, Path(state_dir), subnet, prefix, rail1_subnet)
    existing = read_state(c.state_dir)
    if existing is not None:
        raise SandboxError(f"a sandbox is already up in {c.state_dir} (status: {existing.get('status', 'unknown')}): "
                           "run `clusterproof sandbox down` first, or use another state dir")
    if c.state_dir.exists() and any(c.state_dir.iterdir()):
        raise SandboxError(f"{c.state_dir} exists, is not empty and holds no sandbox: pick another state dir")
    _check_free(c)
    doc = _inventory_doc(c, extra_inventory, with_slurm=slurm is not None)
    try:
        parse_inventory(doc, str(c.inventory_path))
    except InventoryError as e:
        raise SandboxError(f"the sandbox inventory would be invalid (check extra_inventory):\n{e}") from None
    c.state_dir.mkdir(parents=True, exist_ok=True)
    # The whole state (keys, GID tables, every node's /tmp) lives on a tmpfs: creating ~50 files per node
    # and deleting them again took seconds at 32 nodes on a disk busy with other jobs; `down` unmounts it.
    try:
        procs.run(["mount", "-t", "tmpfs", "-o", "mode=0700,nosuid,nodev", _tmpfs_name(c.prefix), str(c.state_dir)],
                  "mount a tmpfs on the state dir")
    except SandboxError:
        c.state_dir.rmdir()
        raise
    write_state(c, "starting")  # from here on, `down` can undo whatever exists
    compiler: list[subprocess.Popen[str]] = []

    def write_files() -> None:
        build.write_files(c)
        if slurm is not None:  # before the nodes start: node_init.sh binds its etc over /etc/slurm
            sandbox_slurm.write_files(c, slurm)
        compiler.append(build.start_compile(c))  # overlaps the node start-up
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation dir; left for other sshds

    def start_nodes() -> None:
        build.start_nodes(c)
        write_state(c, "starting")  # now with the pids

    def start_slurm() -> None:
        sandbox_slurm.start(c)

    def write_inventory() -> None:
        header = "# Written by `clusterproof sandbox up`. Numbers from this cluster come from the CPU stand-in for nccl-tests.\n"
        c.inventory_path.write_text(header + yaml.safe_dump(doc, sort_keys=False))

    steps: list[tuple[str, Callable[[], None]]] = [
        ("neighbour limits", lambda: log.info("; ".join(neigh.raise_limits(len(c.nodes), c.state_dir / NEIGH_FILE)))),
        ("write files", write_files),
        ("network", lambda: build.make_network(c)),
        ("start nodes", start_nodes),
        ("wait for sshd", lambda: build.wait_for_sshd(c.nodes)),
        ("ssh logins", lambda: build.check_logins(c)),
        ("compile stand-in", lambda: build.finish_compile(c, compiler[0])),
        *([("start slurm", start_slurm)] if slurm is not None else []),
        ("inventory", write_inventory),
    ]
    step = steps[0][0]
    try:
        for step, action in steps:
            t0 = time.monotonic()
            action()
            c.timings_s[step] = round(time.monotonic() - t0, 3)
        c.timings_s["total"] = round(sum(c.timings_s.values()), 3)
        write_state(c, "up")
    except BaseException as e:
        build.stop_compile(compiler[0] if compiler else None)
        undone = "torn down again"
        try:
            write_state(c, "failed")
            down(c.state_dir)
        except Exception as cleanup:  # keep the original error, and say that the cleanup needs a hand
            undone = f"and the teardown failed too, run `clusterproof sandbox down`: {cleanup}"
        if isinstance(e, SandboxError):
            raise SandboxError(f"sandbox up failed at step '{step}' ({undone}): {e}") from None
        if isinstance(e, Exception):
            raise SandboxError(f"sandbox up failed at step '{step}' ({undone}): {e!r}") from e
        raise
    log.info("sandbox up: %d nodes in %s (%s)", nodes, c.state_dir, c.timings_s)
    return c


def down(state_dir: Path = DEFAULT_STATE_DIR) -> list[str]:
    """Remove the sandbox in ``state_dir``: its processes (by pid), namespaces, bridge and files.

    Works on a half-made sandbox (a failed ``up``) too. Returns one line per thing removed; an empty
    list means there was nothing to tear down.

    Raises:
        SandboxError: not root, the state file is unreadable, or a namespace/bridge could not be deleted.
    """
    require_root()
    state_dir = Path(os.path.abspath(state_dir))
    raw = read_state(state_dir)
    if raw is None:
        return []
    removed: list[str] = []
    members = raw.get("nodes", [])
    netns = [n["netns"] for n in members if os.path.exists(f"/run/netns/{n['netns']}")]
    recorded = [n.get("sshd_pid", 0) for n in members] + [n.get("holder_pid", 0) for n in members]
    stopped: list[int] = []
    # Scan again after each kill: after a killed `up`, node_init.sh may still be entering namespaces.
    for _ in range(10):
        seeds = recorded + [procs.read_pid(Path(n["state_dir"]) / f) for n in members for f in ("sshd.pid", "holder.pid")]
        victims = procs.sandbox_pids([p for p in seeds if p], netns)
        if not victims:
            break
        procs.terminate(victims)
        stopped += victims
    if stopped:
        removed.append(f"stopped {len(stopped)} processes (pids {' '.join(map(str, sorted(set(stopped))))})")
    links = _links()
    veths = [n[k] for n in members for k in ("veth", "veth1") if n.get(k) and n.get(k) in links]
    bridge = raw.get("bridge", "") if raw.get("bridge") in links else ""
    bridge1 = raw.get("bridge1", "") if raw.get("bridge1") in links else ""
    batch = [f"netns del {ns}" for ns in netns] + [f"link del {b}" for b in (bridge, bridge1) if b]
    if batch:
        procs.run(["ip", "-batch", "-"], "delete network namespaces and bridge", stdin="\n".join(batch) + "\n")
    # The kernel removes the host-side veths of deleted namespaces asynchronously, in one batch (30 ms
    # for 32 nodes; deleting them one by one takes 0.6 s). Wait for that, so that their names are free
    # when `down` returns; delete by hand whatever is left (a namespace some process still holds).
    deadline = time.monotonic() + 5
    while veths and time.monotonic() < deadline and any(v in _links() for v in veths):
        time.sleep(0.01)
    stuck = [v for v in veths if v in _links()]
    if stuck:
        procs.run(["ip", "-batch", "-"], "delete veths", stdin="".join(f"link del {v}\n" for v in stuck))
    removed += [f"deleted {what} {' '.join(names)}" for what, names in
                (("network namespaces", netns), ("veths", veths), ("bridges", [b for b in (bridge, bridge1) if b])) if names]
    removed += neigh.restore_limits(state_dir / NEIGH_FILE)
    if _our_tmpfs(state_dir, raw.get("prefix", "")):  # lazily: a shell sitting in it must not block the teardown
        procs.run(["umount", "--lazy", str(state_dir)], "unmount the state dir")
    shutil.rmtree(state_dir)
    removed.append(f"removed {state_dir}")
    return removed


def status(state_dir: Path = DEFAULT_STATE_DIR) -> dict[str, Any]:
    """What is up in ``state_dir``: ``{"state_dir", "status", "up", "bridge", "subnet", "inventory", "nodes"}``.

    ``status`` is ``down`` (nothing there), ``starting``, ``failed`` or ``up``; ``up`` is True only when
    every node's sshd pid is alive and its port greets. Each node entry has ``name``, ``ip``, ``netns``,
    ``sshd_pid``, ``sshd_alive`` and ``port_answers``.
    """
    raw = read_state(Path(state_dir))
    if raw is None:
        return {"state_dir": str(state_dir), "status": "down", "up": False, "nodes": []}
    c = SandboxCluster.from_state(state_dir)

    def check(n: SandboxNode) -> dict[str, Any]:
        return {"name": n.name, "ip": n.ip, "netns": n.netns, "sshd_pid": n.sshd_pid,
                "sshd_alive": procs.alive_in_netns(n.sshd_pid, n.netns), "port_answers": build.port_answers(n.ip)}

    checked = procs.parallel(check, c.nodes, workers=16)
    healthy = raw.get("status") == "up" and all(n["sshd_alive"] and n["port_answers"] for n in checked)
    out = {"state_dir": str(c.state_dir), "status": raw.get("status", "unknown"), "up": healthy, "bridge": c.bridge,
           "subnet": c.subnet, "inventory": str(c.inventory_path), "nodes": checked}
    if sandbox_slurm.enabled(c):
        out["slurm"] = sandbox_slurm.status(c)
    return out
