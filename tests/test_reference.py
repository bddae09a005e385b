"""References: MAD statistics, calibrate from saved sandbox runs, the reference file round trip and its validation,
the inventory's references/network_checks sections, and the per-row comparison. No root: saved tables only
(``tests/data/reference/``, see its README)."""

from __future__ import annotations

import math
import random
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from clusterproof.errors import ClusterproofError, InventoryError
from clusterproof.findings import Criterion, Status
from clusterproof.inventory import parse_inventory
from clusterproof.network import reference
from clusterproof.network.reference import FabricClass, lower_bound, mad, median

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "reference"
STANDIN = FabricClass("sandbox-standin", "roce", "CPU stand-in", 100.0)


def table(name: str) -> pd.DataFrame:
    return pd.read_csv(DATA / name)


def all_node_rows(name: str) -> pd.DataFrame:
    """The 4-node rows: one run each, as the sandbox test compares them. (The pair rows of these runs were taken
    two rounds each on a loaded machine; a single one of them can read a tenth of its twin.)"""
    df = table(name)
    return df[df["n_nodes"] == 4]


def test_median_and_mad_of_known_values() -> None:
    assert median([3, 1, 2]) == 2 and median([4, 1, 2, 3]) == 2.5
    assert mad([1, 1, 2, 2, 4, 6, 9]) == 1.0  # the textbook example: median 2, deviations 1 1 0 0 2 4 7
    with pytest.raises(ValueError):
        median([])


def test_lower_bound_takes_k_mads_but_keeps_a_minimum_band_and_the_floor() -> None:
    values = [10.0, 10.0, 11.0, 9.0, 10.0]  # median 10, MAD 0
    assert lower_bound(values, k=3, min_band_pct=0) == 10.0
    assert lower_bound(values, k=3, min_band_pct=10) == pytest.approx(9.0)
    assert lower_bound([10.0, 20.0, 30.0], k=1, min_band_pct=0) == pytest.approx(10.0)  # median 20 - 1 * MAD 10
    assert lower_bound([10.0, 20.0, 30.0], k=3, min_band_pct=0, floor_gbs=5.0) == 5.0


def test_lower_bound_is_never_above_the_median_nor_negative() -> None:
    rng = random.Random(15)
    for _ in range(2000):
        values = [rng.lognormvariate(0, 2) for _ in range(rng.randint(1, 40))]
        k, band = rng.uniform(0, 10), rng.uniform(0, 99)
        b = lower_bound(values, k, band)
        assert 0.0 <= b <= median(values) + 1e-9


def test_calibrate_from_two_healthy_runs_passes_the_third() -> None:
    runs = [("healthy-1", table("healthy-1.csv")), ("healthy-2", table("healthy-2.csv"))]
    refs = reference.calibrate(runs, STANDIN, k=4, min_band_pct=70)
    assert refs.standin and len(refs.entries) == 8  # (2 and 4 nodes) x (64K, 256K, 1M, 4M)
    third = all_node_rows("healthy-3.csv")
    found = reference.check_reference(third, refs)
    assert found and all(f.status is Status.PASS for f in found), [f.message for f in found if f.failed]
    assert all("% of reference" in f.message for f in found)


def test_calibrate_excludes_rows_with_wrong_results_and_needs_some_row() -> None:
    df = table("healthy-1.csv")
    bad = df.assign(wrong=1)
    with pytest.raises(ClusterproofError, match="no healthy row"):
        reference.calibrate([("bad", bad)], STANDIN)
    with pytest.raises(ClusterproofError, match="no run"):
        reference.calibrate([], STANDIN)


def test_rendered_file_reads_back_with_its_runs_as_a_comment(tmp_path: Path) -> None:
    runs = [("reports/a", table("healthy-1.csv")), ("reports/b", table("healthy-2.csv"))]
    refs = reference.calibrate(runs, STANDIN, k=3, min_band_pct=10)
    text = reference.render(refs, k=3, min_band_pct=10, floor_gbs=0)
    assert "#   reports/a" in text and "#   reports/b" in text and "CPU stand-in" in text.splitlines()[4]
    path = tmp_path / "refs.yaml"
    path.write_text(text)
    back = reference.load_reference_file(path)
    assert back.fabric_class == STANDIN and back.standin
    for key, entry in refs.entries.items():
        assert back.entries[key].lower_gbs == entry.lower_gbs
        assert back.entries[key].reference_gbs == entry.reference_gbs
    # The lower bounds are the inventory's threshold format: they load as thresholds unchanged.
    inv = parse_inventory({"nodes": [{"name": "n1", "host": "h"}], "ssh": {"key_file": "/k", "strict_host_keys": False},
                           "thresholds": yaml.safe_load(text)["thresholds"]})
    key = next(iter(refs.entries))
    assert inv.thresholds.lookup(key.collective, key.n_nodes, key.size_bytes) == refs.entries[key].lower_gbs


def test_cli_calibrate_writes_yaml_to_stdout(tmp_path: Path) -> None:
    for i in (1, 2):
        run = tmp_path / f"run{i}"
        run.mkdir()
        table(f"healthy-{i}.csv").to_parquet(run / "results.parquet")
    res = subprocess.run([sys.executable, "-m", "clusterproof.cli", "calibrate", str(tmp_path / "run1"), str(tmp_path / "run2"),
                          "--class", "lab", "--fabric", "ib", "--k", "2.5"], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    doc = yaml.safe_load(res.stdout)
    assert doc["fabric_class"] == {"name": "lab", "fabric": "ib"} and "k = 2.5" in res.stdout
    assert set(doc["thresholds"]["all_reduce"]) == {2, 4}
    missing = subprocess.run([sys.executable, "-m", "clusterproof.cli", "calibrate", str(tmp_path / "nope")],
                             capture_output=True, text=True, cwd=ROOT)
    assert missing.returncode == 2 and "nope" in missing.stderr and "cannot read" in missing.stderr


@pytest.mark.parametrize(("doc", "problem"), [
    ({"fabric_class": {"name": "x", "fabric": "ethernet"}, "reference": {}, "thresholds": {}}, "fabric_class.fabric"),
    ({"fabric_class": {"name": "x"}, "reference": {"all_reduce": {2: {"1M": 1.0}}},
      "thresholds": {"all_reduce": {2: {"1M": 2.0}}}}, "above the reference"),
    ({"fabric_class": {"name": "x"}, "reference": {}, "thresholds": {"all_reduce": {2: {"1M": 1.0}}}}, "reference.all_reduce.2.1M: missing"),
    ({"fabric_class": {"name": "x"}, "reference": {"all_reduce": {"*": {"1M": 1.0}}},
      "thresholds": {"all_reduce": {"*": {"1M": 1.0}}}}, "not '*'"),
    ({"fabric_class": {"name": "x"}, "thresholds": {"all_reduce": {2: {"1Q": 1.0}}}}, "thresholds.all_reduce.2.1Q"),
    ({"fabric_class": {"name": "x"}, "typo": 1, "thresholds": {}}, "typo: unknown key"),
    ({"thresholds": {}}, "fabric_class"),
])
def test_broken_reference_files_are_errors_naming_file_and_field(doc: dict, problem: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(InventoryError) as e:
        reference.parse_reference_doc(doc, "refs/x.yaml")
    assert "refs/x.yaml" in str(e.value) and problem in str(e.value)


def _inventory(tmp_path: Path, references: object, checks: object = None) -> dict:  # type: ignore[type-arg]
    doc = {"nodes": [{"name": "n1", "host": "h"}], "ssh": {"key_file": "/k", "strict_host_keys": False},
           "references": references}
    if checks is not None:
        doc["network_checks"] = checks
    return doc


def test_inventory_takes_one_reference_file_per_class(tmp_path: Path) -> None:
    refs = reference.calibrate([("a", table("healthy-1.csv"))], STANDIN)
    for name in ("sandbox-standin", "other"):
        fc = FabricClass(name, "ib")
        (tmp_path / f"{name}.yaml").write_text(reference.render(
            reference.References(fc, refs.entries, runs=("a",)), k=3, min_band_pct=10, floor_gbs=0))
    src = str(tmp_path / "cluster.yaml")
    inv = parse_inventory(_inventory(tmp_path, {"class": "other", "files": {"sandbox-standin": "sandbox-standin.yaml",
                                                                            "other": "other.yaml"}}), src)
    assert inv.references.active is not None and inv.references.active.fabric_class.name == "other"
    with pytest.raises(InventoryError, match=r"references.class: missing \(several fabric classes"):
        parse_inventory(_inventory(tmp_path, {"files": {"sandbox-standin": "sandbox-standin.yaml", "other": "other.yaml"}}), src)
    with pytest.raises(InventoryError, match=r"references.files.wrong: .* is for fabric class 'other', not 'wrong'"):
        parse_inventory(_inventory(tmp_path, {"files": {"wrong": "other.yaml"}}), src)
    with pytest.raises(InventoryError, match=r"references.files.gone: .*gone.yaml: cannot read"):
        parse_inventory(_inventory(tmp_path, {"files": {"gone": "gone.yaml"}}), src)
    with pytest.raises(InventoryError, match=r"references.class: 'nope' has no file"):
        parse_inventory(_inventory(tmp_path, {"class": "nope", "files": {"other": "other.yaml"}}), src)


def test_network_checks_are_validated(tmp_path: Path) -> None:
    inv = parse_inventory(_inventory(tmp_path, None, {"max_dip_pct": 15, "latency_max_bytes": "32K", "latency_limit_us": 40}))
    assert inv.network_checks.max_dip_pct == 15 and inv.network_checks.latency_max_bytes == 32 << 10
    assert parse_inventory(_inventory(tmp_path, None)).network_checks.max_dip_pct is None  # not checked unless set
    with pytest.raises(InventoryError) as e:
        parse_inventory(_inventory(tmp_path, None, {"max_dip_pct": 120, "min_line_rate_pct": "x", "outlier_k": 3}))
    text = str(e.value)
    assert "network_checks.max_dip_pct: must be below 100" in text
    assert "network_checks.min_line_rate_pct: expected a number" in text
    assert "network_checks.outlier_k: unknown key (did you mean 'outlier_k_mad'?)" in text


def test_a_slowed_run_is_named_below_its_band_with_the_distance() -> None:
    refs = reference.calibrate([("a", table("healthy-1.csv")), ("b", table("healthy-2.csv"))], STANDIN, k=3, min_band_pct=10)
    healthy = table("healthy-3.csv")  # 30% of the bandwidth: 1/0.3 of the time (busbw is recomputed from the time)
    slow = healthy.assign(busbw_gbs=healthy["busbw_gbs"] * 0.3, time_us=healthy["time_us"] / 0.3)
    found = reference.check_reference(slow, refs)
    bad = [f for f in found if f.failed]
    assert bad, "a run at 30% of its healthy busbw must leave the band"
    assert all(f.criterion is Criterion.REFERENCE and "below its band" in f.message for f in bad)
    assert all(not math.isnan(f.values["pct_of_reference"]) and f.values["pct_of_reference"] < 60 for f in bad)
    assert reference.left_band(found) == bad


def test_no_reference_file_or_row_is_not_tested() -> None:
    (only,) = reference.check_reference(table("healthy-1.csv"), None)
    assert only.status is Status.NOT_TESTED and "calibrate" in str(only.reason)
    refs = reference.calibrate([("a", table("healthy-1.csv"))], STANDIN)
    other = table("healthy-1.csv").assign(collective="broadcast")
    assert {f.status for f in reference.check_reference(other, refs)} == {Status.NOT_TESTED}


def test_history_marks_runs_that_left_their_reference_band(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from clusterproof.findings import FindingLog
    from clusterproof.report import history
    from tests.test_report_sample import sample_meta, write_sample

    root = tmp_path / "reports"
    refs = reference.calibrate([("a", table("healthy-1.csv")), ("b", table("healthy-2.csv"))], STANDIN, k=4, min_band_pct=70)
    healthy = all_node_rows("healthy-3.csv")
    slow = healthy.assign(time_us=healthy["time_us"] / 0.1)
    for day, (run_id, rows) in enumerate([("20261122T020000Z-aaaa", healthy), ("20261123T020000Z-bbbb", slow)], start=22):
        write_sample(root / run_id, meta=sample_meta(run_id=run_id, started_at=datetime(2026, 11, day, 2, 0, tzinfo=UTC)),
                     network=rows)
        FindingLog(root / run_id).append(reference.check_reference(rows, refs))
    frame = history(root)
    marks = frame.drop_duplicates("run_id").set_index("run_id")["left_reference_band"]
    assert marks["20261122T020000Z-aaaa"] == "in band"
    assert re.match(rf"\d+ of {len(healthy)} rows out \(all_reduce \d nodes \d+[KM] ", marks["20261123T020000Z-bbbb"])
    page = (root / "history.html").read_text()
    assert "reference band" in page and "rows out" in page
