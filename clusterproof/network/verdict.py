"""Judge a parsed nccl-tests run: sanity first (ReFrame), then performance against the inventory's thresholds.

Both checks are pure and collect every violation, one line each, so a failing test shows all of them at once:
``all_reduce 4 nodes 8G out-of-place: busbw 351.20 GB/s < threshold 360.00 GB/s``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from clusterproof.inventory import Thresholds
from clusterproof.units import human_size


@dataclass(frozen=True)
class Violation:
    """One failed expectation, with the values that decided it."""

    collective: str
    n_nodes: int
    size_bytes: int | None
    placement: str | None
    message: str

    def __str__(self) -> str:
        return self.message


def _label(collective: str, n_nodes: int, size: int | None = None, placement: str | None = None) -> str:
    parts = [collective, f"{n_nodes} nodes"]
    if size is not None:
        parts.append(human_size(size))
    if placement:
        parts.append(placement)
    return " ".join(parts)


def sanity(
    results: pd.DataFrame,
    *,
    collective: str,
    n_nodes: int,
    expected_sizes: Sequence[int],
    expected_ranks: int,
    nranks: int,
    complete: bool,
    rc: int | None,
    errors: Sequence[str] = (),
    require_validation: bool = True,
) -> list[Violation]:
    """Sanity of one run: exit code 0, a complete log, every rank reported, every requested size present in both
    placements, and ``#wrong == 0`` on every validated row (a run with no validated row at all is a violation
    when validation was requested).
    """
    v: list[Violation] = []
    tag = _label(collective, n_nodes)

    def add(msg: str, size: int | None = None, placement: str | None = None) -> None:
        v.append(Violation(collective, n_nodes, size, placement, msg))

    if rc is None:
        add(f"{tag}: the run did not finish (timed out or was killed)")
    elif rc != 0:
        add(f"{tag}: the launcher exited with code {rc}")
    if not complete:
        add(f"{tag}: the log ends before the nccl-tests footer (the run died mid-way)")
    if nranks != expected_ranks:
        add(f"{tag}: {nranks} ranks reported, expected {expected_ranks}")
    for err in errors:
        add(f"{tag}: {err}")
    have = set(zip(results["size_bytes"].tolist(), results["placement"].tolist(), strict=True)) if len(results) else set()
    for size in expected_sizes:
        for placement in ("out-of-place", "in-place"):
            if (size, placement) not in have:
                add(f"{tag} {human_size(size)} {placement}: row missing from the output", size, placement)
    # A placement nccl-tests does not validate for a collective prints N/A: that is not a failure. A run in which
    # no row at all was validated proves nothing about data integrity, so that is one.
    if require_validation and len(results) and results["wrong"].isna().all():
        add(f"{tag}: #wrong is N/A on every row (validation off, -c 0?); data integrity unproven")
    for size_v, placement_v, wrong in zip(results["size_bytes"], results["placement"], results["wrong"], strict=True):
        if pd.notna(wrong) and int(wrong) != 0:
            size, placement = int(size_v), str(placement_v)
            add(f"{_label(collective, n_nodes, size, placement)}: #wrong = {int(wrong)} (corrupted results)", size, placement)
    return v


def thresholds_for(results: pd.DataFrame, thresholds: Thresholds, collective: str, n_nodes: int) -> pd.Series:
    """The threshold (GB/s, NaN where none applies) for each row of ``results``."""
    values = [thresholds.lookup(collective, n_nodes, int(s)) for s in results["size_bytes"]]
    return pd.Series([float("nan") if x is None else x for x in values], index=results.index, dtype="float64")


def performance(results: pd.DataFrame, thresholds: Thresholds, *, collective: str, n_nodes: int) -> list[Violation]:
    """Bus bandwidth of every row at or above its threshold (after the inventory's tolerance)."""
    v: list[Violation] = []
    limits = thresholds_for(results, thresholds, collective, n_nodes)
    factor = 1.0 - thresholds.tolerance_pct / 100.0
    for (_, row), limit in zip(results.iterrows(), limits, strict=True):
        if pd.isna(limit):
            continue
        floor = limit * factor
        if row["busbw_gbs"] < floor:
            size, placement = int(row["size_bytes"]), str(row["placement"])
            tol = f" -{thresholds.tolerance_pct:g}% ({floor:.2f})" if thresholds.tolerance_pct else ""
            v.append(
                Violation(
                    collective,
                    n_nodes,
                    size,
                    placement,
                    f"{_label(collective, n_nodes, size, placement)}: busbw {row['busbw_gbs']:.2f} GB/s "
                    f"< threshold {limit:.2f} GB/s{tol}",
                )
            )
    return v


def row_verdicts(results: pd.DataFrame, thresholds: Thresholds, *, collective: str, n_nodes: int) -> pd.DataFrame:
    """``results`` plus ``threshold_gbs`` and ``verdict`` (pass / fail / info when no threshold applies)."""
    out = results.copy()
    limits = thresholds_for(results, thresholds, collective, n_nodes)
    factor = 1.0 - thresholds.tolerance_pct / 100.0
    out["threshold_gbs"] = limits
    wrong_bad = out["wrong"].fillna(0).astype("int64") != 0 if len(out) else pd.Series(dtype=bool)
    below = out["busbw_gbs"] < limits * factor
    out["verdict"] = "info"
    out.loc[limits.notna(), "verdict"] = "pass"
    out.loc[limits.notna() & below, "verdict"] = "fail"
    out.loc[wrong_bad, "verdict"] = "fail"
    return out
