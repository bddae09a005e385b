"""Typed errors raised by the library. Suites and fixtures turn them into failures or skips."""

from __future__ import annotations

from collections.abc import Sequence


class ClusterproofError(Exception):
    """Base class of every error the library raises on purpose."""


class InventoryError(ClusterproofError):
    """The cluster file is broken. Carries one message per problem, each naming the file and field."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  {source}: {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} problem(s) in the cluster file {source}:\n{lines}")

    def __reduce__(self) -> tuple[type, tuple[str, list[str]]]:  # picklable (shared between xdist workers)
        return (type(self), (self.source, self.problems))


class ParseError(ClusterproofError):
    """A tool's output (nccl-tests log, GID table, NCCL debug file) could not be read."""


class GidError(ClusterproofError):
    """No usable RoCE GID, or the HCAs/nodes disagree on the index."""


class CommandFailed(ClusterproofError):
    """A remote or local command exited non-zero or timed out."""

    def __init__(self, host: str, command: str, rc: int | None, stderr: str = "", reason: str = "") -> None:
        self.host = host
        self.command = command
        self.rc = rc
        self.stderr = stderr
        self.reason = reason
        tail = "\n".join(stderr.splitlines()[-20:])
        what = reason or (f"exit code {rc}" if rc is not None else "no exit code")
        msg = f"{host}: command failed ({what}): {command}"
        if tail:
            msg += f"\n--- last stderr lines ---\n{tail}"
        super().__init__(msg)

    def __reduce__(self) -> tuple[type, tuple[str, str, int | None, str, str]]:
        return (type(self), (self.host, self.command, self.rc, self.stderr, self.reason))


class NodeUnreachable(ClusterproofError):
    """A node could not be reached over SSH (connect, host key or auth)."""

    def __init__(self, node: str, reason: str) -> None:
        self.node = node
        self.reason = reason
        super().__init__(f"{node}: unreachable: {reason}")

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        return (type(self), (self.node, self.reason))


class SandboxError(ClusterproofError):
    """The sandbox cluster or RGW could not be started, stopped or inspected."""
