"""clusterproof.findings: the one record every check returns, its JSON round trip, the per-process log and the
aggregation into one verdict per criterion and one for the run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clusterproof import findings as fd
from clusterproof.findings import Criterion, Evidence, Finding, FindingLog, Status, Subject

NODE = Subject("node", "node07")


def test_every_criterion_has_an_area_and_a_heading() -> None:
    for c in Criterion:
        assert c.area in fd.Area
        assert c.heading
    assert Criterion.COLLECTIVES.area is fd.Area.NETWORKING
    assert Criterion.NO_SECRETS.area is fd.Area.SECURITY


def test_not_tested_and_known_limitation_need_a_reason() -> None:
    with pytest.raises(ValueError, match="needs a reason"):
        Finding(Criterion.TRANSPORT, Status.NOT_TESTED, NODE, "x")
    with pytest.raises(ValueError, match="needs a reason"):
        Finding(Criterion.ACCESS_MATRIX, Status.KNOWN_LIMITATION, NODE, "x")
    with pytest.raises(TypeError):
        Finding("networking.transport", Status.PASS, NODE, "x")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Finding(Criterion.TRANSPORT, "pass", NODE, "x")  # type: ignore[arg-type]


def test_round_trip_keeps_every_field() -> None:
    f = fd.failed(Criterion.COLLECTIVES, Subject("node_set", "node01,node02"), "busbw 1.0 < 2.0",
                  evidence=[Evidence("logs/job1/stdout.txt", ("   8388608 ... 1.00",))],
                  values={"busbw_gbs": 1.0, "threshold_gbs": 2.0}).with_test_id("suites/x.py::t[a]")
    back = Finding.from_dict(json.loads(json.dumps(f.to_dict())))
    assert back == f


def test_from_dict_names_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="criterion"):
        Finding.from_dict({"status": "pass"})
    with pytest.raises(ValueError):
        Finding.from_dict({"criterion": "no.such", "status": "pass", "subject": {"kind": "n", "name": "n"}, "message": ""})


def test_a_failure_fails_the_criterion_and_the_run() -> None:
    ok = fd.passed(Criterion.CLOCKS, NODE, "offset 0.01 s")
    bad = fd.failed(Criterion.CLOCKS, Subject("node", "node03"), "offset 9 s > 1 s")
    v = fd.judge([ok, bad])
    assert v.of(Criterion.CLOCKS).status is Status.FAIL
    assert v.of(Criterion.CLOCKS).headline.startswith("node03: offset 9 s")
    assert not v.passed and v.word == "fail"
    assert [c.criterion for c in v.failing()] == [Criterion.CLOCKS]


def test_pass_not_tested_and_known_limitation_do_not_fail_the_run() -> None:
    v = fd.judge([
        fd.passed(Criterion.ACCESS_MATRIX, Subject("issuer", "sts"), "480 cases"),
        fd.known_limitation(Criterion.ACCESS_MATRIX, Subject("issuer", "sts"), "copy ignores x-amz-acl", "RGW 16.2"),
        fd.not_tested(Criterion.TRANSPORT, Subject("run", "run"), "CPU stand-in: no NCCL"),
        fd.known_limitation(Criterion.EXPIRY, Subject("issuer", "sts"), "late deny", "RGW caches"),
    ])
    assert v.passed and v.word == "pass" and v.has_known_limitations
    assert v.of(Criterion.ACCESS_MATRIX).status is Status.PASS
    assert "known limitation" in v.of(Criterion.ACCESS_MATRIX).headline
    assert v.of(Criterion.TRANSPORT).status is Status.NOT_TESTED
    assert v.of(Criterion.TRANSPORT).headline == "CPU stand-in: no NCCL"
    assert v.of(Criterion.EXPIRY).status is Status.KNOWN_LIMITATION
    assert v.of(Criterion.BASELINE).status is Status.NOT_TESTED  # nothing recorded


def test_log_is_one_file_per_process_and_reads_back_in_order(tmp_path: Path) -> None:
    a, b = FindingLog(tmp_path, "gw0"), FindingLog(tmp_path, "gw1")
    f1 = fd.passed(Criterion.CLOCKS, NODE, "one")
    f2 = fd.failed(Criterion.CLOCKS, NODE, "two")
    a.append([f1])
    b.append([f2])
    a.append([])
    assert sorted(p.name for p in (tmp_path / "findings").iterdir()) == ["gw0.jsonl", "gw1.jsonl"]
    assert fd.read_findings(tmp_path) == [f1, f2]
    assert fd.read_findings(tmp_path / "nothing") == []


def test_torn_last_line_is_skipped_but_a_bad_line_is_named(tmp_path: Path) -> None:
    log = FindingLog(tmp_path, "main")
    log.append([fd.passed(Criterion.CLOCKS, NODE, "one")])
    with open(log.path, "a") as fh:
        fh.write('{"criterion": "reliability.clo')  # a writer killed mid-line
    assert len(fd.read_findings(tmp_path)) == 1
    log.path.write_text('{"criterion": 1}\n' + log.path.read_text())
    with pytest.raises(fd.FindingsFileError, match=r"main\.jsonl:1"):
        fd.read_findings(tmp_path)


def test_subject_of_kind_node_belongs_to_that_node() -> None:
    assert Subject("node", "node07").node == "node07"
    assert Subject("hca_port", "node07/mlx5_1:1", "node07").node == "node07"
    assert Subject("pair", "node01,node02").node is None


def test_unfit_nodes_come_from_failing_node_findings_only() -> None:
    from clusterproof import unfit

    port = Subject("hca_port", "node07/mlx5_1:1", "node07")
    items = [
        fd.failed(Criterion.IB_PORTS, port, "link_downed grew by 20 during the run"),
        fd.failed(Criterion.XID, Subject("node", "node03"), "XID 79 (GPU has fallen off the bus)"),
        fd.failed(Criterion.XID, Subject("node", "node03"), "XID 79 (GPU has fallen off the bus)"),
        fd.passed(Criterion.XID, Subject("node", "node01"), "no XID"),
        fd.failed(Criterion.COLLECTIVES, Subject("node_set", "node01,node02"), "busbw low"),  # no single node
        fd.failed(Criterion.ACCESS_MATRIX, Subject("node", "node05"), "not a node criterion"),
    ]
    got = unfit.unfit_nodes(items)
    assert [(u.node, u.reasons) for u in got] == [
        ("node03", ("XID 79 (GPU has fallen off the bus)",)),
        ("node07", ("node07/mlx5_1:1: link_downed grew by 20 during the run",)),
    ]
    assert unfit.render_unfit_file(got).splitlines()[0] == "node03\tXID 79 (GPU has fallen off the bus)"
    assert unfit.hostlist(["node07", "node03", "node08"]) == "node[03,07-08]"
    assert unfit.hostlist([]) == ""
    cmd = unfit.drain_command(got)
    assert cmd is not None and cmd.startswith("scontrol update nodename=node[03,07] state=drain reason=")
    assert "XID 79" in cmd and "+1 more" in cmd
    assert unfit.drain_command([]) is None
