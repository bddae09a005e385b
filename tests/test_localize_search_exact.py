"""clusterproof.network.localize_search, to the letter: the search's test (``judge``), the round counts that
choose a strategy, and the exhaustive reference's verdicts. Written against the mutants ``make mutation`` left
alive there (tests/MUTATION.md)."""

from __future__ import annotations

import pytest

from clusterproof.network.localize import (
    FailureKind,
    Measurement,
    choose_strategy,
    exhaustive,
    judge,
    localize,
    round_robin,
    rounds_needed,
)
from tests.test_localize_search import NODES8, FakeCluster

P = ("node01", "node02")


@pytest.mark.parametrize("m, kind, limit, bad, why", [
    (Measurement(P, error="node02: unreachable", ran=False), FailureKind.SLOW, 0.05, True, "did not run: node02: unreachable"),
    (Measurement(P, failure=FailureKind.HUNG, error="timed out after 5 s"), FailureKind.HUNG, None, True,
     "hung: timed out after 5 s"),
    (Measurement(P, failure=FailureKind.CRASHED), FailureKind.CRASHED, None, True, "crashed"),
    (Measurement(P, error="no row at 1M"), FailureKind.SLOW, 0.05, True, "no result: no row at 1M"),
    (Measurement(P, busbw_gbs=0.0499), FailureKind.SLOW, 0.05, True, "busbw 0.050 GB/s < limit 0.050"),
    (Measurement(P, busbw_gbs=0.05), FailureKind.SLOW, 0.05, False, "busbw 0.050 GB/s >= limit 0.050"),
    (Measurement(P, busbw_gbs=0.01), FailureKind.SLOW, None, False, "ok (busbw 0.010 GB/s)"),
    (Measurement(P, busbw_gbs=0.01), FailureKind.HUNG, 0.05, False, "ok (busbw 0.010 GB/s)"),  # a hang search ignores speed
])
def test_judge_says_why_and_never_invents_a_number(m: Measurement, kind: FailureKind, limit: float | None, bad: bool,
                                                   why: str) -> None:
    v = judge(m, kind, limit)
    assert (v.bad, v.why, v.measurement) == (bad, why, m)
    assert v.line() == f"node01+node02: {why}{'  BAD' if bad else ''}"


@pytest.mark.parametrize("strategy, n, cap, rounds", [
    ("pairs", 16, None, 2), ("pairs", 16, 1, 9), ("pairs", 16, 3, 4), ("pairs", 8, 4, 2), ("pairs", 3, None, 2),
    ("bisect", 16, None, 4), ("bisect", 16, 1, 7), ("bisect", 4, None, 2), ("bisect", 3, None, 1), ("bisect", 5, 1, 3),
])
def test_rounds_needed(strategy: str, n: int, cap: int | None, rounds: int) -> None:
    assert rounds_needed(strategy, n, cap) == rounds


def test_choose_strategy_bisects_only_hangs_and_crashes_and_only_when_it_saves_rounds() -> None:
    assert choose_strategy(FailureKind.HUNG, 16, None) == "pairs"  # 2 rounds against 4
    assert choose_strategy(FailureKind.HUNG, 16, 1) == "bisect"  # 7 against 9
    assert choose_strategy(FailureKind.CRASHED, 16, 1) == "bisect"
    assert choose_strategy(FailureKind.SLOW, 16, 1) == "pairs" and choose_strategy(FailureKind.WRONG, 16, 1) == "pairs"
    assert choose_strategy(FailureKind.SLOW, 16, 1, "bisect") == "bisect"  # asked for: given
    assert choose_strategy(FailureKind.HUNG, 16, 1, "pairs") == "pairs"
    with pytest.raises(ValueError, match="strategy must be one of auto, pairs, bisect, got 'fast'"):
        choose_strategy(FailureKind.HUNG, 16, None, "fast")


def test_exhaustive_names_a_bad_link_and_its_good_ends() -> None:
    cluster = FakeCluster(FailureKind.SLOW, bad_links=[("node02", "node07")])
    loc = exhaustive(NODES8, FailureKind.SLOW, cluster, limit=0.05, label="rail1")
    assert (loc.bad_nodes, loc.bad_links, loc.good_nodes) == ([], [("node02", "node07")], NODES8)
    assert loc.runs == 28 and all(len(r) == 1 for r in cluster.rounds)  # one at a time by default
    assert loc.label == "rail1" and loc.limit == 0.05


def test_exhaustive_with_two_bad_nodes_names_both_and_no_link_between_them() -> None:
    cluster = FakeCluster(FailureKind.CRASHED, bad_nodes=["node01", "node08"])
    loc = exhaustive(NODES8, FailureKind.CRASHED, cluster, max_concurrent=4)
    assert (loc.bad_nodes, loc.bad_links) == (["node01", "node08"], [])
    assert loc.good_nodes == NODES8[1:7]
    assert max(len(r) for r in cluster.rounds) == 4 and loc.runs == 28


def test_exhaustive_where_every_pair_is_bad_names_no_node() -> None:
    """Every pair bad (the fabric, not a node): no node is bad, since no pair without it is good."""
    cluster = FakeCluster(FailureKind.HUNG, bad_nodes=NODES8)
    loc = exhaustive(NODES8[:4], FailureKind.HUNG, cluster)
    assert loc.bad_nodes == [] and len(loc.bad_links) == 6 and loc.good_nodes == NODES8[:4]


# --- the search's records, to the letter --------------------------------------------------------------------

class Clock:
    """A clock that advances 2.5 s per reading: every round lasts exactly 2.5 s."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        self.t += 2.5
        return self.t


def test_a_search_records_its_limit_label_rounds_and_their_times() -> None:
    cluster = FakeCluster(FailureKind.SLOW, bad_nodes=["node03"])
    loc = localize(NODES8, FailureKind.SLOW, cluster, limit=0.05, label="all_reduce rail1", clock=Clock())
    assert (loc.kind, loc.nodes, loc.limit, loc.label) == (FailureKind.SLOW, tuple(NODES8), 0.05, "all_reduce rail1")
    assert [(r.number, r.strategy, r.seconds) for r in loc.rounds] == [(1, "pairs", 2.5), (2, "re-pair", 2.5)]
    assert loc.good_nodes == [n for n in NODES8 if n != "node03"] and loc.unresolved == []
    ex = exhaustive(NODES8[:4], FailureKind.SLOW, FakeCluster(FailureKind.SLOW), limit=0.05, clock=Clock())
    assert {r.strategy for r in ex.rounds} == {"exhaustive"} and {r.seconds for r in ex.rounds} == {2.5}
    assert ex.nodes == tuple(NODES8[:4]) and ex.label == ""


def test_without_a_limit_the_slow_search_takes_the_median_less_the_relative_drop() -> None:
    cluster = FakeCluster(FailureKind.SLOW, bad_nodes=["node05"])
    loc = localize(NODES8, FailureKind.SLOW, cluster)  # healthy pairs 1.0, the bad one 0.012: median 1.0
    assert loc.limit == pytest.approx(0.7) and loc.bad_nodes == ["node05"]
    other = localize(NODES8, FailureKind.SLOW, FakeCluster(FailureKind.SLOW, bad_nodes=["node05"]), relative_drop=0.5)
    assert other.limit == pytest.approx(0.5)
    # one pair at a time, the bad pair first: the limit still comes from the whole first round (1.0 median), not
    # from the first pair alone (which made the bad pair the norm and hid it)
    ex = exhaustive(NODES8, FailureKind.SLOW, FakeCluster(FailureKind.SLOW, bad_nodes=["node02"]), relative_drop=0.2)
    assert ex.limit == pytest.approx(0.8) and ex.bad_nodes == ["node02"]
    seq = localize(NODES8, FailureKind.SLOW, FakeCluster(FailureKind.SLOW, bad_nodes=["node01"]), max_concurrent=1)
    assert seq.limit == pytest.approx(0.7) and seq.bad_nodes == ["node01"]


def test_fewer_than_two_nodes_cannot_be_searched_and_two_can() -> None:
    one = localize(["node01"], FailureKind.HUNG, FakeCluster(FailureKind.HUNG))
    assert (one.unresolved, one.note, one.rounds) == (["node01"], "a search needs at least 2 nodes", [])
    two = localize(NODES8[:2], FailureKind.HUNG, FakeCluster(FailureKind.HUNG))
    assert len(two.rounds) == 1 and two.note == "every pair passed: the fault needs more than two nodes to show"
    assert two.verdict_line() == "search (hung): no group showed the fault (every pair passed: the fault needs more than two nodes to show)"


def test_max_concurrent_must_be_positive() -> None:
    with pytest.raises(ValueError, match=r"^max_concurrent must be >= 1 or None, got 0$"):
        localize(NODES8, FailureKind.HUNG, FakeCluster(FailureKind.HUNG), max_concurrent=0)


def test_a_runner_that_loses_or_reorders_groups_is_refused() -> None:
    def short(groups: object) -> list[Measurement]:
        return []

    def reordered(groups: list[tuple[str, ...]]) -> list[Measurement]:
        return [Measurement(g, busbw_gbs=1.0) for g in reversed(groups)]

    for runner in (short, reordered):
        with pytest.raises(ValueError, match=r"^run_round returned \d+ measurement\(s\) for 4 group\(s\), or out of order$"):
            localize(NODES8, FailureKind.HUNG, runner)


def test_a_failed_measurement_with_a_number_sets_no_relative_limit() -> None:
    def runner(groups: list[tuple[str, ...]]) -> list[Measurement]:
        return [Measurement(g, busbw_gbs=5.0, failure=FailureKind.WRONG, error="#wrong = 1") if "node01" in g
                else Measurement(g, busbw_gbs=1.0) for g in groups]

    loc = localize(NODES8[:4], FailureKind.SLOW, runner)
    assert loc.limit == pytest.approx(0.7)  # the median of the good numbers only (5.0 would make it 2.1)


def test_every_group_failing_is_unresolved_with_its_note() -> None:
    loc = localize(NODES8[:4], FailureKind.CRASHED, FakeCluster(FailureKind.CRASHED, bad_nodes=["node01", "node03"]))
    assert loc.unresolved == NODES8[:4] and loc.bad_nodes == []
    assert loc.note == "every group failed: no node is known good to re-pair the suspects with"


def test_bisection_notes_why_it_stopped() -> None:
    both_bad = localize(NODES8, FailureKind.HUNG, FakeCluster(FailureKind.HUNG, bad_nodes=["node01", "node08"]),
                        max_concurrent=1, strategy="bisect")
    assert both_bad.note.startswith("bisection stopped: both halves failed; pairs from here")
    link = localize(NODES8, FailureKind.HUNG, FakeCluster(FailureKind.HUNG, bad_links=[("node04", "node05")]),
                    max_concurrent=1, strategy="bisect")
    assert link.note.startswith("bisection stopped: both halves passed; pairs from here")
    one = localize(NODES8, FailureKind.HUNG, FakeCluster(FailureKind.HUNG, bad_nodes=["node06"]), max_concurrent=1,
                   strategy="bisect")
    assert one.bad_nodes == ["node06"] and [r.strategy for r in one.rounds][:2] == ["bisect", "bisect"]
    assert one.note == ""


def test_a_link_that_passes_again_is_a_transient_dip_with_its_note() -> None:
    calls: dict[frozenset[str], int] = {}

    def runner(groups: list[tuple[str, ...]]) -> list[Measurement]:
        out = []
        for g in groups:
            key = frozenset(g)
            calls[key] = calls.get(key, 0) + 1
            dips = key == frozenset(("node01", "node02")) and calls[key] == 1
            out.append(Measurement(g, busbw_gbs=0.01 if dips else 1.0))
        return out

    loc = localize(NODES8[:4], FailureKind.SLOW, runner, limit=0.5)
    assert (loc.bad_nodes, loc.bad_links) == ([], [])
    assert loc.note == "node01+node02 failed once but passed when run again: a transient dip, not a bad link"


def test_choose_strategy_keeps_pairs_when_bisection_saves_nothing() -> None:
    assert rounds_needed("bisect", 4, 1) == rounds_needed("pairs", 4, 1) == 3
    assert choose_strategy(FailureKind.HUNG, 4, 1) == "pairs"  # a tie is no saving
    assert rounds_needed("pairs", 5, 2) == 2  # two pairs (the fifth node waits), one wave


def test_round_robin_of_four_to_the_letter() -> None:
    assert round_robin(["d", "c", "b", "a"]) == [[("d", "c"), ("b", "a")], [("d", "a"), ("c", "b")], [("d", "b"), ("c", "a")]]


def test_the_relative_limit_scales_with_the_median() -> None:
    def runner(groups: list[tuple[str, ...]]) -> list[Measurement]:
        return [Measurement(g, busbw_gbs=0.1 if "node06" in g else 2.0) for g in groups]

    loc = localize(NODES8, FailureKind.SLOW, runner)
    assert loc.limit == pytest.approx(1.4) and loc.bad_nodes == ["node06"]
    ex = exhaustive(NODES8, FailureKind.SLOW, runner)  # the default relative drop is 30 % there too
    assert ex.limit == pytest.approx(1.4) and ex.bad_nodes == ["node06"]


def test_four_nodes_can_be_bisected_when_asked() -> None:
    loc = localize(NODES8[:4], FailureKind.HUNG, FakeCluster(FailureKind.HUNG, bad_nodes=["node04"]), strategy="bisect")
    assert [r.strategy for r in loc.rounds] == ["bisect", "re-pair"] and loc.bad_nodes == ["node04"]


def test_nothing_known_good_leaves_no_good_node() -> None:
    loc = localize(NODES8[:4], FailureKind.CRASHED, FakeCluster(FailureKind.CRASHED, bad_nodes=["node01", "node03"]))
    assert loc.good_nodes == []


def test_two_transient_dips_are_both_noted() -> None:
    calls: dict[frozenset[str], int] = {}
    dipping = {frozenset(("node01", "node02")), frozenset(("node03", "node04"))}

    def runner(groups: list[tuple[str, ...]]) -> list[Measurement]:
        out = []
        for g in groups:
            key = frozenset(g)
            calls[key] = calls.get(key, 0) + 1
            out.append(Measurement(g, busbw_gbs=0.01 if key in dipping and calls[key] == 1 else 1.0))
        return out

    loc = localize(NODES8, FailureKind.SLOW, runner, limit=0.5)
    assert loc.note == ("node01+node02 failed once but passed when run again: a transient dip, not a bad link; "
                        "node03+node04 failed once but passed when run again: a transient dip, not a bad link")
    assert [r.strategy for r in loc.rounds] == ["pairs", "re-pair", "confirm"] and (loc.bad_nodes, loc.bad_links) == ([], [])


def test_a_four_node_run_keeps_its_numbers_for_the_four_node_criterion() -> None:
    from clusterproof.findings import Criterion
    from clusterproof.network import verdict
    from tests.test_verdict_exact import TH10, frame

    found = verdict.performance(frame([(1 << 22, "out-of-place", 80.0, 0)]), TH10, collective="all_reduce", n_nodes=4)
    assert [f.criterion for f in found] == [Criterion.COLLECTIVES, Criterion.FOUR_NODE]
    assert found[0].values == found[1].values == {"busbw_gbs": 80.0, "threshold_gbs": 100.0, "floor_gbs": 90.0,
                                                  "size_bytes": 1 << 22}


def test_a_failing_half_of_three_whose_nodes_pass_alone_stays_unresolved() -> None:
    nodes = NODES8[:6]  # halves of 3: the bad link node01-node02 sits inside the first one
    loc = localize(nodes, FailureKind.HUNG, FakeCluster(FailureKind.HUNG, bad_links=[("node01", "node02")]),
                   strategy="bisect", max_concurrent=1)
    assert (loc.bad_nodes, loc.unresolved) == ([], ["node01", "node02", "node03"])


def test_the_odd_node_out_is_named_when_it_is_bad_too() -> None:
    loc = localize(NODES8[:7], FailureKind.CRASHED, FakeCluster(FailureKind.CRASHED, bad_nodes=["node01", "node07"]))
    assert loc.bad_nodes == ["node01", "node07"]
