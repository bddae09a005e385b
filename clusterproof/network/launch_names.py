"""Launcher messages in node names: mpirun/ORTE and srun name hosts by the address they were given (or by the
name the *launching* node resolved), so every address of an inventory node is annotated with its name, and
the down-node check says which nodes of a set could not take part before anything is launched.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from clusterproof.inventory import Node

_ADDRESS = re.compile(r"(?<![\w.:])(\d{1,3}(?:\.\d{1,3}){3})(?![\w.])")


def name_addresses(text: str, nodes: Sequence[Node]) -> str:
    """``text`` with every inventory address followed by its node name: ``192.168.77.13`` -> ``192.168.77.13 (node03)``.

    Addresses that are node names already, and addresses of no inventory node, are left as they are.
    """
    by_host = {n.host: n.name for n in nodes if n.host != n.name}
    if not by_host:
        return text

    def label(m: re.Match[str]) -> str:
        name = by_host.get(m.group(1))
        return f"{m.group(1)} ({name})" if name else m.group(1)

    return _ADDRESS.sub(label, text)


def down_members(members: Sequence[str], down: Mapping[str, str]) -> list[str]:
    """One line per member of a node set that is already known to be down (``down``: node -> why)."""
    return [f"{name}: {down[name]}" if not down[name].startswith(f"{name}:") else down[name] for name in members if name in down]
