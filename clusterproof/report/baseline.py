"""Compare a run's network results with an earlier run: bandwidth regressions, new failures, fixed ones.

Rows are matched on (collective, n_nodes, node_set, size_bytes, placement). A busbw drop larger than the
tolerance at any size is a regression, reported with the size and both values::

    all_reduce 4 nodes 8G out-of-place: 351.2 GB/s vs baseline 380.0 (-7.6% < -5%)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pandas as pd

from clusterproof.errors import ClusterproofError
from clusterproof.report import fmt
from clusterproof.report.tables import read_network

KEY = ["collective", "n_nodes", "node_set", "size_bytes", "placement"]


@dataclass(frozen=True)
class Regression:
    """One matched row whose busbw fell by more than the tolerance."""

    collective: str
    n_nodes: int
    node_set: str
    size_bytes: int
    placement: str
    current_gbs: float
    baseline_gbs: float
    change_pct: float
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass
class BaselineDiff:
    """The result of ``compare``. ``ok`` is False when anything regressed."""

    tolerance_pct: float
    baseline_run_id: str | None
    compared: int
    regressions: list[Regression] = field(default_factory=list)
    new_failures: list[str] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)
    only_in_current: int = 0
    only_in_baseline: int = 0

    @property
    def ok(self) -> bool:
        """True when no row regressed beyond the tolerance."""
        return not self.regressions

    def summary(self) -> str:
        """One line: what was compared and what changed."""
        against = f"baseline run {self.baseline_run_id}" if self.baseline_run_id else "the baseline"
        return (
            f"compared {self.compared} rows with {against} (tolerance {self.tolerance_pct:g}%): "
            f"{len(self.regressions)} regressions, {len(self.new_failures)} new failures, {len(self.fixed)} fixed"
            + (f"; {self.only_in_current} rows only in this run" if self.only_in_current else "")
            + (f"; {self.only_in_baseline} rows only in the baseline" if self.only_in_baseline else "")
        )


def load_baseline(path: Path) -> pd.DataFrame:
    """Read a baseline's network table from a run directory or a ``results.parquet``/``results.csv`` path.

    Raises:
        ClusterproofError: nothing readable at ``path``.
        ParseError: the file is not a network results table.
    """
    path = Path(path)
    if path.is_dir():
        for name in ("results.parquet", "results.csv"):
            if (path / name).is_file():
                return read_network(path / name)
        raise ClusterproofError(f"baseline {path}: no results.parquet or results.csv in this directory")
    if not path.is_file():
        raise ClusterproofError(f"baseline {path}: no such file or directory")
    return read_network(path)


def _collapse(df: pd.DataFrame) -> pd.DataFrame:
    """One row per key: mean busbw, the strictest threshold, and 'fail' when any repeat failed."""
    data = df[KEY + ["busbw_gbs", "threshold_gbs", "verdict"]].dropna(subset=["n_nodes", "size_bytes"]).copy()
    data["failed"] = data["verdict"] == "fail"
    data["n_nodes"] = data["n_nodes"].astype("int64")
    data["size_bytes"] = data["size_bytes"].astype("int64")
    grouped = data.groupby(KEY, dropna=False, sort=True)
    return grouped.agg(
        busbw_gbs=("busbw_gbs", "mean"),
        threshold_gbs=("threshold_gbs", "max"),
        failed=("failed", "any"),
        verdict=("verdict", "first"),
    ).reset_index()


def _sets_per_count(df: pd.DataFrame) -> dict[tuple[str, int], int]:
    counts = df.groupby(["collective", "n_nodes"])["node_set"].nunique()
    out: dict[tuple[str, int], int] = {}
    for key, v in counts.items():
        collective, n_nodes = cast(tuple[Any, Any], key)
        out[(str(collective), int(n_nodes))] = int(v)
    return out


def _label(row: pd.Series, ambiguous: dict[tuple[str, int], int]) -> str:
    parts = [str(row["collective"]), f"{int(row['n_nodes'])} nodes"]
    if ambiguous.get((str(row["collective"]), int(row["n_nodes"])), 1) > 1:
        parts.append(f"[{row['node_set']}]")
    parts += [fmt.size(row["size_bytes"]), str(row["placement"])]
    return " ".join(parts)


def _with_threshold(value: float, threshold: float) -> str:
    if threshold is None or (isinstance(threshold, float) and math.isnan(threshold)):
        return f"{fmt.gbs(value)} GB/s"
    return f"{fmt.gbs(value)} GB/s, threshold {fmt.gbs(threshold)}"


def compare(current: pd.DataFrame, baseline: pd.DataFrame, tolerance_pct: float = 5.0) -> BaselineDiff:
    """Compare ``current`` with ``baseline`` (both network tables).

    Returns:
        ``BaselineDiff`` listing every regression beyond ``tolerance_pct`` (a busbw drop, at any size), every
        row that fails now but did not before (or was not measured), and every row that failed before and
        passes now.
    Raises:
        ValueError: ``tolerance_pct`` is negative or not a number.
    """
    if not isinstance(tolerance_pct, int | float) or math.isnan(tolerance_pct) or tolerance_pct < 0:
        raise ValueError(f"tolerance_pct must be a non-negative number of percent, got {tolerance_pct!r}")
    cur = _collapse(current)
    base = _collapse(baseline)
    run_ids = baseline["run_id"].dropna().unique().tolist() if "run_id" in baseline else []
    merged = cur.merge(base, on=KEY, how="outer", suffixes=("", "_base"), indicator=True)
    ambiguous = _sets_per_count(pd.concat([cur, base]))
    both = merged[merged["_merge"] == "both"]
    diff = BaselineDiff(
        tolerance_pct=float(tolerance_pct),
        baseline_run_id=str(run_ids[0]) if len(run_ids) == 1 else None,
        compared=len(both),
        only_in_current=int((merged["_merge"] == "left_only").sum()),
        only_in_baseline=int((merged["_merge"] == "right_only").sum()),
    )
    for _, row in both.iterrows():
        now, before = float(row["busbw_gbs"]), float(row["busbw_gbs_base"])
        if math.isnan(now) or math.isnan(before) or before <= 0:
            continue
        change = (now - before) / before * 100.0
        if change < -tolerance_pct:
            label = _label(row, ambiguous)
            msg = (
                f"{label}: {fmt.gbs(now)} GB/s vs baseline {fmt.gbs(before)} "
                f"({fmt.pct(round(change, 1))} < {fmt.pct(-float(tolerance_pct))})"
            )
            diff.regressions.append(
                Regression(
                    str(row["collective"]), int(row["n_nodes"]), str(row["node_set"]), int(row["size_bytes"]),
                    str(row["placement"]), now, before, change, msg,
                )
            )
    for _, row in merged[merged["_merge"] != "right_only"].iterrows():
        failed_now = bool(row["failed"])
        in_base = row["_merge"] == "both"
        failed_before = bool(row["failed_base"]) if in_base else False
        label = _label(row, ambiguous)
        if failed_now and not failed_before:
            was = (
                f"passed in the baseline ({fmt.gbs(row['busbw_gbs_base'])} GB/s)"
                if in_base
                else "not measured in the baseline"
            )
            diff.new_failures.append(
                f"{label}: fails now ({_with_threshold(row['busbw_gbs'], row['threshold_gbs'])}); {was}"
            )
        elif failed_before and not failed_now and row["verdict"] == "pass":
            diff.fixed.append(
                f"{label}: passes now ({_with_threshold(row['busbw_gbs'], row['threshold_gbs'])}); "
                f"failed in the baseline ({fmt.gbs(row['busbw_gbs_base'])} GB/s)"
            )
    return diff
