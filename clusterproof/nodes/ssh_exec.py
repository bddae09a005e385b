"""Running one command on an open SSH channel: the exec request, stdin, and stdout/stderr up to a deadline.

Used by :class:`clusterproof.nodes.ssh.SshPool`; see that module for the guarantees.
"""

from __future__ import annotations

import logging
import select
import threading
import time
from dataclasses import dataclass

import paramiko

from clusterproof.errors import CommandFailed
from clusterproof.redact import redact

log = logging.getLogger("clusterproof.nodes.ssh")

#: stdin larger than this is sent from a helper thread, so that a command that writes a lot before reading
#: its input cannot dead-lock against us (both SSH windows full).
_INLINE_STDIN_BYTES = 256 * 1024
_READ_CHUNK = 65536
#: What paramiko and the socket layer raise when a connection breaks or a step times out.
TRANSPORT_ERRORS = (paramiko.SSHException, EOFError, OSError)


def execute(node: str, chan: paramiko.Channel, text: str, wire: str, limit: float, stdin: str | None) -> CommandResult:
    """Send ``wire`` on ``chan`` and collect stdout, stderr and the exit code until ``limit`` seconds."""
    sent_at = time.time()
    t0 = time.perf_counter()
    deadline = t0 + limit
    _exec_with_deadline(chan, wire, limit)
    feeder = _send_stdin(chan, stdin)
    out: list[bytes] = []
    err: list[bytes] = []
    timed_out = not _drain(chan, out, err, deadline)
    if not timed_out:
        timed_out = not chan.status_event.wait(max(0.0, deadline - time.perf_counter()))
    seconds = time.perf_counter() - t0
    if feeder is not None:
        feeder.join(timeout=0)
    rc: int | None = None
    if timed_out:
        log.debug("%s: timed out after %.1fs: %s", node, seconds, redact(text))
    else:
        status = chan.recv_exit_status()
        rc = None if status == -1 else status  # -1: no exit-status (killed by a signal)
    return CommandResult(
        host=node,
        command=text,
        rc=rc,
        stdout=b"".join(out).decode("utf-8", errors="replace"),
        stderr=b"".join(err).decode("utf-8", errors="replace"),
        seconds=seconds,
        timed_out=timed_out,
        sent_at=sent_at,
    )


@dataclass(frozen=True)
class CommandResult:
    """What one command did on one node.

    ``seconds`` is the time from sending the command on an open connection to its exit (connecting is not
    included); ``sent_at`` is the local wall clock (``time.time()``) when it was sent, so
    ``sent_at + seconds`` is when the answer was complete. ``rc`` is None when the command timed out or was
    killed by a signal (no exit code).
    """

    host: str
    command: str
    rc: int | None
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False
    sent_at: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the command exited 0 within its timeout."""
        return self.rc == 0 and not self.timed_out

    def check(self) -> CommandResult:
        """Return self when :attr:`ok`.

        Raises:
            CommandFailed: naming the node, the quoted command, the exit code and the last 20 stderr lines.
        """
        if self.ok:
            return self
        reason = f"timed out after {self.seconds:.1f}s" if self.timed_out else ""
        raise CommandFailed(self.host, redact(self.command), self.rc, redact(self.stderr), reason=reason)


class ExecHung(Exception):
    """The server never answered the ``exec`` request within the command's deadline."""


def _exec_with_deadline(chan: paramiko.Channel, wire: str, limit: float) -> None:
    """``chan.exec_command(wire)``, which waits for the server's reply without a deadline: a watchdog closes
    the channel after ``limit`` seconds, which wakes the wait up."""
    fired = threading.Event()

    def expire() -> None:
        fired.set()
        try:
            chan.close()
        except TRANSPORT_ERRORS:
            pass

    watchdog = threading.Timer(limit, expire)
    watchdog.daemon = True
    watchdog.start()
    try:
        chan.exec_command(wire)
    except TRANSPORT_ERRORS:
        if fired.is_set():
            raise ExecHung() from None
        raise
    finally:
        watchdog.cancel()


def _send_stdin(chan: paramiko.Channel, stdin: str | None) -> threading.Thread | None:
    data = stdin.encode() if stdin else b""
    if len(data) <= _INLINE_STDIN_BYTES:
        if data:
            chan.sendall(data)
        chan.shutdown_write()
        return None

    def feed() -> None:
        try:
            chan.sendall(data)
            chan.shutdown_write()
        except (OSError, EOFError, paramiko.SSHException):  # the command exited or timed out first
            pass

    thread = threading.Thread(target=feed, name="clusterproof-ssh-stdin", daemon=True)
    thread.start()
    return thread


def _drain(chan: paramiko.Channel, out: list[bytes], err: list[bytes], deadline: float) -> bool:
    """Read stdout and stderr until the server's EOF; False when the deadline passed first.

    ``chan.fileno()`` is a pipe paramiko makes readable whenever either stream has data or the channel
    ends, so one ``select`` waits for both streams without polling.
    """
    fd = chan.fileno()
    while True:
        while chan.recv_ready():
            out.append(chan.recv(_READ_CHUNK))
        while chan.recv_stderr_ready():
            err.append(chan.recv_stderr(_READ_CHUNK))
        if chan.eof_received or chan.closed:
            # EOF means both buffers are closed; read what arrived together with it
            while chunk := chan.recv(_READ_CHUNK):
                out.append(chunk)
            while chunk := chan.recv_stderr(_READ_CHUNK):
                err.append(chunk)
            return True
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            return False
        select.select([fd], [], [], remaining)
