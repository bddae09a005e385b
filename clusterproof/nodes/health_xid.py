"""XIDs from the kernel log, with their meaning from NVIDIA's XID catalogue.

The table is a copy of the meanings in NVIDIA's "XID Errors" document (docs.nvidia.com/deploy/xid-errors,
the catalogue of the R535-R570 drivers); ``fatal`` marks the codes that document (and the drain rules of Azure
NHC and gpud) treat as needing a GPU reset, a node drain or an RMA. Which codes fail a node is the inventory's
``health.fatal_xids``; the table only explains them.

Kernel lines look like ``[ 8659.726062] NVRM: Xid (PCI:0000:01:00): 79, GPU has fallen off the bus.`` (also
with ``pid=...``, without ``PCI:``, or behind a syslog prefix).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from clusterproof.errors import ParseError
from clusterproof.nodes.health_gpu import split_rc

#: code -> (meaning, fatal in NVIDIA's catalogue)
XID_TABLE: dict[int, tuple[str, bool]] = {
    8: ("GPU stopped processing (timeout)", False),
    13: ("Graphics engine exception (usually an application fault)", False),
    31: ("GPU memory page fault (usually an application fault)", False),
    32: ("Invalid or corrupted push buffer stream", False),
    38: ("Driver firmware error", False),
    43: ("GPU stopped processing (application fault)", False),
    45: ("Preemptive cleanup, due to previous errors", False),
    48: ("Double-bit ECC error (DBE)", True),
    56: ("Display engine error", False),
    57: ("Error programming video memory interface", False),
    58: ("Unstable video memory interface detected", False),
    61: ("Internal micro-controller breakpoint/warning", False),
    62: ("Internal micro-controller halt", True),
    63: ("ECC page retirement or row remapping recording event", True),
    64: ("ECC page retirement or row remapper recording failure", True),
    65: ("Video processor exception", False),
    68: ("NVDEC0 exception", False),
    69: ("Graphics engine class error", False),
    74: ("NVLink error", True),
    79: ("GPU has fallen off the bus", True),
    92: ("High single-bit ECC error rate", True),
    94: ("Contained ECC error (application must restart)", True),
    95: ("Uncontained ECC error (GPU reset required)", True),
    109: ("Context switch timeout error", False),
    119: ("GSP RPC timeout", True),
    120: ("GSP error", True),
    121: ("C2C link corrected error", False),
    122: ("SPI PMU RPC read failure", False),
    123: ("SPI PMU RPC write failure", True),
    136: ("Link training failed", True),
    140: ("Unrecovered ECC error", True),
    143: ("GPU initialization failure", True),
    154: ("GPU recovery action changed", False),
}

_XID_RE = re.compile(r"NVRM: Xid \((?:PCI:)?(?P<pci>[0-9A-Fa-f:.]+)\): (?P<code>\d+),(?P<rest>.*)$")


@dataclass(frozen=True)
class XidEvent:
    code: int
    pci: str
    line: str

    @property
    def meaning(self) -> str:
        return XID_TABLE.get(self.code, ("not in the XID catalogue of this version", False))[0]

    @property
    def catalogue_fatal(self) -> bool:
        return XID_TABLE.get(self.code, ("", False))[1]


@dataclass(frozen=True)
class KernelLogFailed:
    """The kernel log could not be read (``dmesg: read kernel buffer failed: Operation not permitted``)."""

    source: str
    exit_code: int
    output: str


def parse_xid_lines(lines: list[str]) -> list[XidEvent]:
    """Every XID in ``lines`` (other lines are ignored)."""
    out = []
    for ln in lines:
        m = _XID_RE.search(ln)
        if m:
            out.append(XidEvent(int(m.group("code")), m.group("pci").lower(), ln.strip()))
    return out


def parse_kmsg_section(lines: list[str]) -> list[XidEvent] | KernelLogFailed | None:
    """The ``h.kmsg`` section -> the XIDs; KernelLogFailed when dmesg/journalctl failed; None when neither exists.

    Raises:
        ParseError: the section is cut off (no exit code or source line).
    """
    body = [ln for ln in lines if ln.strip()]
    if body == ["absent"]:
        return None
    if not body or not body[-1].startswith("src "):
        raise ParseError(f"kernel log: section ends without its source line (cut off?); last line {body[-1:]!r}")
    source = body.pop()[4:].strip()
    rc_lines = [ln for ln in body if re.fullmatch(r"rc \d+", ln.strip())]
    if len(rc_lines) != 1:
        raise ParseError(f"kernel log ({source}): expected one exit-code line, got {len(rc_lines)}")
    rest = [ln for ln in body if ln not in rc_lines]
    _, code = split_rc(["rc " + rc_lines[0].strip()[3:]], source)
    errors = [ln for ln in rest if "NVRM: Xid" not in ln]
    if code:
        return KernelLogFailed(source, int(code), "\n".join(errors).strip() or f"{source} exited {code}")
    return parse_xid_lines(rest)
