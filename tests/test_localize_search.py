"""The pure bad-node search, driven through its own interface: a ``run_round`` function that plays a cluster with
a bad node or link (no subprocess, no mock of anything the search calls: the runner IS the search's input).

Also: the failure kind of an all-node run and a group's measurement, read from real captured nccl-tests logs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from clusterproof import unfit
from clusterproof.findings import Criterion, Status
from clusterproof.inventory import SweepSpec, Thresholds
from clusterproof.network import nccl
from clusterproof.network.collective import CollectiveResult
from clusterproof.network.localize import (
    FailureKind,
    Measurement,
    choose_strategy,
    exhaustive,
    localize,
    round_robin,
    rounds_needed,
)
from clusterproof.network.localize_findings import localization_findings
from clusterproof.network.localize_runs import failure_kind, measurement, search_test, seconds_at_limit
from clusterproof.network.localize_search import judge

DATA = Path(__file__).parent / "data" / "nccl"
NODES8 = [f"node{i:02d}" for i in range(1, 9)]
NODES16 = [f"node{i:02d}" for i in range(1, 17)]
ERRORS = {
    FailureKind.HUNG: "timed out after 5 s; its processes were ended on every node",
    FailureKind.CRASHED: "exit code 3: node05: Test NCCL failure common.cu:958 'unhandled system error'",
    FailureKind.WRONG: "#wrong = 1048576 (corrupted results, exit code 7)",
}


class FakeCluster:
    """Plays a cluster for the search: a group is bad when it holds a bad node or both ends of a bad link."""

    def __init__(self, kind: FailureKind, bad_nodes: Sequence[str] = (), bad_links: Sequence[tuple[str, str]] = (),
                 unreachable: Sequence[str] = ()) -> None:
        self.kind, self.bad_nodes, self.bad_links, self.unreachable = kind, set(bad_nodes), bad_links, set(unreachable)
        self.rounds: list[list[tuple[str, ...]]] = []

    def __call__(self, groups: Sequence[tuple[str, ...]]) -> list[Measurement]:
        self.rounds.append([tuple(g) for g in groups])
        assert len({n for g in groups for n in g}) == sum(len(g) for g in groups), "groups of a round must be disjoint"
        out = []
        for g in groups:
            down = self.unreachable & set(g)
            bad = bool(self.bad_nodes & set(g)) or any(set(link) <= set(g) for link in self.bad_links)
            if down:
                out.append(Measurement(tuple(g), error=f"{sorted(down)[0]}: unreachable: connection refused", ran=False))
            elif not bad:
                out.append(Measurement(tuple(g), busbw_gbs=1.0, seconds=1.0, log=f"logs/{'-'.join(g)}.log"))
            elif self.kind is FailureKind.SLOW:
                out.append(Measurement(tuple(g), busbw_gbs=0.012, seconds=3.0, log=f"logs/{'-'.join(g)}.log"))
            else:
                out.append(Measurement(tuple(g), failure=self.kind, error=ERRORS[self.kind], seconds=5.0,
                                       log=f"logs/{'-'.join(g)}.log", lines=("a quoted log line",)))
        return out


@pytest.mark.parametrize("kind", list(FailureKind))
@pytest.mark.parametrize("nodes", [NODES8, NODES16], ids=["8nodes", "16nodes"])
def test_every_kind_names_the_bad_node_in_two_concurrent_rounds(kind: FailureKind, nodes: list[str]) -> None:
    for bad in (nodes[0], nodes[5], nodes[-1]):
        cluster = FakeCluster(kind, bad_nodes=[bad])
        loc = localize(nodes, kind, cluster, limit=0.05 if kind is FailureKind.SLOW else None)
        assert (loc.bad_nodes, loc.bad_links, loc.unresolved) == ([bad], [], []), loc.explain()
        assert len(loc.rounds) == 2 and len(cluster.rounds) == 2  # N/2 pairs at once, then one re-pair round
        assert loc.runs == len(nodes) // 2 + 2
        assert sorted(loc.good_nodes) == sorted(set(nodes) - {bad})


def test_sequential_search_runs_one_pair_at_a_time_and_agrees() -> None:
    cluster = FakeCluster(FailureKind.HUNG, bad_nodes=["node11"])
    loc = localize(NODES16, FailureKind.HUNG, cluster, max_concurrent=1, strategy="pairs")
    assert loc.bad_nodes == ["node11"]
    assert all(len(r) == 1 for r in cluster.rounds) and len(cluster.rounds) == 10


def test_exhaustive_runs_every_pair_and_agrees() -> None:
    cluster = FakeCluster(FailureKind.CRASHED, bad_nodes=["node03"])
    loc = exhaustive(NODES8, FailureKind.CRASHED, cluster)
    assert loc.bad_nodes == ["node03"] and loc.bad_links == []
    assert loc.runs == 8 * 7 // 2 and len({frozenset(g) for r in cluster.rounds for g in r}) == 28


def test_round_robin_holds_every_pair_once_and_starts_with_neighbours() -> None:
    for n in (2, 3, 4, 7, 8, 16):
        nodes = NODES16[:n]
        schedule = round_robin(nodes)
        pairs = [frozenset(p) for r in schedule for p in r]
        assert len(pairs) == len(set(pairs)) == n * (n - 1) // 2
        assert schedule[0] == [(nodes[i], nodes[i + 1]) for i in range(0, n - 1, 2)]


def test_bad_link_between_nodes_of_one_pair() -> None:
    cluster = FakeCluster(FailureKind.SLOW, bad_links=[("node03", "node04")])
    loc = localize(NODES8, FailureKind.SLOW, cluster, limit=0.05)
    assert (loc.bad_nodes, loc.bad_links) == ([], [("node03", "node04")]), loc.explain()
    findings = localization_findings(loc)
    link = [f for f in findings if f.status is Status.FAIL]
    assert [(f.subject.kind, f.subject.name, f.subject.node) for f in link] == [("pair", "node03,node04", None)]
    assert "each fine with other nodes" in link[0].message
    assert unfit.unfit_nodes(findings) == []  # a link is no node to drain


def test_bad_link_between_nodes_of_different_pairs_needs_more_pairs() -> None:
    cluster = FakeCluster(FailureKind.HUNG, bad_links=[("node02", "node07")])
    loc = localize(NODES8, FailureKind.HUNG, cluster)
    assert (loc.bad_nodes, loc.bad_links) == ([], [("node02", "node07")]), loc.explain()
    assert {r.strategy for r in loc.rounds} <= {"pairs", "more pairs", "re-pair", "confirm"}
    assert any(r.strategy == "more pairs" for r in loc.rounds) and loc.rounds[-1].strategy == "confirm"


def test_a_pair_that_dips_once_is_no_bad_link() -> None:
    class Flaky(FakeCluster):
        """node13+node14 measure slow once (two cores shared by eight pairs), fine when run again."""

        def __init__(self) -> None:
            super().__init__(FailureKind.SLOW, bad_nodes=["node10"])
            self.dipped = False

        def __call__(self, groups: Sequence[tuple[str, ...]]) -> list[Measurement]:
            out = super().__call__(groups)
            for i, g in enumerate(groups):
                if set(g) == {"node13", "node14"} and not self.dipped:
                    self.dipped = True
                    out[i] = Measurement(tuple(g), busbw_gbs=0.04, seconds=1.0)
            return out

    loc = localize(NODES16, FailureKind.SLOW, Flaky(), limit=0.05)
    assert (loc.bad_nodes, loc.bad_links) == (["node10"], []), loc.explain()
    assert [r.strategy for r in loc.rounds] == ["pairs", "re-pair", "confirm"]
    assert "node13+node14 failed once but passed when run again" in loc.note


def test_pair_that_did_not_run_reports_its_error_never_a_number() -> None:
    cluster = FakeCluster(FailureKind.SLOW, bad_nodes=["node05"], unreachable=["node05"])
    loc = localize(NODES8, FailureKind.SLOW, cluster, limit=0.05)
    assert loc.bad_nodes == ["node05"]
    text = loc.explain()
    assert "node05+node06: did not run: node05: unreachable: connection refused  BAD" in text, text
    assert "0.000" not in text
    for r in loc.rounds:
        for g in r.groups:
            if "node05" in g.nodes:
                assert g.measurement.busbw_gbs is None and "busbw" not in g.why


def test_measurement_without_a_number_must_say_why() -> None:
    with pytest.raises(ValueError, match="must say why"):
        Measurement(("node01", "node02"))
    with pytest.raises(ValueError, match="carry its error"):
        Measurement(("node01", "node02"), failure=FailureKind.CRASHED, ran=False)


def test_slow_without_a_threshold_judges_against_the_median() -> None:
    loc = localize(NODES8, FailureKind.SLOW, FakeCluster(FailureKind.SLOW, bad_nodes=["node08"]), relative_drop=0.3)
    assert loc.bad_nodes == ["node08"] and loc.limit == pytest.approx(0.7)


def test_odd_node_count_tests_the_left_over_node() -> None:
    nodes = NODES8[:7]
    loc = localize(nodes, FailureKind.WRONG, FakeCluster(FailureKind.WRONG, bad_nodes=["node07"]))
    assert loc.bad_nodes == ["node07"], loc.explain()
    loc = localize(nodes, FailureKind.WRONG, FakeCluster(FailureKind.WRONG, bad_nodes=["node02"]))
    assert loc.bad_nodes == ["node02"], loc.explain()
    assert "node07" in loc.good_nodes  # the left-over node was re-paired with a good node too


def test_every_pair_failing_leaves_the_suspects_unresolved() -> None:
    loc = localize(NODES8[:4], FailureKind.CRASHED, FakeCluster(FailureKind.CRASHED, bad_nodes=["node01", "node03"]))
    assert loc.bad_nodes == [] and loc.unresolved == ["node01", "node02", "node03", "node04"]
    assert "no node is known good" in loc.note
    f = localization_findings(loc)
    assert [x.subject.kind for x in f if x.status is Status.FAIL] == ["node_set"]


def test_no_pair_reproducing_the_fault_is_not_tested() -> None:
    loc = localize(NODES8, FailureKind.SLOW, FakeCluster(FailureKind.SLOW), limit=0.05)
    assert loc.bad_nodes == [] and len(loc.rounds) == 7  # every pair tried, in 7 concurrent rounds
    f = localization_findings(loc)
    assert [x.status for x in f if x.subject.kind == "node_set"] == [Status.NOT_TESTED]


def test_bisection_when_runs_per_round_are_capped() -> None:
    assert rounds_needed("pairs", 16, None) == 2 and rounds_needed("bisect", 16, None) == 4
    assert rounds_needed("pairs", 16, 2) == 5 and rounds_needed("bisect", 16, 2) == 4
    assert choose_strategy(FailureKind.HUNG, 16, 2) == "bisect"
    assert choose_strategy(FailureKind.SLOW, 16, 2) == "pairs"  # bisection only for hang and crash
    assert choose_strategy(FailureKind.HUNG, 16, None) == "pairs"
    cluster = FakeCluster(FailureKind.HUNG, bad_nodes=["node13"])
    loc = localize(NODES16, FailureKind.HUNG, cluster, max_concurrent=2)
    assert loc.bad_nodes == ["node13"], loc.explain()
    assert [r.strategy for r in loc.rounds] == ["bisect", "bisect", "bisect", "re-pair"]
    assert [len(g) for g in cluster.rounds[0]] == [8, 8]


def test_bisection_falls_back_to_pairs_when_both_halves_fail() -> None:
    cluster = FakeCluster(FailureKind.CRASHED, bad_nodes=["node02", "node15"])
    loc = localize(NODES16, FailureKind.CRASHED, cluster, strategy="bisect")
    assert sorted(loc.bad_nodes) == ["node02", "node15"], loc.explain()
    assert "both halves failed" in loc.note


def test_bad_node_findings_feed_the_exclude_list_with_evidence_per_round() -> None:
    loc = localize(NODES16, FailureKind.HUNG, FakeCluster(FailureKind.HUNG, bad_nodes=["node07"]))
    findings = localization_findings(loc)
    fails = [f for f in findings if f.status is Status.FAIL]
    assert [(f.criterion, f.subject.kind, f.subject.name) for f in fails] == [(Criterion.BAD_NODE, "node", "node07")]
    assert [e.lines[0] for e in fails[0].evidence] == [
        "round 1 (pairs): node07+node08: hung: timed out after 5 s; its processes were ended on every node  BAD",
        "round 2 (re-pair): node07+node01: hung: timed out after 5 s; its processes were ended on every node  BAD",
    ]
    assert fails[0].evidence[0].path == "logs/node07-node08.log"
    assert fails[0].values["rounds"] == 2 and fails[0].values["runs"] == 10
    assert [u.node for u in unfit.unfit_nodes(findings)] == ["node07"]
    assert sum(f.status is Status.PASS for f in findings) == 15


def test_rail_search_names_node_and_rail() -> None:
    loc = localize(NODES8, FailureKind.SLOW, FakeCluster(FailureKind.SLOW, bad_nodes=["node03"]), limit=0.05, label="all_reduce rail1")
    fails = [f for f in localization_findings(loc, Criterion.RAILS, rail="rail1") if f.status is Status.FAIL]
    assert [(f.subject.kind, f.subject.name, f.subject.node) for f in fails] == [("rail", "node03/rail1", "node03")]
    got = unfit.unfit_nodes(fails)
    assert got[0].node == "node03" and got[0].reasons[0].startswith("node03/rail1: node03 on rail1: slow")


# ------------------------------------------------------------------- real captured logs -> kind and measurement


def _result(name: str, rc: int | None, timed_out: bool = False, nodes: tuple[str, ...] = ("node01", "node02", "node03")) -> CollectiveResult:
    text = (DATA / name).read_text()
    run = None
    error = None
    try:
        run = nccl.parse(text)
    except Exception as e:  # noqa: BLE001 - the parser's own error, kept as the runner keeps it
        error = str(e)
    return CollectiveResult(job_id="j", collective="all_reduce", nodes=list(nodes), command="mpirun ...", rc=rc, timed_out=timed_out,
                            seconds=1.5, log_path=Path(f"/r/logs/{name}"), log_text=text, run=run, parse_error=error)


TH = Thresholds(table={"all_reduce": {"*": {1 << 20: 400.0}}})


def test_failure_kind_of_real_runs() -> None:
    assert failure_kind(_result("01_h100_2node_16gpu_allreduce_v2.14-2.16fmt_COMPLETE.txt", 0), Thresholds(), "all_reduce") is None
    assert failure_kind(_result("01_h100_2node_16gpu_allreduce_v2.14-2.16fmt_COMPLETE.txt", 0), TH, "all_reduce") is FailureKind.SLOW
    assert failure_kind(_result("11_v2.13.10_all_reduce_nccl-failure_mpirun-exit.txt", 3), TH, "all_reduce") is FailureKind.CRASHED
    assert failure_kind(_result("12_v2.17.4_all_gather_timeout_srun-exit.txt", None, timed_out=True), TH, "all_reduce") is FailureKind.HUNG
    assert failure_kind(_result("14_v2.17.6_all_reduce_wrong-results_min-bw-failed.txt", 7), TH, "all_reduce") is FailureKind.WRONG


def test_measurement_of_real_runs_carries_errors_not_numbers() -> None:
    test = search_test(FailureKind.CRASHED, SweepSpec(min_bytes=1 << 20, max_bytes=8 << 20, check=0), timeout_s=900, hang_timeout_s=20)
    assert (test.sweep.min_bytes, test.sweep.max_bytes, test.timeout_s) == (8 << 20, 8 << 20, 20)
    crash = measurement(("node01", "node02"), _result("11_v2.13.10_all_reduce_nccl-failure_mpirun-exit.txt", 3), test)
    assert crash.busbw_gbs is None and crash.failure is FailureKind.CRASHED
    assert crash.error is not None and crash.error.startswith("exit code 3: ") and crash.log == "logs/11_v2.13.10_all_reduce_nccl-failure_mpirun-exit.txt"
    hung = measurement(("node01", "node02"), _result("12_v2.17.4_all_gather_timeout_srun-exit.txt", None, timed_out=True), test)
    assert hung.failure is FailureKind.HUNG and hung.busbw_gbs is None and "timed out after 20 s" in str(hung.error)
    from dataclasses import replace

    cut = replace(_result("12_v2.17.4_all_gather_timeout_srun-exit.txt", None, timed_out=True), cut="cut after 2.5 s: peers done")
    assert measurement(("node01", "node02"), cut, test).error == "cut after 2.5 s: peers done; its processes were ended on every node"
    wrong = measurement(("node01", "node02"), _result("14_v2.17.6_all_reduce_wrong-results_min-bw-failed.txt", 7), test)
    assert wrong.failure is FailureKind.WRONG and "#wrong = " in str(wrong.error)
    ok = measurement(("node01", "node02"), _result("01_h100_2node_16gpu_allreduce_v2.14-2.16fmt_COMPLETE.txt", 0), test)
    assert ok.failure is None and ok.busbw_gbs is not None and ok.busbw_gbs > 0
    from clusterproof.errors import NodeUnreachable

    down = measurement(("node01", "node02"), NodeUnreachable("node02", "connection refused"), test)
    assert not down.ran and down.busbw_gbs is None and "node02" in str(down.error)


def test_a_run_cut_as_slow_is_a_slow_measurement_without_a_number() -> None:
    test = search_test(FailureKind.SLOW, SweepSpec(min_bytes=1 << 20, max_bytes=8 << 20), timeout_s=900, hang_timeout_s=20)
    from dataclasses import replace

    cut = replace(_result("12_v2.17.4_all_gather_timeout_srun-exit.txt", None, timed_out=True),
                  cut="cut after 2.5 s: peers done (it cannot reach the limit)", cut_as=FailureKind.SLOW)
    m = measurement(("node01", "node02"), cut, test)
    assert m.failure is FailureKind.SLOW and m.busbw_gbs is None
    assert m.error == "cut after 2.5 s: peers done (it cannot reach the limit); its processes were ended on every node"
    v = judge(m, FailureKind.SLOW, 0.05)
    assert v.bad and v.why.startswith("slow: cut after 2.5 s")


def test_seconds_at_limit_is_the_time_nccl_tests_prints_at_that_busbw() -> None:
    """The H100 capture's 8M row (16 ranks): 571.9 us at busbw 27.50 GB/s. At exactly that busbw one collective
    takes that long, and a search run does 2 warm-ups x 5 + 2 placements x (20 timed + 1 check) = 52 of them."""
    test = search_test(FailureKind.SLOW, SweepSpec(min_bytes=1 << 20, max_bytes=8 << 20, iters=20, warmup_iters=5, check=1),
                       timeout_s=900, hang_timeout_s=20)
    one = seconds_at_limit(test, "all_reduce", 16, 27.50) / 52
    assert one == pytest.approx(571.9e-6, rel=0.01)
    assert seconds_at_limit(test, "all_reduce", 16, 13.75) == pytest.approx(2 * 52 * one)  # half the limit, twice as long


def test_slow_search_rounds_get_a_slow_cut_timed_for_their_largest_group() -> None:
    from clusterproof.inventory import parse_inventory
    from clusterproof.network.localize_driver import CollectiveRounds
    from clusterproof.network.peer_cut import PeerCut, SlowCut
    from tests.test_inventory import minimal

    doc = minimal()
    doc["nodes"] = [{"name": f"node0{i}", "host": f"10.0.0.{i}", "slots": 8 if i < 3 else 4} for i in range(1, 5)]
    inv = parse_inventory(doc, "c.yaml")
    test = search_test(FailureKind.SLOW, SweepSpec(min_bytes=8 << 20, max_bytes=8 << 20, iters=20, warmup_iters=5, check=1),
                       timeout_s=900, hang_timeout_s=20)
    rounds = CollectiveRounds(None, inv, "all_reduce", test, slow_limit_gbs=27.5)  # type: ignore[arg-type]
    cut = rounds.cut_for([("node01", "node02"), ("node03", "node04")])
    assert isinstance(cut, SlowCut) and cut.limit_gbs == 27.5
    assert cut.at_limit_s == pytest.approx(seconds_at_limit(test, "all_reduce", 16, 27.5))  # 8 + 8 ranks, not 4 + 4
    hang = PeerCut(3.0, 1.0)
    assert CollectiveRounds(None, inv, "all_reduce", test, peer_cut=hang).cut_for([("node01", "node02")]) is hang  # type: ignore[arg-type]


def test_wrong_search_turns_validation_on() -> None:
    test = search_test(FailureKind.WRONG, SweepSpec(min_bytes=1 << 20, max_bytes=8 << 20, check=0), timeout_s=900, hang_timeout_s=20)
    assert test.sweep.check == 1 and test.timeout_s == 900


class _RecordingRunner:
    """Stands where CollectiveRunner does, at the search's interface: records each round's cut rule, and
    answers every request with the error of a run that could not start (nothing is launched)."""

    def __init__(self) -> None:
        self.cuts: list[object] = []

    def run_many(self, requests: Sequence[object], peer_cut: object = None) -> list[object]:
        from clusterproof.errors import ClusterproofError

        self.cuts.append(peer_cut)
        return [ClusterproofError("not launched: recording runner") for _ in requests]


@pytest.mark.parametrize("setting, thresholds, expect_cut", [
    (True, {"all_reduce": {"*": {"1M": 0.05}}}, True),
    (False, {"all_reduce": {"*": {"1M": 0.05}}}, False),  # localize.slow_peer_cut: false
    (True, {}, False),  # no 2-node threshold: the limit is the median of round 1, unknown when it starts
])
def test_slow_search_cuts_only_against_a_known_limit_and_when_asked(setting: bool, thresholds: dict, expect_cut: bool) -> None:
    from clusterproof.inventory import parse_inventory
    from clusterproof.network.localize_driver import search
    from clusterproof.network.peer_cut import SlowCut
    from tests.test_inventory import minimal

    doc = minimal(localize={"slow_peer_cut": setting}, thresholds=thresholds,
                  nccl_tests={"sweep": {"min_bytes": "1M", "max_bytes": "1M"}})
    runner = _RecordingRunner()
    search(runner, parse_inventory(doc, "c.yaml"), "all_reduce", FailureKind.SLOW)  # type: ignore[arg-type]
    assert runner.cuts and all(isinstance(c, SlowCut) is expect_cut for c in runner.cuts)
