"""The pure checks the suites call, as findings: node facts (real captured outputs in tests/data/facts), GID tables
(real ``show_gids`` outputs in tests/data/gids), storage matrix cases, the outcome safety net and the JUnit
testcases per failing criterion."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from clusterproof import findings as fd
from clusterproof.findings import Criterion, Status, Subject, judge, node_subject
from clusterproof.network.gid_checks import check_gid_consistent, check_gid_present
from clusterproof.network.gid_choice import compare_nodes
from clusterproof.network.rdma import parse_show_gids
from clusterproof.nodes import checks
from clusterproof.nodes.facts import parse_facts
from clusterproof.outcomes import outcome_finding
from clusterproof.report.junit import add_failing_criteria
from clusterproof.storage.matrix import CASES, CaseResult, Layout, Observation
from clusterproof.storage.verdicts import case_findings, row_verdict

DATA = Path(__file__).parent / "data"


def facts(name: str, node: str = "node1", offset: float = 0.0):  # type: ignore[no-untyped-def]
    return dataclasses.replace(parse_facts(node, (DATA / "facts" / name).read_text()), clock_offset_s=offset)


def statuses(found: list[fd.Finding]) -> list[tuple[str, Status]]:
    return [(f.subject.name, f.status) for f in found]


def test_node_checks_pass_fail_and_not_tested() -> None:
    good = facts("sandbox-node1.txt")
    assert statuses(checks.check_reachable("node1", "10.0.0.1", good)) == [("node1", Status.PASS)]
    down = checks.check_reachable("node4", "10.0.0.4", OSError("node4: unreachable: connection refused"))
    assert down[0].status is Status.FAIL and down[0].message == "node4: node4: unreachable: connection refused"
    assert down[0].subject.node == "node4"  # so the exclude list names it
    # a node without facts is not tested by the other checks: its reachability failure says why
    skipped = checks.check_facts_complete("node4", OSError("refused"))
    assert skipped[0].status is Status.NOT_TESTED and "see the reachability check" in str(skipped[0].reason)
    missing = checks.check_binaries("node2", facts("sandbox-node2-nobinaries.txt", "node2"),
                                    ["/opt/nccl-tests/build/all_reduce_perf"], "/opt/nccl-tests/build")
    assert missing[0].status is Status.FAIL and "all_reduce_perf" in missing[0].message
    assert [e.path for e in missing[0].evidence] == ["logs/facts/node2.txt"]  # the raw output the run kept
    assert checks.check_launcher("node1", good, "srun")[0].status is Status.NOT_TESTED


def test_clock_skew_names_the_furthest_node() -> None:
    gathered = {f"node{i}": facts("sandbox-node1.txt", f"node{i}", o) for i, o in ((1, 0.001), (2, -0.002), (3, 1.7))}
    found = checks.check_clock_skew(gathered, 1.0)
    assert [(f.subject.name, f.status, f.criterion) for f in found] == [("node3", Status.FAIL, Criterion.CLOCKS)]
    assert found[0].message.startswith("clock skew 1.702 s > 1.0 s (network.max_clock_skew_s); furthest: node3 at +1.700 s")
    assert [e.path for e in found[0].evidence] == ["logs/facts/node3.txt"]
    ok = checks.check_clock_skew({k: v for k, v in gathered.items() if k != "node3"}, 1.0)
    assert ok[0].status is Status.PASS and dict(ok[0].values) == {"spread_s": pytest.approx(0.003), "limit_s": 1.0}


def test_hostnames_and_host_keys() -> None:
    a, b = facts("sandbox-node1.txt", "node1"), facts("sandbox-node1.txt", "node2")  # both say hostname node1
    clash = checks.check_hostnames_unique({"node1": a, "node2": b})
    assert [f.status for f in clash] == [Status.FAIL, Status.FAIL] and "also on node2" in clash[0].message
    loose = checks.check_host_keys("node1", "10.0.0.1", 22, a, strict=False, source="c.yaml", unverified_hosts=[])
    assert loose[0].status is Status.FAIL and "c.yaml: ssh.strict_host_keys is false" in loose[0].message
    accepted = checks.check_host_keys("node1", "10.0.0.1", 2222, a, strict=True, source="c.yaml", unverified_hosts=["[10.0.0.1]:2222"])
    assert accepted[0].status is Status.FAIL


def test_gid_checks_on_real_tables() -> None:
    table = parse_show_gids((DATA / "gids" / "connectx_2hca.show_gids_mlnx.txt").read_text())
    kwargs = {"hcas": ("mlx5_0", "mlx5_1")}
    present = check_gid_present("node1", table, sysfs_root="/sys", fixed_index=None, choose_kwargs=kwargs)
    assert present[0].status is Status.PASS and present[0].criterion is Criterion.GID_INDEX
    index = present[0].values["gid_index"]
    wrong = check_gid_present("node1", table, sysfs_root="/sys", fixed_index=index + 1, choose_kwargs=kwargs)
    assert wrong[0].status is Status.FAIL and f"inventory requires {index + 1}" in wrong[0].message
    assert check_gid_present("node9", None, sysfs_root="/sys", fixed_index=None, choose_kwargs=kwargs)[0].failed
    v6 = parse_show_gids((DATA / "gids" / "ipv6_only.show_gids_mlnx.txt").read_text())
    consensus = compare_nodes({"node1": table, "node2": table, "node3": v6}, **kwargs)
    found = check_gid_consistent(consensus, ["node1", "node2", "node3"])
    assert statuses(found) == [("node1", Status.PASS), ("node2", Status.PASS), ("node3", Status.FAIL)]
    assert all(f.values["consensus"] == index for f in found)


def test_storage_case_findings_and_known_limitations() -> None:
    layout = Layout("b", "o")
    case = next(c for c in CASES if c.where == "sibling" and c.expected("object-read-write") == "deny")
    ok = case_findings(CaseResult(case, "object-read-write", Observation("deny", "403 AccessDenied"), layout), "rgw-user")
    assert [(f.criterion, f.status) for f in ok] == [(Criterion.ACCESS_MATRIX, Status.PASS), (Criterion.PREFIX_CONFINEMENT, Status.PASS)]
    hole = case_findings(CaseResult(case, "object-read-write", Observation("allow", "200 OK"), layout), "sts")
    assert {f.status for f in hole} == {Status.FAIL} and "observed allow" in hole[0].message
    known = next(c for c in CASES if c.id == "delete_objects-inside")
    deviates = case_findings(CaseResult(known, "object-read-write", Observation("deny", "AccessDenied"), layout), "sts")
    assert [f.status for f in deviates] == [Status.KNOWN_LIMITATION] and "DeleteObjects" in str(deviates[0].reason)
    fixed = case_findings(CaseResult(known, "object-read-write", Observation("allow", "200"), layout), "sts")
    assert fixed[0].failed and "remove it from KNOWN_RGW_LIMITATIONS" in fixed[0].message
    assert (row_verdict("deny", "deny"), row_verdict("deny", "allow"), row_verdict("allow", "deny", "why")) == (
        "pass", "fail", "known-limitation")


@pytest.mark.parametrize(("when", "outcome", "criterion", "recorded", "expected"), [
    ("setup", "failed", None, [], (Criterion.TEST_ERRORS, Status.FAIL)),
    ("setup", "failed", Criterion.ACCESS_MATRIX, [], (Criterion.ACCESS_MATRIX, Status.FAIL)),
    ("call", "failed", None, ["pass"], (Criterion.GPU_HEALTH, Status.FAIL)),  # an assert after the check passed
    ("call", "failed", None, ["fail"], None),  # the failing finding already says it
    ("call", "passed", Criterion.EXPIRY, [], (Criterion.EXPIRY, Status.PASS)),
    ("call", "passed", None, [], None),
    ("setup", "skipped", Criterion.EXPIRY, [], (Criterion.EXPIRY, Status.NOT_TESTED)),
    ("teardown", "failed", None, ["pass"], (Criterion.TEST_ERRORS, Status.FAIL)),
    ("call", "passed", Criterion.EXPIRY, ["pass"], None),
])
def test_the_outcome_safety_net(when: str, outcome: str, criterion: Criterion | None, recorded: list[str],
                                expected: tuple[Criterion, Status] | None) -> None:
    made = {"pass": fd.passed, "fail": fd.failed}
    rec = [made[r](Criterion.GPU_HEALTH, node_subject("n1"), "x") for r in recorded]
    got = outcome_finding(test_id="suites/t.py::test_x", when=when, outcome=outcome, message="boom\ndetail",
                          criterion=criterion, recorded=rec)
    assert (None if got is None else (got.criterion, got.status)) == expected
    if got is not None and got.failed:
        assert got.message.startswith("suites/t.py::test_x") and got.message.endswith(": boom")


def test_xfail_without_findings_is_a_known_limitation() -> None:
    got = outcome_finding(test_id="t", when="call", outcome="skipped", message="", criterion=Criterion.DATA_PATH,
                          recorded=[], xfail_reason="known RGW 16.2 hole: ACL")
    assert got is not None and got.status is Status.KNOWN_LIMITATION and got.reason == "known RGW 16.2 hole: ACL"


def test_junit_gets_one_failed_testcase_per_failing_criterion(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    junit.write_text('<?xml version="1.0"?><testsuites><testsuite name="pytest" tests="3" failures="0" errors="0">'
                     '<testcase classname="t" name="a"/></testsuite></testsuites>')
    verdict = judge([
        fd.failed(Criterion.BASELINE, Subject("node_set", "n1,n2"), "all_reduce 2 nodes 8M: 0.82 GB/s vs baseline 0.89 (-7.9% < -5%)"),
        fd.passed(Criterion.COLLECTIVES, Subject("node_set", "n1,n2"), "ok"),
    ])
    assert add_failing_criteria(junit, verdict) == 1
    assert add_failing_criteria(junit, verdict) == 0  # idempotent
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "1" and suite.get("tests") == "4"
    case = suite.find("testcase[@name='networking.baseline']")
    assert case is not None and case.get("classname") == "clusterproof.scorecard"
    failure = case.find("failure")
    assert failure is not None and "-7.9% < -5%" in (failure.text or "")
