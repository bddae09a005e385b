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
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace

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
from clusterproof.network.nccl_model import launcher_tag, strip_launcher_tags

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


# ---------------------------------------------------------------------------------------------------------
# Accumulation. Lines are collected per (host, pid, cudaDev); per-process facts (version, device lists,
# fallback reasons) are shared by every rank of that process when the rows are built.


@dataclass(frozen=True)
class _Chan:
    net: str
    rest: str  # e.g. "IB/0/GDRDMA"
    gdr: bool
    proxy: bool
    line: str


@dataclass
class _Acc:
    nets: list[tuple[str, str]] = field(default_factory=list)
    channels: dict[tuple[str, ...], _Chan] = field(default_factory=dict)
    own_ranks: Counter[int] = field(default_factory=Counter)
    inits: list[tuple[int, int, int | None]] = field(default_factory=list)  # rank, nranks, cudaDev
    completed: list[str] = field(default_factory=list)  # Init COMPLETE lines: the communicator came up
    tests_rank: int | None = None
    gids: list[tuple[int, int, int, str, str]] = field(default_factory=list)  # ibdev, port, idx, gid, line
    nvls_counts: list[tuple[int, str]] = field(default_factory=list)
    nvls_used: list[str] = field(default_factory=list)
    collnet_used: list[str] = field(default_factory=list)
    ring_summary: list[tuple[int, int, str]] = field(default_factory=list)
    warns: list[tuple[str, str]] = field(default_factory=list)  # text, line
    # per-process facts (merged over the process's accumulators)
    versions: list[tuple[str, str]] = field(default_factory=list)
    ib_lists: list[tuple[str, bool, dict[int, str], str]] = field(default_factory=list)
    socket_lists: list[tuple[str, str]] = field(default_factory=list)
    net_reasons: list[str] = field(default_factory=list)
    plugin_lines: list[str] = field(default_factory=list)
    gdr_hca: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    def is_rank(self) -> bool:
        """True when some line says a rank lives on this (host, pid, cudaDev)."""
        return bool(self.inits or self.channels or self.nets or self.own_ranks or self.tests_rank is not None)

    def merged(self, other: _Acc) -> _Acc:
        """Return a new accumulator with the lines of both."""
        out = _Acc()
        for f in self.__dataclass_fields__:
            a, b = getattr(self, f), getattr(other, f)
            if isinstance(a, list):
                setattr(out, f, a + b)
            elif isinstance(a, Counter):
                setattr(out, f, a + b)
            elif isinstance(a, dict):
                setattr(out, f, {**a, **b})
            else:
                setattr(out, f, a if a is not None else b)
        return out


_ProcKey = tuple[str, int]


class _Parser:
    def __init__(self) -> None:
        self.procs: dict[_ProcKey, dict[int | None, _Acc]] = {}
        self.bare_versions: list[tuple[str, str]] = []  # "NCCL version" printed without prefix (rank 0, <= 2.21)
        self.unknown = 0
        self.nccl_lines = 0
        self.cut_lines = 0  # last lines without a line end (cut): never read
        self.torn_versions: list[str] = []  # lines that start like a version line but cannot be read

    def acc(self, host: str, pid: int, dev: int | None) -> _Acc:
        return self.procs.setdefault((host, pid), {}).setdefault(dev, _Acc())

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
        for raw in lines:
            raw = raw.rstrip("\r")
            tag = launcher_tag(raw) if strip_launcher else ""
            line = (strip_launcher_tags(raw) if strip_launcher else raw).rstrip()
            if tag and tag in held and line.strip() and not self._starts_line(line):
                held[tag] += line  # the rest of a torn line
                continue
            if tag in held:
                self.read_line(held.pop(tag))
            if tag:
                held[tag] = line
            else:
                self.read_line(line)
        for line in held.values():
            self.read_line(line)

    @staticmethod
    def _starts_line(line: str) -> bool:
        return bool(_FRAME.match(line) or _VERSION.match(line) or _TESTS_RANK.match(line)
                    or _TESTS_OUTPUT.match(line) or _VERSION_START.match(line))

    def read_line(self, line: str) -> None:
        if True:
            if not line.strip():
                return  # NCCL writes an empty line before every WARN
            m = _FRAME.match(line)
            if m:
                self.nccl_lines += 1
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
    def reason(acc: _Acc, body: str, line: str) -> None:
        if _NET_REASON.search(body):
            acc.net_reasons.append(line)
        elif _PLUGIN_REASON.search(body):
            acc.plugin_lines.append(line)

    def info(self, acc: _Acc, body: str, line: str) -> None:
        if m := _CHANNEL.match(body):
            own = int(m["dst"]) if m["dir"] == "receive" else int(m["src"])
            acc.own_ranks[own] += 1
            if m["tr"] == "NET":
                r = _NET_REST.match(m["rest"])
                if r is None:  # "via NET/IB/0/GDR": an ending not recognised proves neither GDR nor its absence
                    self.unknown += 1
                    return
                key = (m["ch"], m["conn"] or "", m["src"], m["dst"], m["dir"] or "", m["rest"])
                acc.channels.setdefault(key, _Chan(r["net"], m["rest"], bool(r["gdr"]), bool(r["proxy"]), line))
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
            process = _merge(accs.values())
            for dev, acc in _rank_accumulators(accs):
                row, ev = _row(host, pid, dev, acc, process)
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
                    evidence[i] = _replace_version(evidence[i], line)
        order = sorted(range(len(rows)), key=lambda i: _sort_key(rows[i]))
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


def _merge(accs: Iterable[_Acc]) -> _Acc:
    out = _Acc()
    for a in accs:
        out = out.merged(a)
    return out


def _rank_accumulators(accs: dict[int | None, _Acc]) -> Iterator[tuple[int | None, _Acc]]:
    """Yield (cudaDev, lines) per rank of one process. Lines logged under a device that hosts no rank
    (e.g. before cudaSetDevice) belong to the process's only rank, or are shared when it has several."""
    rank_devs = [d for d, a in accs.items() if d is not None and a.is_rank()]
    if not rank_devs:
        first = next((d for d in accs if d is not None), None)
        yield first, _merge(accs.values())
        return
    others = _merge(a for d, a in accs.items() if d not in rank_devs)
    for d in sorted(rank_devs):
        yield d, accs[d].merged(others)


def _row(host: str, pid: int, dev: int | None, acc: _Acc, process: _Acc) -> tuple[dict[str, object], RankEvidence]:
    rank, cuda_dev = _rank_of(acc, dev)
    net = _most_common(n for n, _ in acc.nets) or _most_common(c.net for c in acc.channels.values())
    # The network is chosen once per process (ncclNet is process-wide): a rank whose own lines do not name it uses
    # the one its process's other lines name.
    net = net or _most_common(n for n, _ in process.nets)
    if net is None and not process.nets and process.socket_lists and not process.ib_lists and process.net_reasons:
        # NCCL < 2.7 prints no "Using network" line: IB failed (libibverbs, "NET/IB : No device found") and only
        # the socket transport came up, so Socket is what it used.
        net = "Socket"
    version = process.versions[0] if process.versions else None
    ib = process.ib_lists[0] if process.ib_lists else None
    sock = process.socket_lists[0] if process.socket_lists else None
    devices: tuple[str, str] | None
    if net == "Socket" or ib is None:
        devices = sock
    else:
        devices = (ib[0], ib[3])
    chans = list(acc.channels.values())
    summary = acc.ring_summary[-1] if acc.ring_summary else None
    names = ib[2] if ib else {}
    gids = tuple(
        GidUse(host, pid, rank, names.get(ibdev, f"IbDev {ibdev}"), port, idx, gid, line)
        for ibdev, port, idx, gid, line in acc.gids
    )
    nvls_lines = [line for n, line in acc.nvls_counts if n > 0] + acc.nvls_used
    nvls: object
    if nvls_lines:
        nvls = True
    elif acc.nvls_counts or acc.completed or chans:
        nvls = False  # NCCL < 2.17 has no NVLS; later versions print the count at every init
    else:
        nvls = pd.NA
    row: dict[str, object] = {
        "rank": rank if rank is not None else pd.NA,
        "host": host,
        "pid": pid,
        "cuda_dev": cuda_dev if cuda_dev is not None else pd.NA,
        "nccl_version": version[0] if version else None,
        "net": net,
        "net_devices": (devices[0] or None) if devices else None,
        "relaxed_ordering": ib[1] if ib else pd.NA,
        "gdr_all": all(c.gdr for c in chans) if chans else (bool(summary[1]) if summary else pd.NA),
        "cross_node_channels": len(chans),
        "via": _via(chans),
        "pxn": _pxn(chans, summary),
        "nvls": nvls,
        "collnet": True if acc.collnet_used else (False if acc.completed or chans else pd.NA),
        "gid_index": _most_common(g.gid_index for g in gids) if gids else pd.NA,
        "gid": ",".join(dict.fromkeys(g.gid for g in gids)) or None,
        "warns": len(acc.warns),
    }
    ev = RankEvidence(
        network_lines=tuple(line for _, line in acc.nets),
        network_reasons=tuple(dict.fromkeys(process.net_reasons)),
        plugin_lines=tuple(dict.fromkeys(process.plugin_lines)),
        devices_line=devices[1] if devices else None,
        version_line=version[1] if version else None,
        net_channel_lines=tuple(c.line for c in chans),
        gdr_hca_lines=tuple(dict.fromkeys(process.gdr_hca)),
        ring_summary_line=summary[2] if summary else None,
        gids=gids,
        nvls_lines=tuple(nvls_lines),
        collnet_lines=tuple(acc.collnet_used),
        env=dict(process.env),
    )
    return row, ev


def _rank_of(acc: _Acc, dev: int | None) -> tuple[int | None, int | None]:
    """Return (NCCL rank, cudaDev): the largest communicator's Init line wins (nccl-tests may split
    communicators), then the rank the channel lines speak for, then nccl-tests' ``# Rank N ... device D``."""
    if acc.inits:
        rank, _n, cuda = max(acc.inits, key=lambda t: t[1])
        return rank, cuda if cuda is not None else dev
    if acc.own_ranks:
        return acc.own_ranks.most_common(1)[0][0], dev
    return acc.tests_rank, dev


def _via(chans: list[_Chan]) -> str:
    counts = Counter(f"NET/{c.rest}" for c in chans)
    return ", ".join(f"{k} x{n}" for k, n in counts.items())


def _pxn(chans: list[_Chan], summary: tuple[int, int, str] | None) -> object:
    if any(c.proxy for c in chans) or (summary is not None and summary[0] == 1):
        return True
    if chans or summary is not None:
        return False
    return pd.NA


def _most_common(values: Iterable[object]) -> object | None:
    counts = Counter(values)
    return counts.most_common(1)[0][0] if counts else None


def _replace_version(ev: RankEvidence, line: str) -> RankEvidence:
    return replace(ev, version_line=line)


def _sort_key(row: Mapping[str, object]) -> tuple[int, int, str, int, int]:
    rank = row["rank"]
    dev = row["cuda_dev"]
    return (
        1 if rank is pd.NA else 0,
        rank if isinstance(rank, int) else 0,
        str(row["host"]),
        int(row["pid"]),  # type: ignore[call-overload]
        dev if isinstance(dev, int) else -1,
    )
