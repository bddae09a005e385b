"""clusterproof.network.nccl_text, exactly: the messages and edge cases of the text reader on a real capture
(tests/data/nccl/13_standin_all_reduce_4ranks.txt, the stand-in's output, and 01_h100_..., NVIDIA's), cut or
changed one line at a time. Written against the mutants mutmut left alive (tests/MUTATION.md): each test names the
line it expects in ``errors``, whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from clusterproof.errors import ParseError
from clusterproof.network.nccl_text import parse, parse_file

DATA = Path(__file__).parent / "data" / "nccl"
STANDIN = (DATA / "13_standin_all_reduce_4ranks.txt").read_text()
LINES = STANDIN.split("\n")  # line k of the capture is LINES[k - 1]
ROW_8 = 14  # "           8             2     float     sum      -1    35.97 ..."
AVG = 24  # "# Avg bus bandwidth    : 0.383302 "


def text_of(lines: list[str], end: str = "\n") -> str:
    return "\n".join(lines) + end


# ------------------------------------------------------------------ parse(): line ends, cut last lines, not nccl-tests


def test_crlf_line_ends_read_as_the_same_log() -> None:
    lf, crlf = parse(STANDIN), parse(STANDIN.replace("\n", "\r\n"))
    assert crlf.errors == lf.errors == [] and crlf.results.equals(lf.results) and crlf.complete


def test_a_cut_comment_loses_only_its_last_token_and_says_so_with_its_end() -> None:
    rank0 = LINES[5] + " for nccl-tests"  # "#  Rank  0 Group  0 Pid  19294 on  vm device  0 [0000:00:00] CPU stand-in ..."
    assert len(rank0.strip()) > 81
    run = parse(text_of([*LINES[:5], rank0], end=""))  # the log stops inside the device's name, without a line end
    assert run.errors[0] == f"line 6: cut (no line end), its last token not read: {rank0.strip()[-80:]!r}"
    assert run.devices.iloc[0]["gpu_name"] == "CPU stand-in for"  # "nccl-tests" was the cut token: only it is dropped


def test_a_cut_comment_with_leading_blanks_is_still_a_comment() -> None:
    run = parse(text_of([*LINES[:AVG - 1], "   " + LINES[AVG - 1].rstrip()], end=""))
    assert run.errors[0] == "line 24: cut (no line end), its last token not read: '# Avg bus bandwidth    : 0.383302'"
    assert run.avg_busbw_gbs is None  # the number was the token that may have been cut


@pytest.mark.parametrize("text, recognised", [
    ("#nThread", False),  # one token, and it was cut: nothing is left to read
    ("#nThread 1", True),  # two tokens: the first stays, and "# nThread" is nccl-tests' own header
])
def test_a_cut_one_line_log_keeps_all_but_its_last_token(text: str, recognised: bool) -> None:
    if recognised:
        assert parse(text).errors[0] == f"line 1: cut (no line end), its last token not read: {text!r}"
    else:
        with pytest.raises(ParseError, match="not nccl-tests output"):
            parse(text)


def test_not_nccl_tests_output_counts_its_lines_and_quotes_80_characters_of_the_first() -> None:
    first = "x" * 100
    with pytest.raises(ParseError) as e:
        parse(f"\n  {first}\nsecond\n")
    assert str(e.value) == ("line 1: not nccl-tests output (3 lines, no '# nThread' header, device list, column header, "
                            f"result row or footer); first line: {'x' * 80!r}")
    with pytest.raises(ParseError) as blank:
        parse("\n\n")
    assert str(blank.value).endswith("(2 lines, no '# nThread' header, device list, column header, result row or footer); "
                                     "first line: ''")


# ------------------------------------------------------------------ parse_file(): bytes that are not UTF-8, the binary


def test_a_file_with_bytes_that_are_not_utf8_is_read_and_the_line_named(tmp_path: Path) -> None:
    raw = STANDIN.encode().replace(b"#\n# Using devices", b"#\n# Using \xff\xfe devices", 1)
    (tmp_path / "run.log").write_bytes(raw)
    run = parse_file(tmp_path / "run.log")
    assert run.errors == ["line 5: undecodable bytes, line not read: '# Using \ufffd\ufffd devices'"]
    assert len(run.results) == 18 and run.complete


def test_the_binary_names_the_collective_of_a_log_that_does_not(tmp_path: Path) -> None:
    no_name = [ln for ln in LINES if not ln.startswith("# Collective test")]
    (tmp_path / "old.log").write_text(text_of(no_name[:-1]))
    assert parse_file(tmp_path / "old.log", binary="/opt/nccl-tests/build/all_gather_perf").collective == "all_gather"


# ------------------------------------------------------------------ feed() and _comment(): what each message says


def test_an_undecodable_line_drops_the_row_it_cut_and_quotes_80_characters() -> None:
    long = "\x07" + "y" * 100
    lines = [*LINES[:ROW_8 - 1], LINES[ROW_8 - 1][:30], long, *LINES[ROW_8:]]
    run = parse(text_of(lines))
    assert run.errors[:2] == [
        f"line {ROW_8}: partial row dropped (an undecodable line follows it): {LINES[ROW_8 - 1][:30].strip()!r}",
        f"line {ROW_8 + 1}: undecodable bytes, line not read: {long.strip()[:80]!r}",
    ]


def test_a_row_cut_by_a_comment_line_is_dropped_with_that_reason() -> None:
    lines = [*LINES[:ROW_8 - 1], LINES[ROW_8 - 1][:30], "# a comment", *LINES[ROW_8:]]
    assert parse(text_of(lines)).errors == [
        f"line {ROW_8}: partial row dropped (a '#' line follows it): {LINES[ROW_8 - 1][:30].strip()!r}"]


def test_a_footer_torn_in_two_is_joined_only_with_the_very_next_line() -> None:
    avg = LINES[AVG - 1].rstrip()  # "# Avg bus bandwidth    : 0.383302"
    head, tail = avg[:-4], avg[-4:]  # "... : 0.38" + "3302"
    joined = parse(text_of([*LINES[:AVG - 1], head, tail, *LINES[AVG:]]))
    assert joined.avg_busbw_gbs == 0.383302 and joined.errors == []
    apart = parse(text_of([*LINES[:AVG - 1], head, "# between", tail, *LINES[AVG:]]))
    assert apart.avg_busbw_gbs == 0.38  # the piece two lines on is no part of it


def test_a_torn_footer_that_failed_says_so_on_the_line_that_completed_it() -> None:
    lines = [*LINES[:AVG - 1], "# Avg bus bandwidth    : 0.38", "3302 FAILED", *LINES[AVG:]]
    assert parse(text_of(lines)).errors == [
        f"line {AVG + 1}: # Avg bus bandwidth    : 0.383302 FAILED (below 0.9 x NCCL_TESTS_MIN_BW)"]


def test_a_second_header_and_a_second_collective_are_named() -> None:
    second = [ln.replace("all_reduce_perf", "all_gather_perf") for ln in LINES[1:3]]
    run = parse(text_of([*LINES[:-1], *second]))
    n = len(LINES) - 1
    assert run.errors == [
        f"line {n + 1}: a second collective (all_gather) in a log of all_reduce; results hold the rows of both",
        f"line {n + 2}: a second run's header ('# nThread ...'): two runs in one text; rows after it are not told "
        "apart from the first run's",
        "log ends before the '# Avg bus bandwidth' footer: the run did not finish",
    ]


def test_the_header_pairs_are_read_from_after_the_hash() -> None:
    run = parse(STANDIN.replace("# nThread 1 nGpus 1", "#nThread 1 nGpus 1", 1))
    assert run.header["nThread"] == 1 and run.header["nGpus"] == 1 and run.header["step"] == 4


def test_a_comment_naming_count_without_size_is_no_column_header() -> None:
    run = parse(STANDIN.replace("# Using devices", "# count of devices below", 1))
    assert run.errors == [] and len(run.results) == 18


def test_a_line_that_is_only_a_hash_is_nothing() -> None:
    assert parse(STANDIN).errors == [] and "#" in LINES[3] and LINES[3].strip() == "#"
    run = parse(STANDIN.replace("\n#\n# Using devices", "\n#XXXX\n# Using devices", 1))
    assert run.errors == [] and len(run.results) == 18


# ------------------------------------------------------------------ column headers, version line, size order, the end

HEADER = 12  # "#       size         count      type   redop    root     time   algbw   busbw  #wrong ..."


def test_a_torn_column_header_is_named_and_no_layout_is_guessed_after_it() -> None:
    torn = "#       size         count      type   redop    root     time   algbw"
    run = parse(text_of([*LINES[:HEADER - 1], torn, *LINES[HEADER:]]))
    assert run.errors[0] == ("line 12: column header without whole time/algbw/busbw columns (cut or torn?), rows after it "
                             "are not read: size count type redop root time algbw")
    assert len(run.results) == 0  # the modern 13-column layout fits these rows, but is not guessed after a bad header


def test_two_tables_side_by_side_are_not_read() -> None:
    double = LINES[HEADER - 1] + " | " + LINES[HEADER - 1]
    run = parse(text_of([*LINES[:HEADER - 1], double, *LINES[HEADER:]]))
    assert run.errors[0] == ("line 12: the column header names its columns twice (two outputs side by side): rows after "
                             "it are not read (no row can be told to belong to one run)")
    assert len(run.results) == 0


@pytest.mark.parametrize("line, header", [
    ("# nccl-tests version 2.17.6 (1a2b3c4) nccl-headers=22603 nccl-library=22703",
     {"git": "1a2b3c4", "nccl-headers": 22603, "nccl-library": 22703}),
    ("# nccl-tests version 2.17.6 (1a2b3c4)", {"git": "1a2b3c4"}),
    ("# nccl-tests version 2.17.6 nccl-headers=22603", {"nccl-headers": 22603}),
    ("# nccl-tests version 2.17.6 nccl-library=22703", {"nccl-library": 22703}),
])
def test_the_version_line_fills_exactly_what_it_says(line: str, header: dict[str, object]) -> None:
    run = parse(line + "\n")  # nccl-tests' own line: recognised on its own
    assert run.version == "2.17.6"
    assert {k: v for k, v in run.header.items() if k in ("git", "nccl-headers", "nccl-library")} == header


@pytest.mark.parametrize("order, message", [
    ([14, 15, 15], "line 16: size 32 B repeats for float sum: two sweeps interleaved, or two runs in one text"),
    ([14, 15, 14], "line 16: size 8 B goes back from 32 B for float sum: two sweeps interleaved, or two runs in one text"),
])
def test_a_sweep_that_repeats_or_goes_back_is_named(order: list[int], message: str) -> None:
    run = parse(text_of([*LINES[:HEADER + 1], *(LINES[k - 1] for k in order), *LINES[22:]]))
    assert run.errors == [message]


def test_the_order_is_kept_per_type_and_operation() -> None:
    rows = [LINES[13], LINES[14], LINES[13].replace("float", "  int"), LINES[14].replace("sum", "max")]
    assert parse(text_of([*LINES[:HEADER + 1], *rows, *LINES[22:]])).errors == []


def test_a_last_row_without_its_redop_is_read_only_when_its_line_ended() -> None:
    toks = LINES[21].split()  # the 512K row
    no_redop = "  ".join(toks[:3] + toks[4:])
    ended = parse(text_of([*LINES[:21], no_redop]))
    assert len(ended.results) == 18 and ended.header["blank columns"] == "redop"
    cut = parse(text_of([*LINES[:21], no_redop], end=""))  # it may have been cut inside its last number
    assert len(cut.results) == 16 and "blank columns" not in cut.header
    assert cut.errors[0] == f"line 22: partial row dropped (the log ends mid-row): {no_redop!r}"


def test_rows_before_any_column_header_are_counted_and_not_read() -> None:
    short = ["  ".join(LINES[k].split()[:5] + LINES[k].split()[6:]) for k in (13, 14)]  # 12 tokens: no layout fits
    run = parse(text_of([LINES[2], *short, *LINES[HEADER - 1:]]))
    assert run.errors[0] == ("line 2: 2 row(s) (lines 2-3) before any column header, in a layout that cannot be placed "
                             "without one: not read")


def test_a_rank_listed_again_with_another_device_is_named() -> None:
    again = LINES[5].replace("device  0", "device  1")
    run = parse(text_of([*LINES[:9], again, *LINES[9:]]))
    assert run.errors == [f"line 10: rank 0 listed again with a different device: {again.strip()}"]


def test_a_row_broken_after_a_blank_is_joined_as_printed() -> None:
    row = LINES[ROW_8 - 1]
    cut_at = row.index("35.97")  # the first half ends in the blanks before the time: "... sum      -1    "
    run = parse(text_of([*LINES[:ROW_8 - 1], row[:cut_at], row[cut_at:], *LINES[ROW_8:]]))
    assert run.errors == [] and len(run.results) == 18
    first = run.results.iloc[0]
    assert (first["size_bytes"], first["root"], first["time_us"]) == (8, -1, 35.97)


def test_a_cut_lone_comment_after_a_partial_row_leaves_the_row_to_the_end_of_the_log() -> None:
    run = parse(text_of([*LINES[:21], "      524288        131072     float", "#x"], end=""))
    assert run.errors[:2] == ["line 22: partial row dropped (the log ends mid-row): '524288        131072     float'",
                              "line 23: cut (no line end), its last token not read: '#x'"]  # in line order


# ------------------------------------------------------------------ partial rows, unplaced rows, echoes, roots

@pytest.mark.parametrize("after, why", [
    ("some launcher chatter", "the next line does not continue it"),
    (LINES[ROW_8], "a new row starts after it"),  # the 32 B row, whole: it cannot continue the 8 B row's first half
])
def test_a_partial_row_is_dropped_with_what_followed_it(after: str, why: str) -> None:
    half = LINES[ROW_8 - 1][:30]
    run = parse(text_of([*LINES[:ROW_8 - 1], half, after, *LINES[ROW_8 + 1:]]))
    assert run.errors[0] == f"line {ROW_8}: partial row dropped ({why}): {half.strip()!r}"


def test_an_unreadable_average_is_named() -> None:
    run = parse(STANDIN.replace("# Avg bus bandwidth    : 0.383302", "# Avg bus bandwidth    : 0.38.3302", 1))
    assert run.errors == ["line 24: unreadable average bus bandwidth: # Avg bus bandwidth    : 0.38.3302",
                          "log ends before the '# Avg bus bandwidth' footer: the run did not finish"]
    assert run.avg_busbw_gbs is None and not run.complete


def test_a_command_echoed_after_the_table_started_names_no_collective() -> None:
    no_name = [ln for ln in LINES if not ln.startswith("# Collective test")]
    echoed_late = [*no_name[:HEADER], "mpirun -np 4 ./build/sendrecv_perf -b 8", *no_name[HEADER:]]
    assert parse(text_of(echoed_late[:-1])).collective is None
    echoed_early = ["mpirun -np 4 ./build/sendrecv_perf -b 8", *no_name[:-1]]
    assert parse(text_of(echoed_early)).collective == "sendrecv"


@pytest.mark.parametrize("line, unplaced", [
    ("12 34", False),  # two tokens: no row
    ("12 34 56", True),
    ("8x 34 56", False),  # its first token is no number
    ("12 x 56", False),
])
def test_which_lines_before_a_header_count_as_rows(line: str, unplaced: bool) -> None:
    run = parse(text_of([LINES[2], line, *LINES[HEADER - 1:]]))
    assert bool([e for e in run.errors if "before any column header" in e]) is unplaced


def test_each_root_has_its_own_sweep() -> None:
    rows = [LINES[13].replace("  -1  ", "   0  "), LINES[13].replace("  -1  ", "   1  ")]
    assert parse(text_of([*LINES[:HEADER + 1], *rows, *LINES[22:]])).errors == []


def test_a_device_name_ending_in_x_keeps_it() -> None:
    """rccl-tests on AMD prints "AMD Instinct MI300X": only a line end's carriage return is taken off a line."""
    run = parse(STANDIN.replace("CPU stand-in", "AMD Instinct MI300X"))
    assert set(run.devices["gpu_name"]) == {"AMD Instinct MI300X"}
