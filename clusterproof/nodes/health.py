"""A node's health facts, parsed section by section from the facts output (see :mod:`health_command`).

:func:`parse_health` never raises for a bad section: each section is parsed on its own, and a section that is
missing or holds garbage becomes a :class:`SectionError` (its message and raw lines) that fails only the checks
that need it. The raw output is kept by the caller under ``reports/<run>/logs/`` (:func:`facts_log_path`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from clusterproof.errors import ParseError
from clusterproof.nodes.facts import MARKER
from clusterproof.nodes.health_gpu import GpuInfo as GpuInfo
from clusterproof.nodes.health_gpu import SmiFailed, SmiXml, parse_query_csv, parse_smi_xml
from clusterproof.nodes.health_nccl import NcclConfig, parse_nccl_section
from clusterproof.nodes.health_sysfs import (
    AcsBridge,
    IbPort,
    PcieLink,
    parse_ib,
    parse_lspci,
    parse_modules,
    parse_pcie,
)
from clusterproof.nodes.health_xid import KernelLogFailed, XidEvent, parse_kmsg_section

T = TypeVar("T")
FACTS_LOG_DIR = "logs/facts"


def facts_log_path(node: str) -> str:
    """Where a node's raw facts output is kept, relative to the run directory."""
    return f"{FACTS_LOG_DIR}/{node}.txt"


def keep_facts_logs(run_dir: Path, raw: Mapping[str, str], subdir: str = FACTS_LOG_DIR) -> dict[str, str]:
    """Write each node's raw output to ``<run_dir>/<subdir>/<node>.txt`` (secrets redacted); returns node ->
    path relative to the run directory."""
    from clusterproof.redact import redact

    out = {}
    folder = Path(run_dir) / subdir
    folder.mkdir(parents=True, exist_ok=True)
    for node, text in raw.items():
        (folder / f"{node}.txt").write_text(redact(text))
        out[node] = f"{subdir}/{node}.txt"
    return out


@dataclass(frozen=True)
class SectionError:
    """A health section that could not be used: why, and the lines it held (for the evidence)."""

    section: str
    message: str
    lines: tuple[str, ...] = ()


def split_sections(text: str) -> dict[str, list[str]]:
    """Every ``::clusterproof-facts NAME`` section of a facts output (name -> its lines); never raises."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith(MARKER + " "):
            current = sections.setdefault(line[len(MARKER) + 1 :].strip(), [])
        elif current is not None:
            current.append(line)
    return sections


@dataclass
class NodeHealth:
    """The parsed health sections of one node; each is its value or a :class:`SectionError`."""

    node: str
    gpu_csv: list[GpuInfo] | SmiFailed | None | SectionError
    gpu_xml: SmiXml | SmiFailed | None | SectionError
    xids: list[XidEvent] | KernelLogFailed | None | SectionError
    pcie: list[PcieLink] | SectionError
    ib: list[IbPort] | SectionError
    modules: set[str] | SectionError
    nccl: NcclConfig | SectionError
    lspci: list[AcsBridge] | str | None | SectionError
    evidence_path: str | None = None


def _section(sections: dict[str, list[str]], name: str, parse: Callable[[list[str]], T]) -> T | SectionError:
    if name not in sections:
        return SectionError(name, f"the facts output has no {name!r} section (cut off, or an older facts command)")
    lines = sections[name]
    try:
        return parse(lines)
    except ParseError as e:
        return SectionError(name, str(e), tuple(lines[:20]))
    except (ValueError, IndexError) as e:  # a parser bug must not take the node's other checks down
        return SectionError(name, f"{type(e).__name__}: {e}", tuple(lines[:20]))


def parse_health(node: str, text: str, evidence_path: str | None = None) -> NodeHealth:
    """Parse every health section of ``text`` (the facts output of ``node``); never raises."""
    s = split_sections(text)
    return NodeHealth(
        node=node,
        gpu_csv=_section(s, "h.gpu_csv", parse_query_csv),
        gpu_xml=_section(s, "h.gpu_xml", parse_smi_xml),
        xids=_section(s, "h.kmsg", parse_kmsg_section),
        pcie=_section(s, "h.pcie", parse_pcie),
        ib=_section(s, "h.ib", parse_ib),
        modules=_section(s, "h.modules", parse_modules),
        nccl=_section(s, "h.nccl", parse_nccl_section),
        lspci=_section(s, "h.lspci", parse_lspci),
        evidence_path=evidence_path,
    )


def port_counters(ports: list[IbPort]) -> dict[tuple[str, str], dict[str, Any]]:
    """(hca, port) -> counter name -> value text, for a before/after comparison."""
    return {(p.hca, p.port): dict(p.counters) for p in ports}
