"""clusterproof.network.nccl.parse on damaged logs: cut off mid-row or mid-number, garbled rows, not nccl-tests at all,
rows whose busbw does not fit the rank count, NCCL_TESTS_SPLIT groups, several data types, big logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from clusterproof.errors import ParseError
from clusterproof.network import nccl

DATA = Path(__file__).parent / "data" / "nccl"


def text_of(prefix: str) -> str:
    (path,) = sorted(DATA.glob(f"{prefix}_*"))
    return path.read_text()


def test_nccl_quirk_cut_inside_a_number_drops_the_row() -> None:
    full = text_of("06")
    text = full[: full.index("343.45") + 2]  # "...  2931.0  183.17  34" and nothing more
    run = nccl.parse(text)
    assert run.sizes() == [67108864, 134217728, 268435456]
    assert run.complete is False
    assert any(e.startswith("line 30: partial row dropped (the log ends mid-row)") for e in run.errors)


def test_nccl_quirk_whole_last_row_without_line_end_is_not_trusted() -> None:
    full = text_of("06")
    text = full[: full.index("\n", full.index("343.45"))]  # the 536870912 row, but no "\n" after it
    run = nccl.parse(text)
    assert run.sizes() == [67108864, 134217728, 268435456]
    assert "line 30: last row dropped: the log ends without a line end, it may be cut" in run.errors
    assert nccl.parse(text + "\n").sizes()[-1] == 536870912


def test_nccl_quirk_trailing_timestamp_proves_the_last_row_whole() -> None:
    full = text_of("07")
    text = full[: full.index("\n", full.index("97660.9"))]  # -S: the timestamp follows the needed values
    run = nccl.parse(text)
    assert run.sizes()[-1] == 17179869184 and run.complete is False


def test_nccl_quirk_garbled_row_is_named_and_skipped() -> None:
    text = text_of("06").replace("777.7  172.57", "777.7  17x.57")
    run = nccl.parse(text)
    assert 134217728 not in run.sizes() and len(run.sizes()) == 7
    assert run.complete is True
    assert run.errors == [
        "line 28: unreadable row dropped: '134217728      33554432     float     sum      -1    777.7  17x.57  "
        "323.58      0    785.2  170.93  320.50      0'"
    ]


def test_nccl_quirk_warn_between_placements_keeps_the_row() -> None:
    text = text_of("06").replace(
        "  300.40      0",
        "  300.40      0\n\na3-node-0041:7120:7188 [0] init.cc:1203 NCCL WARN Cuda failure 'out of memory'\n",
        1,
    )
    run = nccl.parse(text)
    assert run.row(67108864, "in-place")["busbw_gbs"] == 296.34 and len(run.results) == 16
    assert run.errors == [
        "line 29: a3-node-0041:7120:7188 [0] init.cc:1203 NCCL WARN Cuda failure 'out of memory'"
    ]


def test_nccl_quirk_old_error_column_asterisk_is_reported() -> None:
    text = text_of("03").replace("21.81   32.71  5e-07", "21.81   32.71  1e+00*")
    run = nccl.parse(text, binary="all_reduce_perf")
    assert run.row(134217728, "in-place")["busbw_gbs"] == 32.71
    assert run.errors == [
        "line 38: in-place error 1e+00* at 134217728 B exceeds the tolerance (nccl-tests marks it with '*')"
    ]


def test_nccl_quirk_header_only_run_is_empty_not_an_error() -> None:
    run = nccl.parse(text_of("06").split("# Using devices")[0])
    assert run.results.empty and run.complete is False and run.collective == "all_reduce"
    assert run.header["maxBytes"] == 68719476736
    assert run.errors == ["log ends before the '# Avg bus bandwidth' footer: the run did not finish"]


@pytest.mark.parametrize(
    "text", ["", "\n\n", "hello\nworld\n", "bash: all_reduce_perf: command not found\n", "12 34 56\n"]
)
def test_nccl_quirk_not_nccl_tests_output_raises(text: str) -> None:
    with pytest.raises(ParseError, match=r"^line 1: not nccl-tests output"):
        nccl.parse(text)


def test_nccl_quirk_parse_error_does_not_echo_secrets() -> None:
    with pytest.raises(ParseError) as info:
        nccl.parse("AWS_SECRET_ACCESS_KEY=planted-secret-xyz\n")
    assert "planted-secret-xyz" not in str(info.value)


def test_nccl_quirk_parse_file_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "empty.log"
    bad.write_text("nothing here\n")
    with pytest.raises(ParseError, match="empty.log: line 1: not nccl-tests output"):
        nccl.parse_file(bad)
    with pytest.raises(ParseError, match="missing.log: cannot read"):
        nccl.parse_file(tmp_path / "missing.log")
    assert len(nccl.parse_file(next(DATA.glob("01_*"))).results) == 62


def test_nccl_quirk_missing_rank_lines_show_as_busbw_mismatch() -> None:
    lines = text_of("01").splitlines(keepends=True)
    kept = [ln for ln in lines if not ln.startswith("#  Rank") or "ztan-mig-235z" in ln]  # 8 of 16 ranks
    run = nccl.parse("".join(kept))
    assert run.nranks == 8
    mismatches = [e for e in run.errors if e.startswith("busbw mismatch at")]
    assert len(mismatches) == 20  # 38 rows mismatch: 20 are listed, then one summary line
    assert run.errors[-1] == "busbw mismatch in 18 more rows (not listed)"
    assert run.errors[0] == (
        "busbw mismatch at 32768 B out-of-place (float sum): printed busbw 0.40 GB/s but algbw 0.21 x 1.75 "
        "(all_reduce, 8 ranks) = 0.37 GB/s; the row or the rank count was misread"
    )


def test_nccl_quirk_split_groups_use_the_group_size() -> None:
    text = (
        text_of("05")
        .replace("Group  0 Pid  18332", "Group  1 Pid  18332")
        .replace("Group  0 Pid  18333", "Group  1 Pid  18333")
    )
    run = nccl.parse(text, binary="all_reduce_perf")  # factor 2(n-1)/n with n = 2 per group = 1.0
    assert run.devices["group"].tolist() == [0, 0, 1, 1]
    assert run.nranks == 4 and run.ranks_per_group() == 2
    assert not any("busbw mismatch" in e for e in run.errors)
    assert nccl.parse(text_of("05"), binary="all_reduce_perf").busbw_mismatches() != []  # n = 4: factor 1.5


def test_nccl_quirk_several_data_types_make_row_ambiguous() -> None:
    text = text_of("06")
    row = next(ln for ln in text.splitlines() if ln.lstrip().startswith("67108864"))
    text = text.replace(row, row + "\n" + row.replace("float", " half").replace("16777216", "33554432", 1))
    run = nccl.parse(text)
    assert sorted(run.results[run.results["size_bytes"] == 67108864]["dtype"]) == [
        "float",
        "float",
        "half",
        "half",
    ]
    with pytest.raises(ValueError, match="2 out-of-place rows for 67108864 B"):
        run.row(67108864, "out-of-place")
    with pytest.raises(KeyError, match="no in-place row for 3 B"):
        run.row(3, "in-place")
    with pytest.raises(ValueError, match="placement must be one of"):
        run.row(67108864, "inplace")


def test_nccl_quirk_rows_before_any_header_use_the_modern_layout() -> None:
    rows = [ln for ln in text_of("06").splitlines() if ln[:1] == " "]
    run = nccl.parse("\n".join(rows) + "\n", binary="all_reduce_perf")
    assert len(run.results) == 16 and run.row(8589934592, "in-place")["busbw_gbs"] == 348.45


def test_nccl_quirk_ten_thousand_rows() -> None:
    head, _, _ = text_of("01").partition("           8             2")
    row = "  %10d  %12d     float     sum      -1    135.8   10.00   18.75      0    123.5   10.00   18.75      0\n"
    text = head + "".join(row % (8 * (i + 1), 2 * (i + 1)) for i in range(10_000))
    text += "# Out of bounds values : 0 OK\n# Avg bus bandwidth    : 18.75 \n"
    run = nccl.parse(text)
    assert len(run.results) == 20_000 and run.complete and run.errors == []
    assert run.results["size_bytes"].iloc[-1] == 80_000


def test_nccl_quirk_crlf_line_ends() -> None:
    run = nccl.parse(text_of("06").replace("\n", "\r\n"))
    assert len(run.results) == 16 and run.complete and run.errors == []
    assert run.row(8589934592, "in-place")["busbw_gbs"] == 348.45


@pytest.mark.parametrize(
    "line",
    [
        "gpu-a01: Test CUDA failure common.cu:941 'system not yet initialized'",
        "gpu-a01: Test NCCL failure common.cu:1204 'unhandled cuda error (run with NCCL_DEBUG=INFO for details) / '",
        " .. gpu-a01 pid 757466: Test failure common.cu:915",
        "mpirun noticed that process rank 3 with PID 0 on node gpu-a02 exited on signal 9 (Killed).",
        "MPI_ABORT was invoked on rank 5 in communicator MPI_COMM_WORLD",
        "# error: remote process exited or there was a network error",
        "[1,7]<stderr>:gpu-a02: Test timeout (30s) common.cu:423",
    ],
)
def test_nccl_quirk_failure_lines_are_errors(line: str) -> None:
    text = text_of("06")
    text = text[: text.index("# Out of bounds")] + line + "\n"
    run = nccl.parse(text)
    assert run.errors == [f"line 35: {line.replace('[1,7]<stderr>:', '').strip()}", run.errors[-1]]
    assert run.errors[-1].startswith("log ends before") and run.complete is False


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("[1,0]<stdout>:# Out of bounds values : 0 OK", "# Out of bounds values : 0 OK"),
        ("[1,3]<stderr>: node02:1:1 [0] NCCL INFO Using network IB", "node02:1:1 [0] NCCL INFO Using network IB"),
        ("Tue Nov 24 21:30:00 2026[1,0]<stdout>:x", "x"),
        ("[prterun-node01-4242@1,0]<stdout>:x", "x"),
        ("12: node03:5:5 [0] NCCL INFO x", "node03:5:5 [0] NCCL INFO x"),
        ("[3] # Using devices", "# Using devices"),
        ("     1048[1,0]<stdout>:576  262144  float", "     1048576  262144  float"),  # re-tagged mid-row
        ("     1048576  262144  float", "     1048576  262144  float"),  # a row has no prefix: untouched
    ],
)
def test_launcher_tags_are_stripped_and_nothing_else(raw: str, clean: str) -> None:
    from clusterproof.network.nccl_model import strip_launcher_tags

    assert strip_launcher_tags(raw) == clean
