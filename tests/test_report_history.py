"""History across runs: large-message busbw and storage pass rate per run, the trend PNG and history.html."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import matplotlib.image as mpimg
import pandas as pd
import pytest

from clusterproof.errors import ClusterproofError
from clusterproof.report import build, history, update_latest
from clusterproof.report.trend import HISTORY_COLUMNS
from tests.test_report_sample import (
    sample_meta,
    sample_tables,
    without_slow_node,
    write_sample,
)


def _expected_busbw(network: pd.DataFrame, n_nodes: int) -> float:
    rows = network[(network["n_nodes"] == n_nodes) & (network["placement"] == "out-of-place")]
    return float(rows[rows["size_bytes"] == rows["size_bytes"].max()]["busbw_gbs"].median())


def test_history_over_three_runs(tmp_path: Path) -> None:
    root = tmp_path / "reports"
    tables = sample_tables()
    good = without_slow_node(tables["network"])
    slower = good.copy()
    slower["busbw_gbs"] = (slower["busbw_gbs"] * 0.9).round(2)
    storage_bad = tables["storage"].copy()
    storage_bad.loc[storage_bad.index[:4], ["observed", "verdict"]] = ["allow", "fail"]
    runs = [
        ("20261122T020000Z-aaaa", good, tables["storage"]),
        ("20261123T020000Z-bbbb", slower, storage_bad),
        ("20261124T020000Z-cccc", tables["network"], tables["storage"]),
    ]
    for day, (run_id, network, storage) in enumerate(runs, start=22):
        meta = sample_meta(run_id=run_id, started_at=datetime(2026, 11, day, 2, 0, tzinfo=UTC))
        write_sample(root / run_id, meta=meta, network=network, storage=storage)
    build(root / runs[0][0])  # a built run also contributes its verdict
    update_latest(root, root / runs[-1][0])
    (root / "README.md").write_text("generated output\n")
    (root / "scratch").mkdir()  # not a run: no metadata.json, no results

    frame = history(root)

    assert list(frame.columns) == list(HISTORY_COLUMNS)
    assert frame["run_id"].unique().tolist() == [r[0] for r in runs]
    bw = frame[frame["metric"] == "large_busbw_gbs"]
    assert len(bw) == 6 and set(bw["n_nodes"]) == {2, 4} and set(bw["size_bytes"]) == {8 << 20}
    for run_id, network, _ in runs:
        got = bw[bw["run_id"] == run_id].set_index("n_nodes")["value"]
        assert got[2] == pytest.approx(_expected_busbw(network, 2))
        assert got[4] == pytest.approx(_expected_busbw(network, 4))
    rates = frame[frame["metric"] == "storage_pass_rate_pct"].set_index("run_id")["value"]
    assert rates.tolist() == pytest.approx([100.0, 40 / 44 * 100, 100.0])
    assert frame.set_index("run_id")["verdict"].dropna().to_dict() == {runs[0][0]: "pass"}
    assert frame["standin"].all()

    png = root / "history.png"
    pixels = mpimg.imread(png)
    assert pixels.shape[1] > 800 and float(pixels[..., :3].std()) > 0.05
    page = (root / "history.html").read_text()
    assert page.count('<img src="data:image/png;base64,') == 1
    for run_id, _, _ in runs:
        assert f'<a href="{run_id}/index.html">{run_id}</a>' in page
    assert "CPU stand-in" in page and "<script" not in page


def test_history_writes_where_asked_and_handles_no_runs(tmp_path: Path) -> None:
    root = tmp_path / "reports"
    root.mkdir()
    assert history(root).empty
    assert not (root / "history.html").exists()
    write_sample(root / "20261124T213000Z-a1b2")
    out = tmp_path / "site" / "trend.html"
    out.parent.mkdir()
    frame = history(root, out)
    assert len(frame) == 3  # 2 and 4 nodes, and the storage pass rate
    assert out.is_file() and (tmp_path / "site" / "trend.png").is_file()
    with pytest.raises(ClusterproofError, match="not a directory"):
        history(tmp_path / "missing")
