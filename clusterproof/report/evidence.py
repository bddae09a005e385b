"""The pieces every scorecard criterion is built from: the ``Criterion`` record, check filters, and the
wording of evidence lines (``all_reduce across 4 nodes at 4M: 0.91 GB/s, threshold 0.30``)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any, cast

import pandas as pd

from clusterproof.report import fmt
from clusterproof.report.tables import RunData

PASS = "pass"
FAIL = "fail"
NOT_TESTED = "not tested"
AREAS = ("Networking", "Storage", "Reliability", "Security")

GID_RE = re.compile(r"gid", re.I)
CLOCK_RE = re.compile(r"clock|skew", re.I)
HOST_KEY_RE = re.compile(r"host_?key|known_hosts", re.I)
EXPIRY_RE = re.compile(r"expir|revok|revoc|reap", re.I)
#: Transport columns every rank must agree on (the names issue 6's parser uses, and short aliases).
CONSENSUS_COLUMNS = ("network", "net", "gdr", "gid_index", "nccl_version", "version")


@dataclass(frozen=True)
class Criterion:
    """One scorecard line."""

    id: str  # "networking.collectives"
    area: str  # one of AREAS
    name: str
    status: str  # PASS | FAIL | NOT_TESTED
    evidence: str  # the one line that decided the status
    details: list[str] = field(default_factory=list)  # every failing case, when status is FAIL


def is_failed(check: dict[str, Any]) -> bool:
    return check.get("outcome") in ("failed", "error")


def first_line(text: Any, limit: int = 300) -> str:
    line = str(text or "").strip().split("\n")[0]
    return line if len(line) <= limit else line[: limit - 1] + "…"


def check_line(check: dict[str, Any]) -> str:
    """``<test id>: <first line of the message>`` (or ``<test id> failed`` without a message)."""
    msg = first_line(check.get("message"))
    return f"{check['test_id']}: {msg}" if msg else f"{check['test_id']} {check.get('outcome', 'failed')}"


def checks_of(data: RunData, area: str | None = None, match: re.Pattern[str] | None = None,
            exclude: Sequence[re.Pattern[str]] = ()) -> list[dict[str, Any]]:
    out = []
    for c in data.checks:
        text = f"{c.get('test_id', '')} {c.get('name', '')}"
        if area is not None and c.get("area") != area:
            continue
        if match is not None and not match.search(text):
            continue
        if any(p.search(text) for p in exclude):
            continue
        out.append(c)
    return out


def some(items: Sequence[str], limit: int = 2) -> str:
    head = "; ".join(items[:limit])
    return head + (f" (and {len(items) - limit} more)" if len(items) > limit else "")


def skip_reason(checks: Sequence[dict[str, Any]]) -> str | None:
    """The reason to show when every relevant check was skipped."""
    if checks and all(c.get("outcome") == "skipped" for c in checks):
        # pytest's skip messages start with "Skipped: "; one "skipped:" is enough.
        reason = re.sub(r"^skipped:\s*", "", first_line(checks[0].get("message")), flags=re.I)
        return f"skipped: {reason or checks[0]['test_id']}"
    return None


def passed_note(checks: Sequence[dict[str, Any]]) -> str:
    passed = sum(c.get("outcome") == "passed" for c in checks)
    return f"{passed} check{'s' if passed != 1 else ''} passed"


def ambiguous_sets(network: pd.DataFrame) -> set[tuple[str, int]]:
    counts = network.groupby(["collective", "n_nodes"])["node_set"].nunique()
    keys = [cast(tuple[Any, Any], key) for key, v in counts.items() if v > 1]
    return {(str(c), int(n)) for c, n in keys}


def row_text(row: Any, ambiguous: AbstractSet[tuple[str, int]] = frozenset(), placement: bool = False) -> str:
    """``all_reduce across 4 nodes at 4M: 0.91 GB/s, threshold 0.30``; the node set is named when several
    sets share the node count, the placement when asked."""
    who = f"{row.collective} across {int(row.n_nodes)} nodes"
    if (str(row.collective), int(row.n_nodes)) in ambiguous:
        who += f" ({row.node_set})"
    where = f"at {fmt.size(row.size_bytes)}" + (f" {row.placement}" if placement else "")
    thr = row.threshold_gbs
    tail = "" if thr is None or (isinstance(thr, float) and math.isnan(thr)) else f", threshold {fmt.gbs(thr)}"
    return f"{who} {where}: {fmt.gbs(row.busbw_gbs)} GB/s{tail}"


def storage_case_text(row: Any) -> str:
    """``sts object-read-only put at sibling: expected deny, observed allow (200 OK)``."""
    detail = row.detail if isinstance(row.detail, str) and row.detail else ""
    return (
        f"{row.issuer} {row.permission} {row.operation} at {row.where}: expected {row.expected}, "
        f"observed {row.observed}" + (f" ({detail})" if detail else "")
    )


def representative(rows: pd.DataFrame) -> Any:
    """The row that best stands for a passing set: all_reduce if run, most nodes, largest size,
    out-of-place."""
    r = rows.assign(
        _ar=(rows["collective"] == "all_reduce").astype(int),
        _oop=(rows["placement"] == fmt.OUT_OF_PLACE).astype(int),
    )
    r = r.sort_values(["_ar", "n_nodes", "size_bytes", "_oop"], ascending=False)
    return next(r.itertuples())


def judge_rows(rows: pd.DataFrame, ambiguous: AbstractSet[tuple[str, int]],
                failed_checks: Sequence[dict[str, Any]]) -> tuple[str, str, list[str]]:
    """Status, evidence and details for a set of thresholded network rows plus the failed checks behind
    them."""
    bad = rows[rows["verdict"] == "fail"]
    details = [row_text(r, ambiguous, placement=True) for r in bad.itertuples()]
    details += [check_line(c) for c in failed_checks]
    if not bad.empty:
        ratio = bad["busbw_gbs"].astype(float) / bad["threshold_gbs"].astype(float)
        worst_text = row_text(bad.loc[cast(Any, ratio.idxmin())], ambiguous, placement=True)
        return FAIL, f"{len(bad)} of {len(rows)} rows below threshold; worst: {worst_text}", details
    if failed_checks:
        return FAIL, some([check_line(c) for c in failed_checks]), details
    return PASS, f"{row_text(representative(rows), ambiguous)}; {len(rows)} of {len(rows)} rows within threshold", []


def thresholded(network: pd.DataFrame) -> pd.DataFrame:
    return network[network["verdict"].isin([PASS, FAIL]) & network["threshold_gbs"].notna()]


