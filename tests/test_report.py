"""clusterproof.report: run ids, saved tables, the scorecard and the built report (from tests/data/report/)."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from clusterproof.errors import ClusterproofError, ParseError
from clusterproof.report import (
    RunMeta,
    build,
    copy_logs,
    new_run_id,
    read_run_data,
    update_latest,
    write_checks,
)
from clusterproof.report.scorecard import odd_transport_rows, score
from clusterproof.results import NETWORK_COLUMNS, NODE_COLUMNS, STORAGE_COLUMNS
from tests.test_report_sample import (
    DATA,
    passing_checks,
    read_sample,
    sample_checks,
    sample_meta,
    sample_tables,
    sample_transport,
    without_slow_node,
    write_sample,
)

# ------------------------------------------------------------------------------------------ ids, metadata


def test_run_id_is_utc_sortable_and_random() -> None:
    at = datetime(2026, 11, 24, 21, 30, tzinfo=UTC)
    first = new_run_id(at)
    assert re.fullmatch(r"20261124T213000Z-[0-9a-f]{4}", first)
    assert new_run_id(at + timedelta(seconds=1)) > first
    # Other time zones and naive times are taken as the same instant in UTC.
    assert new_run_id(datetime(2026, 11, 24, 23, 30, tzinfo=timezone(timedelta(hours=2)))).startswith("20261124T213000Z-")
    assert new_run_id(datetime(2026, 11, 24, 21, 30)).startswith("20261124T213000Z-")
    assert len({new_run_id(at) for _ in range(20)}) > 1


def test_run_meta_round_trips_through_json() -> None:
    meta = sample_meta(extra={"max_clock_skew_s": 0.5, "nccl_env": {"NCCL_IB_GID_INDEX": "5"}})
    assert RunMeta.from_json(meta.to_json()) == meta


def test_run_meta_from_json_names_the_file_and_field() -> None:
    with pytest.raises(ParseError, match=r"^meta.json: run_id: missing$"):
        RunMeta.from_json('{"cluster": "x", "started_at": "2026-11-24T21:30:00+00:00"}', source="meta.json")
    with pytest.raises(ParseError, match=r"started_at: not an ISO 8601 time: 'yesterday'"):
        RunMeta.from_json('{"run_id": "r", "cluster": "x", "started_at": "yesterday"}')
    with pytest.raises(ParseError, match=r"nodes: wrong type str"):
        RunMeta.from_json('{"run_id": "r", "cluster": "x", "started_at": "2026-11-24T21:30:00", "nodes": "node1"}')


def test_update_latest_is_a_relative_symlink_to_the_given_run(tmp_path: Path) -> None:
    root = tmp_path / "reports"
    older, newer = root / "20261124T213000Z-aaaa", root / "20261124T220000Z-bbbb"
    for d in (older, newer):
        d.mkdir(parents=True)
        (d / "index.html").write_text(d.name)
    update_latest(root, older)
    link = update_latest(root, newer)
    assert link == root / "latest" and link.is_symlink()
    assert os.readlink(link) == newer.name
    assert (link / "index.html").read_text() == newer.name
    (root / "latest").unlink()
    (root / "latest").mkdir()
    with pytest.raises(ClusterproofError, match="is not a symlink"):
        update_latest(root, newer)


# ----------------------------------------------------------------------------------------- saved tables


def test_write_run_data_writes_every_file_and_the_parquet_round_trips(tmp_path: Path) -> None:
    write_sample(tmp_path, transport=sample_transport())
    names = {p.name for p in tmp_path.iterdir()}
    assert names == {"results.parquet", "results.csv", "storage.csv", "nodes.csv", "transport.csv", "metadata.json", "checks.json"}
    original = sample_tables()["network"]
    parquet = pd.read_parquet(tmp_path / "results.parquet")
    assert list(parquet.columns) == list(NETWORK_COLUMNS)
    assert {c: str(parquet[c].dtype) for c in ("n_nodes", "size_bytes", "wrong", "gid_index", "busbw_gbs", "standin")} == {
        "n_nodes": "Int64", "size_bytes": "Int64", "wrong": "Int64", "gid_index": "Int64", "busbw_gbs": "float64",
        "standin": "bool",
    }
    assert len(parquet) == len(original) == 56
    assert parquet["busbw_gbs"].tolist() == original["busbw_gbs"].tolist()
    assert parquet["node_set"].tolist() == original["node_set"].tolist()
    assert list(pd.read_csv(tmp_path / "results.csv").columns) == list(NETWORK_COLUMNS)
    assert list(pd.read_csv(tmp_path / "storage.csv").columns) == list(STORAGE_COLUMNS)
    assert list(pd.read_csv(tmp_path / "nodes.csv").columns) == list(NODE_COLUMNS)
    data = read_run_data(tmp_path)
    assert data.meta == sample_meta()
    pd.testing.assert_frame_equal(data.network, parquet)
    assert data.checks == sample_checks()
    assert data.transport is not None and data.transport["network"].tolist().count("Socket") == 1
    assert data.standin


def test_write_checks_rejects_bad_checks_naming_each_problem(tmp_path: Path) -> None:
    bad = [{"test_id": "t", "area": "gpus", "name": "t", "outcome": "ok", "message": ""}, {"area": "nodes"}]
    with pytest.raises(ValueError) as err:
        write_checks(tmp_path, bad)
    text = str(err.value)
    assert "checks[0].area: 'gpus' is not one of nodes, network, storage, transport, other" in text
    assert "checks[0].outcome: 'ok' is not one of passed, failed, skipped, error" in text
    assert "checks[1].test_id: missing" in text and "checks[1].outcome: missing" in text
    assert not (tmp_path / "checks.json").exists()


def test_read_run_data_refuses_a_directory_that_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(ClusterproofError, match="not a clusterproof run directory"):
        read_run_data(tmp_path)
    write_sample(tmp_path)
    (tmp_path / "checks.json").write_text("{not json")
    with pytest.raises(ParseError, match="checks.json: not JSON"):
        read_run_data(tmp_path)


def test_copy_logs_keeps_names_trees_and_both_of_two_same_named_logs(tmp_path: Path) -> None:
    src = tmp_path / "raw"
    (src / "a").mkdir(parents=True)
    (src / "b").mkdir()
    log = (DATA / "all_reduce-4n.log").read_text()
    (src / "a" / "run.log").write_text(log)
    (src / "b" / "run.log").write_text("second\n")
    tree = tmp_path / "tree"
    (tree / "node1").mkdir(parents=True)
    (tree / "node1" / "nccl.1234.log").write_text("node1:1234:1234 [0] NCCL INFO Using network IB\n")
    out = tmp_path / "run" / "logs"
    written = copy_logs([src / "a" / "run.log", src / "b" / "run.log", tree], out)
    assert [p.relative_to(out).as_posix() for p in written] == ["run.log", "run-1.log", "tree/node1/nccl.1234.log"]
    assert (out / "run.log").read_text() == log
    assert (out / "run-1.log").read_text() == "second\n"
    with pytest.raises(ClusterproofError, match="no such file"):
        copy_logs([tmp_path / "missing.log"], out)


# --------------------------------------------------------------------------------------------- scorecard

SAMPLE_SCORECARD = {
    "networking.collectives": ("fail", "24 of 56 rows below threshold; worst: all_reduce across 2 nodes (node2,node3) at 1M in-place: 0.13 GB/s, threshold 0.30"),
    "networking.four_node": ("pass", "all_reduce across 4 nodes at 8M: 0.89 GB/s, threshold 0.30; 8 of 8 rows within threshold"),
    "networking.gid_index": ("pass", "GID index 5 on every node; 1 check passed"),
    "networking.transport": ("not tested", "skipped: the CPU stand-in speaks no NCCL: no transport to prove"),
    "networking.baseline": ("not tested", "no baseline given"),
    "storage.access_matrix": ("pass", "40 of 40 cases as expected (issuers: rgw-user, sts; permissions: object-read-only, object-read-write)"),
    "storage.expiry": ("pass", "4 expiry cases as expected; 2 checks passed (suites/storage/test_expiry.py::test_s3_cred_denied_after_expiry[rgw-user], …)"),
    "reliability.nodes": ("pass", "4 of 4 nodes answered (node1, node2, node3, node4); 4 checks passed"),
    "reliability.clocks": ("pass", "clock spread 0.006 s across 4 nodes (limit 1 s)"),
    "reliability.data_integrity": ("pass", "0 wrong elements in 56 validated rows"),
    "security.no_secrets": ("not tested", "the report directory was not scanned"),
    "security.prefix_confinement": ("pass", "24 of 24 out-of-prefix attempts denied (bucket, no-prefix, other-bucket, root, sibling)"),
    "security.strict_host_keys": ("pass", "1 check passed: suites/nodes/test_ssh.py::test_nodes_ssh_rejects_unknown_host_key"),
}


def test_scorecard_of_the_sample_run(tmp_path: Path) -> None:
    cards = score(read_sample(tmp_path))
    assert [c.area for c in cards] == ["Networking"] * 5 + ["Storage"] * 2 + ["Reliability"] * 3 + ["Security"] * 3
    assert {c.id: (c.status, c.evidence) for c in cards} == SAMPLE_SCORECARD
    collectives = cards[0]
    assert len(collectives.details) == 24 + 3  # every slow row, then the three failed tests
    assert collectives.details[0] == "all_reduce across 2 nodes (node1,node3) at 1M out-of-place: 0.14 GB/s, threshold 0.30"
    assert collectives.details[-1].startswith(
        "suites/network/test_nccl.py::test_nccl_busbw_meets_reference[all_reduce-2n-node3-node4]: all_reduce 2 nodes 1M"
    )


def test_scorecard_evidence_when_nodes_storage_clocks_and_data_break(tmp_path: Path) -> None:
    tables = sample_tables()
    checks = sample_checks()
    reach = next(c for c in checks if c["test_id"].endswith("test_nodes_ssh_reachable[node3]"))
    reach.update(outcome="failed", message="node3: unreachable: connection refused (192.168.77.13:22)")
    st = tables["storage"]
    leak = (st["issuer"] == "sts") & (st["permission"] == "object-read-only") & (st["operation"] == "get") & (st["where"] == "sibling")
    st.loc[leak, ["observed", "verdict", "detail"]] = ["allow", "fail", "200 OK"]
    nodes = tables["nodes"]
    nodes.loc[nodes["node"] == "node4", "clock_offset_s"] = 1.5
    nodes = nodes[nodes["node"] != "node3"]  # no facts from the unreachable node
    net = tables["network"]
    net.loc[(net["n_nodes"] == 4) & (net["size_bytes"] == 4 << 20) & (net["placement"] == "in-place"), "wrong"] = 3
    cards = {c.id: c for c in score(read_sample(tmp_path, storage=st, nodes=nodes, network=net, checks=checks))}

    nodes_card = cards["reliability.nodes"]
    assert (nodes_card.status, nodes_card.details) == ("fail", [
        "suites/nodes/test_reachable.py::test_nodes_ssh_reachable[node3]: node3: unreachable: connection refused (192.168.77.13:22)",
        "node3: no facts collected",
    ])
    case = "sts object-read-only get at sibling: expected deny, observed allow (200 OK)"
    assert (cards["storage.access_matrix"].status, cards["storage.access_matrix"].evidence) == ("fail", f"1 of 40 cases wrong; {case}")
    assert (cards["security.prefix_confinement"].status, cards["security.prefix_confinement"].evidence) == (
        "fail", f"1 of 24 out-of-prefix attempts allowed; {case}")
    assert cards["reliability.clocks"].status == "fail"
    assert cards["reliability.clocks"].evidence == "clock spread 1.504 s across 3 nodes (limit 1 s); furthest: node4 at +1.500 s"
    assert (cards["reliability.data_integrity"].status, cards["reliability.data_integrity"].evidence) == (
        "fail", "1 of 56 rows wrong; all_reduce across 4 nodes at 4M in-place: 3 wrong elements")


def test_scorecard_says_not_tested_and_why(tmp_path: Path) -> None:
    three = ["node1", "node2", "node3"]
    net = sample_tables()["network"]
    net = net[net["node_set"].map(lambda s: set(s.split(",")) <= set(three))].copy()
    net["wrong"] = pd.NA  # validation off (-c 0)
    empty_storage = pd.DataFrame(columns=list(STORAGE_COLUMNS))
    meta = sample_meta(nodes=three, extra={"strict_host_keys": False})
    cards = {c.id: c for c in score(read_sample(tmp_path, meta=meta, network=net, storage=empty_storage, checks=[]))}
    assert (cards["networking.four_node"].status, cards["networking.four_node"].evidence) == (
        "not tested", "the run has 3 nodes; this criterion needs at least 4")
    assert (cards["storage.access_matrix"].status, cards["storage.access_matrix"].evidence) == ("not tested", "no storage case ran")
    assert cards["reliability.data_integrity"].evidence == f"validation was off (#wrong is N/A in all {len(net)} rows)"
    assert (cards["networking.gid_index"].status, cards["networking.gid_index"].evidence) == (
        "not tested", "GID index 5 used, but no GID consistency check ran")
    assert (cards["security.strict_host_keys"].status, cards["security.strict_host_keys"].evidence) == (
        "fail", "ssh.strict_host_keys is false in the inventory: unknown host keys would be accepted")


def test_transport_table_odd_rank_fails_the_transport_criterion(tmp_path: Path) -> None:
    table = sample_transport()
    assert odd_transport_rows(table) == {12: ["network Socket (others: IB)", "gdr False (others: True)", "flagged by the transport checks"]}
    cards = {c.id: c for c in score(read_sample(tmp_path / "odd", transport=table))}
    assert (cards["networking.transport"].status, cards["networking.transport"].evidence) == (
        "fail", "rank 12 on gpu-a02: network Socket (others: IB), gdr False (others: True), flagged by the transport checks")
    fixed = table.copy()
    fixed.loc[12, "network"] = "IB"
    fixed.loc[12, "devices"] = "mlx5_4:1/RoCE"
    fixed.loc[12, "gdr"] = True
    fixed.loc[12, "odd"] = False
    assert odd_transport_rows(fixed) == {}
    assert odd_transport_rows(fixed, expect_net="Socket")[0] == ["network IB (expected Socket)"]
    checks = [c for c in sample_checks() if c["area"] != "transport"]
    cards = {c.id: c for c in score(read_sample(tmp_path / "ok", transport=fixed, checks=checks))}
    assert (cards["networking.transport"].status, cards["networking.transport"].evidence) == (
        "pass", "16 ranks on 2 hosts, network IB, GDR True, NCCL 2.21.5 on every rank")


# ------------------------------------------------------------------------------------------------- build


def _assert_real_png(path: Path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = mpimg.imread(path)
    assert pixels.shape[0] > 300 and pixels.shape[1] > 400
    assert float(np.std(pixels[..., :3])) > 0.05  # not a blank canvas


def test_build_writes_plots_pages_and_the_failing_verdict(tmp_path: Path) -> None:
    write_sample(tmp_path, transport=sample_transport())
    copy_logs([DATA / "all_reduce-4n.log"], tmp_path / "logs")
    summary = build(tmp_path)
    assert summary.verdict == "fail"
    assert summary.standin
    assert (summary.html_path, summary.md_path) == (tmp_path / "index.html", tmp_path / "summary.md")
    assert sorted(p.name for p in summary.plots) == ["busbw_all_reduce.png", "large_busbw_by_node_set.png", "pairs_all_reduce.png"]
    for plot in summary.plots:
        _assert_real_png(plot)
        assert b"CPU stand-in \xe2\x80\x94 not GPU numbers" in plot.read_bytes()  # the title, kept in the PNG's Title
    expected = dict(SAMPLE_SCORECARD)
    expected["networking.transport"] = ("fail", "rank 12 on gpu-a02: network Socket (others: IB), gdr False (others: True), flagged by the transport checks")
    cards = {c.id: (c.status, c.evidence) for c in summary.scorecard}
    assert cards.pop("security.no_secrets")[0] == "pass"
    expected.pop("security.no_secrets")
    assert cards == expected
    assert len(summary.failures) == 24 + 1 + 3  # slow rows, the odd rank, the failed tests
    assert summary.failures[0] == "all_reduce across 2 nodes (node1,node3) at 1M out-of-place: 0.14 GB/s, threshold 0.30"

    page = summary.html_path.read_text()
    assert re.search(r'<section class="verdict fail" id="verdict"><div class="word">FAIL</div>', page)
    assert 'id="standin"' in page and "not from nccl-tests on GPUs" in page
    assert page.count('<img src="data:image/png;base64,') == 3
    assert "all_reduce across 4 nodes at 8M: 0.89 GB/s, threshold 0.30; 8 of 8 rows within threshold" in page
    assert '<tr class="odd">' in page and page.count('<tr class="odd">') == 1
    assert '<a href="logs/all_reduce-2n-node1-node3.log">' in page
    assert "<script" not in page and "http://" not in page and "https://" not in page

    md = summary.md_path.read_text()
    assert md.startswith("## clusterproof: FAIL on sandbox\n")
    assert "> **CPU stand-in:** the bandwidth numbers" in md
    assert "| Networking | 4-node NCCL test within specification | PASS | all_reduce across 4 nodes at 8M: 0.89 GB/s, threshold 0.30; 8 of 8 rows within threshold |" in md
    assert "### Failures (28)" in md
    assert "- **Collectives meet their busbw threshold at every size** (27):\n  - all_reduce across 2 nodes (node1,node3) at 1M out-of-place" in md
    assert "  - … and 22 more in `index.html`\n- **NCCL uses the expected transport (network, GDR, GID)** (1):\n  - rank 12 on gpu-a02" in md
    card = json.loads((tmp_path / "scorecard.json").read_text())
    assert card["verdict"] == "fail" and len(card["scorecard"]) == 13


def test_build_passes_a_clean_run_and_rebuilds_from_saved_data_only(tmp_path: Path) -> None:
    write_sample(tmp_path, network=without_slow_node(sample_tables()["network"]), checks=passing_checks())
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "stale.png").write_bytes(b"old")
    summary = build(tmp_path)
    assert summary.verdict == "pass", summary.failures
    assert summary.failures == []
    assert summary.scorecard[0].evidence == "all_reduce across 4 nodes at 8M: 0.89 GB/s, threshold 0.30; 32 of 32 rows within threshold"
    assert not (tmp_path / "plots" / "stale.png").exists()
    assert '<div class="word">PASS</div>' in summary.html_path.read_text()
    summary.html_path.unlink()
    for png in (tmp_path / "plots").iterdir():
        png.unlink()
    again = build(tmp_path)
    assert again.verdict == "pass" and again.html_path.exists() and len(again.plots) == 3


def test_build_fails_a_run_that_tested_nothing(tmp_path: Path) -> None:
    write_sample(
        tmp_path,
        network=pd.DataFrame(columns=list(NETWORK_COLUMNS)),
        storage=pd.DataFrame(columns=list(STORAGE_COLUMNS)),
        nodes=pd.DataFrame(columns=list(NODE_COLUMNS)),
        checks=[],
        meta=sample_meta(nodes=[]),
    )
    summary = build(tmp_path)
    assert summary.verdict == "fail"
    assert summary.failures == ["nothing was tested: every criterion about the cluster is 'not tested'"]
    assert summary.plots == []
    assert "No network results, so no plots." in summary.html_path.read_text()


def test_plots_have_no_overlapping_labels_even_with_many_sizes_and_node_sets() -> None:
    from clusterproof.report import plots

    rows = []
    nodes = [f"node{i:02d}" for i in range(1, 13)]
    sizes = [1 << e for e in range(3, 34)]  # 8 B .. 8G: 31 sizes
    for pair in [(a, b) for i, a in enumerate(nodes) for b in nodes[i + 1:]] + [tuple(nodes)]:
        for size in sizes:
            rows.append({"collective": "all_reduce", "node_set": ",".join(pair), "n_nodes": len(pair), "size_bytes": size,
                         "placement": "out-of-place", "busbw_gbs": 400 * size / (size + (1 << 28)),
                         "threshold_gbs": 300.0 if size >= 1 << 30 else None, "verdict": "pass"})
    net = pd.DataFrame(rows)
    drawn = plots.curve_figures(net, True, "cluster") + plots.pair_figures(net, True)
    bars = plots.node_set_figure(net, True, nodes)
    assert bars is not None
    for d in [*drawn, bars]:
        assert plots.label_overlaps(d.figure) == [], d.filename
        assert d.full_title.endswith("\nCPU stand-in — not GPU numbers")
        tick_labels = [t.get_text() for ax in d.figure.axes for t in ax.get_xticklabels()]
        plots.plt.close(d.figure)
        if d.kind == "busbw_vs_size":
            # 31 powers of two thinned to every third: at most 12 labels, human units.
            assert tick_labels[:3] == ["8", "64", "512"] and tick_labels[-1] == "8G" and len(tick_labels) <= 12
    # The checker itself sees a real collision.
    fig, ax = plots.plt.subplots(figsize=(3, 2))
    ax.set_xticks(range(30), [f"label{i}" for i in range(30)])
    try:
        assert plots.label_overlaps(fig)
    finally:
        plots.plt.close(fig)


def test_transport_rows_without_nccl_data_are_not_evidence(tmp_path: Path) -> None:
    # What the collector writes on the CPU stand-in: a row per rank, no NCCL fields, flagged with a reason.
    rows = pd.DataFrame([
        {"run_id": "r", "test_id": "t", "job_id": "all_reduce-4n-9371cd", "rank": None, "host": f"node{i}",
         "network": None, "devices": None, "gdr": None, "gid": None, "version": None, "odd": True,
         "why": "network is not IB"}
        for i in range(1, 5)
    ])
    skipped = [{"test_id": "suites/network/test_transport.py::test_transport_network_as_expected[all_reduce-4nodes]",
                "area": "transport", "name": "test_transport_network_as_expected", "outcome": "skipped",
                "message": "Skipped: CPU stand-in: no NCCL, transport not provable"}]
    checks = [c for c in passing_checks() if c["area"] != "transport"] + skipped
    run = write_sample(tmp_path, network=without_slow_node(sample_tables()["network"]), transport=rows, checks=checks)
    summary = build(run)
    card = next(c for c in summary.scorecard if c.id == "networking.transport")
    assert (card.status, card.evidence) == ("not tested", "skipped: CPU stand-in: no NCCL, transport not provable")
    assert summary.verdict == "pass"
    page = summary.html_path.read_text()
    assert "<summary>4 rows without NCCL data</summary>" in page and '<tr class="odd">' not in page
    # With NCCL data, the collector's own reason is quoted for a flagged rank.
    data_rows = sample_transport()
    data_rows["why"] = ["network is Socket, not IB" if r == 12 else None for r in data_rows["rank"]]
    assert odd_transport_rows(data_rows)[12][-1] == "network is Socket, not IB"


def test_known_rgw_limitation_is_shown_but_does_not_fail_the_matrix(tmp_path: Path) -> None:
    tables = sample_tables()
    st = tables["storage"]
    case = (st["issuer"] == "sts") & (st["permission"] == "object-read-write") & (st["expected"] == "allow")
    first = st.index[case][0]
    st.loc[first, ["observed", "verdict", "detail"]] = ["deny", "known-limitation", "AccessDenied; known RGW limitation: multi-delete"]
    card = {c.id: c for c in score(read_sample(tmp_path, storage=st))}["storage.access_matrix"]
    assert card.status == "pass"
    assert card.evidence.startswith("39 of 40 cases as expected")
    assert "; 1 known RGW limitation(s): sts object-read-write" in card.evidence
    assert "known RGW limitation: multi-delete" in card.evidence
    st.loc[first, "verdict"] = "fail"  # the same deviation without the documented limitation fails
    assert {c.id: c for c in score(read_sample(tmp_path / "b", storage=st))}["storage.access_matrix"].status == "fail"
