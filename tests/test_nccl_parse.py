"""clusterproof.network.nccl.parse on real nccl-tests logs (01, 02), real stand-in captures (13, 16) and fixtures
written from nccl-tests' printf formats for every format era and launcher quirk (tests/data/nccl/README.md)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from clusterproof.network import nccl

DATA = Path(__file__).parent / "data" / "nccl"


def text_of(prefix: str) -> str:
    """The text of the one fixture whose name starts with ``prefix``."""
    (path,) = sorted(DATA.glob(f"{prefix}_*"))
    return path.read_text()


def parsed(prefix: str, binary: str | None = None) -> nccl.NcclRun:
    return nccl.parse(text_of(prefix), binary=binary)


# --- log 01: real 2x8 H100 all_reduce, v2.14-2.16 format, complete -----------------------------------


def test_nccl_parse_h100_log_has_every_size_and_placement() -> None:
    run = parsed("01")
    assert list(run.results.columns) == list(nccl.RESULT_COLUMNS)
    assert len(run.results) == 31 * 2
    assert run.sizes() == [8 * 2**i for i in range(31)]
    assert run.results["placement"].tolist()[:4] == ["out-of-place", "in-place", "out-of-place", "in-place"]
    assert set(run.results["dtype"]) == {"float"} and set(run.results["redop"]) == {"sum"}
    assert set(run.results["root"]) == {-1}


def test_nccl_parse_h100_log_dtypes_are_documented() -> None:
    df = parsed("01").results
    assert {c: str(df[c].dtype) for c in ("size_bytes", "count", "root")} == dict.fromkeys(
        ("size_bytes", "count", "root"), "int64"
    )
    assert {c: str(df[c].dtype) for c in ("time_us", "algbw_gbs", "busbw_gbs")} == dict.fromkeys(
        ("time_us", "algbw_gbs", "busbw_gbs"), "float64"
    )
    assert str(df["wrong"].dtype) == "Int64"
    for c in ("dtype", "redop", "placement"):
        assert pd.api.types.is_string_dtype(df[c])


def test_nccl_parse_h100_log_exact_numbers() -> None:
    run = parsed("01")
    big = run.row(8589934592, "out-of-place")
    assert (big["count"], big["time_us"], big["algbw_gbs"], big["busbw_gbs"]) == (
        2147483648,
        47535.0,
        180.71,
        338.82,
    )
    assert run.row(8589934592, "in-place")["busbw_gbs"] == 337.35
    assert run.row(1073741824, "out-of-place")["time_us"] == 6759.0
    assert run.row(8, "out-of-place")["time_us"] == 135.8
    assert run.avg_busbw_gbs == 70.742
    assert run.out_of_bounds == 0
    assert run.wrong_total() == 0 and run.results["wrong"].notna().all()


def test_nccl_parse_h100_log_ranks_hosts_devices() -> None:
    run = parsed("01")
    assert run.nranks == 16
    assert run.hosts == ["ztan-mig-235z", "ztan-mig-gq73"]
    d = run.devices
    assert list(d.columns) == list(nccl.DEVICE_COLUMNS)
    assert d["rank"].tolist() == list(range(16))
    assert d["bus_id"].tolist()[:8] == [
        "0000:04:00", "0000:05:00", "0000:0b:00", "0000:0c:00", "0000:84:00", "0000:85:00", "0000:8b:00", "0000:8c:00",
    ]  # fmt: skip
    assert (d["pid"][8], d["host"][8], d["device"][8]) == (6733, "ztan-mig-gq73", 0)
    assert set(d["gpu_name"]) == {"NVIDIA H100 80GB HBM3"} and set(d["group"]) == {0}


def test_nccl_parse_h100_log_metadata() -> None:
    run = parsed("01")
    assert run.complete is True and run.errors == [] and run.standin is False
    assert run.collective == "all_reduce"  # from the echoed mpirun command line
    assert run.version is None and run.nccl_version is None
    assert run.header == {
        "nThread": 1, "nGpus": 1, "minBytes": 8, "maxBytes": 8589934592, "step": 2, "step type": "factor",
        "warmup iters": 5, "iters": 20, "agg iters": 1, "validation": 1, "graph": 0,
    }  # fmt: skip


# --- log 02: real pre-2.13 broadcast excerpt, WARN lines interleaved, cut mid-row ----------------------


def test_nccl_parse_v100_excerpt_is_incomplete_and_drops_the_cut_row() -> None:
    run = parsed("02")
    assert run.complete is False
    assert len(run.results) == 2
    assert run.sizes() == [8]
    out = run.row(8, "out-of-place")
    assert (out["count"], out["dtype"], out["redop"], out["root"], out["time_us"]) == (
        2,
        "float",
        "none",
        0,
        45.82,
    )
    assert run.row(8, "in-place")["time_us"] == 38.17
    assert run.results["wrong"].isna().all()  # "N/A": validation was off (-c 0)
    assert run.wrong_total() == 0
    assert any(
        e.startswith("line 17: partial row dropped") and "'16             4   float'" in e for e in run.errors
    )


def test_nccl_parse_v100_excerpt_warn_lines_and_versions() -> None:
    run = parsed("02")
    warns = [e for e in run.errors if "NCCL WARN" in e]
    assert warns == [
        "line 8: v100-gpu-1:14926:14926 [0] misc/ibvwrap.cc:63 NCCL WARN Failed to open libibverbs.so[.1]",
        "line 11: v100-gpu-5:9210:9210 [0] misc/ibvwrap.cc:63 NCCL WARN Failed to open libibverbs.so[.1]",
    ]
    assert run.nccl_version == "2.9.6"
    assert run.collective == "broadcast"  # from the echoed command line
    assert run.nranks == 2 and run.hosts == ["v100-gpu-1", "v100-gpu-5"]
    assert run.devices["bus_id"].tolist() == ["0x00", "0x00"]
    assert run.devices["group"].isna().all()  # no "Group" before 2.13.4
    assert run.avg_busbw_gbs is None and run.out_of_bounds is None
    assert run.header["validation"] == 0 and run.header["iters"] == 100


# --- eras --------------------------------------------------------------------------------------------


def test_nccl_parse_pre213_error_column_gives_na_wrong() -> None:
    run = parsed("03", binary="all_reduce_perf")
    assert len(run.results) == 25 * 2
    assert run.results["wrong"].isna().all()  # the old column is a max float delta (2e-07), not a count
    assert set(run.results["root"]) == {-1}  # old all_reduce tables have no root column
    last = run.row(134217728, "in-place")
    assert (last["time_us"], last["algbw_gbs"], last["busbw_gbs"]) == (6154.0, 21.81, 32.71)
    assert run.collective == "all_reduce" and run.nccl_version == "2.10.3"
    assert run.nranks == 4 and run.hosts == ["dgx-a01", "dgx-a02"]
    assert run.devices["bus_id"].tolist() == ["0x07", "0x0a", "0x07", "0x0a"]
    assert run.avg_busbw_gbs == 11.0068 and run.complete and run.errors == []


def test_nccl_parse_without_binary_leaves_old_logs_unnamed() -> None:
    run = parsed("03")
    assert run.collective is None
    assert run.errors == []  # busbw cannot be checked without a collective


def test_nccl_parse_pre213_all_gather_has_neither_redop_nor_root() -> None:
    run = parsed("04", binary="/opt/nccl-tests/build/all_gather_perf")
    assert len(run.results) == 9 * 2
    first = run.row(1024, "out-of-place")
    assert (first["count"], first["redop"], first["root"], first["algbw_gbs"]) == (32, "none", -1, 0.03)
    assert run.row(67108864, "out-of-place")["busbw_gbs"] == 73.99
    assert run.results["wrong"].isna().all()
    assert run.collective == "all_gather" and run.nranks == 8 and run.nccl_version == "2.8.4"
    assert run.errors == [
        "line 15: gpu-n18:6121:6121 [1] misc/ibvwrap.cc:106 NCCL WARN Call to ibv_open_device failed"
    ]


def test_nccl_parse_v2134_group_and_hex_ids() -> None:
    run = parsed("05", binary="broadcast_perf")
    assert run.devices["group"].tolist() == [0, 0, 0, 0]
    assert run.devices["bus_id"].tolist() == ["0x1b", "0x1c", "0x1b", "0x1c"]
    assert run.devices["pid"].tolist() == [20511, 20512, 18332, 18333]
    assert set(run.results["redop"]) == {"none"} and set(run.results["root"]) == {0}
    assert run.nccl_version == "2.12.12"


def test_nccl_parse_nccl_info_lines_inside_rows_are_spliced_out() -> None:
    run = parsed("05", binary="broadcast_perf")
    assert len(run.results) == 8 * 2
    spliced = run.row(65536, "out-of-place")  # its row was cut after the root column by three INFO lines
    assert (spliced["time_us"], spliced["algbw_gbs"], spliced["busbw_gbs"], spliced["wrong"]) == (
        21.41,
        3.06,
        3.06,
        0,
    )
    assert run.row(65536, "in-place")["time_us"] == 21.86
    assert run.row(4194304, "in-place")["time_us"] == 233.6  # cut between the placements
    assert run.row(4194304, "out-of-place")["busbw_gbs"] == 17.74
    assert run.errors == [] and run.complete


def test_nccl_parse_v2167_collective_starting_and_reducing() -> None:
    run = parsed("06")
    assert run.collective == "all_reduce"
    assert run.header["reduced maxBytes"] == 11453246122 and run.header["maxBytes"] == 68719476736
    assert run.sizes() == [67108864 * 2**i for i in range(8)]
    big = run.row(8589934592, "out-of-place")
    assert (big["time_us"], big["busbw_gbs"]) == (45995.0, 350.17)
    assert run.complete and run.errors == [] and run.avg_busbw_gbs == 336.283


def test_nccl_parse_v2174_version_line_and_timestamps() -> None:
    run = parsed("07")
    assert run.version == "2.17.4"
    assert run.nccl_version == "2.28.3"  # decoded from nccl-library=22803: no "NCCL version" line
    assert run.header["nccl-library"] == 22803 and run.header["timestamps"] == 1
    assert run.collective == "reduce_scatter" and run.nranks == 32 and len(run.hosts) == 4
    assert len(run.results) == 8 * 2
    last = run.row(17179869184, "out-of-place")
    assert (last["count"], last["time_us"], last["algbw_gbs"], last["busbw_gbs"]) == (
        134217728,
        97660.9,
        175.91,
        170.42,
    )
    assert run.row(17179869184, "in-place")["wrong"] == 0
    assert run.errors == []


def test_nccl_parse_nccl_version_line_wins_over_library_code() -> None:
    text = text_of("07").replace("#\n#    ", "NCCL version 2.28.9+cuda12.9\n#\n#    ", 1)
    assert nccl.parse(text).nccl_version == "2.28.9"


def test_nccl_parse_v2182_unalign_cputime_blocking() -> None:
    run = parsed("08")
    assert run.version == "2.18.2" and run.nccl_version == "2.28.7" and run.collective == "alltoall"
    assert (run.header["unalign"], run.header["cputime"], run.header["blocking"]) == (0, 1, 1)
    big = run.row(1073741824, "out-of-place")
    assert (big["count"], big["time_us"], big["busbw_gbs"]) == (16777216, 21148.8, 47.60)
    assert run.errors == []


def test_nccl_parse_per_iteration_columns_are_ignored() -> None:
    run = parsed("09")
    assert len(run.results) == 4 * 2
    big = run.row(8589934592, "in-place")
    assert (big["time_us"], big["algbw_gbs"], big["busbw_gbs"], big["wrong"]) == (23384.2, 367.34, 688.76, 0)
    assert run.row(16777216, "out-of-place")["time_us"] == 85.34  # not i_min (82.78)
    assert run.header["per-iteration"] == 1 and run.header["nGpus"] == 8
    assert run.nranks == 16 and set(run.devices["pid"]) == {88120, 90211}  # -g 8: one process per node
    assert run.errors == []


def test_nccl_parse_v2200_git_hash_version_and_srun_prefix() -> None:
    run = parsed("10")
    assert run.version == "2.20.0" and run.header["git"] == "b4d5bee"
    assert run.nccl_version == "2.31.2" and run.collective == "sendrecv"
    assert len(run.results) == 7 * 2 and run.row(134217728, "out-of-place")["busbw_gbs"] == 43.68
    assert run.errors == [
        "line 32: [2026-08-03 10:11:12] gpu-b07:3299:3390 [1] transport/net_ib/connect.cc:412 NCCL WARN NET/IB: "
        "mlx5_3:1 GID index 3 is not a RoCEv2 IPv4 GID, using auto-selected index 5"
    ]
    assert run.complete


# --- failures, exits, wrong results ------------------------------------------------------------------


def test_nccl_parse_nccl_failure_and_mpirun_exit_lines() -> None:
    run = parsed("11", binary="all_reduce_perf")
    assert run.complete is False and run.avg_busbw_gbs is None
    assert run.sizes() == [1048576 * 2**i for i in range(6)]
    kinds = ["NCCL WARN", "Test NCCL failure", "Test failure common.cu:891", "Test failure common.cu:1098",
             "Primary job  terminated", "mpirun detected"]  # fmt: skip
    for kind in kinds:
        assert sum(kind in e for e in run.errors) == 1, kind
    assert "line 30: partial row dropped" in run.errors[0] and "67108864" in run.errors[0]
    numbered = [int(e.split(":")[0].split()[1]) for e in run.errors if e.startswith("line ")]
    assert numbered == sorted(numbered)
    assert run.errors[-1].startswith("log ends before")


def test_nccl_parse_timeout_and_srun_exit_lines() -> None:
    run = parsed("12")
    assert run.complete is False and len(run.results) == 4
    assert "line 29: gpu-a01: Test timeout (60s) common.cu:412" in run.errors
    assert "line 30: srun: error: gpu-a01: task 0: Exited with exit code 4" in run.errors
    assert any("slurmstepd: error: *** STEP 48211.0 ON gpu-a01 CANCELLED" in e for e in run.errors)
    assert any("tasks 8-15: Killed" in e for e in run.errors)


def test_nccl_parse_wrong_counts_and_failed_footers() -> None:
    run = parsed("14")
    assert run.row(4294967296, "out-of-place")["wrong"] == 3
    assert run.row(4294967296, "in-place")["wrong"] == 7
    assert run.row(2147483648, "in-place")["wrong"] == 1048580  # %6g printed 1048576 as 1.04858e+06
    assert run.wrong_total() == 1048590 and run.out_of_bounds == 3
    assert "line 30: # Out of bounds values : 3 FAILED" in run.errors
    assert any(e.startswith("line 31: # Avg bus bandwidth    : 167.42 FAILED") for e in run.errors)
    assert run.complete is True


# --- launcher prefixes ---------------------------------------------------------------------------------


def test_nccl_parse_tag_inside_rows_and_split_rows_join() -> None:
    run = parsed("15", binary="all_gather_perf")
    assert len(run.results) == 5 * 2
    assert run.row(2097152, "out-of-place")["algbw_gbs"] == 37.31  # "3" + tag + "7.31"
    cut = run.row(4194304, "out-of-place")  # another rank's INFO line landed between the halves
    assert (cut["time_us"], cut["algbw_gbs"], cut["busbw_gbs"]) == (82.43, 50.88, 38.16)
    assert run.errors == [] and run.complete


@pytest.mark.parametrize(
    "prefix",
    [
        "[1,0]<stdout>:",
        "Mon Nov 24 20:11:02 2025[1,0]<stdout>:",
        "[1,0][gpu-a01:4242]<stdout>:",
        "0: ",
        " 0: ",
        "[0] ",
    ],
)
def test_nccl_parse_launcher_prefixes(prefix: str) -> None:
    text = "".join(prefix + line for line in text_of("06").splitlines(keepends=True))
    run = nccl.parse(text)
    assert len(run.results) == 16 and run.nranks == 16 and run.complete and run.errors == []
    assert run.row(8589934592, "out-of-place")["busbw_gbs"] == 350.17


# --- the CPU stand-in (real captures of clusterproof/sandbox/assets/nccl_standin.c) ----------------------


def test_nccl_parse_standin_is_flagged() -> None:
    run = parsed("13")
    assert run.standin is True and run.collective == "all_reduce"
    assert run.nranks == 4 and run.hosts == ["vm"] and set(run.devices["gpu_name"]) == {"CPU stand-in"}
    assert run.row(524288, "out-of-place")["busbw_gbs"] == 1.70 and run.avg_busbw_gbs == 0.383302
    assert run.errors == [] and run.complete
    assert parsed("01").standin is False and parsed("07").standin is False


def test_nccl_parse_standin_corrupt_rank_under_tag_output() -> None:
    run = parsed("16")
    assert run.standin is True and run.collective == "all_gather" and run.nranks == 3
    assert run.results["wrong"].tolist() == [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 4, 4]
    assert run.wrong_total() == 22 and run.out_of_bounds == 14
    assert any("Out of bounds values : 14 FAILED" in e for e in run.errors)
    assert any("Primary job  terminated" in e for e in run.errors)
    assert any("mpirun detected" in e for e in run.errors)
    assert not any("busbw mismatch" in e for e in run.errors)
