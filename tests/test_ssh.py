"""clusterproof.nodes.ssh against real sshd: a 3-node sandbox (network namespaces, one OpenSSH sshd per node).

Also clusterproof.nodes.facts on those nodes. The sandbox is brought up once for the module and always torn down.
Needs root (namespaces); skipped otherwise. Unit-level checks (no sandbox) are at the top.
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from clusterproof.errors import CommandFailed, NodeUnreachable
from clusterproof.inventory import Inventory, JumpHost, SshSettings, load_inventory
from clusterproof.nodes.facts import NodeFacts, facts_frame, gather_facts
from clusterproof.nodes.ssh import CommandResult, SshPool, render_command
from clusterproof.results import NODE_COLUMNS
from clusterproof.sandbox.cluster import SandboxCluster, down, up
from clusterproof.sandbox.faults import start_sshd, stop_sshd

STATE_DIR = Path("/tmp/cp-ssh-test")
PREFIX = "cps_"
SUBNET = "192.168.81"


# ----- no sandbox needed --------------------------------------------------------------------------------------


def test_ssh_list_command_is_shell_quoted() -> None:
    argv = ["printf", "%s\n", "a b", "it's", '"q"', "$HOME", "; rm -rf /"]
    assert shlex.split(render_command(argv)) == argv
    assert render_command("echo $HOME | wc -c") == "echo $HOME | wc -c"
    with pytest.raises(ValueError):
        render_command("  ")


def test_ssh_check_names_host_command_rc_and_last_stderr_lines() -> None:
    stderr = "".join(f"line {i}\n" for i in range(30))
    res = CommandResult(host="node07", command="ls '/no such'", rc=2, stdout="", stderr=stderr, seconds=0.1)
    assert not res.ok
    with pytest.raises(CommandFailed) as e:
        res.check()
    msg = str(e.value)
    assert msg.startswith("node07: command failed (exit code 2): ls '/no such'")
    assert "line 29" in msg and "line 10" in msg and "line 9\n" not in msg
    ok = CommandResult(host="node07", command="true", rc=0, stdout="", stderr="", seconds=0.1)
    assert ok.check() is ok


def test_ssh_check_on_timeout_says_timed_out() -> None:
    res = CommandResult(host="node01", command="sleep 5", rc=None, stdout="", stderr="", seconds=0.5, timed_out=True)
    with pytest.raises(CommandFailed, match=r"node01: command failed \(timed out after 0.5s\): sleep 5"):
        res.check()


# ----- the sandbox ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxCluster]:
    """Yields: a running 3-node SandboxCluster. Scope: module. Cleans up: always tears it down.

    Skips when not root (network namespaces need it).
    """
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces for the sandbox")
    down(STATE_DIR)  # a leftover from an interrupted run
    cluster = up(3, state_dir=STATE_DIR, subnet=SUBNET, prefix=PREFIX)
    try:
        yield cluster
    finally:
        down(STATE_DIR)


@pytest.fixture(scope="module")
def sb_inventory(sandbox: SandboxCluster) -> Inventory:
    return load_inventory(sandbox.inventory_path)


@pytest.fixture(scope="module")
def sb_pool(sb_inventory: Inventory) -> Iterator[SshPool]:
    with SshPool.from_inventory(sb_inventory) as p:
        yield p


def _settings(sb_inventory: Inventory, **changes: object) -> SshSettings:
    return replace(sb_inventory.ssh, **changes)  # type: ignore[arg-type]


def test_ssh_run_on_every_node(sb_pool: SshPool, sb_inventory: Inventory) -> None:
    results = sb_pool.run_all("hostname")
    assert list(results) == [n.name for n in sb_inventory.nodes]
    for name, res in results.items():
        assert isinstance(res, CommandResult), res
        assert res.ok and res.host == name
        assert res.stdout.strip() == name  # each node has its own UTS namespace, hostname = node name


def test_ssh_connection_is_reused(sb_pool: SshPool) -> None:
    """The client's source port seen by sshd stays the same: one TCP connection for every command."""
    first = sb_pool.run("node01", "echo $SSH_CLIENT").check().stdout.split()
    second = sb_pool.run("node01", "echo $SSH_CLIENT").check().stdout.split()
    assert first[1] == second[1]
    assert sb_pool.is_connected("node01")


def test_ssh_reconnects_once_after_the_connection_died(sb_pool: SshPool) -> None:
    port = sb_pool.run("node02", "echo $SSH_CLIENT").check().stdout.split()[1]
    sb_pool.close()  # what a dead transport looks like to the pool
    assert not sb_pool.is_connected("node02")
    again = sb_pool.run("node02", "echo $SSH_CLIENT").check().stdout.split()[1]
    assert again != port


def test_ssh_list_command_with_spaces_and_quotes(sb_pool: SshPool) -> None:
    args = ["a b", "it's", '"double"', "$HOME", "`id`", "; echo injected"]
    res = sb_pool.run("node01", ["printf", "%s\n", *args]).check()
    assert res.stdout.splitlines() == args


def test_ssh_exit_code_and_stderr(sb_pool: SshPool) -> None:
    res = sb_pool.run("node01", "echo out; echo err >&2; exit 3")
    assert (res.rc, res.stdout, res.stderr, res.timed_out) == (3, "out\n", "err\n", False)
    with pytest.raises(CommandFailed, match=r"node01: command failed \(exit code 3\)"):
        res.check()


def test_ssh_env_is_passed_and_not_in_the_command(sb_pool: SshPool) -> None:
    value = "a b 'c' $HOME"
    res = sb_pool.run("node01", 'printf "%s|%s" "$CP_TEST_VALUE" "$NCCL_X"', env={"CP_TEST_VALUE": value, "NCCL_X": "1"})
    assert res.check().stdout == f"{value}|1"
    assert value not in res.command
    with pytest.raises(ValueError, match="not environment variable names"):
        sb_pool.run("node01", "true", env={"BAD-NAME": "x"})


def test_ssh_stdin(sb_pool: SshPool) -> None:
    assert sb_pool.run("node02", "cat", stdin="hello\nworld\n").check().stdout == "hello\nworld\n"
    big = "x" * (3 * 1024 * 1024) + "\n"  # larger than both SSH windows: sent from a helper thread
    assert sb_pool.run("node02", "wc -c", stdin=big).check().stdout.strip() == str(len(big))
    assert sb_pool.run("node02", "cat").check().stdout == ""  # stdin is closed, cat does not hang


def test_ssh_large_output_on_both_streams(sb_pool: SshPool) -> None:
    res = sb_pool.run("node03", "head -c 3000000 /dev/zero | tr '\\0' a; head -c 3000000 /dev/zero | tr '\\0' b >&2").check()
    assert len(res.stdout) == 3_000_000 and len(res.stderr) == 3_000_000


def test_ssh_timeout_closes_channel_but_remote_process_lives_on(sb_pool: SshPool) -> None:
    pid_file = "/tmp/cp-ssh-test-sleep.pid"
    t0 = time.perf_counter()
    res = sb_pool.run("node03", f"echo $$ > {pid_file}; exec sleep 5", timeout=0.5)
    assert time.perf_counter() - t0 < 4.0  # returned at the timeout, not when the 5 s remote sleep ended
    assert res.timed_out and res.rc is None and not res.ok
    with pytest.raises(CommandFailed, match="timed out"):
        res.check()
    # An SSH timeout does not stop the remote process: the caller has to (here: by its pid).
    alive = sb_pool.run("node03", f'kill -0 "$(cat {pid_file})" && echo alive').check().stdout.strip()
    assert alive == "alive"
    sb_pool.run("node03", f'kill "$(cat {pid_file})"; rm -f {pid_file}').check()


def test_ssh_sftp_put_and_get(sb_pool: SshPool, tmp_path: Path) -> None:
    data = os.urandom(200_000)
    sb_pool.put("node02", data, "/tmp/cp-ssh-put.bin")
    assert sb_pool.get("node02", "/tmp/cp-ssh-put.bin") == data
    local = tmp_path / "f.txt"
    local.write_text("from a file\n")
    sb_pool.put("node02", local, "/tmp/cp-ssh-put.txt")
    assert sb_pool.run("node02", "cat /tmp/cp-ssh-put.txt; rm -f /tmp/cp-ssh-put.txt /tmp/cp-ssh-put.bin").check().stdout == "from a file\n"
    with pytest.raises(CommandFailed, match=r"node02: .*sftp get /tmp/no-such-file"):
        sb_pool.get("node02", "/tmp/no-such-file")
    with pytest.raises(FileNotFoundError):
        sb_pool.put("node02", tmp_path / "missing", "/tmp/x")


def test_ssh_dead_node_is_reported_and_others_answer(sandbox: SandboxCluster, sb_inventory: Inventory) -> None:
    stop_sshd(sandbox, "node02")  # kills the sshd pid the sandbox started
    try:
        with SshPool.from_inventory(sb_inventory) as fresh:
            results = fresh.run_all("hostname")
    finally:
        start_sshd(sandbox, "node02")
    assert isinstance(results["node02"], NodeUnreachable)
    assert "connection refused at 192.168.81.12:22" in str(results["node02"])
    for name in ("node01", "node03"):
        res = results[name]
        assert isinstance(res, CommandResult) and res.stdout.strip() == name
    with SshPool.from_inventory(sb_inventory) as fresh:  # restored
        assert fresh.run("node02", "hostname").check().stdout.strip() == "node02"


def test_ssh_unknown_host_key_refused_in_strict_mode(sb_inventory: Inventory, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    lines = Path(sb_inventory.ssh.known_hosts).read_text().splitlines()  # type: ignore[arg-type]
    known.write_text("\n".join(ln for ln in lines if not ln.startswith("node01,")) + "\n")
    with SshPool(sb_inventory.nodes, _settings(sb_inventory, known_hosts=known)) as p:
        results = p.run_all("true")
    err = results["node01"]
    assert isinstance(err, NodeUnreachable)
    assert f"host key not in known_hosts {known} (strict host keys)" in str(err)
    assert isinstance(results["node02"], CommandResult) and results["node02"].ok


def test_ssh_unknown_host_key_accepted_and_recorded_when_not_strict(sb_inventory: Inventory, tmp_path: Path) -> None:
    known = tmp_path / "empty_known_hosts"
    known.write_text("")
    with SshPool(sb_inventory.nodes[:1], _settings(sb_inventory, known_hosts=known, strict_host_keys=False)) as p:
        assert p.run("node01", "hostname").check().stdout.strip() == "node01"
        assert p.unverified_hosts == ["192.168.81.11"]
    assert known.read_text() == ""  # never added to the file


def test_ssh_host_key_mismatch_refused(sb_inventory: Inventory, tmp_path: Path) -> None:
    lines = Path(sb_inventory.ssh.known_hosts).read_text().splitlines()  # type: ignore[arg-type]
    key_of_node02 = next(ln for ln in lines if ln.startswith("node02,")).split(None, 1)[1]
    known = tmp_path / "known_hosts"
    known.write_text(f"node01,192.168.81.11 {key_of_node02}\n")
    for strict in (True, False):
        with SshPool(sb_inventory.nodes[:1], _settings(sb_inventory, known_hosts=known, strict_host_keys=strict)) as p:
            with pytest.raises(NodeUnreachable, match=r"node01: unreachable: host key mismatch for 192.168.81.11"):
                p.run("node01", "true")


def test_ssh_hashed_known_hosts_entries_work(sb_inventory: Inventory, tmp_path: Path) -> None:
    import paramiko

    plain = paramiko.HostKeys(str(sb_inventory.ssh.known_hosts))
    hashed = tmp_path / "known_hosts_hashed"
    out = []
    for host in ("192.168.81.11", "192.168.81.12", "192.168.81.13"):
        entry = plain.lookup(host)
        assert entry is not None
        key = next(iter(entry.values()))
        out.append(f"{paramiko.HostKeys.hash_host(host)} {key.get_name()} {key.get_base64()}")
    hashed.write_text("\n".join(out) + "\n")
    with SshPool(sb_inventory.nodes, _settings(sb_inventory, known_hosts=hashed)) as p:
        assert all(isinstance(r, CommandResult) and r.ok for r in p.run_all("true").values())


def _write_key(path: Path, kind: str, password: bytes | None = None) -> Path:
    key: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if kind == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
    elif kind == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        key = ec.generate_private_key(ec.SECP256R1())
    enc = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, enc))
    path.chmod(0o600)
    return path


@pytest.mark.parametrize("kind", ["ed25519", "rsa", "ecdsa"])
def test_ssh_wrong_key_is_an_authentication_failure(sb_inventory: Inventory, tmp_path: Path, kind: str) -> None:
    key = _write_key(tmp_path / f"id_{kind}", kind)
    with SshPool(sb_inventory.nodes[:1], _settings(sb_inventory, key_file=key, use_agent=False)) as p:
        with pytest.raises(NodeUnreachable, match=rf"node01: unreachable: authentication failed for user root with key {key}$"):
            p.run("node01", "true")


def test_ssh_key_file_problems_name_the_path(sb_inventory: Inventory, tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with SshPool(sb_inventory.nodes, _settings(sb_inventory, key_file=missing, use_agent=False)) as p:
        results = p.run_all("true")
    assert all(isinstance(r, NodeUnreachable) and f"key file {missing} does not exist" in str(r) for r in results.values())
    encrypted = _write_key(tmp_path / "id_enc", "ed25519", password=b"secret-pass")
    with SshPool(sb_inventory.nodes[:1], _settings(sb_inventory, key_file=encrypted, use_agent=False)) as p:
        with pytest.raises(NodeUnreachable, match=rf"key file {encrypted} is encrypted"):
            p.run("node01", "true")


def test_ssh_connect_errors_are_clear(sb_inventory: Inventory) -> None:
    from clusterproof.inventory import Node

    nodes = [
        Node(name="closed", host="192.168.81.11", port=2222),  # sshd listens on 22 only
        Node(name="nameless", host="no-such-host.invalid"),
    ]
    with SshPool(nodes, _settings(sb_inventory, connect_timeout_s=2.0)) as p:
        results = p.connect_all()
    assert "connection refused at 192.168.81.11:2222" in str(results["closed"])
    assert "cannot resolve host name 'no-such-host.invalid'" in str(results["nameless"])
    with pytest.raises(KeyError, match="unknown node 'node99'"):
        p.run("node99", "true")


def test_ssh_jump_host_reaches_the_other_nodes(sb_inventory: Inventory) -> None:
    jump = JumpHost(host="192.168.81.11", port=22)
    with SshPool(sb_inventory.nodes[1:], _settings(sb_inventory, jump_host=jump)) as p:
        results = p.run_all("echo $SSH_CLIENT; hostname")
        for name, res in results.items():
            assert isinstance(res, CommandResult), res
            client_ip, node_name = res.check().stdout.split()[0], res.stdout.split()[-1]
            assert client_ip == "192.168.81.11"  # the connection came through node01
            assert node_name == name
        assert p.get("node02", "/etc/hostname") is not None  # SFTP through the tunnel too


def test_ssh_jump_host_with_unknown_key_is_refused(sb_inventory: Inventory, tmp_path: Path) -> None:
    lines = Path(sb_inventory.ssh.known_hosts).read_text().splitlines()  # type: ignore[arg-type]
    known = tmp_path / "known_hosts"
    known.write_text("\n".join(ln for ln in lines if not ln.startswith("node01,")) + "\n")
    jump = JumpHost(host="192.168.81.11")
    with SshPool(sb_inventory.nodes[1:2], _settings(sb_inventory, jump_host=jump, known_hosts=known)) as p:
        with pytest.raises(NodeUnreachable, match=r"node02: unreachable: via jump host 192.168.81.11:22: host key not in known_hosts"):
            p.run("node02", "true")


def test_ssh_jump_host_cannot_reach_target(sb_inventory: Inventory) -> None:
    from clusterproof.inventory import Node

    jump = JumpHost(host="192.168.81.11")
    with SshPool([Node(name="ghost", host="192.168.81.12", port=2222)], _settings(sb_inventory, jump_host=jump)) as p:
        with pytest.raises(NodeUnreachable, match=r"ghost: unreachable: the jump host could not connect to 192.168.81.12:2222"):
            p.run("ghost", "true")


# ----- facts on the sandbox nodes --------------------------------------------------------------------------------


def test_facts_on_real_nodes(sb_pool: SshPool, sb_inventory: Inventory) -> None:
    binaries = [f"{sb_inventory.nccl_tests.bin_dir}/all_reduce_perf", "/no/such/binary"]
    facts = gather_facts(sb_pool, binaries=binaries)
    assert list(facts) == [n.name for n in sb_inventory.nodes]
    for node in sb_inventory.nodes:
        f = facts[node.name]
        assert isinstance(f, NodeFacts), f
        assert f.hostname == node.name
        assert f.host == node.host
        assert f.nics["eth0"] == 1500 and f.nic_state["eth0"] == "up"
        assert f.mpirun and f.mpirun.startswith("mpirun (Open MPI)")
        assert f.binaries == {binaries[0]: True, binaries[1]: False}
        v2 = f.gids[f.gids["index"] == 5].iloc[0]
        assert (v2["roce_version"], v2["ipv4"], v2["netdev"]) == ("v2", node.host, "eth0")
        # Same machine, same clock: the estimate is within the round trip.
        assert abs(f.clock_offset_s) <= f.probe_rtt_s / 2 + 0.001
    frame = facts_frame(facts)
    assert tuple(frame.columns[: len(NODE_COLUMNS)]) == NODE_COLUMNS
    assert list(frame["hostname"]) == [n.name for n in sb_inventory.nodes]


def test_facts_report_an_unreachable_node(sandbox: SandboxCluster, sb_inventory: Inventory) -> None:
    stop_sshd(sandbox, "node03")
    try:
        with SshPool.from_inventory(sb_inventory) as fresh:
            facts = gather_facts(fresh)
    finally:
        start_sshd(sandbox, "node03")
    assert isinstance(facts["node03"], NodeUnreachable)
    assert isinstance(facts["node01"], NodeFacts)
    assert list(facts_frame(facts)["node"]) == ["node01", "node02"]
