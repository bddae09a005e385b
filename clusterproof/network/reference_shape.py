"""The shape of a sweep, as ROCm CVS checks it: bus bandwidth must not dip by more than a set fraction from one
size to the next larger one (the dip's size named), and the time at small (latency) sizes must stay under a
limit. Pure functions over a results table (``NETWORK_COLUMNS``); findings under ``Criterion.COLLECTIVES``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any, cast

import pandas as pd

from clusterproof.findings import Criterion, Finding, Subject, failed, not_tested, passed
from clusterproof.network.reference import measured_busbw
from clusterproof.units import human_size


def _curves(rows: pd.DataFrame) -> Iterator[tuple[tuple[str, str, int, str], pd.DataFrame]]:
    """One curve per (collective, node set, n_nodes, placement), smallest size first."""
    keep = rows.dropna(subset=["size_bytes", "busbw_gbs"])
    keep = keep.assign(busbw_gbs=measured_busbw(keep))
    for key, g in keep.groupby(["collective", "node_set", "n_nodes", "placement"], sort=True):
        k = cast(tuple[Any, Any, Any, Any], key)
        yield (str(k[0]), str(k[1]), int(k[2]), str(k[3])), g.sort_values("size_bytes")


@dataclass(frozen=True)
class Dip:
    """busbw fell by ``drop_pct`` percent from ``prev_size_bytes`` to ``size_bytes`` (where the dip is)."""

    collective: str
    node_set: str
    n_nodes: int
    placement: str
    size_bytes: int
    prev_size_bytes: int
    busbw_gbs: float
    prev_busbw_gbs: float
    drop_pct: float


def find_dips(rows: pd.DataFrame, max_dip_pct: float) -> list[Dip]:
    """Every step where busbw falls by more than ``max_dip_pct`` percent from one size to the next larger one."""
    out: list[Dip] = []
    for (coll, node_set, n, placement), g in _curves(rows):
        sizes = [int(s) for s in g["size_bytes"]]
        bws = [float(b) for b in g["busbw_gbs"]]
        for i in range(1, len(sizes)):
            prev, cur = bws[i - 1], bws[i]
            if prev <= 0:
                continue
            drop = (prev - cur) / prev * 100.0
            if drop > max_dip_pct:
                out.append(Dip(coll, node_set, n, placement, sizes[i], sizes[i - 1], cur, prev, round(drop, 1)))
    return out


def check_dips(rows: pd.DataFrame, max_dip_pct: float | None, subject: Subject | None = None) -> list[Finding]:
    """A failing finding per dip (naming its size), else one pass per curve judged."""
    subj = subject or Subject("run", "run")
    if max_dip_pct is None:
        return [not_tested(Criterion.COLLECTIVES, subj, "no dip limit (network_checks.max_dip_pct)")]
    curves = [(k, g) for k, g in _curves(rows) if len(g) >= 2]
    if not curves:
        return [not_tested(Criterion.COLLECTIVES, subj, "fewer than two sizes per curve: no dip to look for")]
    dips = find_dips(rows, max_dip_pct)
    out: list[Finding] = []
    for d in dips:
        out.append(failed(
            Criterion.COLLECTIVES, subject or Subject("node_set", d.node_set),
            f"{d.collective} {d.n_nodes} nodes {d.placement}: busbw dips {d.drop_pct:g}% at {human_size(d.size_bytes)} "
            f"({d.busbw_gbs:.4g} GB/s after {d.prev_busbw_gbs:.4g} GB/s at {human_size(d.prev_size_bytes)}; "
            f"limit {max_dip_pct:g}%)",
            values=asdict(d)))
    dipped = {(d.collective, d.node_set, d.placement) for d in dips}
    for (coll, node_set, n, placement), g in curves:
        if (coll, node_set, placement) in dipped:
            continue
        out.append(passed(Criterion.COLLECTIVES, subject or Subject("node_set", node_set),
                          f"{coll} {n} nodes {placement}: no dip over {max_dip_pct:g}% between "
                          f"{human_size(int(g['size_bytes'].iloc[0]))} and {human_size(int(g['size_bytes'].iloc[-1]))}"))
    return out


def check_latency(rows: pd.DataFrame, max_bytes: int, limit_us: float | None, subject: Subject | None = None) -> list[Finding]:
    """Every row at a size up to ``max_bytes`` must take less than ``limit_us`` microseconds."""
    subj = subject or Subject("run", "run")
    if limit_us is None:
        return [not_tested(Criterion.COLLECTIVES, subj, "no latency limit (network_checks.latency_limit_us)")]
    small = rows.dropna(subset=["size_bytes", "time_us"])
    small = small[small["size_bytes"] <= max_bytes]
    if small.empty:
        return [not_tested(Criterion.COLLECTIVES, subj, f"no size up to {human_size(max_bytes)} in the sweep: latency not measured")]
    out: list[Finding] = []
    for (coll, node_set, n, placement), g in _curves(small):
        s = subject or Subject("node_set", node_set)
        slow = g[g["time_us"] >= limit_us]
        slow_rows: list[Any] = list(slow.itertuples())
        for r in slow_rows:
            out.append(failed(Criterion.COLLECTIVES, s,
                              f"{coll} {n} nodes {human_size(int(r.size_bytes))} {placement}: time {float(r.time_us):.1f} us "
                              f">= latency limit {limit_us:g} us",
                              values={"time_us": float(r.time_us), "latency_limit_us": limit_us, "size_bytes": int(r.size_bytes)}))
        if slow.empty:
            out.append(passed(Criterion.COLLECTIVES, s,
                              f"{coll} {n} nodes {placement}: time under {limit_us:g} us up to {human_size(max_bytes)} "
                              f"(worst {float(g['time_us'].max()):.1f} us)"))
    return out
