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
