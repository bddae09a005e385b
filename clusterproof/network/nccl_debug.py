"""Read NCCL's own ``NCCL_DEBUG=INFO`` logs and say, per rank, which transport NCCL really used.

Pure: no I/O. The input is text (the per-process ``NCCL_DEBUG_FILE`` files fetched from every node, or one
combined stdout with launcher prefixes); the output is a :class:`TransportReport` with one row per NCCL rank.
Formats of NCCL 2.7 to 2.30 are read: WARN timestamps (2.26+), ``(func)`` in WARN (2.30.7+), the version line
printed bare by rank 0 (<=2.21) or prefixed by every process (>=2.22), ``rank[busId]`` (<=2.18.1) or
``rank[nvmlDev]`` channel lines. Lines it does not know are ignored. The decisions live in
:mod:`clusterproof.network.nccl_debug_checks`; the types in :mod:`clusterproof.network.nccl_debug_model`.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping

import pandas as pd

from clusterproof.errors import ParseError
from clusterproof.network.nccl_debug_model import (
    RANK_COLUMNS,
    GidUse,
    RankEvidence,
    TransportReport,
    WarnLine,
    decode_gid,
)
from clusterproof.network.nccl_debug_rows import (
    Acc,
    Chan,
    merge,
    rank_accumulators,
    rank_row,
    replace_version,
    sort_key,
)
from clusterproof.network.nccl_model import UNREADABLE, launcher_tag, strip_inner_tags, strip_launcher_tags

__all__ = [
    "RANK_COLUMNS", "GidUse", "RankEvidence", "TransportReport", "WarnLine", "decode_gid", "nccl_debug_env",
    "parse_debug_files", "parse_debug_text",
]

# ---------------------------------------------------------------------------------------------------------
# Line framing. A launcher may prefix the line (mpirun --tag-output, PRRTE, srun -l, a bare "[N] "); NCCL's
# own prefix is "[timestamp ]host:pid:tid [cudaDev] " followed by "NCCL INFO" or "file:line [(func) ]NCCL WARN".

_FRAME = re.compile(
    r"^(?:\[\d{4}-\d\d-\d\d [^\]]*\] )?"  # NCCL_DEBUG_TIMESTAMP_FORMAT default "[%F %T] " (2.26+)
    r"(?P<host>[^\s:\[\]]+):(?P<pid>\d+):(?P<tid>\d+) "
    r"(?:\[(?P<dev>\d+)\] )?"
    r"(?:NCCL INFO ?(?P<info>.*)"
    r"|(?P<file>\S+):(?P<lineno>\d+)(?: \((?P<func>[^)]*)\))? NCCL WARN ?(?P<warn>.*)"
    r"|(?:[\d.]+ \S+ )?NCCL (?:TRACE|CALL)\b.*)$"
)
_VERSION = re.compile(r"^[NR]CCL version (?P<v>\d+\.\d+\.\d+[^+\s]*)\+(?:cuda|hip)(?P<cuda>\d+\.\d+)")
_VERSION_START = re.compile(r"^(?:[NR]CCL v|[NR]CCL$|[NR]CC?$)")  # a version line that was torn or cut
_TESTS_RANK = re.compile(
    r"^#\s*Rank\s+(?P<rank>\d+)\s+(?:Group\s+\d+\s+)?Pid\s+(?P<pid>\d+)\s+on\s+(?P<host>\S+)\s+device\s+(?P<dev>\d+)"
)
# Only a lone token ("Bext_v8", "DMA", "9.3+cuda12.3") is taken as the rest of a torn NCCL line: a piece with spaces
# may be another program's line (stderr) as well, so it is read as a line of its own and proves nothing.
_MARK = re.compile(r"\bNCCL (?:INFO|WARN)\b")  # one per NCCL line: a piece holding one is no other line's rest
_LONE_PIECE = re.compile(r"^[A-Za-z0-9][\w.+/:()<>\[\]-]*$")
_TESTS_OUTPUT = re.compile(r"^\s*(?:#|\d+\s+\d+\s+\S+)")  # nccl-tests comments and table rows

# ---------------------------------------------------------------------------------------------------------
# INFO/WARN bodies (see ../shared/notes/nccl-debug-info.md §2 for the format strings behind each pattern).

_USING_NET = re.compile(r"^(?:Using network|Assigned NET plugin) (?P<net>.+?)(?: to comm)?\s*$")
_IB_LIST = re.compile(r"^NET/IB ?: Using(?P<devs>.*?)\s*(?P<ro>\[RO\])?\s*; OOB (?P<oob>.*)$")
_IB_DEV = re.compile(
    r"\[(?P<idx>\d+)\]\s?(?P<dev>(?P<name>[^\s:\[\]{}=,]+):\d+(?::\d*)?(?::\d+)?/(?:IB|RoCE|UNSPECIFIED)(?:/SHARP)?)"
)
_SOCKET_LIST = re.compile(r"^NET/Socket ?: Using(?P<devs>.*)$")
_SOCKET_DEV = re.compile(r"\[\d+\](?P<dev>[^:\s]+:\S+?)(?:<\d+>)?(?=\s|$)")
_NET_REASON = re.compile(
    r"libibverbs|NET/IB ?: No device found|NCCL_IB_DISABLE set by environment to [1-9]"
    r"|Failed to initialize (?:any )?NET plugin|Error: network .* not found|NET/Socket ?: no interface found"
    r"|incompatible devices|is incompatible with the local"
)
_PLUGIN_REASON = re.compile(r"^NET/Plugin ?:.*(?:Could not find|No plugin found|returned|dlerror)")
_GDR_HCA = re.compile(r"^NET/.+? ?: GPU Direct RDMA (?:\([^)]*\) )?(?:Enabled|Disabled|enabled|disabled) for HCA")
_GID = re.compile(
    r"^NET/IB ?:.*?(?:IbDev|Dev) (?P<ibdev>\d+) Port (?P<port>\d+) .*?"
    r"GID (?P<idx>-?\d+) \((?P<pfx>[0-9A-Fa-f]+)/(?P<iid>[0-9A-Fa-f]+)\)"
)
_CHANNEL = re.compile(
    r"^(?:Channel|Ring) (?P<ch>\d+)(?:/(?P<conn>\d+))? : (?P<src>\d+)\[(?P<sd>[0-9a-f]+)\] -> "
    r"(?P<dst>\d+)\[(?P<dd>[0-9a-f]+)\] (?:\[(?P<dir>send|receive)\] )?via (?P<tr>NET|P2P|SHM|COLLNET)/(?P<rest>.*?)\s*$"
)
_NET_REST = re.compile(
    r"^(?P<net>.+?)/(?P<dev>\d+)(?:\((?P<proxy>\d+)\))?(?P<gdr>/GDRDMA)?(?P<pci>\(PCI\))?(?P<shared>/Shared)?$"
)
_COLLNET_USED = re.compile(r"^CollNet \d+(?:/\d+)? : \d+ \[(?:send|receive)\] via COLLNET/|Connected [Cc]oll[Nn]et")
_NVLS_COUNT = re.compile(r"\b(?P<n>\d+) nvls channels")
_NVLS_USED = re.compile(r"^(?:NVLS comm |NVLS Head|Connected NVLS|NVLS Trees)|Algo NVLS")
_RING_SUMMARY = re.compile(r"use ring PXN (?P<pxn>\d+) GDR (?P<gdr>\d+)")
_INIT = re.compile(
    r"\bcomm \S+ rank (?P<rank>\d+) nranks (?P<nranks>\d+) cudaDev (?P<cudadev>\d+)\b.*- Init (?:COMPLETE|START)"
    r"|\bcomm \S+ rank (?P<rank2>\d+) nRanks (?P<nranks2>\d+) nNodes \d+"
)
_ENV = re.compile(r"^(?P<name>NCCL_[A-Z0-9_]+) set (?:by environment )?to (?P<value>.*?)\.?\s*$")


def nccl_debug_env(mode: str, scratch_dir: str, network: str = "IB") -> dict[str, str]:
    """Return the environment that makes NCCL write its transport proof, one file per process.

    ``off`` -> ``{}``; ``on`` -> ``NCCL_DEBUG=INFO``, ``NCCL_DEBUG_SUBSYS=INIT,BOOTSTRAP,ENV,NET,GRAPH`` (NET is
    needed for the GID lines) and ``NCCL_DEBUG_FILE=<scratch_dir>/nccl.%h.%p.log`` (NCCL expands ``%h`` to the
    short host name and ``%p`` to the pid); ``strict`` also sets ``NCCL_NET=<network>`` so that a fallback to
    sockets fails the run instead of only slowing it down.

    Raises:
        ValueError: unknown mode, or an empty ``scratch_dir`` for ``on``/``strict``.
    """
    if mode == "off":
        return {}
    if mode not in ("on", "strict"):
        raise ValueError(f"NCCL debug mode must be one of off, on, strict; got {mode!r}")
    if not scratch_dir:
        raise ValueError("NCCL debug mode needs a remote scratch directory for NCCL_DEBUG_FILE, got an empty path")
    env = {
        "NCCL_DEBUG": "INFO",
        "NCCL_DEBUG_SUBSYS": "INIT,BOOTSTRAP,ENV,NET,GRAPH",
        "NCCL_DEBUG_FILE": posixpath.join(scratch_dir, "nccl.%h.%p.log"),
    }
    if mode == "strict":
        env["NCCL_NET"] = network
    return env


def parse_debug_files(files: Mapping[str, str]) -> TransportReport:
    """Return the transport report of one run from its ``NCCL_DEBUG_FILE`` files ({file name: text}).

    Host and pid come from the lines, never from the file names. A bare ``NCCL version`` line (NCCL <= 2.21
    prints it on rank 0's stdout) is given to the rank-0 row when that row has no version of its own.

    Raises:
        ParseError: a file's content is not text (names the file).
    """
    parser = _Parser()
    for name, text in files.items():
        if not isinstance(text, str):
            raise ParseError(f"{name}: expected the NCCL debug file as text, got {type(text).__name__}")
        parser.feed(text, strip_launcher=False)
    return parser.report()


def parse_debug_text(text: str) -> TransportReport:
    """Return the transport report from one combined text (stdout with NCCL lines, maybe launcher prefixes).

    A bare ``NCCL version`` line (NCCL <= 2.21, rank 0 only) is given to the rank-0 row.

    Raises:
        ParseError: ``text`` is not a string.
    """
    if not isinstance(text, str):
        raise ParseError(f"combined NCCL output: expected text, got {type(text).__name__}")
    parser = _Parser()
    parser.feed(text, strip_launcher=True)
    return parser.report()


_ProcKey = tuple[str, int]


class _Parser:
    def __init__(self) -> None:
        self.procs: dict[_ProcKey, dict[int | None, Acc]] = {}
        self.bare_versions: list[tuple[str, str]] = []  # "NCCL version" printed without prefix (rank 0, <= 2.21)
        self.unknown = 0
        self.nccl_lines = 0
        self.cut_lines = 0  # last lines without a line end (cut): never read
        self.hosts: set[str] = set()  # hosts of the NCCL lines read so far
        self.torn_versions: list[str] = []  # lines that start like a version line but cannot be read

    def acc(self, host: str, pid: int, dev: int | None) -> Acc:
        return self.procs.setdefault((host, pid), {}).setdefault(dev, Acc())

    def feed(self, text: str, strip_launcher: bool) -> None:
        """Read one text. Its last line, when no line end follows it, was cut (a killed process, a file copied
        while written): it proves nothing and is only counted in ``cut_lines``. Under a launcher that tags
        lines, a line can be torn in two at a read-chunk boundary, the rest arriving later under the same tag
        (other streams' lines may come between): a piece that cannot start a line of its own is joined to the
        line its stream left open before anything is read from it."""
        lines = text.split("\n")
        if lines[-1].strip():
            self.cut_lines += 1  # no line end: cut
        lines.pop()
        held: dict[str, str] = {}  # per launcher stream: its last line, not read until the next piece is seen
        piece: dict[str, str] = {}  # per stream: a piece that is either the rest of the held line or the start of the next
        for raw in lines:
            raw = raw.rstrip("\r")
            tag = launcher_tag(raw) if strip_launcher else ""
            # Pieces keep every character (a tear can fall next to a space); lines are read stripped.
            line = strip_inner_tags(raw[len(tag):]) if tag else (strip_launcher_tags(raw) if strip_launcher else raw)
            if tag in piece:
                before = piece.pop(tag)
                joined = before + line
                if self._starts_line(joined) and (not self._starts_line(line) or self._known_host(joined)
                                                  and not self._known_host(line)):
                    line = joined  # "g" + "pu-b02:1:2 [0] NCCL INFO ...": the start of this line was torn off
                else:
                    held[tag] += before  # "Using network I" + "Bext_v8": the rest of the held line
            if tag in held and not self._starts_line(line) and _LONE_PIECE.match(line.strip()):
                piece[tag] = line  # decided by the next line of the stream
                continue
            if tag in held:
                self.read_line(held.pop(tag).strip())
            if tag or _FRAME.match(line.strip()):
                held[tag] = line  # an untagged stream holds its NCCL lines only: the rest of one may follow
            else:
                self.read_line(line.strip())
        for tag, rest in piece.items():
            held[tag] += rest
        for line in held.values():
            self.read_line(line.strip())

    def _known_host(self, line: str) -> bool:
        """True when ``line`` is an NCCL line of a host already seen (told apart "gpu-b02:..." from "pu-b02:...")."""
        m = _FRAME.match(line.strip())
        return bool(m and m["host"] in self.hosts)

    @staticmethod
    def _starts_line(text: str) -> bool:
        line = text.strip()
        return bool(_FRAME.match(line) or _VERSION.match(line) or _TESTS_RANK.match(line)
                    or _TESTS_OUTPUT.match(line) or _VERSION_START.match(line))

    def read_line(self, line: str) -> None:
        if True:
            if not line.strip():
                return  # NCCL writes an empty line before every WARN
            if UNREADABLE.search(line):  # undecodable bytes or control characters: it cannot be read as printed
                self.unknown += 1
                return
            m = _FRAME.match(line)
            if m:
                self.nccl_lines += 1
                self.hosts.add(m["host"])
                key = (m["host"], int(m["pid"]))
                dev = int(m["dev"]) if m["dev"] is not None else None
                acc = self.acc(key[0], key[1], dev)
                if m["info"] is not None:
                    self.info(acc, m["info"], line)
                elif m["warn"] is not None:
                    acc.warns.append((m["warn"], line))
                    self.reason(acc, m["warn"], line)
                return
            v = _VERSION.match(line)
            if v:
                self.nccl_lines += 1
                self.bare_versions.append((v["v"], line))
                return
            if _VERSION_START.match(line.strip()):
                self.torn_versions.append(line)  # "NCCL version 2.1" cut or torn: a version line nobody can read
                return
            t = _TESTS_RANK.match(line)
            if t:
                self.acc(t["host"], int(t["pid"]), int(t["dev"])).tests_rank = int(t["rank"])
                return
            if not _TESTS_OUTPUT.match(line):
                self.unknown += 1

    @staticmethod
    def reason(acc: Acc, body: str, line: str) -> None:
        if _NET_REASON.search(body):
            acc.net_reasons.append(line)
        elif _PLUGIN_REASON.search(body):
            acc.plugin_lines.append(line)

    def info(self, acc: Acc, body: str, line: str) -> None:
        if m := _CHANNEL.match(body):
            own = int(m["dst"]) if m["dir"] == "receive" else int(m["src"])
            acc.own_ranks[own] += 1
            if m["tr"] == "NET":
                r = _NET_REST.match(m["rest"])
                if r is None:  # "via NET/IB/0/GDR": an ending not recognised proves neither GDR nor its absence
                    self.unknown += 1
                    return
                key = (m["ch"], m["conn"] or "", m["src"], m["dst"], m["dir"] or "", m["rest"])
                acc.channels.setdefault(key, Chan(r["net"], m["rest"], bool(r["gdr"]), bool(r["proxy"]), line))
            elif m["tr"] == "COLLNET":
                acc.collnet_used.append(line)
        elif m := _GID.match(body):
            try:
                gid = decode_gid(m["pfx"], m["iid"])
            except ParseError:  # a truncated or garbled QP line proves nothing; ignore it like other noise
                self.unknown += 1
                return
            acc.gids.append((int(m["ibdev"]), int(m["port"]), int(m["idx"]), gid, line))
        elif m := _VERSION.match(body):
            acc.versions.append((m["v"], line))
        elif m := _USING_NET.match(body):
            acc.nets.append((m["net"], line))
        elif m := _IB_LIST.match(body):
            names = {int(d["idx"]): d["name"] for d in _IB_DEV.finditer(m["devs"])}
            devs = ",".join(d["dev"] for d in _IB_DEV.finditer(m["devs"]))
            acc.ib_lists.append((devs, m["ro"] is not None, names, line))
        elif m := _SOCKET_LIST.match(body):
            acc.socket_lists.append((",".join(d["dev"] for d in _SOCKET_DEV.finditer(m["devs"])), line))
        elif _GDR_HCA.match(body):
            acc.gdr_hca.append(line)
        elif m := _INIT.search(body):
            if m["rank"] is not None:
                acc.inits.append((int(m["rank"]), int(m["nranks"]), int(m["cudadev"])))
                if body.endswith("COMPLETE"):
                    acc.completed.append(line)
            else:
                acc.inits.append((int(m["rank2"]), int(m["nranks2"]), None))
        elif m := _RING_SUMMARY.search(body):
            acc.ring_summary.append((int(m["pxn"]), int(m["gdr"]), line))
        elif m := _NVLS_COUNT.search(body):
            acc.nvls_counts.append((int(m["n"]), line))
        elif _NVLS_USED.search(body):
            acc.nvls_used.append(line)
        elif _COLLNET_USED.search(body):
            acc.collnet_used.append(line)
        else:
            if m := _ENV.match(body):
                acc.env[m["name"]] = m["value"]
            self.reason(acc, body, line)

    # -- building the rows -------------------------------------------------------------------------------

    def report(self) -> TransportReport:
        rows: list[dict[str, object]] = []
        evidence: list[RankEvidence] = []
        warnings: list[WarnLine] = []
        versions: set[str] = set()
        for (host, pid), accs in self.procs.items():
            process = merge(accs.values())
            for dev, acc in rank_accumulators(accs):
                row, ev = rank_row(host, pid, dev, acc, process)
                rows.append(row)
                evidence.append(ev)
                rank = row["rank"] if isinstance(row["rank"], int) else None
                warnings.extend(WarnLine(host, pid, rank, text, line) for text, line in acc.warns)
            versions.update(v for v, _ in process.versions)
        for version, line in self.bare_versions:
            versions.add(version)
            # Rank 0 printed it; with no rank known anywhere, a lone process is rank 0's.
            targets = [i for i, row in enumerate(rows) if isinstance(row["rank"], int) and row["rank"] == 0]
            if not targets and len(rows) == 1 and not isinstance(rows[0]["rank"], int):
                targets = [0]
            for i in targets:
                if rows[i]["nccl_version"] is None:
                    rows[i]["nccl_version"] = version
                    evidence[i] = replace_version(evidence[i], line)
        order = sorted(range(len(rows)), key=lambda i: sort_key(rows[i]))
        frame = pd.DataFrame([rows[i] for i in order], columns=list(RANK_COLUMNS))
        frame = frame.astype(RANK_COLUMNS).reset_index(drop=True)
        for col, dtype in RANK_COLUMNS.items():  # str-or-None columns keep None, not NaN
            if dtype == "object":
                frame[col] = frame[col].astype(object).where(frame[col].notna(), None)
        return TransportReport(
            ranks=frame,
            warnings=warnings,
            unknown_lines=self.unknown,
            versions=versions,
            evidence=[evidence[i] for i in order],
            nccl_lines=self.nccl_lines,
            cut_lines=self.cut_lines,
            framed_lines=self.nccl_lines - len(self.bare_versions),
            torn_versions=list(self.torn_versions),
        )
