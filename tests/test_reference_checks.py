"""Per-node outliers, dips, latency, line rate and the soak tracker, on result tables saved from real sandbox runs
(``tests/data/reference/``, see its README) and on the report fixture's 4-node table. No root."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
import pytest

from clusterproof.errors import ParseError
from clusterproof.findings import Criterion, Status
from clusterproof.network import line_rate, reference_outliers, reference_shape, soak
from clusterproof.network.reference import FabricClass, calibrate

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "reference"
NODES = ["node01", "node02", "node03", "node04"]


def table(name: str) -> pd.DataFrame:
    return pd.read_csv(DATA / name)


def pairs(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["n_nodes"] == 2]


# ------------------------------------------------------------------------------------------ outliers


def test_healthy_runs_have_no_outlier() -> None:
    for name in ("healthy-1.csv", "healthy-2.csv", "healthy-3.csv"):
        found = reference_outliers.check_outliers(pairs(table(name)), NODES, k=3, min_drop_pct=20)
        assert [f.subject.name for f in found if f.failed] == [], name
        assert {f.subject.name for f in found} == set(NODES) and all(f.subject.kind == "node" for f in found)


@pytest.mark.parametrize("name", ["slow-node03.csv", "slow-node03-1.csv"])
def test_node_slowed_by_a_third_is_named_though_every_row_is_above_the_floor(name: str) -> None:
    df = table(name)
    assert (df["busbw_gbs"] > 0.01).all()  # the hand-set floor of that run: nothing below it
    found = reference_outliers.check_outliers(pairs(df), NODES, k=3, min_drop_pct=20)
    bad = [f for f in found if f.failed]
    assert [f.subject.name for f in bad] == ["node03"] and bad[0].criterion is Criterion.BAD_NODE
    assert bad[0].subject.node == "node03" and "node03 is an outlier" in bad[0].message
    assert bad[0].values["pct_of_cluster_median"] < 80


def test_report_fixture_slow_node3_over_six_pairs() -> None:
    df = pd.read_csv(ROOT / "tests" / "data" / "report" / "network.csv")
    rep = reference_outliers.score_nodes(df, k=3, min_drop_pct=10)
    assert rep.outliers == ["node3"] and rep.groups == 8  # 4 sizes x 2 placements; the 4-node run left out
    assert rep.ratio("node3") < 0.5 < rep.ratio("node1")


def test_fewer_than_three_nodes_is_not_tested() -> None:
    two = table("healthy-1.csv")
    two = two[two["node_set"] == "node01,node02"]
    (only,) = reference_outliers.check_outliers(two, ["node01", "node02"])
    assert only.status is Status.NOT_TESTED


def test_rows_with_wrong_results_do_not_score() -> None:
    df = pairs(table("healthy-1.csv")).assign(wrong=1)
    (only,) = reference_outliers.check_outliers(df, NODES)
    assert only.status is Status.NOT_TESTED


# ------------------------------------------------------------------------------------------ dips and latency


def test_forced_dip_is_named_with_its_size() -> None:
    df = table("dip-1M-node02.csv")
    dips = reference_shape.find_dips(df, 60)
    assert any(d.size_bytes == 1 << 20 and d.prev_size_bytes == 256 << 10 for d in dips), dips
    found = reference_shape.check_dips(df, 60)
    named = [f for f in found if f.failed and f.values["size_bytes"] == 1 << 20]
    assert named and "dips" in named[0].message and "at 1M" in named[0].message


def test_dip_check_passes_a_rising_curve_and_respects_the_limit() -> None:
    rows = pd.DataFrame({"collective": "all_reduce", "node_set": "a,b", "n_nodes": 2, "placement": "out-of-place",
                         "size_bytes": [1 << 16, 1 << 18, 1 << 20], "busbw_gbs": [1.0, 0.85, 2.0], "time_us": 1.0})
    assert {f.status for f in reference_shape.check_dips(rows, 20)} == {Status.PASS}  # 15% < 20%
    (dip,) = [f for f in reference_shape.check_dips(rows, 10) if f.failed]
    assert "dips 15% at 256K" in dip.message
    assert reference_shape.check_dips(rows, None)[0].status is Status.NOT_TESTED
    assert reference_shape.check_dips(rows.head(1), 10)[0].status is Status.NOT_TESTED


def test_latency_limit_at_small_sizes() -> None:
    df = table("healthy-1.csv")
    small = df[df["size_bytes"] <= 64 << 10]
    worst = float(small["time_us"].max())
    assert {f.status for f in reference_shape.check_latency(df, 64 << 10, worst + 1)} == {Status.PASS}
    bad = [f for f in reference_shape.check_latency(df, 64 << 10, worst - 0.001) if f.failed]
    assert bad and all(f.values["size_bytes"] <= 64 << 10 for f in bad) and "latency limit" in bad[0].message
    assert reference_shape.check_latency(df, 1024, 10.0)[0].status is Status.NOT_TESTED  # no size that small
    assert reference_shape.check_latency(df, 64 << 10, None)[0].status is Status.NOT_TESTED


# ------------------------------------------------------------------------------------------ line rate

# /sys/class/infiniband/<hca>/ports/<n>/rate is written by the kernel as "%d%s Gb/sec (%dX%s)"
# (drivers/infiniband/core/sysfs.c, rate_show); state as "4: ACTIVE". Lines as port_rates_command prints them.
DGX_PORTS = "".join(f"mlx5_{i} 1 ACTIVE 400 Gb/sec (4X NDR)\n" for i in range(8)) + "mlx5_8 1 DOWN 10 Gb/sec (4X SDR)\n"


def test_line_rate_of_eight_400g_ports_reads_as_fraction() -> None:
    rates = line_rate.parse_port_rates("node07", DGX_PORTS)
    assert rates == [400.0] * 8  # the DOWN port does not count
    lr = line_rate.fabric_line_rate({"node07": rates, "node08": rates}, {"node07": 8, "node08": 8})
    assert lr is not None and lr.label == "8x400G" and lr.gbs == 400.0
    rows = pd.DataFrame({"collective": "all_reduce", "node_set": "node07,node08", "n_nodes": 2, "placement": "out-of-place",
                         "size_bytes": 8 << 30, "busbw_gbs": [368.0]})
    (f,) = line_rate.check_line_rate(rows, lr, None)
    assert f.status is Status.PASS and "92.0% of 8x400G for 8 GPUs (400 GB/s)" in f.message
    (low,) = line_rate.check_line_rate(rows, lr, 95.0)
    assert low.failed and "< minimum 95%" in low.message


def test_slowest_node_sets_the_line_rate_and_hcas_filter() -> None:
    slow = line_rate.parse_port_rates("node02", DGX_PORTS.replace("mlx5_7 1 ACTIVE", "mlx5_7 1 DOWN"))
    lr = line_rate.fabric_line_rate({"node01": [400.0] * 8, "node02": slow})
    assert lr is not None and lr.node == "node02" and lr.label == "7x400G"
    assert line_rate.parse_port_rates("n", DGX_PORTS, hcas=["mlx5_0", "mlx5_1:1"]) == [400.0, 400.0]
    assert line_rate.parse_port_rates("n", "mlx5_0 1 ACTIVE 2.5 Gb/sec (1X SDR)\n") == [2.5]
    assert line_rate.fabric_line_rate({"n": []}) is None
    assert line_rate.check_line_rate(table("healthy-1.csv"), None, 80)[0].status is Status.NOT_TESTED


def test_sandbox_stand_in_rate_is_labelled() -> None:
    lr = line_rate.fabric_line_rate({n: [100.0] for n in NODES}, standin=True)
    found = line_rate.check_line_rate(table("healthy-1.csv"), lr, None)
    assert found and all("of 1x100G" in f.message and "sandbox stand-in facts" in f.message for f in found)


def test_port_rate_parser_is_total_on_torn_and_mangled_input() -> None:
    rng = random.Random(15)
    for _ in range(3000):
        chars = list(DGX_PORTS)
        cut = rng.randint(0, len(chars))
        chars = chars[:cut] if rng.random() < 0.5 else chars[cut:]
        for _ in range(rng.randint(0, 5)):
            if chars:
                chars[rng.randrange(len(chars))] = rng.choice("x \n:/.9()")
        try:
            rates = line_rate.parse_port_rates("n", "".join(chars))
        except ParseError as e:
            assert "n: port rate line" in str(e)
        else:
            assert all(r >= 0 for r in rates)


def test_port_rate_parser_names_the_line() -> None:
    with pytest.raises(ParseError, match="line 2"):
        line_rate.parse_port_rates("node01", "mlx5_0 1 ACTIVE 400 Gb/sec (4X NDR)\nmlx5_1 1 ACTIVE fast\n")


# ------------------------------------------------------------------------------------------ soak


def test_soak_of_twenty_cycles_names_the_flaky_node_and_the_cycle() -> None:
    df = table("soak-flaky-node02-0.2.csv")
    tracker = soak.SoakTracker(slowdown_pct=90)
    for cycle, g in df.groupby("cycle", sort=True):
        tracker.add_cycle(int(cycle), float(g["elapsed_s"].max()), g)
    assert tracker.cycles == 20
    assert tracker.first_wrong is not None
    first_cycle = int(df[df["wrong"] > 0]["cycle"].min())
    assert tracker.first_wrong.cycle == first_cycle
    assert tracker.blamed_nodes == ["node02"]
    found = soak.check_soak(tracker)
    named = [f for f in found if f.subject.kind == "node"]
    assert [f.subject.name for f in named] == ["node02"] and named[0].failed
    assert f"first wrong result in cycle {first_cycle}" in found[0].message
    assert "20 cycles" in tracker.progress_line() and f"cycle {first_cycle}" in tracker.progress_line()


def test_soak_progress_line_and_pass_when_clean() -> None:
    clean = table("healthy-1.csv")
    tracker = soak.SoakTracker(slowdown_pct=95)
    tracker.add_cycle(1, 4.2, clean)
    tracker.add_cycle(2, 8.9, clean)
    line = tracker.progress_line()
    assert line.startswith("soak: 0m09s, 2 cycles, worst busbw") and line.endswith("first failure: none")
    (f,) = soak.check_soak(tracker)
    assert f.status is Status.PASS and "2 cycles" in f.message


def test_soak_slowdown_against_earlier_cycles_and_against_a_reference() -> None:
    base = table("healthy-1.csv")
    slow = base.assign(busbw_gbs=base["busbw_gbs"] * 0.3, time_us=base["time_us"] / 0.3)
    tracker = soak.SoakTracker(slowdown_pct=50)
    tracker.add_cycle(1, 5, base)
    tracker.add_cycle(2, 10, base)
    assert tracker.first_slowdown is None
    tracker.add_cycle(3, 15, slow)
    assert tracker.first_slowdown is not None and tracker.first_slowdown.cycle == 3
    assert "30% of its baseline" in tracker.first_slowdown.detail and "earlier cycles" in tracker.first_slowdown.detail
    refs = calibrate([("a", base)], FabricClass("x"), min_band_pct=10)
    with_ref = soak.SoakTracker(slowdown_pct=50, references=refs)
    with_ref.add_cycle(1, 5, slow)
    assert with_ref.first_slowdown is not None and "reference" in with_ref.first_slowdown.detail


def test_one_noisy_row_is_no_slowdown() -> None:
    base = table("healthy-1.csv")
    noisy = base.copy()
    noisy.loc[noisy.index[0], "time_us"] *= 20  # one row at 5%, as the loaded sandbox shows now and then
    tracker = soak.SoakTracker(slowdown_pct=50)
    tracker.add_cycle(1, 5, base)
    tracker.add_cycle(2, 10, noisy)
    assert tracker.first_slowdown is None


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("90s", 90), ("15m", 900), ("2h", 7200), ("1.5h", 5400), ("1d", 86400)])
def test_soak_durations(text: str, seconds: float) -> None:
    assert soak.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "2x", "-5m", "h"])
def test_bad_soak_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a soak duration"):
        soak.parse_duration(text)


def test_report_section_shows_each_rows_distance_line_rate_and_outliers(tmp_path: Path) -> None:
    from clusterproof.findings import FindingLog
    from clusterproof.report.reference_section import draw_soak, html_section

    healthy = table("healthy-1.csv")
    refs = calibrate([("a", healthy)], FabricClass("sandbox-standin"), min_band_pct=50)
    lr = line_rate.fabric_line_rate({n: [100.0] for n in NODES}, standin=True)
    four = healthy[healthy["n_nodes"] == 4]
    log = FindingLog(tmp_path)
    from clusterproof.network.reference import check_reference

    log.append(check_reference(four, refs))
    log.append(line_rate.check_line_rate(four, lr, None))
    log.append(reference_outliers.check_outliers(pairs(table("slow-node03.csv")), NODES, k=3, min_drop_pct=25))
    page = html_section(tmp_path)
    assert page.count("% of reference") >= len(four) and "of 1x100G" in page and "stand-in facts" in page
    assert "node03 is an outlier" in page
    assert html_section(tmp_path / "empty") == ""
    (tmp_path / "soak.csv").write_text((DATA / "soak-flaky-node02-0.2.csv").read_text())
    (plot,) = draw_soak(tmp_path, tmp_path / "plots", standin=True)
    assert plot.path.name == "soak_all_reduce.png" and plot.path.stat().st_size > 10_000
