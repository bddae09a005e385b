"""nccl-tests text logs (what an ``*_perf`` binary printed, any format era) into an ``NcclRun``.

``parse(text)`` and ``parse_file(path)`` (re-exported by ``clusterproof.network.nccl``) read output that came through
``mpirun --tag-output``, ``srun -l`` or neither, with NCCL's INFO/WARN lines mixed in, possibly cut off mid-run.
Rows are split on whitespace and columns mapped by the names in the table's column header, never by position
or width: spacing changed in 2.17.3, ``error`` became ``#wrong`` and ``root`` appeared in 2.13.0, old
broadcast tables have ``root`` but no ``redop``, ``-I`` adds per-iteration columns and ``-S`` a trailing
timestamp (shared notes, network-anchors.md §1).
"""

from __future__ import annotations

import re
from pathlib import Path

from clusterproof.errors import ParseError
from clusterproof.network.nccl_columns import DEFAULT_HEADER, Columns
from clusterproof.network.nccl_model import (
    KNOWN_BINARY,
    RESULT_COLUMNS,
    UNREADABLE,
    NcclRun,
    collective_name,
    decode_nccl_version_code,
    devices_frame,
    results_frame,
    strip_launcher_tags,
)
from clusterproof.redact import redact

# Where an NCCL log line starts: optional "[YYYY-MM-DD hh:mm:ss] " (WARN lines since NCCL 2.26), then
# host:pid:tid.
_NCCL_START = re.compile(r"(?:\[\d{4}-\d\d-\d\d [^\]]*\] )?[^\s:\[\]]+:\d+:\d+ ")
_NCCL_MARK = re.compile(r"\bNCCL (?:INFO|WARN|TRACE|CALL)\b")
_NCCL_VERSION = re.compile(r"[NR]CCL version (\d+\.\d+\.\d+)")
_TESTS_VERSION = re.compile(
    r"^#\s*nccl-tests version (\S+)(?:\s+\((\w+)\))?(?:\s+nccl-headers=(\d+))?(?:\s+nccl-library=(\d+))?"
)
_COLLECTIVE_LINE = re.compile(r"^#\s*Collective test (starting|concluded):\s*(\S+)")
_RANK_LINE = re.compile(
    r"^#\s*Rank\s+(\d+)\s+(?:Group\s+(\d+)\s+)?Pid\s+(\d+)\s+on\s+(\S+)\s+device\s+(\d+)\s+\[([^\]]*)\]\s*(.*?)\s*$"
)
_HEADER_PAIR = re.compile(r"([A-Za-z][A-Za-z ]*?):?\s+(-?\d+)(?:\((\w+)\))?")
_OUT_OF_BOUNDS = re.compile(r"^#\s*Out of bounds values\s*:\s*(\d+)\s*(OK|FAILED)?")
_AVG_BUSBW = re.compile(r"^#\s*Avg bus bandwidth\s*:\s*(\S+)\s*(OK|FAILED)?")
_REDUCING = re.compile(r"^#\s*Reducing maxBytes to (\d+)")
_STANDIN = "# clusterproof CPU stand-in"
# What nccl-tests itself prints when a CUDA/NCCL call fails (NCCLCHECK/CUDACHECK/TESTCHECK in src/common.h, any
# era: "Test CUDA failure common.cu:730 'unknown error'", "<host>: Test NCCL failure common.cu:1285 '...'",
# " .. <host> pid <pid>: Test failure common.cu:1161"): nccl-tests output, and the cause of the run's death.
_TESTS_FAILURE = re.compile(r"^(?:\S+:\s+)?Test (?:NCCL|CUDA) failure \S+:\d+|^\.\. \S+ pid \d+: Test failure \S+:\d+")
# A launcher tag with nothing after it (srun -l prints " 0:" for an empty line, often the last one).
_NUMBER_PIECE = re.compile(r"^[0-9.eE+-]+(?:\s+(?:OK|FAILED))?$")  # the rest of a torn "# Avg bus bandwidth" line
_BARE_TAG = re.compile(r"^\s*\d+:\s*$")
_FAILURE_LINE = re.compile(
    r"Test NCCL failure|Test CUDA failure|Test failure|Test timeout|NCCL WARN|Bitwise mismatch|^# error:"
    r"|mpirun noticed|mpirun detected|mpirun has exited|Primary job\s+terminated|MPI_ABORT was invoked"
    r"|srun: error:|slurmstepd: error:|srun: Job step aborted|\*\*\* (?:JOB|STEP) \S+ ON \S+ CANCELLED"
)

# Optional header lines (-z, -I, -p) -> the header flag they set, named as NcclRun.header names them.
_FLAG_LINES = {"Blocking": "blocking", "Per-Iteration": "per-iteration", "Parallel": "parallel init"}
class _LogReader:
    """Reads a text log line by line; ``finish()`` returns the NcclRun."""

    def __init__(self, binary: str | None) -> None:
        self.binary = binary
        self.columns: Columns | None = None
        self.cols: dict[str, list[object]] = {name: [] for name in RESULT_COLUMNS}
        self.devices: dict[int, tuple[int, int | None, int, str, int, str, str]] = {}
        self.errors: list[str] = []
        self.header: dict[str, int | str] = {}
        self.version: str | None = None
        self.nccl_version: str | None = None
        self.library_code: int | None = None
        self.collective_logged: str | None = None  # from "# Collective test starting"
        self.collective_echoed: str | None = None  # from a command line echoed before the table
        self.avg_busbw: float | None = None
        self.avg_line: tuple[int, str] | None = None  # (line, text) of the last footer line, to join a torn rest
        self.out_of_bounds: int | None = None
        self.footer_done = False  # the last table so far reached "# Avg bus bandwidth"
        self.standin = False
        self.recognised = False  # saw anything that only nccl-tests prints
        self.bad_header = False  # a column header was seen but could not be read: no layout is guessed after it
        self.headers_seen = 0  # "# nThread" header lines: more than one means two runs in one text
        self.unplaced: list[int] = []  # row-like lines before any column header that no layout fits
        self.last_size: dict[tuple[object, ...], int] = {}  # per (dtype, redop, root): the last size read
        self.pending: tuple[int, str] | None = None  # (line number, text) of a row cut by another line
        self.lineno = 0  # the line being read
        self.last_row_end = -1  # the line the last accepted row ended on
        self.last_row_tokens = 0
        self._hosts_re: tuple[int, re.Pattern[str] | None] | None = None  # (device count, known-host regex)

    # -- lines ------------------------------------------------------------------------------------

    def feed(self, lineno: int, raw: str) -> None:
        """Read one line (without its line end)."""
        self.lineno = lineno
        if _BARE_TAG.match(raw):
            return  # "srun -l" tag of an empty line: nothing was printed
        if UNREADABLE.search(raw):  # undecodable bytes or control characters: not readable as printed
            self._flush_pending("an undecodable line follows it")
            self.errors.append(f"line {lineno}: undecodable bytes, line not read: {redact(raw.strip()[:80])!r}")
            return
        line = strip_launcher_tags(raw)
        body = line.strip()
        if not body:
            return  # NCCL prints an empty line before every WARN: not a record separator
        if self.avg_line is not None and self.avg_line[0] == lineno - 1 and _NUMBER_PIECE.match(body):
            self._avg_busbw(lineno, self.avg_line[1] + body, _AVG_BUSBW.match(self.avg_line[1] + body))
            return  # the rest of a footer line torn in two ("... : 6" then "5.018")
        if body[0] == "#":
            self._comment(lineno, body)
        elif body[0].isdigit() and not _NCCL_MARK.search(body):
            self._row_line(lineno, line)
        else:
            self._other(lineno, line, body)

    def _comment(self, lineno: int, body: str) -> None:
        self._flush_pending("a '#' line follows it")
        tokens = body[1:].split()
        first = tokens[0] if tokens else ""
        if first == "Rank":
            self._rank(lineno, body)
        elif first == "size" and "count" in tokens:
            self._column_header(lineno, tokens)
        elif first in ("nThread", "nThreads:"):  # rccl-tests prints "# nThreads: 1 nGpus: 2 nRanks: 1 ..."
            self.recognised = True
            self.headers_seen += 1
            if self.headers_seen > 1 or self.footer_done or self.cols["size_bytes"]:
                self.errors.append(
                    f"line {lineno}: a second run's header ('# nThread ...'): two runs in one text; "
                    "rows after it are not told apart from the first run's"
                )
                self.footer_done = False  # the second run has not reached its footer yet
            for name, value, kind in _HEADER_PAIR.findall(body[1:]):
                self.header[name.strip()] = int(value)
                if kind:
                    self.header[f"{name.strip()} type"] = kind
        elif first == "Out":
            m = _OUT_OF_BOUNDS.match(body)
            if m:
                self.recognised = True
                self.out_of_bounds = int(m.group(1))
                if m.group(2) == "FAILED":
                    self.errors.append(f"line {lineno}: {body}")
        elif first == "Avg":
            m = _AVG_BUSBW.match(body)
            if m:
                self._avg_busbw(lineno, body, m)
        elif first == "nccl-tests":
            self._tests_version(body)
        elif first == "Collective":
            m = _COLLECTIVE_LINE.match(body)
            if m:
                self.recognised = True
                name = collective_name(m.group(2))
                if self.collective_logged is None:
                    self.collective_logged = name
                elif name != self.collective_logged:
                    self.errors.append(
                        f"line {lineno}: a second collective ({name}) in a log of {self.collective_logged}; "
                        "results hold the rows of both"
                    )
        elif body.startswith(_STANDIN):
            self.standin = True
        elif first == "Reducing":
            m = _REDUCING.match(body)
            if m:
                self.header["reduced maxBytes"] = int(m.group(1))
        elif first in _FLAG_LINES:
            self.header[_FLAG_LINES[first]] = 1  # "# Blocking Enabled: ...", "# Per-Iteration Report: ..."
        elif _FAILURE_LINE.search(body):
            self.errors.append(f"line {lineno}: {body}")  # "# error: <ncclGetLastError>"

    def _rank(self, lineno: int, body: str) -> None:
        m = _RANK_LINE.match(body)
        if not m:
            return
        self.recognised = True
        rank, group, pid, host, device, bus_id, gpu = m.groups()
        group_id = int(group) if group is not None else None  # no "Group" before nccl-tests 2.13.4
        entry = (int(rank), group_id, int(pid), host, int(device), bus_id, gpu)
        known = self.devices.get(entry[0])
        if known is None:
            self.devices[entry[0]] = entry
        elif known != entry:
            self.errors.append(f"line {lineno}: rank {rank} listed again with a different device: {body}")

    def _column_header(self, lineno: int, tokens: list[str]) -> None:
        if tokens.count("size") > 1:  # "... #wrong  |  #  size count ...": two tables pasted side by side
            self.errors.append(
                f"line {lineno}: the column header names its columns twice (two outputs side by side): "
                "rows after it are not read (no row can be told to belong to one run)"
            )
            self.recognised = True  # nccl-tests' header, twice
            self.columns = None
            self.bad_header = True
            return
        columns = Columns.from_header(tokens)
        if columns is None:
            self.errors.append(
                f"line {lineno}: column header without whole time/algbw/busbw columns (cut or torn?), rows after it "
                f"are not read: {' '.join(tokens)}"
            )
            self.columns = None
            self.bad_header = True
            return
        self.recognised = True
        self.columns = columns
        self.footer_done = False
        self.last_size.clear()
        if "cputime" in tokens:
            self.header["cputime"] = 1
        if "timestamp" in tokens:
            self.header["timestamps"] = 1

    def _avg_busbw(self, lineno: int, body: str, m: re.Match[str] | None) -> None:
        self.recognised = True
        self.avg_line = (lineno, body)
        if m is None:
            return
        try:
            self.avg_busbw = float(m.group(1))
        except ValueError:
            self.errors.append(f"line {lineno}: unreadable average bus bandwidth: {body}")
            return
        self.footer_done = True
        if m.group(2) == "FAILED":
            self.errors.append(f"line {lineno}: {body} (below 0.9 x NCCL_TESTS_MIN_BW)")

    def _tests_version(self, body: str) -> None:
        m = _TESTS_VERSION.match(body)
        if not m:
            return
        self.recognised = True
        self.version = m.group(1)
        if m.group(2):
            self.header["git"] = m.group(2)
        if m.group(3):
            self.header["nccl-headers"] = int(m.group(3))
        if m.group(4):
            self.library_code = int(m.group(4))
            self.header["nccl-library"] = self.library_code

    def _other(self, lineno: int, line: str, body: str) -> None:
        """A line that is neither a comment nor a plain row: NCCL log lines, launcher messages, command
        echoes, the continuation of a row that an NCCL line cut in two, or noise."""
        mark = _NCCL_MARK.search(body)
        if mark:
            start = self._nccl_start(line)
            fragment = line[:start]
            if fragment.strip():
                # An NCCL line was written into the middle of a row (same stdout buffer): keep the row's
                # first part and wait for the rest on a later line.
                self._row_line(lineno, fragment)
                body = line[start:].strip()
        if self.pending is not None and not mark:
            if self._try_continuation(lineno, line):
                return
            self._flush_pending("the next line does not continue it")
        if _TESTS_FAILURE.search(body):
            self.recognised = True  # nccl-tests' own failure line: its output, and why it stopped
        version = _NCCL_VERSION.search(body)
        if version and self.nccl_version is None:
            self.nccl_version = version.group(1)
        if _FAILURE_LINE.search(body):
            self.errors.append(f"line {lineno}: {body}")
        elif not mark and self.columns is None and self.collective_echoed is None:
            echoed = KNOWN_BINARY.search(body)
            if echoed:
                self.collective_echoed = echoed.group(1)

    def _nccl_start(self, line: str) -> int:
        """Return where the NCCL log line in ``line`` starts: 0, unless nccl-tests had printed the first part
        of a row into the same stdout buffer just before NCCL wrote its line."""
        stripped = line.lstrip()
        if not stripped[:1].isdigit() or _NCCL_START.match(stripped):
            return 0
        if self._hosts_re is None or self._hosts_re[0] != len(self.devices):
            # Known host names first: in "...  -1node-a:12:13 [0] NCCL INFO" the row ends at "-1".
            hosts = sorted({re.escape(d[3]) for d in self.devices.values()}, key=len, reverse=True)
            pattern = re.compile(r"(?:\[\d{4}-\d\d-\d\d [^\]]*\] )?(?:" + "|".join(hosts) + r"):\d+:\d+ ")
            self._hosts_re = (len(self.devices), pattern if hosts else None)
        m = self._hosts_re[1].search(line) if self._hosts_re[1] else None
        m = m or _NCCL_START.search(line)
        return m.start() if m else 0

    # -- rows -------------------------------------------------------------------------------------

    def _row_line(self, lineno: int, text: str) -> None:
        if self.pending is not None:
            if self._try_continuation(lineno, text):
                return
            self._flush_pending("a new row starts after it")
        if self.columns is None:
            tokens = text.split()
            # A log that starts mid-table: only the modern layout can be recognised without a header.
            if len(tokens) in (13, 15) and tokens[1].isdigit() and not self.bad_header:
                self.columns = Columns.from_header(DEFAULT_HEADER)
            else:
                if len(tokens) > 2 and tokens[0].isdigit() and tokens[1].isdigit():
                    self.unplaced.append(lineno)  # a row, but no header says which column is which
                return
        assert self.columns is not None
        if len(text.split()) < self.columns.needed:
            self.pending = (lineno, text)
            return
        self._add_row(lineno, text)

    def _try_continuation(self, lineno: int, text: str) -> bool:
        """Join ``text`` to the pending row fragment when together they make exactly one readable row."""
        assert self.pending is not None and self.columns is not None
        first_line, fragment = self.pending
        joined = fragment + text  # the halves were one printf stream: join as text ("3" + "7.31" = "37.31")
        tokens = joined.split()
        whole = self.columns.needed <= len(tokens) <= self.columns.full and self.columns.read(tokens) is not None
        if not whole and self.columns.read_blank_redop(tokens) is None:
            return False
        self.pending = None
        self._add_row(first_line, joined, blank_redop=not whole)
        return True

    def _flush_pending(self, why: str, cut: bool = False) -> None:
        if self.pending is not None:
            lineno, fragment = self.pending
            self.pending = None
            if not cut and self.columns is not None and self.columns.read_blank_redop(fragment.split()) is not None:
                self.header["blank columns"] = "redop"
                self._add_row(lineno, fragment, blank_redop=True)
                return
            self.errors.append(f"line {lineno}: partial row dropped ({why}): {fragment.strip()!r}")

    def _add_row(self, lineno: int, text: str, blank_redop: bool = False) -> None:
        assert self.columns is not None
        tokens = text.split()
        if len(tokens) > self.columns.full:
            self.errors.append(
                f"line {lineno}: row dropped: {len(tokens)} tokens where the column header names "
                f"{self.columns.full} (two outputs side by side, or lines run together): {text.strip()!r}"
            )
            return
        rows = self.columns.read_blank_redop(tokens) if blank_redop else self.columns.read(tokens)
        if rows is None:
            self.errors.append(f"line {lineno}: unreadable row dropped: {text.strip()!r}")
            return
        self._check_order(lineno, rows[0][0])
        self.recognised = True
        self.footer_done = False
        self.last_row_end, self.last_row_tokens = self.lineno, len(tokens)
        for row, flagged in rows:
            if flagged:
                self.errors.append(
                    f"line {lineno}: {row[5]} error {flagged} at {row[0]} B exceeds the tolerance "
                    "(nccl-tests marks it with '*')"
                )
            for name, value in zip(RESULT_COLUMNS, row, strict=True):
                self.cols[name].append(value)

    def _check_order(self, lineno: int, row: tuple[object, ...]) -> None:
        """Flag a size that repeats or goes back for the same (type, op, root): one sweep only grows, so
        that is a second sweep interleaved with the first, or a second run in the same text. (Sizes
        that round down to 0 elements repeat legitimately; ``-d all``/``-o all`` restart per type/op.)"""
        size = int(row[0])  # type: ignore[call-overload]
        key = (row[2], row[3], row[4])
        last = self.last_size.get(key)
        if last is not None and (size < last or (size == last and size != 0)):
            verb = "repeats" if size == last else f"goes back from {last} B"
            self.errors.append(
                f"line {lineno}: size {size} B {verb} for {row[2]} {row[3]}: two sweeps interleaved, "
                "or two runs in one text"
            )
        self.last_size[key] = size

    # -- end --------------------------------------------------------------------------------------

    def finish(self, last_lineno: int, ends_with_newline: bool) -> NcclRun:
        if self.unplaced:
            first, last = self.unplaced[0], self.unplaced[-1]
            self.errors.append(
                f"line {first}: {len(self.unplaced)} row(s) (lines {first}-{last}) before any column header, in "
                "a layout that cannot be placed without one: not read"
            )
        if self.pending is not None:
            cut = not ends_with_newline and self.pending[0] == last_lineno
            self._flush_pending("the log ends mid-row", cut=cut)
        elif (
            not ends_with_newline
            and self.columns is not None
            and self.last_row_end == last_lineno
            and self.last_row_tokens <= self.columns.needed
        ):
            # Without a line end the last row may be cut inside its last number ("12" -> "1"): drop it
            # unless something printed after the needed values (the -S timestamp) proves it whole.
            self._drop_last_row(last_lineno)
        devices = devices_frame(list(self.devices.values()))
        hosts = list(dict.fromkeys(devices["host"]))
        nccl_version = self.nccl_version
        if nccl_version is None and self.library_code:
            nccl_version = decode_nccl_version_code(self.library_code)
        collective = self.collective_logged
        if collective is None and self.binary:
            collective = collective_name(self.binary)
        if collective is None:
            collective = self.collective_echoed
        complete = self.footer_done
        if not complete:
            self.errors.append("log ends before the '# Avg bus bandwidth' footer: the run did not finish")
        # Row fragments are reported when the next line proves them cut, after the lines between: sort by
        # line number so the messages read in log order (messages without a line number go last).
        self.errors.sort(key=_line_of)
        return NcclRun(
            results=results_frame(self.cols),
            collective=collective,
            version=self.version,
            nccl_version=nccl_version,
            nranks=len(self.devices),
            hosts=hosts,
            devices=devices,
            avg_busbw_gbs=self.avg_busbw,
            out_of_bounds=self.out_of_bounds,
            errors=self.errors,
            complete=complete,
            header=self.header,
            standin=self.standin,
        )

    def _drop_last_row(self, lineno: int) -> None:
        n = len(self.columns.placements) if self.columns else 0
        for values in self.cols.values():
            del values[-n:]
        self.errors.append(f"line {lineno}: last row dropped: the log ends without a line end, it may be cut")


def _line_of(message: str) -> float:
    m = re.match(r"line (\d+):", message)
    return int(m.group(1)) if m else float("inf")


def parse(text: str, binary: str | None = None) -> NcclRun:
    """Read nccl-tests text output (any format era, any launcher prefix) into an NcclRun.

    Args:
        text: everything the run printed (stdout, optionally with stderr mixed in).
        binary: the binary that ran (``"all_reduce_perf"`` or a path); names the collective when the log
            does not (logs older than 2.16.7 have no "# Collective test starting" line).

    Returns:
        The run. Rows that are cut or garbled are left out and named, with their line number, in
        ``errors``; a log that stops before its footer has ``complete=False``.

    Raises:
        ParseError: the text holds nothing recognisable as nccl-tests output at all.
    """
    reader = _LogReader(binary)
    # Split on "\n" only, so line numbers match what `grep -n` and editors show for the same log.
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    cut = bool(lines) and not text.endswith("\n")
    for lineno, raw in enumerate(lines, start=1):
        if cut and lineno == len(lines) and strip_launcher_tags(raw).lstrip().startswith("#"):
            # A comment line without its line end was cut, maybe inside its last token ("# Avg bus bandwidth : 68.4"
            # of 68.4048, "iters: 2" of 20): that token is not read, the rest is.
            reader.errors.append(f"line {lineno}: cut (no line end), its last token not read: {redact(raw.strip()[-80:])!r}")
            raw = raw.rstrip().rsplit(None, 1)[0] if len(raw.split()) > 1 else ""
        reader.feed(lineno, raw.rstrip("\r"))
    if not reader.recognised:
        first = next((ln.strip() for ln in lines if ln.strip()), "")
        excerpt = redact(first[:80])
        raise ParseError(
            f"line 1: not nccl-tests output ({len(lines)} lines, no '# nThread' header, device list, "
            f"column header, result row or footer); first line: {excerpt!r}"
        )
    ends_with_newline = text.endswith("\n")
    return reader.finish(len(lines), ends_with_newline)


def parse_file(path: str | Path, binary: str | None = None) -> NcclRun:
    """Read an nccl-tests text log from ``path`` (see ``parse``).

    Raises:
        ParseError: the file cannot be read, or holds nothing recognisable as nccl-tests output; the
            message names the file.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise ParseError(f"{p}: cannot read nccl-tests log: {e.strerror}") from None
    try:
        return parse(text, binary=binary)
    except ParseError as e:
        raise ParseError(f"{p}: {e}") from None
