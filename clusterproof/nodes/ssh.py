"""SSH to the cluster nodes: one paramiko connection per node, opened lazily, reused, and fanned out in parallel.

Opening a connection (credentials, host keys, authentication, jump host) is :mod:`clusterproof.nodes.ssh_connect`.

What this module guarantees:

- **Strict host keys** (``ssh.strict_host_keys: true``): the server's key must be in the inventory's
  ``known_hosts`` (plain, ``[host]:port`` and hashed entries), otherwise the node is refused, like
  ``paramiko.RejectPolicy`` / OpenSSH ``StrictHostKeyChecking yes``. Keys are never added to any file.
  The file is parsed once and shared by every connection (the parse is per line and per client, so giving
  each client its own copy costs O(N^2) CPU over a cluster). With ``strict_host_keys: false`` an unknown key
  is accepted with a warning and recorded in :attr:`SshPool.unverified_hosts`: that is INSECURE (anybody on
  the path can impersonate the node) and only meant for throw-away test set-ups. A key that *differs* from a
  known_hosts entry is refused in both modes.
- **Low latency.** paramiko never sets ``TCP_NODELAY``, and the server's channel-open confirmation sits behind
  the client's delayed ACK; each costs a ~40 ms stall per connection. Every socket gets ``TCP_NODELAY`` and
  ``TCP_QUICKACK`` re-armed around every ``recv`` (Linux; the kernel clears QUICKACK after it fires).
  The private key is loaded once; the agent and ``~/.ssh`` are not probed unless asked for.
- **Timeouts do not stop remote processes.** When :meth:`SshPool.run` times out it closes the channel and
  returns ``timed_out=True, rc=None``. OpenSSH does not signal a process whose channel closes (no pty), so a
  remote ``mpirun`` keeps running and holding its resources: the caller must kill it explicitly (by process
  group or pid file), never with a broad ``pkill -f``.
- **Environment** passed to :meth:`SshPool.run` is rendered as ``export NAME='value';`` in front of the
  command, because sshd silently drops ``env`` requests for names outside its ``AcceptEnv``. Values therefore
  appear in the remote process list while the command runs; they never appear in logs or in
  :class:`CommandResult` (which holds the command without them).
- **Every step has a deadline, and fan-out never raises a node's failure.** TCP connect, SSH banner, key
  exchange, host-key check, authentication and channel open each wait at most ``ssh.connect_timeout_s``; the
  ``exec`` request waits at most the command's timeout (a watchdog closes the channel). Whatever goes wrong
  becomes that node's :class:`NodeUnreachable` naming the node and the step (and the jump host, when that is
  what hangs). A node that failed to connect is remembered (:attr:`SshPool.down_nodes`) and not retried for
  :data:`DOWN_RETRY_S`, so a hung node costs one deadline per run, not one per test; a jump host that failed is
  remembered the same way, so 32 nodes behind a hung bastion do not wait 32 deadlines in turn.
"""

from __future__ import annotations

import io
import logging
import os
import shlex
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import IO, TypeVar

import paramiko

from clusterproof.errors import CommandFailed, InventoryError, NodeUnreachable
from clusterproof.fields import ENV_NAME_RE
from clusterproof.inventory import Inventory, JumpHost, Node, SshSettings
from clusterproof.nodes.ssh_connect import Connector
from clusterproof.nodes.ssh_exec import TRANSPORT_ERRORS, CommandResult, ExecHung, execute
from clusterproof.redact import redact

log = logging.getLogger(__name__)

T = TypeVar("T")

#: A node (or jump host) whose connection failed is not retried for this many seconds: its failure is repeated.
DOWN_RETRY_S = 60.0


def render_command(command: str | Sequence[str]) -> str:
    """A shell command line: a str is used as is (it is shell code), a list is quoted with ``shlex.join``.

    Raises:
        ValueError: the command is empty.
    """
    text = command if isinstance(command, str) else shlex.join(command)
    if not text.strip():
        raise ValueError("empty command")
    return text


def _with_env(command: str, env: Mapping[str, str] | None) -> str:
    if not env:
        return command
    bad = [k for k in env if not ENV_NAME_RE.match(k)]
    if bad:
        raise ValueError(f"not environment variable names: {', '.join(map(repr, bad))}")
    assignments = " ".join(f"{k}={shlex.quote(str(v))}" for k, v in env.items())
    return f"export {assignments}; {command}"


class SshPool:
    """One SSH connection per node, opened on first use, reused by every call, safe to share between threads.

    Build it with :meth:`from_inventory` (or from nodes and :class:`SshSettings`) and close it with
    :meth:`close` or a ``with`` block. Connection problems raise :class:`NodeUnreachable` with the reason;
    fan-out methods return them per node instead of raising.
    """

    def __init__(self, nodes: Sequence[Node], settings: SshSettings) -> None:
        if settings.strict_host_keys and settings.known_hosts is None:
            raise InventoryError("ssh settings", ["ssh.known_hosts: missing (strict_host_keys is true)"])
        self.settings = settings
        self._nodes: dict[str, Node] = {n.name: n for n in nodes}
        self._node_locks = {name: threading.Lock() for name in self._nodes}
        self._transports: dict[str, paramiko.Transport] = {}
        self._connector = Connector(settings)
        self._jump_lock = threading.Lock()
        self._jump: paramiko.Transport | None = None
        self._jump_failure: tuple[float, NodeUnreachable] | None = None
        self._down: dict[str, tuple[float, NodeUnreachable]] = {}

    @classmethod
    def from_inventory(cls, inventory: Inventory) -> SshPool:
        """A pool for every node of ``inventory`` with its ``ssh`` settings."""
        return cls(inventory.nodes, inventory.ssh)

    @property
    def down_nodes(self) -> dict[str, str]:
        """node name -> why its last connection attempt failed (cleared when it connects again), inventory order."""
        return {name: str(self._down[name][1]) for name in self._nodes if name in self._down}

    def forget_down(self, name: str | None = None) -> None:
        """Retry ``name`` (every node when None) on next use instead of repeating its remembered failure."""
        if name is None:
            self._down.clear()
            self._jump_failure = None
        else:
            self._down.pop(name, None)

    @property
    def unverified_hosts(self) -> list[str]:
        """``host`` or ``[host]:port`` of every server whose key was accepted unverified (non-strict mode)."""
        return list(self._connector.unverified_hosts)

    # ----- node names -------------------------------------------------------------------------------------

    @property
    def node_names(self) -> list[str]:
        """Node names in inventory order."""
        return list(self._nodes)

    def node(self, name: str) -> Node:
        """The inventory entry of node ``name``.

        Raises:
            KeyError: no such node (the message lists the known ones).
        """
        try:
            return self._nodes[name]
        except KeyError:
            raise KeyError(f"unknown node {name!r} (known: {', '.join(self._nodes)})") from None

    def _select(self, nodes: Sequence[str] | None) -> list[str]:
        if nodes is None:
            return list(self._nodes)
        if isinstance(nodes, str):
            raise TypeError("nodes must be a list of node names, not a str")
        for name in nodes:
            self.node(name)
        wanted = set(nodes)
        return [n for n in self._nodes if n in wanted]

    def _jump_transport(self) -> paramiko.Transport:
        jump = self.settings.jump_host
        assert jump is not None
        with self._jump_lock:
            if self._jump is not None and self._jump.is_active():
                return self._jump
            if self._jump is not None:
                self._jump.close()
                self._jump = None
            if self._jump_failure is not None and time.monotonic() - self._jump_failure[0] < DOWN_RETRY_S:
                raise self._jump_failure[1]
            label = f"jump host {jump.host}:{jump.port}"
            try:
                self._jump = self._connector.open(label, jump.host, jump.port, jump.user or self.settings.user, None)
            except NodeUnreachable as e:
                self._jump_failure = (time.monotonic(), e)
                raise
            self._jump_failure = None
            return self._jump

    def _connect(self, name: str) -> paramiko.Transport:
        node = self.node(name)
        via = None
        jump: JumpHost | None = self.settings.jump_host
        if jump is not None:
            try:
                via = self._jump_transport()
            except NodeUnreachable as e:
                raise NodeUnreachable(name, f"via {e.node}: {e.reason}") from None
        t0 = time.perf_counter()
        transport = self._connector.open(name, node.host, node.port, node.user, via)
        log.debug("%s: connected to %s@%s:%s in %.0f ms", name, node.user, node.host, node.port, 1000 * (time.perf_counter() - t0))
        return transport

    def _transport(self, name: str) -> paramiko.Transport:
        """The node's live transport, connecting (or reconnecting a dead one) first."""
        self.node(name)  # a KeyError naming the known nodes for a typo
        with self._node_locks[name]:
            transport = self._transports.get(name)
            if transport is not None and transport.is_active():
                return transport
            if transport is not None:
                transport.close()
                del self._transports[name]
            down = self._down.get(name)
            if down is not None and time.monotonic() - down[0] < DOWN_RETRY_S:
                raise down[1]
            try:
                transport = self._connect(name)
            except NodeUnreachable as e:
                self._down[name] = (time.monotonic(), e)
                raise
            self._down.pop(name, None)
            self._transports[name] = transport
            return transport

    def _open_session(self, name: str) -> paramiko.Channel:
        """A new session channel; reconnects once when the cached transport turns out to be dead."""
        for attempt in (1, 2):
            transport = self._transport(name)
            limit = self.settings.connect_timeout_s
            try:
                return transport.open_session(timeout=limit)
            except (paramiko.SSHException, EOFError, OSError) as e:
                if transport.is_active() and "Timeout" in str(e):
                    raise NodeUnreachable(name, f"timed out after {limit:g}s opening a session channel (step: channel open)") from None
                if transport.is_active():
                    raise NodeUnreachable(name, f"the server refused a new session (step: channel open): {e}") from None
                if attempt == 2:
                    raise NodeUnreachable(name, f"connection lost and could not be re-opened: {e}") from None
                log.debug("%s: connection died (%s); reconnecting", name, e)
        raise AssertionError("unreachable")

    def connect(self, node: str) -> None:
        """Open the connection to ``node`` now (it is reused afterwards); a live one is kept.

        Raises:
            NodeUnreachable: with the reason. KeyError: unknown node.
        """
        self._transport(node)

    def connect_all(self, nodes: Sequence[str] | None = None) -> dict[str, Exception | None]:
        """Open (or check) the connection to every node in parallel.

        Returns:
            node name -> None when connected, or the :class:`NodeUnreachable` saying why not; inventory order.
        """
        results = self.map_nodes(self._transport, nodes)
        return {name: (r if isinstance(r, Exception) else None) for name, r in results.items()}

    # ----- running commands -------------------------------------------------------------------------------

    def run(
        self,
        node: str,
        command: str | Sequence[str],
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        stdin: str | None = None,
    ) -> CommandResult:
        """Run one command on one node over its (reused) connection.

        Args:
            command: shell code (str, used as is) or an argv list (quoted with ``shlex.join``).
            timeout: seconds; None means the inventory's ``ssh.command_timeout_s``. On expiry the channel is
                closed and the result has ``timed_out=True, rc=None``; the remote process is NOT stopped.
            env: variables exported for this command only (see the module notes; never logged).
            stdin: text fed to the command's standard input, which is closed afterwards (also when None).

        Raises:
            NodeUnreachable: the node could not be connected to (the reason says why).
            KeyError: unknown node name. ValueError: empty command or bad variable name.
        """
        text = render_command(command)
        wire = _with_env(text, env)
        limit = self.settings.command_timeout_s if timeout is None else timeout
        if limit <= 0:
            raise ValueError(f"timeout must be > 0, got {limit}")
        log.debug("%s: run %s%s", node, redact(text), f" [env: {', '.join(env)}]" if env else "")
        chan = self._open_session(node)
        try:
            return execute(node, chan, text, wire, limit, stdin)
        except ExecHung:
            raise NodeUnreachable(node, f"timed out after {limit:g}s waiting for the server to start the command (step: command)") from None
        except (paramiko.SSHException, EOFError, OSError) as e:
            raise NodeUnreachable(node, f"connection lost while running a command (step: command): {e or type(e).__name__}") from None
        finally:
            chan.close()

    def run_all(
        self, command: str | Sequence[str], nodes: Sequence[str] | None = None, timeout: float | None = None
    ) -> dict[str, CommandResult | NodeUnreachable]:
        """Run the same command on many nodes in parallel (``ssh.max_parallel`` at a time).

        Never stops at the first failure. Returns node name -> result, or the :class:`NodeUnreachable` of a
        node that could not be reached, in inventory order.
        """
        render_command(command)  # a bad command is the caller's error, not 32 per-node ones
        return self.map_nodes(lambda name: self.run(name, command, timeout=timeout), nodes)

    def map_nodes(self, fn: Callable[[str], T], nodes: Sequence[str] | None = None) -> dict[str, T | NodeUnreachable]:
        """Call ``fn(node_name)`` for every node in parallel; a node's failure becomes that node's value.

        A :class:`NodeUnreachable` is kept as it is; a paramiko/socket error that escaped ``fn`` (a connection
        that broke in the middle of an SFTP transfer, say) becomes a :class:`NodeUnreachable` naming the node.
        Only programming errors (anything else) are re-raised, once every call has finished, so one node can
        never void the others' results. Returns results in inventory order.
        """
        names = self._select(nodes)
        results: dict[str, T | NodeUnreachable] = {}

        def call(name: str) -> T | NodeUnreachable:
            try:
                return fn(name)
            except NodeUnreachable as e:
                return e
            except TRANSPORT_ERRORS as e:
                log.debug("%s: %s escaped a fan-out call", name, type(e).__name__)
                return NodeUnreachable(name, f"connection failed mid-operation: {type(e).__name__}: {e}")

        if len(names) <= 1:
            return {name: call(name) for name in names}
        width = max(1, min(self.settings.max_parallel, len(names)))
        with ThreadPoolExecutor(max_workers=width, thread_name_prefix="clusterproof-ssh") as pool:
            futures = {name: pool.submit(call, name) for name in names}
            errors: list[BaseException] = []
            for name, fut in futures.items():
                exc = fut.exception()
                if exc is not None:
                    errors.append(exc)
                else:
                    results[name] = fut.result()
        if errors:
            raise errors[0]
        return results

    # ----- files ------------------------------------------------------------------------------------------

    def _sftp(self, node: str) -> paramiko.SFTPClient:
        for attempt in (1, 2):
            transport = self._transport(node)
            try:
                sftp = paramiko.SFTPClient.from_transport(transport)
            except (paramiko.SSHException, EOFError, OSError) as e:
                if transport.is_active() or attempt == 2:
                    raise NodeUnreachable(node, f"cannot start SFTP: {e}") from None
                continue
            if sftp is None:
                raise NodeUnreachable(node, "cannot start SFTP (the server refused the channel)")
            return sftp
        raise AssertionError("unreachable")

    def put(self, node: str, source: str | os.PathLike[str] | bytes, remote_path: str) -> None:
        """Copy a local file (path) or ``bytes`` to ``remote_path`` on ``node`` over SFTP.

        Raises:
            FileNotFoundError/PermissionError: the local file cannot be read.
            CommandFailed: the remote side refused (e.g. missing directory, permissions).
            NodeUnreachable: connection problems.
        """
        # Open the local file before connecting: a wrong local path is the caller's error, not the node's.
        stream: IO[bytes] = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")
        with stream:
            sftp = self._sftp(node)
            try:
                sftp.putfo(stream, remote_path)
            except OSError as e:
                raise CommandFailed(node, f"sftp put {remote_path}", None, reason=str(e.strerror or e)) from None
            finally:
                sftp.close()

    def get(self, node: str, remote_path: str) -> bytes:
        """The contents of ``remote_path`` on ``node`` (SFTP).

        Raises:
            CommandFailed: the file is missing or unreadable. NodeUnreachable: connection problems.
        """
        sftp = self._sftp(node)
        buf = io.BytesIO()
        try:
            sftp.getfo(remote_path, buf)
        except OSError as e:
            raise CommandFailed(node, f"sftp get {remote_path}", None, reason=str(e.strerror or e)) from None
        finally:
            sftp.close()
        return buf.getvalue()

    # ----- lifetime ---------------------------------------------------------------------------------------

    def is_connected(self, node: str) -> bool:
        """True when ``node`` has an open connection right now."""
        transport = self._transports.get(node)
        return transport is not None and transport.is_active()

    def close(self) -> None:
        """Close every connection (the pool can still be used afterwards; it reconnects lazily)."""
        for name in list(self._transports):
            with self._node_locks[name]:
                transport = self._transports.pop(name, None)
                if transport is not None:
                    transport.close()
        with self._jump_lock:
            if self._jump is not None:
                self._jump.close()
                self._jump = None

    def __enter__(self) -> SshPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


