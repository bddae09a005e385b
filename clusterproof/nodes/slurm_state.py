"""Slurm's view of the nodes: ``scontrol show node`` / ``scontrol show partition`` / ``sinfo`` parsed into records.

Parsers are total: they take whatever text came back and either return records or raise
:class:`~clusterproof.errors.ParseError` naming what was wrong; they never invent a value. Both the one-line
(``-o``) and the multi-line form of ``scontrol show`` are read: a record starts at ``NodeName=`` (or
``PartitionName=``), fields are ``Key=Value`` separated by blanks, and ``Reason=`` runs to the end of its line
(reasons carry blanks and ``=``). ``State=`` is split into the base state and its flags
(``DOWN+NOT_RESPONDING`` -> ``DOWN`` + {NOT_RESPONDING}; the older ``DOWN*`` suffix means not responding too).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ClusterShell.NodeSet import NodeSet, NodeSetException

from clusterproof.errors import ParseError

_FIELD_RE = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z0-9_:/.]*)=")
_SUFFIX_FLAGS = {"*": "NOT_RESPONDING", "~": "POWERED_DOWN", "#": "POWERING_UP", "$": "MAINTENANCE", "@": "REBOOT_REQUESTED",
                 "%": "POWERING_DOWN", "!": "POWER_DOWN", "^": "PLANNED", "-": "PLANNED"}
#: Base states and flags that make a node unusable for a run.
BAD_BASE = frozenset({"DOWN", "FAIL", "FAILING", "ERROR", "UNKNOWN", "FUTURE", "INVAL"})
BAD_FLAGS = frozenset({"DRAIN", "DRAINED", "DRAINING", "NOT_RESPONDING", "FAIL", "INVALID_REG", "REBOOT_ISSUED"})
_GRES_ITEM_RE = re.compile(r"^([A-Za-z][A-Za-z0-9_-]*)(?::([A-Za-z0-9_.-]+))?:(\d+)(?:\(.*\))?$")


@dataclass(frozen=True)
class SlurmNode:
    """One node as slurmctld sees it. ``gres`` maps GRES name -> count summed over types (``gpu:a:7,gpu:b:1`` -> 8)."""

    name: str
    state: str
    base_state: str
    flags: frozenset[str]
    reason: str | None
    gres: tuple[str, ...]
    partitions: tuple[str, ...]
    version: str | None
    address: str | None

    @property
    def problem(self) -> str | None:
        """Why the node cannot take work (``None`` when it can)."""
        bad = sorted(self.flags & BAD_FLAGS) + ([self.base_state] if self.base_state in BAD_BASE else [])
        if not bad:
            return None
        what = "drained" if {"DRAIN", "DRAINED", "DRAINING"} & self.flags else "down" if self.base_state == "DOWN" else \
            "not responding" if "NOT_RESPONDING" in self.flags else self.base_state.lower()
        return f"Slurm state {self.state} ({what}), reason: {self.reason or 'none given'}"

    def gres_count(self, name: str, kind: str | None = None) -> int:
        total = 0
        for item in self.gres:
            m = _GRES_ITEM_RE.match(item)
            if m and m.group(1) == name and (kind is None or m.group(2) == kind):
                total += int(m.group(3))
        return total


@dataclass(frozen=True)
class SlurmPartition:
    name: str
    state: str
    nodes: tuple[str, ...]
    default: bool


def _records(text: str, key: str) -> list[dict[str, str]]:
    """``Key=Value`` records, each starting at ``<key>=``."""
    blocks: list[list[str]] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(f"{key}="):
            blocks.append([stripped])
        elif stripped and blocks and "=" in stripped:
            blocks[-1].append(stripped)
    return [_fields(block) for block in blocks]


def _fields(lines: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in lines:
        head, sep, reason = line.partition("Reason=") if re.search(r"(?:^|\s)Reason=", line) else (line, "", "")
        if sep and head and not head[-1].isspace():
            head, sep, reason = line, "", ""  # "...XReason=" is another key
        hits = list(_FIELD_RE.finditer(head))
        for i, m in enumerate(hits):
            end = hits[i + 1].start() if i + 1 < len(hits) else len(head)
            out[m.group(1)] = head[m.end():end].strip()
        if sep:
            out["Reason"] = reason.strip()
    return out


def _null(value: str | None) -> str | None:
    return None if value in (None, "", "(null)", "N/A", "none") else value


def split_state(state: str) -> tuple[str, frozenset[str]]:
    """``IDLE+DRAIN`` -> (``IDLE``, {``DRAIN``}); ``DOWN*`` -> (``DOWN``, {``NOT_RESPONDING``})."""
    parts = [p for p in state.upper().split("+") if p]
    if not parts:
        raise ParseError(f"empty node state {state!r}")
    base, flags = parts[0], set(parts[1:])
    while base and base[-1] in _SUFFIX_FLAGS:
        flags.add(_SUFFIX_FLAGS[base[-1]])
        base = base[:-1]
    if not re.fullmatch(r"[A-Z_]+", base) or not all(re.fullmatch(r"[A-Z_]+", f) for f in flags):
        raise ParseError(f"not a Slurm node state: {state!r}")
    return base, frozenset(flags)


def parse_nodes(text: str) -> dict[str, SlurmNode]:
    """``scontrol show node [-o]`` -> node name -> SlurmNode.

    Raises:
        ParseError: no ``NodeName=`` record, or a record without ``State=``, or an unreadable state.
    """
    records = _records(text, "NodeName")
    if not records:
        first = text.strip().splitlines()[0] if text.strip() else "(empty)"
        raise ParseError(f"no NodeName= record in the scontrol output (first line: {first[:200]!r})")
    out: dict[str, SlurmNode] = {}
    for rec in records:
        name = rec.get("NodeName", "").split()[0] if rec.get("NodeName", "").split() else ""
        if not name:
            raise ParseError("a NodeName= record without a name")
        if not rec.get("State"):
            raise ParseError(f"{name}: no State= in the scontrol record")
        base, flags = split_state(rec["State"].split()[0])
        gres = _null(rec.get("Gres"))
        out[name] = SlurmNode(
            name=name, state=rec["State"].split()[0], base_state=base, flags=flags, reason=_null(rec.get("Reason")),
            gres=tuple(g for g in re.split(r",(?![^(]*\))", gres) if g) if gres else (),
            partitions=tuple(p for p in (_null(rec.get("Partitions")) or "").split(",") if p),
            version=_null(rec.get("Version")), address=_null(rec.get("NodeAddr")),
        )
    return out


def parse_partitions(text: str) -> dict[str, SlurmPartition]:
    """``scontrol show partition [-o]`` -> partition name -> SlurmPartition. Raises ParseError as parse_nodes."""
    records = _records(text, "PartitionName")
    if not records:
        raise ParseError("no PartitionName= record in the scontrol output")
    out = {}
    for rec in records:
        name = rec.get("PartitionName", "").strip()
        if not name or "State" not in rec:
            raise ParseError(f"partition record {name!r} without a name or State=")
        out[name] = SlurmPartition(name=name, state=rec["State"], nodes=tuple(expand(_null(rec.get("Nodes")) or "")),
                                   default=rec.get("Default") == "YES")
    return out


def expand(hostlist: str) -> list[str]:
    """A Slurm hostlist, expanded with ClusterShell. Raises ParseError on bad syntax."""
    if not hostlist.strip():
        return []
    try:
        return list(NodeSet(hostlist.strip()))
    except NodeSetException as e:
        raise ParseError(f"not a hostlist: {hostlist!r} ({e})") from None


@dataclass(frozen=True)
class SinfoRow:
    partition: str
    default: bool
    avail: str
    nodes: tuple[str, ...]
    state: str


def parse_sinfo(text: str) -> list[SinfoRow]:
    """The default ``sinfo`` table (PARTITION AVAIL TIMELIMIT NODES STATE NODELIST), node lists expanded.

    Raises:
        ParseError: no header, a row with the wrong number of columns, or a NODES count that does not match its list.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or lines[0].split() != ["PARTITION", "AVAIL", "TIMELIMIT", "NODES", "STATE", "NODELIST"]:
        raise ParseError("not a default sinfo table (header PARTITION AVAIL TIMELIMIT NODES STATE NODELIST)")
    rows = []
    for i, line in enumerate(lines[1:], 2):
        cols = line.split()
        if len(cols) != 6 or not cols[3].isdigit():
            raise ParseError(f"sinfo line {i}: expected 6 columns, got {line!r}")
        names = expand(cols[5])
        if len(names) != int(cols[3]):
            raise ParseError(f"sinfo line {i}: NODES says {cols[3]} but {cols[5]} names {len(names)}")
        rows.append(SinfoRow(cols[0].rstrip("*"), cols[0].endswith("*"), cols[1], tuple(names), cols[4]))
    return rows


def parse_version(text: str) -> str:
    """``slurm-wlm 22.05.8`` / ``slurm 23.11.4`` (``scontrol version``, ``slurmd -V``) -> ``22.05.8``."""
    m = re.search(r"\bslurm(?:-wlm)?\s+(\d+\.\d+\.\d+\S*)", text)
    if not m:
        raise ParseError(f"no Slurm version in {text.strip()[:120]!r}")
    return m.group(1)
