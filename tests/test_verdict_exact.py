"""clusterproof.network.verdict, to the letter: the performance findings (tolerance, the floor itself, the numbers
and the log they rest on, the 4-node criterion) and the row verdicts of the tidy table. Written to kill the mutants
`make mutation` found alive in verdict.py."""

from __future__ import annotations

import math

import pandas as pd

from clusterproof.findings import Criterion, Evidence, Status, Subject
from clusterproof.network import verdict
from clusterproof.thresholds import Thresholds

M = 1 << 20


def frame(rows: list[tuple[int, str, float, object]], index: list[int] | None = None) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["size_bytes", "placement", "busbw_gbs", "wrong"], index=index)
    df["wrong"] = pd.array(df["wrong"], dtype="Int64")
    return df


TH10 = Thresholds(table={"all_reduce": {"*": {4 * M: 100.0}, 2: {M: 50.0}}}, tolerance_pct=10.0)


def test_tolerance_sets_the_floor_and_the_floor_itself_passes() -> None:
    rows = frame([(4 * M, "out-of-place", 90.0, 0), (4 * M, "in-place", 89.99, 0), (M, "out-of-place", 1.0, 0)])
    found = verdict.performance(rows, TH10, collective="all_reduce", n_nodes=8, node_set="n1,n2", log_path="logs/j/out.txt")
    assert [(f.status, f.message) for f in found] == [
        (Status.PASS, "all_reduce 8 nodes 4M out-of-place: busbw 90.00 GB/s >= threshold 100.00 GB/s"),
        (Status.FAIL, "all_reduce 8 nodes 4M in-place: busbw 89.99 GB/s < threshold 100.00 GB/s -10% (90.00)"),
    ]  # 1M has no threshold for 8 nodes: no finding at all
    assert all(f.criterion is Criterion.COLLECTIVES for f in found)
    assert all(f.subject == Subject("node_set", "n1,n2") and f.evidence == (Evidence("logs/j/out.txt"),) for f in found)
    assert found[1].values == {"busbw_gbs": 89.99, "threshold_gbs": 100.0, "floor_gbs": 90.0, "size_bytes": 4 * M}


def test_without_tolerance_the_message_has_no_floor_and_no_log_means_no_evidence() -> None:
    th = Thresholds(table=TH10.table, tolerance_pct=0.0)
    found = verdict.performance(frame([(M, "in-place", 49.0, 0)]), th, collective="all_reduce", n_nodes=2)
    assert [(f.status, f.message, f.evidence, f.subject) for f in found] == [
        (Status.FAIL, "all_reduce 2 nodes 1M in-place: busbw 49.00 GB/s < threshold 50.00 GB/s", (),
         Subject("node_set", "all_reduce-2nodes")),
    ]


def test_a_four_node_run_also_counts_for_the_four_node_criterion() -> None:
    found = verdict.performance(frame([(4 * M, "out-of-place", 120.0, 0)]), TH10, collective="all_reduce", n_nodes=4)
    assert [f.criterion for f in found] == [Criterion.COLLECTIVES, Criterion.FOUR_NODE]
    assert found[0].subject == Subject("node_set", "all_reduce-4nodes")


def test_run_subject_kinds() -> None:
    assert verdict.run_subject("all_reduce", 2, "node01,node02") == Subject("pair", "node01,node02")
    assert verdict.run_subject("all_reduce", 3, "a,b,c") == Subject("node_set", "a,b,c")
    assert verdict.run_subject("alltoall", 4) == Subject("node_set", "alltoall-4nodes")


def test_thresholds_follow_the_rows_index_and_are_nan_where_none_applies() -> None:
    rows = frame([(M, "out-of-place", 1.0, 0), (4 * M, "out-of-place", 1.0, 0)], index=[7, 9])
    limits = verdict.thresholds_for(rows, TH10, "all_reduce", 8)
    assert list(limits.index) == [7, 9] and limits.dtype == "float64"
    assert math.isnan(limits[7]) and limits[9] == 100.0


def test_row_verdicts_apply_the_tolerance_the_floor_and_wrong_results() -> None:
    rows = frame([(4 * M, "out-of-place", 90.0, 0), (4 * M, "in-place", 89.0, 0), (M, "out-of-place", 1.0, 3),
                  (M, "in-place", 1.0, pd.NA)])
    out = verdict.row_verdicts(rows, TH10, collective="all_reduce", n_nodes=8)
    assert out["verdict"].tolist() == ["pass", "fail", "fail", "info"]
    assert out["threshold_gbs"].tolist()[:2] == [100.0, 100.0] and out["threshold_gbs"].isna().tolist()[2:] == [True, True]
    assert list(rows.columns) == ["size_bytes", "placement", "busbw_gbs", "wrong"]  # the input is not changed
    assert verdict.row_verdicts(rows.iloc[:0], TH10, collective="all_reduce", n_nodes=8).empty


# --- sanity, to the letter ----------------------------------------------------------------------------------

K = 1 << 10
SIZES = [256 * K, M]


def _both(sizes: list[int], wrong: object = 0) -> pd.DataFrame:
    return frame([(s, p, 1.0, wrong) for s in sizes for p in ("out-of-place", "in-place")])


def _sanity(results: pd.DataFrame, **kw: object) -> list[tuple[Criterion, Status, str]]:
    args: dict[str, object] = dict(collective="all_reduce", n_nodes=4, expected_sizes=SIZES, expected_ranks=4, nranks=4,
                                   complete=True, rc=0)
    args.update(kw)
    return [(f.criterion, f.status, f.message) for f in verdict.sanity(results, **args)]  # type: ignore[arg-type]


def test_sanity_of_a_clean_run_passes_both_criteria_with_its_numbers() -> None:
    found = verdict.sanity(_both(SIZES), collective="all_reduce", n_nodes=4, expected_sizes=SIZES, expected_ranks=4,
                           nranks=4, complete=True, rc=0, node_set="a,b,c,d", log_path="logs/x.log")
    assert [(f.criterion, f.status, f.message) for f in found] == [
        (Criterion.COLLECTIVES, Status.PASS, "all_reduce 4 nodes: rc 0, 4 ranks, every size in both placements"),
        (Criterion.DATA_INTEGRITY, Status.PASS, "all_reduce 4 nodes: 0 wrong elements in 4 validated rows"),
    ]
    assert [f.values for f in found] == [{"nranks": 4, "rows": 4}, {"validated_rows": 4}]
    assert all(f.subject == Subject("node_set", "a,b,c,d") and f.evidence == (Evidence("logs/x.log"),) for f in found)
    assert verdict.sanity(_both(SIZES), collective="all_reduce", n_nodes=4, expected_sizes=SIZES, expected_ranks=4,
                          nranks=4, complete=True, rc=0)[0].evidence == ()


def test_sanity_names_every_problem_of_a_broken_run_once() -> None:
    rows = frame([(256 * K, "out-of-place", 1.0, 0)])
    assert _sanity(rows, rc=None, complete=False, nranks=3, errors=["node02: NCCL WARN x"]) == [
        (Criterion.COLLECTIVES, Status.FAIL, "all_reduce 4 nodes: the run did not finish (timed out or was killed)"),
        (Criterion.COLLECTIVES, Status.FAIL, "all_reduce 4 nodes: the log ends before the nccl-tests footer (the run died mid-way)"),
        (Criterion.COLLECTIVES, Status.FAIL, "all_reduce 4 nodes: 3 ranks reported, expected 4"),
        (Criterion.COLLECTIVES, Status.FAIL, "all_reduce 4 nodes: node02: NCCL WARN x"),
        (Criterion.COLLECTIVES, Status.FAIL, "all_reduce 4 nodes 256K in-place: row missing from the output"),
        (Criterion.COLLECTIVES, Status.FAIL, "all_reduce 4 nodes 1M out-of-place: row missing from the output"),
        (Criterion.COLLECTIVES, Status.FAIL, "all_reduce 4 nodes 1M in-place: row missing from the output"),
        (Criterion.DATA_INTEGRITY, Status.PASS, "all_reduce 4 nodes: 0 wrong elements in 1 validated rows"),
    ]
    assert _sanity(_both(SIZES), rc=3)[0] == (Criterion.COLLECTIVES, Status.FAIL, "all_reduce 4 nodes: the launcher exited with code 3")
    assert _sanity(_both(SIZES), rc=-9)[0][2] == "all_reduce 4 nodes: the launcher exited with code -9"


def test_sanity_wrong_results_fail_per_row_and_no_integrity_pass_beside_them() -> None:
    rows = frame([(256 * K, "out-of-place", 1.0, 0), (256 * K, "in-place", 1.0, 7), (M, "out-of-place", 1.0, 1),
                  (M, "in-place", 1.0, None)])
    found = verdict.sanity(rows, collective="all_reduce", n_nodes=4, expected_sizes=SIZES, expected_ranks=4, nranks=4,
                           complete=True, rc=0)
    assert [(f.criterion, f.status, f.message) for f in found] == [
        (Criterion.COLLECTIVES, Status.PASS, "all_reduce 4 nodes: rc 0, 4 ranks, every size in both placements"),
        (Criterion.DATA_INTEGRITY, Status.FAIL, "all_reduce 4 nodes 256K in-place: #wrong = 7 (corrupted results)"),
        (Criterion.DATA_INTEGRITY, Status.FAIL, "all_reduce 4 nodes 1M out-of-place: #wrong = 1 (corrupted results)"),
    ]
    assert [f.values for f in found[1:]] == [{"size_bytes": 256 * K, "wrong": 7}, {"size_bytes": M, "wrong": 1}]


def test_sanity_without_any_validated_row_fails_or_is_not_tested_as_asked() -> None:
    why = "all_reduce 4 nodes: #wrong is N/A on every row (validation off, -c 0?); data integrity unproven"
    assert _sanity(_both(SIZES, wrong=None))[1:] == [(Criterion.DATA_INTEGRITY, Status.FAIL, why)]
    found = verdict.sanity(_both(SIZES, wrong=None), collective="all_reduce", n_nodes=4, expected_sizes=SIZES,
                           expected_ranks=4, nranks=4, complete=True, rc=0, require_validation=False, log_path="l")
    assert (found[1].criterion, found[1].status, found[1].reason) == (Criterion.DATA_INTEGRITY, Status.NOT_TESTED, why)
    assert found[1].evidence == (Evidence("l"),)
    # no rows at all: every size is missing, and nothing is said about integrity
    assert [c for c, _, _ in _sanity(frame([]))] == [Criterion.COLLECTIVES] * 4
    # N/A on one placement only (nccl-tests does not validate it) is fine
    half = frame([(s, p, 1.0, 0 if p == "out-of-place" else None) for s in SIZES for p in ("out-of-place", "in-place")])
    assert _sanity(half)[1] == (Criterion.DATA_INTEGRITY, Status.PASS, "all_reduce 4 nodes: 0 wrong elements in 2 validated rows")


def test_every_sanity_finding_carries_the_run_subject_and_its_log() -> None:
    """Failures too, not only passes: the exclude list and the report link read subject and evidence."""
    base = dict(collective="all_reduce", n_nodes=4, expected_sizes=SIZES, expected_ranks=4, nranks=3, complete=True,
                rc=0, log_path="logs/r.log")
    broken = verdict.sanity(frame([(256 * K, "in-place", 1.0, 9)]), **base)  # type: ignore[arg-type]
    unvalidated = verdict.sanity(_both(SIZES, wrong=None), **base)  # type: ignore[arg-type]
    unasked = verdict.sanity(_both(SIZES, wrong=None), require_validation=False, **base)  # type: ignore[arg-type]
    for found in (broken, unvalidated, unasked):
        assert {f.subject for f in found} == {Subject("node_set", "all_reduce-4nodes")}
        assert {f.evidence for f in found} == {(Evidence("logs/r.log"),)}


def test_a_node_count_threshold_decides_the_row_verdict() -> None:
    rows = frame([(M, "out-of-place", 49.0, 0), (M, "in-place", 51.0, 0)])
    out = verdict.row_verdicts(rows, TH10, collective="all_reduce", n_nodes=2)  # only 2 nodes have a 1M limit
    assert out["threshold_gbs"].tolist() == [50.0, 50.0] and out["verdict"].tolist() == ["pass", "pass"]  # -10%: 45
    strict = Thresholds(table=TH10.table, tolerance_pct=0.0)
    assert verdict.row_verdicts(rows, strict, collective="all_reduce", n_nodes=2)["verdict"].tolist() == ["fail", "pass"]


def test_a_failing_performance_finding_keeps_its_numbers() -> None:
    (f,) = verdict.performance(frame([(M, "in-place", 40.0, 0)]), TH10, collective="all_reduce", n_nodes=2)
    assert f.status is Status.FAIL and f.values == {"busbw_gbs": 40.0, "threshold_gbs": 50.0, "floor_gbs": 45.0,
                                                     "size_bytes": M}


def test_a_passing_performance_finding_keeps_its_numbers_too() -> None:
    (f,) = verdict.performance(frame([(M, "in-place", 46.0, 0)]), TH10, collective="all_reduce", n_nodes=2)
    assert f.status is Status.PASS and f.values == {"busbw_gbs": 46.0, "threshold_gbs": 50.0, "floor_gbs": 45.0,
                                                     "size_bytes": M}
