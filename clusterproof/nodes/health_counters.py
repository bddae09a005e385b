"""IB/RoCE port counters read before and after a run (one round trip per node each time), for
:func:`clusterproof.nodes.health_checks_ib.check_counter_growth`.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from clusterproof.errors import ClusterproofError, ParseError
from clusterproof.nodes.facts import MARKER
from clusterproof.nodes.health import port_counters, split_sections
from clusterproof.nodes.health_command import ib_script
from clusterproof.nodes.health_sysfs import parse_ib

if TYPE_CHECKING:
    from clusterproof.nodes.ssh import SshPool


@dataclass
class CounterRead:
    """One read of every node's counters: ``snapshot`` node -> (hca, port) -> counter -> value text; ``raw`` the
    output of each node; ``errors`` node -> why its counters could not be read."""

    label: str
    snapshot: dict[str, dict[tuple[str, str], dict[str, str]]] = field(default_factory=dict)
    raw: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def parse_counter_output(node: str, text: str) -> dict[tuple[str, str], dict[str, str]]:
    """Raises ParseError (naming the node) when the output has no ``h.ib`` section or a garbage line."""
    sections = split_sections(text)
    if "h.ib" not in sections:
        raise ParseError(f"{node}: counter read has no 'h.ib' section (first line {text.strip().splitlines()[:1]!r})")
    try:
        return port_counters(parse_ib(sections["h.ib"]))
    except ParseError as e:
        raise ParseError(f"{node}: {e}") from None


def read_counters(pool: SshPool, label: str, nodes: Sequence[str] | None = None, sysfs_root: str = "/sys") -> CounterRead:
    """Read every port's counters on ``nodes`` in parallel; a node that fails is recorded in ``errors``."""
    command = shlex.join(["sh", "-c", ib_script(sysfs_root, MARKER)])
    out = CounterRead(label)

    def one(name: str) -> tuple[str, str | None, str | None]:
        try:
            res = pool.run(name, command)
            res.check()
        except ClusterproofError as e:
            return name, None, str(e)
        return name, res.stdout, None

    for name, value in pool.map_nodes(one, nodes).items():
        if isinstance(value, BaseException):
            out.errors[name] = str(value)
            continue
        _, text, err = value
        if err is not None or text is None:
            out.errors[name] = err or "no output"
            continue
        out.raw[name] = text
        try:
            out.snapshot[name] = parse_counter_output(name, text)
        except ParseError as e:
            out.errors[name] = str(e)
    return out
