"""clusterproof.network.peer_cut: a hung run of a round is cut once half its peers finished cleanly and it has run
``factor`` times the slowest of them (never before the floor); a slow run once every peer is done and it has run
the slowest clean one plus the time its collectives take at the limit; a round of one run keeps its timeout."""

from __future__ import annotations

import pytest

from clusterproof.inventory import parse_inventory
from clusterproof.network.peer_cut import PeerCut, PeerWatch, SlowCut
from tests.test_inventory import minimal, problems_of


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def started_watch(n: int, cut: PeerCut | SlowCut, clock: Clock) -> PeerWatch:
    """A watch of ``n`` runs, all started at ``clock``'s time."""
    w = PeerWatch(n, cut, clock)
    for i in range(n):
        w.started(i)
    return w


def test_a_run_is_cut_after_factor_times_its_slowest_clean_peer() -> None:
    clock = Clock()
    w = started_watch(4, PeerCut(factor=3.0, floor_s=1.0), clock)
    clock.t = 0.5
    w.finished(0, clean=True)
    assert w.limit_s() is None and w.due() == []  # 1 of 4: too few peers
    clock.t = 0.8
    w.finished(1, clean=True)
    assert w.limit_s() == pytest.approx(2.4)  # 3 x 0.8
    clock.t = 2.4
    assert w.due() == []  # not past the limit yet
    clock.t = 2.5
    w.finished(2, clean=False)  # a crash is no peer to compare with, and not cut either
    assert w.due() == [3] and w.due() == []  # once
    assert w.reason(3) == ("cut after 2.5 s: 2 of its 3 peer(s) had finished cleanly, the slowest in 0.8 s "
                           "(limit 3x that, at least 1 s)")
    assert w.reason(2) is None and not w.all_done
    w.finished(3, clean=False)
    assert w.all_done


def test_the_floor_holds_and_one_run_has_no_peers() -> None:
    clock = Clock()
    w = started_watch(2, PeerCut(factor=3.0, floor_s=10.0), clock)
    clock.t = 0.4
    w.finished(0, clean=True)
    assert w.limit_s() == 10.0
    clock.t = 9.9
    assert w.due() == []
    clock.t = 10.1
    assert w.due() == [1]
    alone = started_watch(1, PeerCut(), clock)
    clock.t = 1000.0
    assert alone.limit_s() is None and alone.due() == []


def test_a_cut_run_that_ends_later_is_no_clean_peer() -> None:
    clock = Clock()
    w = started_watch(3, PeerCut(factor=2.0, floor_s=0.0), clock)
    clock.t = 1.0
    w.finished(0, clean=True), w.finished(1, clean=True)
    clock.t = 2.1
    assert w.due() == [2]
    w.finished(2, clean=True)  # its launcher exited 0 after the kill: still cut, never a peer time
    assert w.limit_s() == pytest.approx(2.0) and w.reason(2) is not None


@pytest.mark.parametrize("factor, floor", [(0.5, 1.0), (2.0, -1.0)])
def test_bad_settings_are_refused(factor: float, floor: float) -> None:
    with pytest.raises(ValueError, match="PeerCut"):
        PeerCut(factor, floor)


def test_inventory_reads_the_peer_cut_and_refuses_a_factor_below_one() -> None:
    inv = parse_inventory(minimal(localize={"hang_peer_factor": 4, "hang_peer_floor_s": 2}), "c.yaml")
    assert (inv.localize.hang_peer_factor, inv.localize.hang_peer_floor_s) == (4, 2)
    assert parse_inventory(minimal(), "c.yaml").localize.hang_peer_factor == 3.0
    assert any("localize.hang_peer_factor" in p for p in problems_of(minimal(localize={"hang_peer_factor": 0.5})))


def test_a_slow_run_is_cut_once_every_peer_is_done_and_it_cannot_reach_the_limit() -> None:
    clock = Clock()
    w = started_watch(4, SlowCut(at_limit_s=0.3, limit_gbs=0.05), clock)
    clock.t = 0.5
    w.finished(0, clean=True), w.finished(1, clean=True)
    clock.t = 5.0
    assert w.limit_s() is None and w.due() == []  # half the round is not enough: a peer is still going
    w.finished(2, clean=False)  # a crashed peer counts as done, not as a clean time
    assert w.limit_s() == pytest.approx(0.8)  # the slowest clean peer (0.5 s) + the collectives at the limit
    assert w.due() == [3] and w.due() == []
    assert w.reason(3) == ("cut after 5.0 s: 2 of its 3 peer(s) had finished cleanly, the slowest in 0.5 s (limit that "
                           "+ 0.30 s, what its timed collectives take at 0.05 GB/s: it cannot reach the limit)")
    assert w.cut.kind == "slow" and PeerCut().kind == "hung"


def test_a_slow_cut_waits_for_a_clean_peer_and_never_cuts_a_round_of_one() -> None:
    clock = Clock()
    w = started_watch(2, SlowCut(0.3, 0.05), clock)
    clock.t = 9.0
    w.finished(0, clean=False)
    assert w.limit_s() is None and w.due() == []  # the only peer crashed: nothing to compare with
    alone = started_watch(1, SlowCut(0.3, 0.05), clock)
    clock.t = 1000.0
    assert alone.due() == []
    with pytest.raises(ValueError, match="SlowCut"):
        SlowCut(0.0, 0.05)
    with pytest.raises(ValueError, match="SlowCut"):
        SlowCut(0.3, -1.0)


def test_inventory_reads_the_slow_peer_cut() -> None:
    assert parse_inventory(minimal(), "c.yaml").localize.slow_peer_cut is True
    assert parse_inventory(minimal(localize={"slow_peer_cut": False}), "c.yaml").localize.slow_peer_cut is False
    assert any("localize.slow_peer_cut" in p for p in problems_of(minimal(localize={"slow_peer_cut": "no"})))


def test_the_watch_measures_each_run_from_its_own_start_on_any_clock() -> None:
    """A clock far from zero (time.monotonic is): times are differences, the cut is strictly past the limit."""
    clock = Clock()
    clock.t = 100.0
    w = started_watch(2, PeerCut(factor=2.0, floor_s=0.0), clock)
    clock.t = 100.5
    w.finished(0, clean=True)
    assert w.limit_s() == 1.0  # 2 x 0.5 s, not 2 x 200.5
    clock.t = 101.0
    assert w.due() == []  # exactly at the limit: not yet
    clock.t = 101.25
    assert w.due() == [1]
    assert w.reason(1) == ("cut after 1.2 s: 1 of its 1 peer(s) had finished cleanly, the slowest in 0.5 s "
                           "(limit 2x that, at least 0 s)")


def test_half_the_round_means_half_rounded_up() -> None:
    clock = Clock()
    w = started_watch(6, PeerCut(factor=3.0, floor_s=0.0), clock)
    clock.t = 1.0
    w.finished(0, clean=True), w.finished(1, clean=True)
    assert w.limit_s() is None  # 2 of 6
    w.finished(2, clean=True)
    assert w.limit_s() == 3.0  # 3 of 6


def test_one_clean_peer_is_enough_for_a_slow_cut_and_a_round_of_one_never_has_a_limit() -> None:
    clock = Clock()
    w = started_watch(2, SlowCut(0.25, 0.05), clock)
    clock.t = 0.5
    w.finished(0, clean=True)
    assert w.limit_s() == 0.75
    alone = started_watch(1, PeerCut(factor=1.0, floor_s=0.0), clock)
    clock.t = 1.0
    alone.finished(0, clean=True)
    assert alone.limit_s() is None  # its own time is no peer's


@pytest.mark.parametrize("factor", [1.0, 1.5])
def test_a_factor_of_one_or_more_is_accepted(factor: float) -> None:
    assert PeerCut(factor, 0.0).factor == factor


def test_a_slow_cut_needs_a_positive_limit() -> None:
    with pytest.raises(ValueError, match="SlowCut"):
        SlowCut(0.3, 0.0)
