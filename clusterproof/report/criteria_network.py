"""Scorecard criteria for Networking: thresholds at every size, the 4-node test, the GID index, NCCL's
transport, and the baseline."""

from __future__ import annotations

from typing import Any

import pandas as pd

from clusterproof.report import fmt
from clusterproof.report.baseline import BaselineDiff
from clusterproof.report.evidence import (
    CONSENSUS_COLUMNS,
    FAIL,
    GID_RE,
    NOT_TESTED,
    PASS,
    Criterion,
    ambiguous_sets,
    check_line,
    checks_of,
    is_failed,
    judge_rows,
    passed_note,
    skip_reason,
    some,
    thresholded,
)
from clusterproof.report.tables import RunData


def collectives(data: RunData) -> Criterion:
    """Networking: every collective meets its threshold at every size (and no collective test failed)."""
    name = "Collectives meet their busbw threshold at every size"
    net = data.network
    checks = checks_of(data, "network", exclude=[GID_RE])
    failed = [c for c in checks if is_failed(c)]
    rows = thresholded(net)
    if rows.empty and not failed:
        if not net.empty:
            evidence = f"{len(net)} rows measured, none has a threshold"
        else:
            evidence = skip_reason(checks) or "no collective was run"
        return Criterion("networking.collectives", "Networking", name, NOT_TESTED, evidence)
    status, evidence, details = judge_rows(rows, ambiguous_sets(net), failed)
    return Criterion("networking.collectives", "Networking", name, status, evidence, details)


def four_node(data: RunData) -> Criterion:
    """Networking: ClusterMAX's "4-node NCCL test within specification" (the smallest node count ≥ 4)."""
    name = "4-node NCCL test within specification"
    net = data.network
    counts = [int(n) for n in net["n_nodes"].dropna().unique()]
    total = max([len(data.meta.nodes), *counts]) if (counts or data.meta.nodes) else 0
    if total < 4:
        return Criterion("networking.four_node", "Networking", name, NOT_TESTED,
                         f"the run has {total} node{'s' if total != 1 else ''}; this criterion needs at least 4")
    rows = thresholded(net)
    rows = rows[rows["n_nodes"] >= 4]
    if rows.empty:
        return Criterion("networking.four_node", "Networking", name, NOT_TESTED,
                         "no collective with a threshold ran on 4 or more nodes")
    rows = rows[rows["n_nodes"] == rows["n_nodes"].min()]
    status, evidence, details = judge_rows(rows, ambiguous_sets(net), [])
    return Criterion("networking.four_node", "Networking", name, status, evidence, details)


def gid_index(data: RunData) -> Criterion:
    """Networking: one RoCE GID index on every node, as the GID tests and the runs' gid_index show."""
    name = "RoCE GID index consistent across nodes"
    cid = "networking.gid_index"
    checks = checks_of(data, "network", match=GID_RE)
    failed = [c for c in checks if is_failed(c)]
    used = sorted({int(v) for v in data.network["gid_index"].dropna().unique()})
    if failed:
        lines = [check_line(c) for c in failed]
        return Criterion(cid, "Networking", name, FAIL, some(lines), lines)
    if len(used) > 1:
        text = f"the collective runs used different GID indexes: {', '.join(map(str, used))}"
        return Criterion(cid, "Networking", name, FAIL, text, [text])
    index = data.meta.gid_index if data.meta.gid_index is not None else (used[0] if used else None)
    passed = [c for c in checks if c.get("outcome") == "passed"]
    if passed:
        what = f"GID index {index} on every node" if index is not None else "GID tables agree"
        return Criterion(cid, "Networking", name, PASS, f"{what}; {passed_note(checks)}")
    skip = skip_reason(checks)
    if skip:
        return Criterion(cid, "Networking", name, NOT_TESTED, skip)
    if index is not None:
        return Criterion(cid, "Networking", name, NOT_TESTED, f"GID index {index} used, but no GID consistency check ran")
    return Criterion(cid, "Networking", name, NOT_TESTED, "no GID check ran")


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("true", "1", "yes")


def odd_transport_rows(transport: pd.DataFrame | None, expect_net: str | None = None) -> dict[int, list[str]]:
    """The ranks that stand out in a transport table: flagged ``odd`` by the transport checks, a value in a
    consensus column (network, GDR, GID index, NCCL version) that differs from most ranks of the same job or
    from ``expect_net``, NCCL warnings, or ``ok`` false.

    Returns:
        Row position -> reasons (``network Socket (others: IB)``).
    """
    odd: dict[int, list[str]] = {}
    if transport is None or transport.empty:
        return odd
    df = transport.reset_index(drop=True)
    jobs = df["job_id"].astype(str) if "job_id" in df.columns and df["job_id"].notna().any() else pd.Series("", index=df.index)
    for col in (c for c in CONSENSUS_COLUMNS if c in df.columns and df[c].notna().any()):
        values = df[col].astype(str)
        for _, idx in jobs.groupby(jobs).groups.items():
            mode = values.loc[idx].mode().iloc[0]
            for i in map(fmt.as_int, idx):
                v = values.loc[i]
                if col in ("network", "net") and expect_net and v.upper() != expect_net.upper():
                    odd.setdefault(i, []).append(f"{col} {v} (expected {expect_net})")
                elif v != mode:
                    odd.setdefault(i, []).append(f"{col} {v} (others: {mode})")
    if "warns" in df.columns:
        for pos, w in enumerate(pd.to_numeric(df["warns"], errors="coerce").fillna(0)):
            if w > 0:
                odd.setdefault(pos, []).append(f"{int(w)} NCCL warning{'s' if w != 1 else ''}")
    whys = df["why"] if "why" in df.columns else pd.Series(pd.NA, index=df.index)
    for col, default in (("odd", "flagged by the transport checks"), ("ok", "marked not ok")):
        if col not in df.columns:
            continue
        for pos, (value, why) in enumerate(zip(df[col], whys, strict=True)):
            flagged = _truthy(value) if col == "odd" else str(value).strip().lower() in ("false", "0", "no")
            # The transport checks say why they flagged a rank; prefer their words to ours.
            reason = str(why) if isinstance(why, str) and why else default
            if flagged and reason not in odd.get(pos, []):
                odd.setdefault(pos, []).append(reason)
    return {i: odd[i] for i in sorted(odd)}


def _rank_label(row: pd.Series) -> str:
    parts = []
    if "rank" in row and pd.notna(row["rank"]):
        parts.append(f"rank {fmt.as_int(row['rank']) if isinstance(row['rank'], float) else row['rank']}")
    if "host" in row and pd.notna(row["host"]):
        parts.append(f"on {row['host']}")
    return " ".join(parts) or "a rank"


def nccl_rows(transport: pd.DataFrame | None) -> pd.DataFrame:
    """The rows of a transport table that carry something NCCL said (a network, GDR, GID or version); the
    collector also writes rows for ranks it found no NCCL log for, which prove nothing either way."""
    if transport is None or transport.empty:
        return pd.DataFrame()
    cols = [c for c in (*CONSENSUS_COLUMNS, "devices", "gid") if c in transport.columns]
    if not cols:
        return pd.DataFrame()
    return transport[transport[cols].notna().any(axis=1)]


def transport(data: RunData) -> Criterion:
    """Networking: NCCL's own logs show the expected network, GDR and GID on every rank."""
    name = "NCCL uses the expected transport (network, GDR, GID)"
    cid = "networking.transport"
    checks = checks_of(data, "transport")
    failed = [c for c in checks if is_failed(c)]
    table = nccl_rows(data.transport).reset_index(drop=True)
    expect = data.meta.extra.get("expect_net")
    odd = odd_transport_rows(table, expect if isinstance(expect, str) else None)
    details = [check_line(c) for c in failed]
    details += [f"{_rank_label(table.iloc[i])}: {', '.join(why)}" for i, why in sorted(odd.items())]
    if details:
        return Criterion(cid, "Networking", name, FAIL, some(details), details)
    if not table.empty:
        facts = [f"{len(table)} ranks"]
        if "host" in table.columns:
            facts[0] += f" on {table['host'].nunique()} hosts"
        for col, label in (("network", "network"), ("net", "network"), ("gdr", "GDR"), ("gid_index", "GID index"),
                           ("nccl_version", "NCCL"), ("version", "NCCL")):
            if col in table.columns and table[col].notna().any():
                facts.append(f"{label} {table[col].astype(str).iloc[0]}")
        return Criterion(cid, "Networking", name, PASS, ", ".join(facts) + " on every rank")
    if any(c.get("outcome") == "passed" for c in checks):
        return Criterion(cid, "Networking", name, PASS, passed_note(checks))
    if data.transport is not None and not data.transport.empty:
        return Criterion(cid, "Networking", name, NOT_TESTED, skip_reason(checks)
                         or f"no rank's NCCL log named a transport ({len(data.transport)} rows without NCCL data)")
    return Criterion(cid, "Networking", name, NOT_TESTED,
                     skip_reason(checks) or "no transport data (NCCL debug logs were not collected)")


def baseline(diff: BaselineDiff | None) -> Criterion:
    """Networking: no busbw drop beyond the tolerance against the baseline run."""
    name = "No busbw regression against the baseline"
    cid = "networking.baseline"
    if diff is None:
        return Criterion(cid, "Networking", name, NOT_TESTED, "no baseline given")
    if diff.regressions:
        lines = [r.message for r in diff.regressions]
        return Criterion(cid, "Networking", name, FAIL,
                         f"{len(lines)} regression{'s' if len(lines) != 1 else ''}: {some(lines)}", lines)
    if diff.compared == 0:
        return Criterion(cid, "Networking", name, NOT_TESTED, "no row matched the baseline")
    return Criterion(cid, "Networking", name, PASS, diff.summary())


