"""clusterproof.network.localize_runs, exactly: every branch of how an all-node run failed, the search's test, and
one group run's measurement, on real captured nccl-tests logs (tests/data/nccl) cut to the case at hand. Written
against the mutants mutmut left alive (tests/MUTATION.md)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from clusterproof.errors import NodeUnreachable
from clusterproof.inventory import SweepSpec
from clusterproof.network.collective import CollectiveResult
from clusterproof.network.localize_model import FailureKind
from clusterproof.network.localize_runs import (
    below_threshold,
    failure_kind,
    fatal_errors,
    measurement,
    search_test,
    seconds_at_limit,
    wrong_count,
)
from clusterproof.thresholds import Thresholds
from tests.test_localize_search import _result

H100 = "01_h100_2node_16gpu_allreduce_v2.14-2.16fmt_COMPLETE.txt"  # complete, 16 ranks, #wrong 0 everywhere
CRASH = "11_v2.13.10_all_reduce_nccl-failure_mpirun-exit.txt"  # NCCL failure, mpirun exit 3, no footer
WRONG = "14_v2.17.6_all_reduce_wrong-results_min-bw-failed.txt"  # #wrong 7 in one row
PAIR = ("node01", "node02")
SLOW_TEST = search_test(FailureKind.SLOW, SweepSpec(min_bytes=1 << 20, max_bytes=8 << 20, iters=20, warmup_iters=5, check=1),
                        timeout_s=900, hang_timeout_s=20)


def with_rows(res: CollectiveResult, **columns: object) -> CollectiveResult:
    """``res`` with its parsed rows changed (a column set to one value, or a list)."""
    assert res.run is not None
    return replace(res, run=replace(res.run, results=res.run.results.assign(**columns)))


def test_seconds_at_limit_uses_nccl_tests_gigabytes() -> None:
    # 2 x 5 warm-ups + 2 x (20 + 1) = 52 collectives of 8M at busbw 1 GB/s, factor 1 on 2 ranks; GB is 1e9 bytes
    assert seconds_at_limit(SLOW_TEST, "all_reduce", 2, 1.0) == 52 * (8 << 20) / 1e9


def test_only_warnings_and_a_torn_end_are_not_fatal() -> None:
    run = _result(H100, 0).run
    assert run is not None
    errors = ["gpu-a: NCCL WARN NET/IB : x", "line 9: the log ends before the nccl-tests footer", "gpu-b: Test NCCL failure x"]
    assert fatal_errors(replace(run, errors=errors)) == ["gpu-b: Test NCCL failure x"]


def test_wrong_count_sums_and_a_run_without_validation_has_none() -> None:
    res = _result(WRONG, 7)
    assert res.run is not None and wrong_count(res.run) == 1048580 + 3 + 7  # the capture's #wrong column: 0 0 0 1048580 3 7 0 0
    unvalidated = with_rows(res, wrong=pd.array([pd.NA] * len(res.run.results), dtype="Int64"))
    assert unvalidated.run is not None and wrong_count(unvalidated.run) == 0


TOLERANT = Thresholds(table={"all_reduce": {"*": {8 << 20: 400.0}}}, tolerance_pct=10.0)


@pytest.mark.parametrize("busbw, below", [
    (360.0, False),  # exactly 400 x (1 - 10%): not below
    (359.9, True),
    (360.2, False),  # above 400 x 0.9 (and below 400 / 1.01, 400 x 1.1, 400 / 0.9)
    (300.0, True),
])
def test_below_threshold_applies_the_tolerance_once_and_strictly(busbw: float, below: bool) -> None:
    res = with_rows(_result(H100, 0), busbw_gbs=busbw)
    assert res.run is not None
    lines = below_threshold(res.run, TOLERANT, "all_reduce", 2)
    eight_m = [ln for ln in lines if ln.startswith("8M ")]
    assert bool(eight_m) is below
    if below:
        assert eight_m == [f"8M out-of-place: busbw {busbw:.3f} GB/s < 360.000", f"8M in-place: busbw {busbw:.3f} GB/s < 360.000"]


def test_below_threshold_looks_the_limit_up_for_the_runs_own_node_count() -> None:
    res = with_rows(_result(H100, 0), busbw_gbs=100.0, algbw_gbs=100.0 / 1.875)  # 16 ranks: busbw = algbw x 2(n-1)/n
    assert res.run is not None
    by_count = Thresholds(table={"all_reduce": {2: {8 << 20: 400.0}}})
    assert below_threshold(res.run, by_count, "all_reduce", 2) and not below_threshold(res.run, by_count, "all_reduce", 3)
    assert failure_kind(replace(res, nodes=["node01", "node02"]), by_count, "all_reduce") is FailureKind.SLOW


def test_one_wrong_result_is_wrong() -> None:
    res = _result(WRONG, 7)
    assert res.run is not None
    one = with_rows(res, wrong=pd.array([1] + [0] * (len(res.run.results) - 1), dtype="Int64"))
    assert failure_kind(one, Thresholds(), "all_reduce") is FailureKind.WRONG


def test_each_sign_of_a_crash_alone_is_a_crash() -> None:
    ok = _result(H100, 0)
    assert ok.run is not None and failure_kind(ok, Thresholds(), "all_reduce") is None
    assert failure_kind(replace(ok, rc=1), Thresholds(), "all_reduce") is FailureKind.CRASHED
    assert failure_kind(replace(ok, run=None), Thresholds(), "all_reduce") is FailureKind.CRASHED
    assert failure_kind(replace(ok, run=replace(ok.run, complete=False)), Thresholds(), "all_reduce") is FailureKind.CRASHED
    fatal = replace(ok, run=replace(ok.run, errors=["gpu-b: Test NCCL failure x"]))
    assert failure_kind(fatal, Thresholds(), "all_reduce") is FailureKind.CRASHED
    no_rows = replace(ok, run=replace(ok.run, results=ok.run.results.iloc[0:0]))
    assert failure_kind(no_rows, Thresholds(), "all_reduce") is FailureKind.CRASHED


def test_search_test_runs_only_the_largest_printed_size_with_its_env_and_mca() -> None:
    sweep = SweepSpec(min_bytes=3 << 20, max_bytes=8 << 20, step_factor=2)  # prints 3M and 6M: 6M is the largest
    t = search_test(FailureKind.HUNG, sweep, timeout_s=900, hang_timeout_s=20, env={"NCCL_IB_HCA": "=mlx5_0"},
                    mca={"btl_tcp_if_include": "eth1"})
    assert (t.kind, t.size_bytes, t.sweep.min_bytes, t.sweep.max_bytes, t.timeout_s) == (FailureKind.HUNG, 6 << 20, 6 << 20, 6 << 20, 20)
    assert (t.env, t.mca) == ({"NCCL_IB_HCA": "=mlx5_0"}, {"btl_tcp_if_include": "eth1"})
    bare = search_test(FailureKind.SLOW, sweep, timeout_s=900, hang_timeout_s=20)
    assert (bare.env, bare.mca, bare.timeout_s) == ({}, {}, 900)


LOG = "# clusterproof job j on node01,node02\n\nline a\n\nline b\nline c\n\nline d\nline e\n"


@pytest.mark.parametrize("kind, res", [
    (FailureKind.HUNG, CollectiveResult(job_id="j", collective="all_reduce", nodes=list(PAIR), command="m", rc=None,
                                        timed_out=True, seconds=2.5, log_path=Path("/r/logs/j.log"), log_text=LOG, run=None)),
    (FailureKind.SLOW, CollectiveResult(job_id="j", collective="all_reduce", nodes=list(PAIR), command="m", rc=None,
                                        timed_out=True, seconds=2.5, log_path=Path("/r/logs/j.log"), log_text=LOG, run=None,
                                        cut="cut after 2.5 s", cut_as=FailureKind.SLOW)),
])
def test_a_run_ended_early_quotes_the_last_four_lines_of_its_log(kind: FailureKind, res: CollectiveResult) -> None:
    m = measurement(PAIR, res, SLOW_TEST)
    assert (m.nodes, m.failure, m.busbw_gbs, m.seconds, m.log) == (PAIR, kind, None, 2.5, "logs/j.log")
    assert m.lines == ("line b", "line c", "line d", "line e")  # no blank line, never the header


def test_the_header_alone_is_no_quote() -> None:
    res = replace(_result(H100, None, timed_out=True), log_text="# clusterproof job j on a,b\nonly line\n")
    assert measurement(PAIR, res, SLOW_TEST).lines == ("only line",)


def test_a_crash_without_output_says_its_failure_line_or_the_parsers_reason() -> None:
    text = "# clusterproof job j on node01,node02\n# an error in a comment is no reason\nORTE: daemon failure on node02\nmore\n"
    said = replace(_result(H100, 3), run=None, log_text=text, parse_error="j.log: no header: the log is empty")
    m = measurement(PAIR, said, SLOW_TEST)
    assert (m.nodes, m.failure, m.seconds, m.log) == (PAIR, FailureKind.CRASHED, 1.5, f"logs/{H100}")
    assert m.error == "exit code 3, no nccl-tests output: ORTE: daemon failure on node02"
    assert m.lines == ("# an error in a comment is no reason", "ORTE: daemon failure on node02", "more")
    quiet = replace(said, log_text="nothing to say\n", parse_error="j.log: no header: x: y " + "z" * 200)
    assert measurement(PAIR, quiet, SLOW_TEST).error == "exit code 3, no nccl-tests output: " + ("no header: x: y " + "z" * 200)[:160]
    silent = replace(said, log_text="", parse_error=None)
    assert measurement(PAIR, silent, SLOW_TEST).error == "exit code 3, no nccl-tests output: "


def test_wrong_results_and_crashes_after_output_carry_their_log_and_no_number() -> None:
    wrong = measurement(PAIR, _result(WRONG, 7), SLOW_TEST)
    assert (wrong.nodes, wrong.busbw_gbs, wrong.seconds, wrong.log) == (PAIR, None, 1.5, f"logs/{WRONG}")
    assert wrong.error == "#wrong = 1048590 (corrupted results, exit code 7)" and len(wrong.lines) == 4
    ok = _result(H100, 0)
    assert ok.run is not None
    for res, why in [
        (replace(ok, rc=2), "exit code 2: the launcher failed after complete output"),
        (replace(ok, run=replace(ok.run, errors=["gpu-b: Test NCCL failure x"])), "exit code 0: gpu-b: Test NCCL failure x"),
        (replace(ok, run=replace(ok.run, complete=False)), "exit code 0: the log ends before the nccl-tests footer"),
        (replace(ok, run=replace(ok.run, results=ok.run.results.iloc[0:0])), "exit code 0: no result row"),
    ]:
        m = measurement(PAIR, res, SLOW_TEST)
        assert (m.nodes, m.failure, m.busbw_gbs, m.seconds, m.log) == (PAIR, FailureKind.CRASHED, None, 1.5, f"logs/{H100}")
        assert m.error == why
        assert m.lines and m.lines[-1] == ok.log_text.strip().splitlines()[-1]


def test_a_run_that_never_started_did_not_run() -> None:
    down = measurement(PAIR, NodeUnreachable("node02", "connection refused\nmore"), SLOW_TEST)
    assert down.ran is False and down.nodes == PAIR and down.error is not None and "\n" not in down.error


def test_a_clean_run_is_its_largest_sizes_lower_placement() -> None:
    ok = measurement(PAIR, _result(H100, 0), SLOW_TEST)  # 8G rows of the capture: out-of-place 338.82, in-place 337.35
    assert (ok.nodes, ok.busbw_gbs, ok.failure, ok.error, ok.seconds, ok.log) == (PAIR, 337.35, None, None, 1.5, f"logs/{H100}")
