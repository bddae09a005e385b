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

from clusterproof import findings as fd
from clusterproof.errors import ClusterproofError, ParseError
from clusterproof.findings import Criterion, Status, Subject
from clusterproof.report import (
    RunMeta,
    build,
    copy_logs,
    new_run_id,
    read_run_data,
    update_latest,
)
from clusterproof.results import NETWORK_COLUMNS, NODE_COLUMNS, STORAGE_COLUMNS
from tests.test_report_sample import (
    DATA,
    findings_of,
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
    assert names == {"results.parquet", "results.csv", "storage.csv", "nodes.csv", "transport.csv", "metadata.json", "findings"}
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
    assert data.transport is not None and data.transport["network"].tolist().count("Socket") == 1
    assert data.standin


def test_read_run_data_refuses_a_directory_that_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(ClusterproofError, match="not a clusterproof run directory"):
        read_run_data(tmp_path)
    write_sample(tmp_path)
    (tmp_path / "metadata.json").write_text("{not json")
    with pytest.raises(ParseError, match="metadata.json: not JSON"):
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


# ------------------------------------------------------------------------------------------------- build


def _assert_real_png(path: Path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = mpimg.imread(path)
    assert pixels.shape[0] > 300 and pixels.shape[1] > 400
    assert float(np.std(pixels[..., :3])) > 0.05  # not a blank canvas


def test_build_judges_the_recorded_findings_and_renders_them(tmp_path: Path) -> None:
    write_sample(tmp_path, transport=sample_transport())
    copy_logs([DATA / "all_reduce-4n.log"], tmp_path / "logs")
    summary = build(tmp_path)
    assert summary.word == "fail" and not summary.passed
    assert summary.standin
    assert (summary.html_path, summary.md_path) == (tmp_path / "index.html", tmp_path / "summary.md")
    assert sorted(p.name for p in summary.plots) == ["busbw_all_reduce.png", "large_busbw_by_node_set.png", "pairs_all_reduce.png"]
    for plot in summary.plots:
        _assert_real_png(plot)
        assert b"CPU stand-in \xe2\x80\x94 not GPU numbers" in plot.read_bytes()  # the title, kept in the PNG's Title
    v = summary.verdict
    assert [c.criterion for c in v.failing()] == [Criterion.COLLECTIVES]
    assert len(v.of(Criterion.COLLECTIVES).failures) == 24  # every slow row of the node3 pairs, nothing re-judged
    assert v.of(Criterion.ACCESS_MATRIX).status is Status.PASS
    assert v.of(Criterion.NO_SECRETS).status is Status.PASS  # recorded by build from its scan
    assert v.of(Criterion.BASELINE).status is Status.NOT_TESTED
    assert v.of(Criterion.BASELINE).headline == "no baseline given (--baseline)"
    # The transport table is rendered as recorded (its own odd flag), never judged again: no transport finding.
    assert v.of(Criterion.TRANSPORT).status is Status.NOT_TESTED

    page = summary.html_path.read_text()
    assert re.search(r'<section class="verdict fail" id="verdict"><div class="word">FAIL</div>', page)
    assert 'id="standin"' in page and "not from nccl-tests on GPUs" in page
    assert page.count('<img src="data:image/png;base64,') == 3
    assert '<h2 id="failures">Failing findings (24)</h2>' in page
    assert '<tr class="odd">' in page and page.count('<tr class="odd">') == 1
    assert '<a href="logs/all_reduce-2n-node1-node3.log">' in page
    assert "<script" not in page and "http://" not in page and "https://" not in page

    md = summary.md_path.read_text()
    assert md.startswith("## clusterproof: FAIL on sandbox\n")
    assert "> **CPU stand-in:** the bandwidth numbers" in md
    assert "| Networking | Collectives meet their bus-bandwidth thresholds at every size | **FAIL** | node1,node3: all_reduce" in md
    assert "- **Collectives meet their bus-bandwidth thresholds at every size** (24):" in md
    card = json.loads((tmp_path / "scorecard.json").read_text())
    assert card["verdict"] == "fail" and len(card["scorecard"]) == len(Criterion)
    assert [c["id"] for c in card["scorecard"] if c["status"] == "fail"] == ["networking.collectives"]


def test_build_passes_a_clean_run_and_rebuilds_from_saved_data_only(tmp_path: Path) -> None:
    write_sample(tmp_path, network=without_slow_node(sample_tables()["network"]))
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "stale.png").write_bytes(b"old")
    summary = build(tmp_path)
    assert summary.word == "pass", [c.headline for c in summary.verdict.failing()]
    assert summary.verdict.of(Criterion.COLLECTIVES).headline.startswith("32 checks passed on node1,node2, node1,node2,node3,node4")
    assert not (tmp_path / "plots" / "stale.png").exists()
    assert '<div class="word">PASS</div>' in summary.html_path.read_text()
    summary.html_path.unlink()
    for png in (tmp_path / "plots").iterdir():
        png.unlink()
    again = build(tmp_path)
    assert again.word == "pass" and again.html_path.exists() and len(again.plots) == 3
    # Rebuilding replaces the run-level findings instead of piling them up.
    assert len(again.verdict.of(Criterion.NO_SECRETS).findings) == 1


def test_a_rebuild_keeps_the_runs_baseline_verdict(tmp_path: Path) -> None:
    base = write_sample(tmp_path / "base", network=without_slow_node(sample_tables()["network"]))
    build(base)
    slower = without_slow_node(sample_tables()["network"])
    slower["busbw_gbs"] = slower["busbw_gbs"] * 0.8
    run = write_sample(tmp_path / "run", network=slower, findings=findings_of(without_slow_node(sample_tables()["network"]),
                                                                               sample_tables()["storage"], sample_tables()["nodes"]))
    first = build(run, baseline=base)
    assert first.word == "fail" and [c.criterion for c in first.verdict.failing()] == [Criterion.BASELINE]
    assert "(-20% < -5%)" in first.verdict.of(Criterion.BASELINE).failures[0].message
    # `clusterproof report build reports/<run>` without --baseline: the recorded baseline findings stand.
    again = build(run)
    assert again.word == "fail" and [c.criterion for c in again.verdict.failing()] == [Criterion.BASELINE]


def test_known_limitation_is_shown_and_the_run_passes_with_it(tmp_path: Path) -> None:
    found = [*sample_findings_clean(), fd.known_limitation(
        Criterion.ACCESS_MATRIX, Subject("issuer", "sts/object-read-write"), "[sts] delete_objects-inside: expected allow, observed deny",
        "known RGW limitation: multi-delete")]
    summary = build(write_sample(tmp_path, network=without_slow_node(sample_tables()["network"]), findings=found))
    assert summary.passed and summary.verdict.has_known_limitations
    assert "1 known limitation: [sts] delete_objects-inside" in summary.verdict.of(Criterion.ACCESS_MATRIX).headline
    assert '<div class="word">PASS with known limitations</div>' in summary.html_path.read_text()
    assert json.loads((tmp_path / "scorecard.json").read_text())["verdict"] == "pass"
    # the criterion passes, so the counts say "0 known limitation" criteria: the line must still own up to it
    assert summary.md_path.read_text().count("; 1 finding is a known limitation") == 1


def sample_findings_clean() -> list[fd.Finding]:
    t = sample_tables()
    return findings_of(without_slow_node(t["network"]), t["storage"], t["nodes"])


def test_build_refuses_a_run_without_findings(tmp_path: Path) -> None:
    write_sample(tmp_path)
    for p in (tmp_path / "findings").iterdir():
        p.unlink()
    (tmp_path / "findings").rmdir()
    with pytest.raises(ClusterproofError, match="no findings/ directory, so nothing to judge"):
        build(tmp_path)


def test_build_of_a_run_with_no_findings_tests_nothing(tmp_path: Path) -> None:
    write_sample(
        tmp_path,
        network=pd.DataFrame(columns=list(NETWORK_COLUMNS)),
        storage=pd.DataFrame(columns=list(STORAGE_COLUMNS)),
        nodes=pd.DataFrame(columns=list(NODE_COLUMNS)),
        meta=sample_meta(nodes=[]),
    )
    summary = build(tmp_path)
    assert summary.verdict.of(Criterion.COLLECTIVES).status is Status.NOT_TESTED
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




def test_large_message_table_shows_each_launchers_row(tmp_path: Path) -> None:
    """A run joined by a second launcher (make demo: mpirun, then srun) shows one large-message row per launcher,
    each saying which launcher produced it."""
    net = without_slow_node(sample_tables()["network"])
    both = pd.concat([net.assign(launcher="mpirun"), net.assign(launcher="srun")], ignore_index=True)
    write_sample(tmp_path, network=both)
    page = build(tmp_path).html_path.read_text()
    large = page.split('<h2 id="large">')[1].split("</table>")[0]
    assert "<th>Launcher</th>" in large
    assert large.count("<td>mpirun</td>") == large.count("<td>srun</td>") > 0


def test_a_forced_nccl_setting_is_shown_beside_the_busbw(tmp_path: Path) -> None:
    net = without_slow_node(sample_tables()["network"])
    write_sample(tmp_path, network=net.assign(forced_nccl="NCCL_ALGO=Ring"))
    large = build(tmp_path).html_path.read_text().split('<h2 id="large">')[1].split("</table>")[0]
    assert "<th>Forced NCCL setting</th>" in large and "NCCL_ALGO=Ring" in large and "their busbw is what" in large
    write_sample(tmp_path, network=net)
    assert "Forced NCCL" not in build(tmp_path).html_path.read_text()
