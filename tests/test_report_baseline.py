"""Baselines: busbw regressions beyond the tolerance, new failures and fixed ones, and the built report."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from clusterproof.errors import ClusterproofError, ParseError
from clusterproof.findings import Criterion, Status
from clusterproof.report import build, compare, load_baseline
from clusterproof.report.tables import normalise
from clusterproof.results import to_frame
from tests.test_report_sample import (
    sample_meta,
    sample_tables,
    without_slow_node,
    write_sample,
)

NODES8 = ",".join(f"node{i:02d}" for i in range(1, 9))
NODES4 = ",".join(f"node{i:02d}" for i in range(1, 5))


def _row(n_nodes: int, size: int, placement: str, busbw: float, threshold: float | None = 360.0, **extra: Any) -> dict[str, Any]:
    verdict = "info" if threshold is None else ("pass" if busbw >= threshold else "fail")
    return {"run_id": "r", "collective": "all_reduce", "node_set": NODES4 if n_nodes == 4 else NODES8,
            "n_nodes": n_nodes, "size_bytes": size, "placement": placement, "busbw_gbs": busbw,
            "threshold_gbs": threshold, "verdict": verdict, **extra}


G8, G4 = 8 << 30, 4 << 30


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return to_frame("network", rows)


def test_a_seven_percent_drop_is_a_regression_naming_size_and_values() -> None:
    base = _frame([_row(4, G8, "out-of-place", 380.0), _row(4, G4, "out-of-place", 370.0)])
    cur = _frame([_row(4, G8, "out-of-place", 351.2), _row(4, G4, "out-of-place", 369.0)])
    diff = compare(cur, base, tolerance_pct=5.0)
    assert not diff.ok
    assert [r.message for r in diff.regressions] == [
        "all_reduce 4 nodes 8G out-of-place: 351.2 GB/s vs baseline 380.0 (-7.6% < -5%)"
    ]
    reg = diff.regressions[0]
    assert (reg.size_bytes, reg.current_gbs, reg.baseline_gbs) == (G8, 351.2, 380.0)
    assert round(reg.change_pct, 2) == -7.58
    assert diff.compared == 2
    # 351.2 is below the 360 threshold, so the row is also a new failure.
    assert diff.new_failures == [
        "all_reduce 4 nodes 8G out-of-place: fails now (351.2 GB/s, threshold 360.0); passed in the baseline (380.0 GB/s)"
    ]


def test_a_three_percent_drop_passes_and_the_tolerance_is_configurable() -> None:
    base = _frame([_row(8, G8, "in-place", 380.0)])
    cur = _frame([_row(8, G8, "in-place", 368.6)])  # -3.0 %
    assert compare(cur, base).ok
    tight = compare(cur, base, tolerance_pct=2)
    assert [r.message for r in tight.regressions] == ["all_reduce 8 nodes 8G in-place: 368.6 GB/s vs baseline 380.0 (-3% < -2%)"]
    with pytest.raises(ValueError, match="non-negative"):
        compare(cur, base, tolerance_pct=-1)


def test_fixed_and_new_failures_are_listed_and_unmatched_rows_counted() -> None:
    base = _frame([
        _row(8, G8, "out-of-place", 340.0),  # failed before
        _row(8, G4, "out-of-place", 365.0),  # passed before
        _row(8, 1 << 30, "out-of-place", 300.0, threshold=None),  # no threshold: never a failure
        _row(4, G8, "out-of-place", 370.0),  # not measured now
    ])
    cur = _frame([
        _row(8, G8, "out-of-place", 375.0),
        _row(8, G4, "out-of-place", 355.0),
        _row(8, 1 << 30, "out-of-place", 301.0, threshold=None),
        _row(8, 2 << 30, "out-of-place", 350.0),  # new size, failing
    ])
    diff = compare(cur, base)
    assert diff.regressions == []  # 365 -> 355 is -2.7 %
    assert diff.fixed == ["all_reduce 8 nodes 8G out-of-place: passes now (375.0 GB/s, threshold 360.0); failed in the baseline (340.0 GB/s)"]
    assert diff.new_failures == [
        "all_reduce 8 nodes 2G out-of-place: fails now (350.0 GB/s, threshold 360.0); not measured in the baseline",
        "all_reduce 8 nodes 4G out-of-place: fails now (355.0 GB/s, threshold 360.0); passed in the baseline (365.0 GB/s)",
    ]
    assert (diff.compared, diff.only_in_current, diff.only_in_baseline) == (3, 1, 1)
    assert diff.summary() == (
        "compared 3 rows with baseline run r (tolerance 5%): 0 regressions, 2 new failures, 1 fixed; "
        "1 rows only in this run; 1 rows only in the baseline"
    )


def test_node_sets_are_named_when_several_share_a_node_count(tmp_path: Path) -> None:
    net = sample_tables()["network"]
    slower = net.copy()
    pair = slower["node_set"] == "node1,node2"
    slower.loc[pair, "busbw_gbs"] = (slower.loc[pair, "busbw_gbs"] * 0.9).round(2)
    diff = compare(normalise("network", slower), normalise("network", net))
    assert len(diff.regressions) == 8
    assert diff.regressions[0].message.startswith("all_reduce 2 nodes [node1,node2] 1M ")


def test_load_baseline_reads_a_run_directory_or_a_results_file(tmp_path: Path) -> None:
    run = write_sample(tmp_path / "run")
    from_dir = load_baseline(run)
    from_file = load_baseline(run / "results.parquet")
    from_csv = load_baseline(run / "results.csv")
    pd.testing.assert_frame_equal(from_dir, from_file)
    assert from_csv["busbw_gbs"].tolist() == from_file["busbw_gbs"].tolist()
    with pytest.raises(ClusterproofError, match="no such file or directory"):
        load_baseline(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ClusterproofError, match="no results.parquet or results.csv"):
        load_baseline(tmp_path / "empty")
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ParseError, match="not a network results table"):
        load_baseline(tmp_path / "other.csv")


def test_build_with_a_baseline_fails_on_a_regression_and_shows_it(tmp_path: Path) -> None:
    good = without_slow_node(sample_tables()["network"])
    base_dir = write_sample(tmp_path / "base", network=good)
    worse = good.copy()
    row = (worse["n_nodes"] == 4) & (worse["size_bytes"] == 8 << 20) & (worse["placement"] == "out-of-place")
    worse.loc[row, "busbw_gbs"] = 0.82  # 0.89 -> 0.82: -7.9 %, still above the 0.30 threshold
    run = write_sample(tmp_path / "run", network=worse,
                       meta=sample_meta(run_id="20261125T213000Z-b2c3"))
    summary = build(run, baseline=base_dir, tolerance_pct=5.0)
    message = "all_reduce 4 nodes 8M out-of-place: 0.82 GB/s vs baseline 0.89 (-7.9% < -5%)"
    assert summary.baseline_diff is not None
    assert [r.message for r in summary.baseline_diff.regressions] == [message]
    assert summary.word == "fail"
    assert [f.message for c in summary.verdict.failing() for f in c.failures] == [message]
    card = summary.verdict.of(Criterion.BASELINE)
    assert (card.status, card.headline) == (Status.FAIL, f"node1,node2,node3,node4: {message}")
    page = summary.html_path.read_text()
    assert '<h2 id="baseline">Baseline comparison</h2>' in page and html.escape(message) in page
    assert message in summary.md_path.read_text()
    # Within a wider tolerance the same run passes.
    assert build(run, baseline=base_dir / "results.parquet", tolerance_pct=10).word == "pass"
