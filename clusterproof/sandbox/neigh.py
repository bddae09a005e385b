"""The kernel's neighbour-table (ARP/NDP) limits, raised for N sandbox nodes and restored on ``down``.

Every network namespace shares one neighbour table per address family, with the limits of the initial
namespace: ``gc_thresh3`` (default 1024) is a hard cap, above ``gc_thresh2`` (512) entries are evicted after
5 s, below ``gc_thresh1`` (128) nothing is collected. An alltoall over 32 namespaces needs an entry for every
pair in every namespace plus the bridge's, about N^2 + N = 1056, so at the defaults entries are evicted
mid-run and channel opens stall for seconds. :func:`needed` leaves room for IPv6 link-local/ULA neighbours
and for another sandbox on the machine.
"""

from __future__ import annotations

import json
from pathlib import Path

_FAMILIES = ("ipv4", "ipv6")
_KNOBS = ("gc_thresh1", "gc_thresh2", "gc_thresh3")


def _path(family: str, knob: str, root: Path) -> Path:
    return root / "net" / family / "neigh" / "default" / knob


def needed(n_nodes: int) -> dict[str, int]:
    """The limits ``n_nodes`` need: thresh3 >= 4 (N^2 + N), thresh2 = thresh3 / 2, thresh1 = thresh3 / 8."""
    hard = max(1024, 4 * (n_nodes * n_nodes + n_nodes))
    return {"gc_thresh1": hard // 8, "gc_thresh2": hard // 2, "gc_thresh3": hard}


def raise_limits(n_nodes: int, saved_file: Path, root: Path = Path("/proc/sys")) -> list[str]:
    """Raise every limit below :func:`needed` (never lower one) and record the old values in ``saved_file``.

    Returns one line per change (empty: the limits were already high enough).
    """
    want = needed(n_nodes)
    saved: dict[str, int] = {}
    lines = []
    for family in _FAMILIES:
        # thresh3 first: the kernel refuses thresh2 > thresh3 on some versions
        for knob in reversed(_KNOBS):
            path = _path(family, knob, root)
            current = int(path.read_text())
            if current < want[knob]:
                saved[f"{family}/{knob}"] = current
                path.write_text(str(want[knob]))
                lines.append(f"{family} neighbour {knob}: {current} -> {want[knob]}")
    if saved:
        saved_file.write_text(json.dumps({"saved": saved, "set": want}))
    return lines


def restore_limits(saved_file: Path, root: Path = Path("/proc/sys")) -> list[str]:
    """Put back what :func:`raise_limits` changed, unless somebody changed a value again since. Returns lines."""
    if not saved_file.exists():
        return []
    doc = json.loads(saved_file.read_text())
    lines = []
    for key, old in doc["saved"].items():
        family, knob = key.split("/")
        path = _path(family, knob, root)
        if int(path.read_text()) == doc["set"][knob]:
            path.write_text(str(old))
            lines.append(f"{family} neighbour {knob} restored to {old}")
    # order: lower thresh1/2 before thresh3 is implied by the reversed raise order
    saved_file.unlink()
    return lines
