"""How sandbox nodes are built and watched: their files, their network, their start, their sshd.

``cluster.up`` calls these in order; ``faults`` reuses the waiting helpers. Nothing here decides
names or cleans up: ``cluster`` plans every name first and ``cluster.down`` removes what exists.
"""

from __future__ import annotations

import shlex
import shutil
import socket
import subprocess
import time
from importlib import resources
from typing import TYPE_CHECKING

from clusterproof.errors import SandboxError
from clusterproof.sandbox import health_standins
from clusterproof.sandbox.gids import node_ipv6, node_mac, write_gid_table, write_hca
from clusterproof.sandbox.procs import ENV, parallel, read_pid, run

if TYPE_CHECKING:
    from clusterproof.sandbox.state import SandboxCluster, SandboxNode

COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter", "alltoall", "sendrecv", "broadcast")
SSHD = "/usr/sbin/sshd"
#: Sessions on sandbox nodes get these from sshd (SetEnv). They exist for the sandbox only (root, many
#: ranks on 2 cores, no binding, no busy-polling); real clusters and the suites never set them.
NODE_ENV = {
    "OMPI_ALLOW_RUN_AS_ROOT": "1",
    "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    "OMPI_MCA_hwloc_base_binding_policy": "none",
    "OMPI_MCA_rmaps_base_oversubscribe": "1",
    "OMPI_MCA_mpi_yield_when_idle": "1",
    # A run with a failing rank (#wrong > 0 exits 7) otherwise takes ~4 s more to end: orted waits
    # 1 s at each step between SIGTERM and SIGKILL of the ranks it is tearing down.
    "OMPI_MCA_odls_base_sigkill_timeout": "0",
    # srun --mpi=pmix: about one direct launch in ten crashed in MPI_Init here (SIGSEGV at address nil, before the
    # first line of output) under load; the signature of PMIx's shared-memory data store (gds ds21) crashing
    # (openpmix/openpmix#1114, open-mpi/ompi#7335). The hash store is PMIx's documented workaround.
    "PMIX_MCA_gds": "hash",
    # hwloc's I/O discovery in mpirun, every orted and every rank read each PCI device's config space through sysfs
    # (24 reads for one node's mpirun and 2 ranks), which this VM traps: 16% of all CPU in a round of 8 concurrent
    # pairs (perf). The stand-in has no GPU or NIC whose PCI locality matters; real nodes keep hwloc's defaults.
    "HWLOC_COMPONENTS": "-pci,-linuxio",
}


def _asset(name: str) -> str:
    return (resources.files("clusterproof.sandbox") / "assets" / name).read_text()


def _ssh_config(c: SandboxCluster) -> str:
    hosts = "".join(f"Host {n.name}\n    HostName {n.ip}\n" for n in c.nodes)
    return (f"# clusterproof sandbox {c.state_dir}: ssh client settings for the host (ssh -F) and for every node\n"
            f"# (bound over its /etc/ssh/ssh_config, so `ssh nodeNN` and mpirun's launcher work from any node)\n"
            f"{hosts}Host node?? {c.subnet}.*\n    User root\n    Port 22\n    IdentityFile {c.key_file}\n"
            f"    IdentitiesOnly yes\n    UserKnownHostsFile {c.known_hosts}\n    GlobalKnownHostsFile /dev/null\n"
            "    StrictHostKeyChecking yes\n    BatchMode yes\n    ConnectTimeout 5\n    LogLevel ERROR\n"
            # mpirun's launcher opens one ssh login per remote node and run: OpenSSH's default post-quantum kex
            # (sntrup761x25519) cost 116 ms of CPU per login, client and sshd, against 41 ms for curve25519 (10 logins),
            # a sixth of a pair run's CPU, and the pairs of a search round share 2 cores. The nodes' sshd keeps its
            # defaults; this is the sandbox's client choice, not the suites'.
            "    KexAlgorithms curve25519-sha256\n"
            "Host *\n    SendEnv LANG LC_*\n")


def _sshd_config(c: SandboxCluster, n: SandboxNode) -> str:
    d = n.state_dir
    set_env = " ".join(f"{k}={v}" for k, v in {**NODE_ENV, "PATH": health_standins.node_path(d)}.items())
    # KexAlgorithms and ciphers stay at OpenSSH's defaults: the sandbox never weakens them.
    return (f"# clusterproof sandbox node {n.name}\nListenAddress {n.ip}\nPort 22\nHostKey {d}/ssh_host_ed25519_key\n"
            f"PidFile {d}/sshd.pid\nPermitRootLogin prohibit-password\nPubkeyAuthentication yes\n"
            f"AuthorizedKeysFile {c.state_dir}/authorized_keys\n"
            "StrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nUseDNS no\n"
            "PrintMotd no\nPrintLastLog no\nX11Forwarding no\nMaxStartups 200:30:400\nMaxSessions 100\n"
            f"AcceptEnv LANG LC_* NCCL_* OMPI_* UCX_*\nSetEnv {set_env}\nSubsystem sftp internal-sftp\n")


def write_files(c: SandboxCluster) -> None:
    """Client and host keys, known_hosts, ssh/sshd configs, hosts, the fake home, GID tables, sources."""
    sd = c.state_dir
    for d in (sd / "client", sd / "home", sd / "src", c.bin_dir, *(n.state_dir / "tmp" for n in c.nodes)):
        d.mkdir(parents=True, exist_ok=True)
    jobs = [(c.key_file, "clusterproof-sandbox-client")] + [(n.state_dir / "ssh_host_ed25519_key", n.name) for n in c.nodes]
    parallel(lambda job: run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", job[1], "-f", str(job[0])], "ssh-keygen"), jobs)
    shutil.copyfile(f"{c.key_file}.pub", sd / "authorized_keys")
    # "nodeNN,IP key": strict host-key checking works by name and by address (paramiko RejectPolicy too).
    known = [f"{n.name},{n.ip} {' '.join((n.state_dir / 'ssh_host_ed25519_key.pub').read_text().split()[:2])}" for n in c.nodes]
    c.known_hosts.write_text("\n".join(known) + "\n")
    (sd / "hosts").write_text("127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n"
                              + "".join(f"{n.ip} {n.name}\n" for n in c.nodes))
    c.ssh_config.write_text(_ssh_config(c))
    home = sd / "home"
    home.chmod(0o700)
    (home / ".bashrc").write_text("# sandbox node: kept minimal, it runs on every ssh command and orted launch\n")
    (home / ".profile").write_text('[ -f "$HOME/.bashrc" ] && . "$HOME/.bashrc"\n')
    for n in c.nodes:
        (n.state_dir / "tmp").chmod(0o1777)
        (n.state_dir / "sshd_config").write_text(_sshd_config(c, n))
        write_hca(n.state_dir / "ib", n.name)
        write_gid_table(n.state_dir / "ib", n.ip, "standard")
        health_standins.write_node(n.state_dir, n.name)
    (sd / "node_init.sh").write_text(_asset("node_init.sh"))
    (sd / "src" / "nccl_standin.c").write_text(_asset("nccl_standin.c"))


def make_network(c: SandboxCluster) -> None:
    """Bridge, namespaces and veth pairs in one ``ip -batch`` (node_init.sh configures the node side)."""
    a, b, cc = (int(o) for o in c.subnet.split("."))
    lines = [f"link add {c.bridge} address 02:cd:{a:02x}:{b:02x}:{cc:02x}:01 type bridge",
             f"addr add {c.subnet}.1/24 dev {c.bridge}", f"link set {c.bridge} up"]
    for n in c.nodes:
        d = int(n.ip.rsplit(".", 1)[1])
        lines += [f"netns add {n.netns}",
                  f"link add {n.veth} address 02:cc:{a:02x}:{b:02x}:{cc:02x}:{d:02x} type veth "
                  f"peer name eth0 address {node_mac(n.ip)} netns {n.netns}",
                  f"link set {n.veth} master {c.bridge} up"]
    if c.rail1_subnet:  # the second rail: its own bridge and an eth1 in every node
        a1, b1, c1 = (int(o) for o in c.rail1_subnet.split("."))
        lines += [f"link add {c.bridge1} address 02:cd:{a1:02x}:{b1:02x}:{c1:02x}:01 type bridge",
                  f"addr add {c.rail1_subnet}.1/24 dev {c.bridge1}", f"link set {c.bridge1} up"]
        for n in c.nodes:
            d = int(n.ip1.rsplit(".", 1)[1])
            lines += [f"link add {n.veth1} address 02:ce:{a1:02x}:{b1:02x}:{c1:02x}:{d:02x} type veth "
                      f"peer name eth1 address 02:cf:{a1:02x}:{b1:02x}:{c1:02x}:{d:02x} netns {n.netns}",
                      f"link set {n.veth1} master {c.bridge1} up"]
    run(["ip", "-batch", "-"], "create bridges, namespaces and veths", stdin="\n".join(lines) + "\n")


def start_nodes(c: SandboxCluster) -> None:
    """Run node_init.sh for every node at once; record each node's holder and sshd pids.

    Raises:
        SandboxError: naming every node whose init failed, with its stderr and sshd log tail.
    """
    script = str(c.state_dir / "node_init.sh")
    started = []
    for n in c.nodes:
        argv = ["nsenter", f"--net=/run/netns/{n.netns}", "unshare", "--uts", "--mount", "--propagation", "private",
                "sh", script, str(c.state_dir), n.name, f"{n.ip}/24", f"{node_ipv6(n.ip)}/64", *([f"{n.ip1}/24"] if n.ip1 else [])]
        started.append((n, argv, subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                                  stderr=subprocess.PIPE, text=True, env=ENV)))
    failures = []
    for n, argv, p in started:
        try:
            _, err = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
        if p.returncode != 0:
            failures.append(f"{n.name}: `{shlex.join(argv)}` exited {p.returncode}: {err.strip()} {log_tail(n)}")
    for n in c.nodes:  # record what did start, so that `down` finds it even when another node failed
        n.holder_pid = read_pid(n.state_dir / "holder.pid")
        n.sshd_pid = read_pid(n.state_dir / "sshd.pid")
    if failures:
        raise SandboxError("start nodes:\n  " + "\n  ".join(failures))
    deadline = time.monotonic() + 10
    for n in c.nodes:  # sshd writes its pid file after it has detached
        n.sshd_pid = wait_for_pid_file(n, deadline)


def log_tail(n: SandboxNode) -> str:
    """The last lines of the node's sshd log, for error messages ("" when there are none)."""
    try:
        tail = (n.state_dir / "sshd.log").read_text().strip().splitlines()[-5:]
    except OSError:
        return ""
    return "| sshd.log: " + " / ".join(tail) if tail else ""


def wait_for_pid_file(n: SandboxNode, deadline: float) -> int:
    """Wait for the node's ``sshd.pid``; return the pid. Raises SandboxError (with the log tail) at the deadline."""
    path = n.state_dir / "sshd.pid"
    while time.monotonic() < deadline:
        pid = read_pid(path)
        if pid:
            return pid
        time.sleep(0.02)
    raise SandboxError(f"{n.name}: sshd wrote no pid file {path} {log_tail(n)}")


def port_answers(ip: str, port: int = 22, timeout: float = 1.0) -> bool:
    """True when an SSH server greets on ip:port (its banner starts with ``SSH-``)."""
    try:
        with socket.create_connection((ip, port), timeout=timeout) as s:
            s.settimeout(timeout)
            return s.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def wait_for_sshd(nodes: list[SandboxNode], timeout: float = 15.0) -> None:
    """Wait until every node's sshd greets. Raises SandboxError naming the silent nodes."""
    deadline, pending = time.monotonic() + timeout, list(nodes)
    while pending and time.monotonic() < deadline:
        answered = parallel(lambda n: port_answers(n.ip, timeout=0.5), pending, workers=16)
        pending = [n for n, ok in zip(pending, answered, strict=True) if not ok]
        if pending:
            time.sleep(0.05)
    if pending:
        raise SandboxError("sshd does not answer on " + ", ".join(f"{n.name} ({n.ip}:22) {log_tail(n)}" for n in pending))


def check_logins(c: SandboxCluster) -> None:
    """Log in to every node as the suites will (key only, strict host keys) and check its hostname.

    Raises:
        SandboxError: listing every node that failed and why.
    """
    def login(n: SandboxNode) -> str | None:
        try:
            # curve25519 from the sandbox's ssh_config (see _ssh_config): the nodes' sshd keeps its defaults
            out = run(["ssh", "-F", str(c.ssh_config), n.name, "hostname"],
                      f"ssh {n.name}", timeout=20)
        except SandboxError as e:
            return str(e)
        return None if out.strip() == n.name else f"{n.name}: hostname is {out.strip()!r}"

    problems = [p for p in parallel(login, c.nodes) if p]
    if problems:
        raise SandboxError("ssh login check failed:\n  " + "\n  ".join(problems))


def start_compile(c: SandboxCluster) -> subprocess.Popen[str]:
    """Start compiling the nccl-tests stand-in in the background (it overlaps the node start-up)."""
    out, src = c.bin_dir / f"{COLLECTIVES[0]}_perf", c.state_dir / "src" / "nccl_standin.c"
    return subprocess.Popen(["mpicc", "-O2", "-o", str(out), str(src)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=ENV)


def finish_compile(c: SandboxCluster, proc: subprocess.Popen[str]) -> None:
    """Wait for the compiler, then name the binary once per collective (it dispatches on argv[0])."""
    _, err = proc.communicate(timeout=120)
    if proc.returncode != 0:
        raise SandboxError(f"compile the nccl-tests stand-in: `mpicc -O2 {c.state_dir}/src/nccl_standin.c` exited "
                           f"{proc.returncode}: {err.strip()}")
    for coll in COLLECTIVES[1:]:
        (c.bin_dir / f"{coll}_perf").symlink_to(f"{COLLECTIVES[0]}_perf")


def stop_compile(proc: subprocess.Popen[str] | None) -> None:
    """Kill an unfinished compile (``up`` failed elsewhere)."""
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait()

