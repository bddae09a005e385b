"""The sandbox's state: its nodes and paths (:class:`SandboxCluster`), kept in ``<state_dir>/state.json``."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from clusterproof.errors import SandboxError

STATE_FILE = "state.json"


@dataclass
class SandboxNode:
    name: str
    ip: str
    netns: str
    sshd_pid: int
    state_dir: Path
    veth: str = ""  # host side of the node's veth pair (where faults put tc)
    holder_pid: int = 0  # keeps the node's UTS + mount namespaces alive while its sshd is stopped
    ip1: str = ""  # the node's eth1 address on the second rail ("" without one)
    veth1: str = ""  # host side of the node's rail-1 veth pair


@dataclass
class SandboxCluster:
    state_dir: Path
    nodes: list[SandboxNode]
    inventory_path: Path
    bin_dir: Path
    key_file: Path
    known_hosts: Path
    ssh_config: Path
    bridge: str
    subnet: str
    prefix: str = "cp_"
    rail1_subnet: str = ""  # the second rail's /24 ("" without one)
    bridge1: str = ""
    timings_s: dict[str, float] = field(default_factory=dict)  # seconds per step of `up`

    @property
    def rails(self) -> int:
        return 2 if self.rail1_subnet else 1

    def node(self, name: str) -> SandboxNode:
        """The node called ``name``. Raises SandboxError naming the nodes that exist."""
        for n in self.nodes:
            if n.name == name:
                return n
        raise SandboxError(f"sandbox {self.state_dir}: no node {name!r} (nodes: {', '.join(n.name for n in self.nodes)})")

    def to_json(self) -> str:
        """The cluster as JSON text (paths as strings), as stored in ``state.json``."""
        return json.dumps(asdict(self), default=str, indent=2)

    @classmethod
    def from_state(cls, state_dir: Path | str) -> SandboxCluster:
        """Read the cluster back from ``<state_dir>/state.json``.

        Raises:
            SandboxError: there is no sandbox in ``state_dir``, or its state file is unreadable.
        """
        raw = read_state(Path(state_dir))
        if raw is None:
            raise SandboxError(f"no sandbox in {state_dir} (no {STATE_FILE}): run `clusterproof sandbox up`")
        try:
            members = [SandboxNode(**{**n, "state_dir": Path(n["state_dir"])}) for n in raw["nodes"]]
            paths = {k: Path(raw[k]) for k in ("state_dir", "inventory_path", "bin_dir", "key_file", "known_hosts", "ssh_config")}
            return cls(nodes=members, bridge=raw["bridge"], subnet=raw["subnet"], prefix=raw["prefix"],
                       rail1_subnet=raw.get("rail1_subnet", ""), bridge1=raw.get("bridge1", ""),
                       timings_s=raw.get("timings_s", {}), **paths)
        except (KeyError, TypeError) as e:
            raise SandboxError(f"{Path(state_dir) / STATE_FILE}: not a sandbox state file ({e!r})") from None


def read_state(state_dir: Path) -> dict[str, Any] | None:
    """The parsed state file, or None when there is none. Raises SandboxError when it is not JSON."""
    path = state_dir / STATE_FILE
    try:
        raw: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise SandboxError(f"{path}: cannot read the sandbox state: {e}") from None
    return raw


def write_state(cluster: SandboxCluster, status: str = "up") -> None:
    """Write ``state.json`` atomically (a crash leaves the old or the new file, never half of one)."""
    data = {"status": status, **json.loads(cluster.to_json())}
    tmp = cluster.state_dir / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, cluster.state_dir / STATE_FILE)


def require_root() -> None:
    """Raises SandboxError unless this process is root."""
    if os.geteuid() != 0:
        raise SandboxError("the sandbox needs root (network namespaces, sshd per node): run as root")
