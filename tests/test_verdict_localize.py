"""Sanity before performance, every violation collected."""

from __future__ import annotations

from typing import Any

import pandas as pd

from clusterproof.findings import Criterion, Status
from clusterproof.inventory import Thresholds
from clusterproof.network import verdict
from clusterproof.network.localize import disjoint_pairs
from clusterproof.network.verdict import row_verdicts


def sanity(*args: Any, **kwargs: Any) -> list[str]:
    """The failing messages of :func:`verdict.sanity` (its passing findings are checked separately)."""
    return [f.message for f in verdict.sanity(*args, **kwargs) if f.failed]


def performance(*args: Any, **kwargs: Any) -> list[str]:
    return [f.message for f in verdict.performance(*args, **kwargs) if f.failed and f.criterion is Criterion.COLLECTIVES]

M = 1 << 20


def frame(rows: list[tuple[int, str, float, object]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["size_bytes", "placement", "busbw_gbs", "wrong"])
    df["wrong"] = pd.array(df["wrong"], dtype="Int64")
    return df


GOOD = frame([(M, "out-of-place", 1.0, 0), (M, "in-place", 1.1, 0), (4 * M, "out-of-place", 2.0, 0), (4 * M, "in-place", 2.1, 0)])
TH = Thresholds(table={"all_reduce": {"*": {4 * M: 1.5}, 2: {M: 0.5}}}, tolerance_pct=0.0)


def test_sanity_passes_a_clean_run() -> None:
    assert sanity(GOOD, collective="all_reduce", n_nodes=4, expected_sizes=[M, 4 * M], expected_ranks=4, nranks=4, complete=True, rc=0) == []


def test_sanity_says_what_passed_and_which_criterion() -> None:
    found = verdict.sanity(GOOD, collective="all_reduce", n_nodes=4, expected_sizes=[M, 4 * M], expected_ranks=4, nranks=4,
                           complete=True, rc=0, node_set="n1,n2,n3,n4", log_path="logs/x.log")
    assert [(f.criterion, f.status) for f in found] == [(Criterion.COLLECTIVES, Status.PASS), (Criterion.DATA_INTEGRITY, Status.PASS)]
    assert found[1].message == "all_reduce 4 nodes: 0 wrong elements in 4 validated rows"
    assert all(f.subject.name == "n1,n2,n3,n4" and f.evidence[0].path == "logs/x.log" for f in found)
    bad = frame([(M, "out-of-place", 1.0, 3), (M, "in-place", 1.0, 0)])
    wrong = verdict.sanity(bad, collective="all_reduce", n_nodes=2, expected_sizes=[M], expected_ranks=2, nranks=2, complete=True, rc=0)
    assert [(f.criterion, f.status) for f in wrong] == [(Criterion.COLLECTIVES, Status.PASS), (Criterion.DATA_INTEGRITY, Status.FAIL)]
    off = frame([(M, "out-of-place", 1.0, pd.NA), (M, "in-place", 1.0, pd.NA)])
    unproven = verdict.sanity(off, collective="alltoall", n_nodes=2, expected_sizes=[M], expected_ranks=2, nranks=2,
                              complete=True, rc=0, require_validation=False)
    assert unproven[-1].status is Status.NOT_TESTED and "data integrity unproven" in str(unproven[-1].reason)


def test_performance_gives_a_finding_per_row_and_the_four_node_criterion() -> None:
    slow = frame([(M, "out-of-place", 0.2, 0), (4 * M, "out-of-place", 1.2, 0), (4 * M, "in-place", 1.6, 0)])
    found = verdict.performance(slow, TH, collective="all_reduce", n_nodes=4)
    assert [(f.criterion, f.status) for f in found] == [
        (Criterion.COLLECTIVES, Status.FAIL), (Criterion.FOUR_NODE, Status.FAIL),
        (Criterion.COLLECTIVES, Status.PASS), (Criterion.FOUR_NODE, Status.PASS)]
    assert dict(found[0].values) == {"busbw_gbs": 1.2, "threshold_gbs": 1.5, "floor_gbs": 1.5, "size_bytes": 4 * M}
    assert {f.criterion for f in verdict.performance(slow, TH, collective="all_reduce", n_nodes=2)} == {Criterion.COLLECTIVES}


def test_sanity_collects_every_problem() -> None:
    bad = frame([(M, "out-of-place", 1.0, 3), (M, "in-place", 1.0, pd.NA)])
    msgs = [str(v) for v in sanity(bad, collective="all_reduce", n_nodes=4, expected_sizes=[M, 4 * M], expected_ranks=8, nranks=7, complete=False, rc=7, errors=["node03: Test NCCL failure"])]
    assert msgs == [
        "all_reduce 4 nodes: the launcher exited with code 7",
        "all_reduce 4 nodes: the log ends before the nccl-tests footer (the run died mid-way)",
        "all_reduce 4 nodes: 7 ranks reported, expected 8",
        "all_reduce 4 nodes: node03: Test NCCL failure",
        "all_reduce 4 nodes 4M out-of-place: row missing from the output",
        "all_reduce 4 nodes 4M in-place: row missing from the output",
        "all_reduce 4 nodes 1M out-of-place: #wrong = 3 (corrupted results)",
    ]


def test_sanity_accepts_an_unvalidated_placement_but_not_an_unvalidated_run() -> None:
    one_na = frame([(M, "out-of-place", 1.0, 0), (M, "in-place", 1.0, pd.NA)])
    kw = dict(collective="alltoall", n_nodes=4, expected_sizes=[M], expected_ranks=4, nranks=4, complete=True, rc=0)
    assert sanity(one_na, **kw) == []  # type: ignore[arg-type]
    all_na = frame([(M, "out-of-place", 1.0, pd.NA), (M, "in-place", 1.0, pd.NA)])
    assert [str(v) for v in sanity(all_na, **kw)] == [  # type: ignore[arg-type]
        "alltoall 4 nodes: #wrong is N/A on every row (validation off, -c 0?); data integrity unproven"
    ]
    assert sanity(all_na, require_validation=False, **kw) == []  # type: ignore[arg-type]


def test_sanity_timeout_is_named() -> None:
    msgs = [str(v) for v in sanity(GOOD, collective="all_reduce", n_nodes=2, expected_sizes=[], expected_ranks=4, nranks=4, complete=True, rc=None)]
    assert msgs == ["all_reduce 2 nodes: the run did not finish (timed out or was killed)"]


def test_performance_names_size_measured_and_threshold() -> None:
    slow = frame([(M, "out-of-place", 0.2, 0), (4 * M, "out-of-place", 1.2, 0), (4 * M, "in-place", 1.6, 0)])
    assert [str(v) for v in performance(slow, TH, collective="all_reduce", n_nodes=4)] == [
        "all_reduce 4 nodes 4M out-of-place: busbw 1.20 GB/s < threshold 1.50 GB/s"
    ]
    # exact node-count table applies to 2 nodes, from 1M up
    assert [str(v) for v in performance(slow, TH, collective="all_reduce", n_nodes=2)] == [
        "all_reduce 2 nodes 1M out-of-place: busbw 0.20 GB/s < threshold 0.50 GB/s"
    ]


def test_tolerance_lowers_the_floor_and_is_shown() -> None:
    th = Thresholds(table=TH.table, tolerance_pct=10.0)
    row = frame([(4 * M, "out-of-place", 1.4, 0)])
    assert performance(row, th, collective="all_reduce", n_nodes=4) == []  # 1.4 >= 1.35
    row2 = frame([(4 * M, "out-of-place", 1.3, 0)])
    assert str(performance(row2, th, collective="all_reduce", n_nodes=4)[0]).endswith("< threshold 1.50 GB/s -10% (1.35)")


def test_row_verdicts() -> None:
    df = frame([(M, "out-of-place", 1.0, 0), (4 * M, "out-of-place", 1.0, 0), (4 * M, "in-place", 2.0, 1)])
    out = row_verdicts(df, TH, collective="all_reduce", n_nodes=4)
    assert out["verdict"].tolist() == ["info", "fail", "fail"]
    assert out["threshold_gbs"].isna().tolist() == [True, False, False]


def test_disjoint_pairs() -> None:
    assert disjoint_pairs(["a", "b", "c", "d"]) == [("a", "b"), ("c", "d")]
    assert disjoint_pairs(["a", "b", "c"]) == [("a", "b")]  # the left-over node is re-paired in round 2


# The slow-node search itself is tested in tests/test_localize_search.py (every failure kind, links, errors).
