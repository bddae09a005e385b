"""clusterproof.findings and clusterproof.unfit, to the letter: exact headlines, exact records, exact files.
Written to kill the mutants `make mutation` found alive; each assertion is something a reader or a tool relies on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clusterproof import findings as fd
from clusterproof import unfit
from clusterproof.findings import Criterion, Evidence, Finding, FindingLog, Status, Subject

N7 = Subject("node", "node07")


def test_node_subject() -> None:
    assert fd.node_subject("node07") == Subject("node", "node07", "node07")


def test_type_errors_name_the_bad_value() -> None:
    with pytest.raises(TypeError) as e:
        Finding("x", Status.PASS, N7, "m")  # type: ignore[arg-type]
    assert str(e.value) == "criterion must be a Criterion, got 'x'"
    with pytest.raises(TypeError) as e:
        Finding(Criterion.CLOCKS, "pass", N7, "m")  # type: ignore[arg-type]
    assert str(e.value) == "status must be a Status, got 'pass'"
    with pytest.raises(ValueError) as e:
        Finding(Criterion.CLOCKS, Status.NOT_TESTED, N7, "m")
    assert str(e.value) == "a not tested finding needs a reason (reliability.clocks: m)"


def test_to_dict_is_exact_and_from_dict_fills_defaults() -> None:
    port = Subject("hca_port", "node07/mlx5_1:1", "node07")
    f = fd.not_tested(Criterion.IB_PORTS, port, "counters unreadable", evidence=[Evidence("logs/n7.txt", ("a",))])
    assert f.with_test_id("t::x").to_dict() == {
        "criterion": "reliability.ib_ports", "status": "not tested",
        "subject": {"kind": "hca_port", "name": "node07/mlx5_1:1", "node": "node07"},
        "message": "counters unreadable", "evidence": [{"path": "logs/n7.txt", "lines": ["a"]}],
        "reason": "counters unreadable", "values": {}, "test_id": "t::x",
    }
    minimal = Finding.from_dict({"criterion": "reliability.clocks", "status": "pass",
                                 "subject": {"kind": "node", "name": "n1"}, "message": "ok",
                                 "evidence": [{"path": None}]})
    assert minimal == Finding(Criterion.CLOCKS, Status.PASS, Subject("node", "n1"), "ok", (Evidence(None, ()),))
    assert minimal.subject.node == "n1" and minimal.reason is None and minimal.test_id is None


def test_constructors_keep_evidence_values_and_messages() -> None:
    ev = [Evidence("p", ("l",))]
    assert fd.passed(Criterion.CLOCKS, N7, "m", evidence=ev, values={"v": 1}).evidence == tuple(ev)
    assert fd.passed(Criterion.CLOCKS, N7, "m", values={"v": 1}).values == {"v": 1}
    assert fd.failed(Criterion.CLOCKS, N7, "m", evidence=ev).evidence == tuple(ev)
    assert fd.failed(Criterion.CLOCKS, N7, "m", values={"v": 2}).values == {"v": 2}
    nt = fd.not_tested(Criterion.CLOCKS, N7, "why", message="shown", evidence=ev)
    assert (nt.subject, nt.message, nt.reason, nt.evidence) == (N7, "shown", "why", tuple(ev))
    kl = fd.known_limitation(Criterion.CLOCKS, N7, "shown", "why", evidence=ev)
    assert (kl.subject, kl.message, kl.reason, kl.evidence, kl.status) == (N7, "shown", "why", tuple(ev), Status.KNOWN_LIMITATION)


def _nodes(n: int) -> list[Finding]:
    return [fd.passed(Criterion.CLOCKS, Subject("node", f"n{i}"), "ok") for i in range(1, n + 1)]


def test_headlines_exact() -> None:
    j = fd.judge_criterion
    one = [fd.failed(Criterion.CLOCKS, N7, "skew 9 s")]
    assert j(Criterion.CLOCKS, one).headline == "node07: skew 9 s"
    assert j(Criterion.CLOCKS, one * 2).headline == "node07: skew 9 s (and 1 more)"
    assert j(Criterion.CLOCKS, one * 3).headline == "node07: skew 9 s (and 2 more)"
    kl = fd.known_limitation(Criterion.CLOCKS, N7, "late", "RGW")
    assert j(Criterion.CLOCKS, [*one, kl]).headline == "node07: skew 9 s; 1 known limitation: late"
    assert j(Criterion.CLOCKS, [*one, kl, kl]).headline == "node07: skew 9 s; 2 known limitations: late"
    assert j(Criterion.CLOCKS, _nodes(1)).headline == "1 check passed on n1"
    assert j(Criterion.CLOCKS, _nodes(6)).headline == "6 checks passed on n1, n2, n3, n4, n5, n6"
    assert j(Criterion.CLOCKS, _nodes(7)).headline == "7 checks passed on n1, n2, n3, n4, n5, n6 …"
    nts = [fd.not_tested(Criterion.CLOCKS, N7, "first"), fd.not_tested(Criterion.CLOCKS, N7, "second")]
    assert j(Criterion.CLOCKS, [*_nodes(1), *nts]).headline == "1 check passed on n1; 2 not tested (first)"
    assert j(Criterion.CLOCKS, [kl]).headline == "late (RGW)"
    assert j(Criterion.CLOCKS, nts).headline == "first"
    assert j(Criterion.CLOCKS, []).headline == "no check recorded a finding for it in this run"
    for items in (one, [kl], _nodes(2)):
        assert j(Criterion.CLOCKS, items).findings == tuple(items)
    assert j(Criterion.CLOCKS, [*one, *_nodes(1)]).failures == tuple(one)


def test_log_lines_are_sorted_json_one_per_finding_in_a_new_nested_dir(tmp_path: Path) -> None:
    run = tmp_path / "reports" / "run1"
    log = FindingLog(run)
    assert log.path == run / "findings" / "main.jsonl"
    a = fd.passed(Criterion.CLOCKS, N7, "a", values={"log": Path("logs/x")})
    b = fd.failed(Criterion.CLOCKS, N7, "b")
    log.append([a, b])
    lines = log.path.read_text(encoding="utf-8").split("\n")
    assert lines[2] == "" and len(lines) == 3
    assert lines[0].startswith('{"criterion": "reliability.clocks", "evidence": []')
    assert json.loads(lines[0])["values"] == {"log": "logs/x"}
    assert [f.message for f in fd.read_findings(run)] == ["a", "b"]


def test_a_bad_line_in_the_middle_is_named_even_when_it_looks_torn(tmp_path: Path) -> None:
    log = FindingLog(tmp_path)
    log.append([fd.passed(Criterion.CLOCKS, N7, "a")])
    log.path.write_text('{"criterion": "x\n' + log.path.read_text())
    with pytest.raises(fd.FindingsFileError, match=r"main\.jsonl:1: "):
        fd.read_findings(tmp_path)


def test_undecodable_bytes_do_not_stop_the_reader(tmp_path: Path) -> None:
    log = FindingLog(tmp_path)
    log.append([fd.passed(Criterion.CLOCKS, N7, "caf\u00e9")])
    log.path.write_bytes(log.path.read_bytes() + b"\xff\xfe")
    assert [f.message for f in fd.read_findings(tmp_path)] == ["caf\u00e9"]


def test_unfit_file_and_drain_line_exact() -> None:
    long = "x" * 1200
    items = [unfit.UnfitNode("node03", ("a  b\n c", "d")), unfit.UnfitNode("node07", (long,))]
    text = unfit.render_unfit_file(items)
    assert text.split("\n")[0] == "node03\ta b c; d"
    assert text.split("\n")[1] == "node07\t" + "x" * 999 + "…"
    assert text.endswith("\n") and text.count("\n") == 2
    assert unfit.render_unfit_file([]) == ""
    assert unfit._one_line("y" * 200) == "y" * 200
    assert unfit._one_line("y" * 201) == "y" * 199 + "…"
    one = unfit.drain_command(items[:1])
    assert one == "scontrol update nodename=node03 state=drain reason='clusterproof: node03: a  b\n c'".replace("a  b\n c", "a b c")
    two = unfit.drain_command([unfit.UnfitNode("node03", ("r" * 300,)), items[1]])
    assert two is not None
    reason = two.split("reason=", 1)[1].strip("'")
    assert len(reason) == 120 and reason.endswith("…")
    assert unfit.drain_command([unfit.UnfitNode("n1", ("r",)), unfit.UnfitNode("n2", ("s",))]) == (
        "scontrol update nodename=n[1-2] state=drain reason='clusterproof: n1: r (+1 more nodes)'")


def test_round_trip_of_a_not_tested_port_finding_keeps_node_and_reason() -> None:
    f = fd.not_tested(Criterion.IB_PORTS, Subject("hca_port", "node07/mlx5_1:1", "node07"), "unreadable")
    back = Finding.from_dict(json.loads(json.dumps(f.to_dict())))
    assert back == f and back.subject.node == "node07" and back.reason == "unreadable"
    bare = Finding.from_dict({"criterion": "reliability.clocks", "status": "pass",
                              "subject": {"kind": "gpu", "name": "node01/gpu3"}, "message": "ok"})
    assert bare.evidence == () and bare.subject.node is None


def test_a_complete_last_line_that_is_not_a_finding_is_named(tmp_path: Path) -> None:
    log = FindingLog(tmp_path)
    log.append([fd.passed(Criterion.CLOCKS, N7, "a")])
    with open(log.path, "a") as fh:
        fh.write('{"criterion": "reliability.clocks"}')
    with pytest.raises(fd.FindingsFileError, match=r"main\.jsonl:2: "):
        fd.read_findings(tmp_path)


def test_unfit_nodes_reads_past_findings_that_do_not_count() -> None:
    items = [
        fd.passed(Criterion.XID, Subject("node", "node01"), "no XID"),
        fd.failed(Criterion.COLLECTIVES, Subject("node_set", "node01,node02"), "slow"),
        fd.failed(Criterion.XID, Subject("node", "node02"), "XID 79"),
    ]
    assert [u.node for u in unfit.unfit_nodes(items)] == ["node02"]
