"""Line rate: a multi-node bus bandwidth as a fraction of what the fabric's ports can carry, so "busbw 360 GB/s"
reads as "90% of 8x400G".

The line rate of a node is the sum of its active ports' rates (IB ``rate`` in Gb/s); the fabric's is the
slowest node's, over 8 bits per byte: a multi-node collective moves at most what the smallest node can send.
Pure: ``{node: [port rates in Gb/s]}`` in (from the facts), fractions and findings out. ``parse_port_rates``
reads the sysfs dump of :func:`port_rates_command`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from clusterproof.errors import ParseError
from clusterproof.findings import Criterion, Finding, Subject, failed, not_tested, passed
from clusterproof.units import human_size

_RATE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*Gb/sec")


@dataclass(frozen=True)
class LineRate:
    """The fabric's line rate: ``gbs`` in GB/s (bytes), ``label`` like ``8x400G``; ``node`` the slowest node."""

    gbs: float
    label: str
    node: str
    gpus_per_node: int | None = None
    standin: bool = False

    def describe(self) -> str:
        gpus = f" for {self.gpus_per_node} GPUs" if self.gpus_per_node else ""
        return f"{self.label}{gpus} ({self.gbs:g} GB/s{', sandbox stand-in facts' if self.standin else ''})"


def port_label(rates_gbps: Sequence[float]) -> str:
    """``[400, 400, 400, 400]`` -> ``4x400G``; mixed rates -> ``2x400G+1x200G``."""
    counts = Counter(float(r) for r in rates_gbps)
    return "+".join(f"{n}x{rate:g}G" for rate, n in sorted(counts.items(), key=lambda x: -x[0]))


def fabric_line_rate(ports: Mapping[str, Sequence[float]], gpus_per_node: Mapping[str, int] | None = None,
                     *, standin: bool = False) -> LineRate | None:
    """The line rate of the slowest node (None when no node has a port with a rate)."""
    totals = {node: sum(float(r) for r in rates if r and r > 0) for node, rates in ports.items()}
    totals = {n: t for n, t in totals.items() if t > 0}
    if not totals:
        return None
    node = min(sorted(totals), key=lambda n: totals[n])
    gpus = (gpus_per_node or {}).get(node) or None
    return LineRate(totals[node] / 8.0, port_label([r for r in ports[node] if r and r > 0]), node, gpus, standin)


def fractions(rows: pd.DataFrame, rate: LineRate | None) -> pd.Series:
    """Each row's busbw as a fraction (0..1) of the line rate; NaN for single-node rows or with no rate."""
    if rate is None or rate.gbs <= 0:
        return pd.Series(float("nan"), index=rows.index, dtype="float64")
    frac = rows["busbw_gbs"].astype("float64") / rate.gbs
    return frac.where(rows["n_nodes"].astype("float64") >= 2)


def check_line_rate(rows: pd.DataFrame, rate: LineRate | None, min_pct: float | None) -> list[Finding]:
    """A LINE_RATE finding per multi-node row with its fraction of line rate ("92% of 8x400G"); it fails when
    ``min_pct`` is set and the row is below it. Not tested when the facts give no port rate."""
    run = Subject("run", "run")
    if rate is None:
        return [not_tested(Criterion.LINE_RATE, run, "the node facts give no IB/RoCE port rate")]
    multi = rows[rows["n_nodes"].astype("float64") >= 2].dropna(subset=["busbw_gbs", "size_bytes"])
    if multi.empty:
        return [not_tested(Criterion.LINE_RATE, run, "no multi-node result")]
    out: list[Finding] = []
    for rec, frac in zip(multi.to_dict("records"), fractions(multi, rate), strict=True):
        pct = frac * 100.0
        label = f"{rec['collective']} {int(rec['n_nodes'])} nodes {human_size(int(rec['size_bytes']))} {rec.get('placement') or ''}".strip()
        text = f"{label}: busbw {rec['busbw_gbs']:.4g} GB/s = {pct:.1f}% of {rate.describe()}"
        values = {"busbw_gbs": float(rec["busbw_gbs"]), "line_rate_gbs": rate.gbs, "line_rate": rate.label,
                  "pct_of_line_rate": round(pct, 2), "standin_facts": rate.standin, "collective": rec["collective"],
                  "n_nodes": int(rec["n_nodes"]), "size_bytes": int(rec["size_bytes"]), "placement": rec.get("placement")}
        subject = Subject("node_set", str(rec.get("node_set") or "run"))
        if min_pct is not None and pct < min_pct:
            out.append(failed(Criterion.LINE_RATE, subject, f"{text} < minimum {min_pct:g}%", values=values))
        else:
            out.append(passed(Criterion.LINE_RATE, subject, text, values=values))
    return out


def port_rates_command(sysfs_root: str = "/sys") -> str:
    """A shell command that prints ``<hca> <port> <state> <rate>`` lines for every IB/RoCE port."""
    root = f"{sysfs_root.rstrip('/')}/class/infiniband"
    return (f"for p in {root}/*/ports/*; do [ -r \"$p/rate\" ] || continue; "
            "h=${p%/ports/*}; printf '%s %s %s %s\\n' \"${h##*/}\" \"${p##*/}\" "
            "\"$(cut -d: -f2 \"$p/state\" 2>/dev/null | tr -d ' ')\" \"$(cat \"$p/rate\")\"; done")


def parse_port_rates(node: str, text: str, hcas: Sequence[str] = ()) -> list[float]:
    """The rates (Gb/s) of the ACTIVE ports in the output of :func:`port_rates_command` (only ``hcas`` when
    given: ``mlx5_0`` or ``mlx5_0:1``).

    Raises:
        ParseError: a line that is not ``hca port state rate`` (names the node and line).
    """
    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(None, 3)
        m = _RATE_RE.match(parts[3]) if len(parts) == 4 else None
        if m is None:
            raise ParseError(f"{node}: port rate line {lineno}: expected 'hca port state N Gb/sec ...', got {line!r}")
        hca, port, state = parts[0], parts[1], parts[2]
        if hcas and hca not in hcas and f"{hca}:{port}" not in hcas:
            continue
        if state.upper() == "ACTIVE":
            out.append(float(m.group(1)))
    return out
