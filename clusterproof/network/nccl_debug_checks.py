"""Pure verdicts on a :class:`~clusterproof.network.nccl_debug_model.TransportReport`: which ranks did not use the
expected network, GPUDirect RDMA, GID, NCCL version, or used NVLS where it inflates the number.

Every ``check_*`` returns :class:`~clusterproof.findings.Finding` records for :attr:`Criterion.TRANSPORT`: a failing
one per rank (or per problem) quoting the NCCL lines that show it, and a passing one per rank judged fine. A report
without any rank never passes (nothing was proven). :func:`transport_gate` decides beforehand whether the run can
be judged at all, and words why not: the logs were not requested, the CPU stand-in speaks no NCCL, or a real
cluster printed no NCCL line (a failure).
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Iterator, Sequence

import pandas as pd

from clusterproof import findings as fd
from clusterproof.findings import Criterion, Evidence, Finding, Subject
from clusterproof.network.nccl_debug_model import RankEvidence, TransportReport

DEBUG_OFF_REASON = "debug: off: NCCL's logs were not requested (nccl_tests.debug), so the transport was not judged (NCCL WARN lines in stdout still are)"
STANDIN_REASON = "stand-in: no NCCL (the sandbox's CPU stand-in for nccl-tests prints no NCCL line)"
_IB_PLUGIN = re.compile(r"IBext(?:_v\d+)?$")  # the HPC-X verbs plugin (IBext, IBext_v8...): still the IB transport
_NET_DEV = re.compile(r"via NET/.+?/(\d+)")


def transport_gate(report: TransportReport | None, *, debug: str, standin: bool, n_files: int, subject: Subject,
                   evidence_path: str | None = None) -> Finding | None:
    """Why this run's transport cannot be judged, as a finding, or None when the checks can run.

    ``debug: off`` and the CPU stand-in are not tested, with that reason. A real cluster whose ``n_files`` debug
    files hold no NCCL line fails: NCCL was asked for its logs and said nothing (wrong ``NCCL_DEBUG_FILE``
    path, a wrapper that drops the environment, no NCCL in the binary...).
    """
    if debug == "off":
        return fd.not_tested(Criterion.TRANSPORT, subject, DEBUG_OFF_REASON)
    if standin:
        return fd.not_tested(Criterion.TRANSPORT, subject, STANDIN_REASON)
    if report is None or report.nccl_lines == 0:
        where = (Evidence(evidence_path),) if evidence_path else ()
        return fd.failed(Criterion.TRANSPORT, subject,
                         f"no NCCL line in {n_files} debug file{'s' if n_files != 1 else ''} on a real cluster "
                         "(NCCL_DEBUG_FILE not honoured, the environment lost on the way, or no NCCL in the binary)",
                         evidence=where)
    return None


def check_network(report: TransportReport, expected: str = "IB", evidence_path: str | None = None) -> list[Finding]:
    """Return one finding per rank whose NCCL network is not ``expected`` (a Socket fallback names the reason
    NCCL gave: libibverbs missing, ``NET/IB : No device found``, ``NCCL_IB_DISABLE``...).

    ``expected="IB"`` also accepts the HPC-X plugin (``IBext``/``IBext_vN``), which drives the same verbs.
    """
    if report.ranks.empty:
        return [_nothing_proven()]
    findings: list[Finding] = []
    for row, ev in _rows(report):
        net = row["net"]
        if isinstance(net, str) and _network_matches(net, expected):
            findings.append(_passed(row, f"{_who(row)}: network {net}", ev.network_lines[:1], evidence_path))
            continue
        reasons = list(ev.network_reasons)
        if expected not in ("IB", "Socket") or not reasons:
            reasons += ev.plugin_lines  # a named plugin that was not found explains a fallback too
        why = f" (NCCL said: {_quote_body(reasons[0])})" if reasons else ""
        if net is None:
            msg = f"{_who(row)}: no 'Using network' line, NCCL picked no network{why}"
        else:
            msg = f"{_who(row)}: NCCL used network {net}, expected {expected}{why}"
        findings.append(_finding(row, msg, [*ev.network_lines[:1], *reasons], evidence_path))
    return findings


def check_gdr(report: TransportReport, evidence_path: str | None = None) -> list[Finding]:
    """Return one finding per rank with a cross-node channel that does not go via ``.../GDRDMA``, quoting
    that channel line and NCCL's per-HCA ``GPU Direct RDMA Disabled`` line when there is one; and a finding
    when no rank has any cross-node channel line (GDR cannot be proven)."""
    if report.ranks.empty:
        return [_nothing_proven()]
    findings: list[Finding] = []
    for row, ev in _rows(report):
        if row["gdr_all"] is pd.NA:
            continue
        if bool(row["gdr_all"]):
            findings.append(_passed(row, f"{_who(row)}: GPUDirect RDMA on all {int(row['cross_node_channels'])} "
                                    "cross-node channels", ev.net_channel_lines[:1], evidence_path))
            continue
        plain = [line for line in ev.net_channel_lines if "/GDRDMA" not in line]
        disabled = [line for line in ev.gdr_hca_lines if "Disabled" in line or "disabled" in line]
        if plain and (dev := _NET_DEV.search(plain[0])):  # quote the HCA this channel uses first
            disabled.sort(key=lambda line: f"for HCA {dev[1]} " not in line)
        total = int(row["cross_node_channels"])
        if plain:
            msg = f"{_who(row)}: {len(plain)} of {total} cross-node channels without GPUDirect RDMA"
        else:
            msg = f"{_who(row)}: NCCL reports GDR 0 for its rings"
        if disabled:
            msg += f" ({_quote_body(disabled[0])})"
        quoted = plain[:1] or [ev.ring_summary_line or ""]  # no plain channel line: NCCL's "GDR 0" summary
        findings.append(_finding(row, msg, [*quoted, *disabled[:1]], evidence_path))
    if not findings and int(report.ranks["cross_node_channels"].sum()) == 0 and report.ranks["gdr_all"].isna().all():
        findings.append(fd.failed(Criterion.TRANSPORT, _RUN_SUBJECT,
                                  "no cross-node channel line on any rank: GPUDirect RDMA not provable "
                                  "(single node, or INIT missing from NCCL_DEBUG_SUBSYS)", evidence=_where(evidence_path, [])))
    return findings


def check_gid(report: TransportReport, expected_index: int, evidence_path: str | None = None) -> list[Finding]:
    """Return findings for RoCE GIDs: an index other than ``expected_index``, a link-local ``fe80::`` address
    (not routable across L3), or a RoCE rank with no GID line at all (NET missing from NCCL_DEBUG_SUBSYS).
    Ranks on InfiniBand link layer or on sockets are not judged here."""
    if report.ranks.empty:
        return [_nothing_proven()]
    findings: list[Finding] = []
    for row, ev in _rows(report):
        if not ev.gids:
            devices = row["net_devices"]
            connected = int(row["cross_node_channels"]) > 0  # no connection (init failed): nothing to see
            if connected and row["net"] != "Socket" and isinstance(devices, str) and "/RoCE" in devices:
                findings.append(_finding(row, f"{_who(row)}: RoCE devices but no GID line "
                                         "(add NET to NCCL_DEBUG_SUBSYS)", [ev.devices_line or ""], evidence_path))
            else:
                findings.append(fd.not_tested(Criterion.TRANSPORT, _row_subject(row), f"{_who(row)}: no RoCE GID in "
                                              "use (InfiniBand link layer, sockets, or no connection): GID not judged"))
            continue
        seen: set[tuple[str, int, str]] = set()
        before = len(findings)
        for use in ev.gids:
            if (use.hca, use.gid_index, use.gid) in seen:
                continue
            seen.add((use.hca, use.gid_index, use.gid))
            problems = []
            if use.gid_index != expected_index:
                problems.append(f"GID index {use.gid_index}, expected {expected_index}")
            if ipaddress.IPv6Address(use.gid).is_link_local:
                problems.append(f"link-local GID {use.gid} (not routable across L3)")
            if problems:
                msg = f"{_who(row)}: {use.hca} port {use.port} uses " + "; ".join(problems)
                findings.append(_finding(row, msg, [use.line], evidence_path))
        if len(findings) == before:
            findings.append(_passed(row, f"{_who(row)}: GID index {expected_index} on every QP",
                                    [ev.gids[0].line], evidence_path))
    return findings


def check_same_version(report: TransportReport, evidence_path: str | None = None) -> list[Finding]:
    """Return findings when ranks run different NCCL versions (ranks off the majority, and NCCL's own
    ``Mismatched NCCL version`` WARN), when no version line exists at all, or when a rank of an NCCL >= 2.22
    run printed none (from 2.22 every process prints it at INFO; up to 2.21 only rank 0 does)."""
    if report.ranks.empty:
        return [_nothing_proven()]
    known = report.ranks["nccl_version"].dropna()
    if known.empty:
        return [fd.failed(Criterion.TRANSPORT, _RUN_SUBJECT, "no 'NCCL version' line in any log: versions not provable",
                          evidence=_where(evidence_path, []))]
    majority = _majority(known)
    count = int((known == majority).sum())
    every_process_prints = _version_tuple(str(majority)) >= (2, 22)
    findings: list[Finding] = []
    for row, ev in _rows(report):
        version = row["nccl_version"]
        if version is None and every_process_prints:
            findings.append(_finding(row, f"{_who(row)}: no NCCL version line (NCCL {majority} prints it "
                                     "on every process)", [], evidence_path))
        elif version is not None and version != majority:
            findings.append(_finding(row, f"{_who(row)}: NCCL {version}, while {count} rank(s) run "
                                     f"NCCL {majority}", [ev.version_line or ""], evidence_path))
        elif version is not None:
            findings.append(_passed(row, f"{_who(row)}: NCCL {version}", [ev.version_line or ""], evidence_path))
    for warn in report.warnings:
        if "Mismatched NCCL version" in warn.text:
            rank = f"rank {warn.rank}" if warn.rank is not None else "rank ?"
            findings.append(fd.failed(Criterion.TRANSPORT, _rank_subject(warn.host, warn.rank),
                                      f"{warn.host} {rank}: NCCL refused the mix: {warn.text}",
                                      evidence=_where(evidence_path, [warn.line])))
    return findings


def check_nvls(report: TransportReport, n_nodes: int, evidence_path: str | None = None) -> list[Finding]:
    """Return one finding per rank that set up NVLS (NVLink SHARP) in a two-node run: NVLS-Tree inflates the
    2-node bus bandwidth above the fabric's, so the number is not a fabric measure. Other node counts pass."""
    if report.ranks.empty:
        return [_nothing_proven()]
    findings = []
    for row, ev in _rows(report):
        if n_nodes == 2 and row["nvls"] is not pd.NA and bool(row["nvls"]):
            msg = (f"{_who(row)}: NVLS in use on a 2-node run, busbw is inflated and not a fabric number "
                   "(use >= 4 nodes, or NCCL_NVLS_ENABLE=0)")
            findings.append(_finding(row, msg, list(ev.nvls_lines[:2]), evidence_path))
        else:
            why = "no NVLS" if n_nodes == 2 else f"NVLS does not inflate a {n_nodes}-node run"
            findings.append(_passed(row, f"{_who(row)}: {why}", [], evidence_path))
    return findings


def transport_table(report: TransportReport, expected_network: str | None = None,
                    expected_gid_index: int | None = None) -> pd.DataFrame:
    """Return the per-rank transport table for the report: ``rank``, ``host``, ``network``, ``devices``,
    ``gdr`` (every cross-node channel via GDRDMA), ``gid`` ("3 ::ffff:10.1.1.5"), ``version`` (the names of
    :data:`clusterproof.results.TRANSPORT_COLUMNS`), ``odd`` (bool) and ``why`` (str, empty when not odd).

    A row is odd when it differs from the majority of ranks (network, devices, GDR, GID index, version),
    uses sockets, misses GDR on a cross-node channel, uses a link-local GID, logged a WARN, or differs from
    ``expected_network``/``expected_gid_index`` when given.
    """
    ranks = report.ranks
    gid_text = [
        None if idx is pd.NA else f"{idx} {gid}" if gid else str(idx)
        for idx, gid in zip(ranks["gid_index"], ranks["gid"], strict=True)
    ]
    table = pd.DataFrame({
        "rank": ranks["rank"],
        "host": ranks["host"],
        "network": ranks["net"],
        "devices": ranks["net_devices"],
        "gdr": ranks["gdr_all"],
        "gid": pd.Series(gid_text, dtype="object", index=ranks.index),
        "version": ranks["nccl_version"],
    })
    compared = ranks.assign(net_devices=ranks["net_devices"].map(_device_kinds, na_action="ignore"))
    majority = {col: _majority(compared[col].dropna()) for col in ("net", "net_devices", "gdr_all", "gid_index",
                                                                    "nccl_version")}
    label = {"net": "network", "net_devices": "devices", "gdr_all": "GDR", "gid_index": "GID index",
             "nccl_version": "version"}
    whys: list[str] = []
    for (_, row), (_, cmp) in zip(ranks.iterrows(), compared.iterrows(), strict=True):
        why = [f"{label[c]} differs from most ranks" for c, m in majority.items()
               if m is not None and cmp[c] is not pd.NA and cmp[c] is not None and cmp[c] != m]
        if row["net"] == "Socket":
            why.append("sockets")
        if expected_network is not None and not (isinstance(row["net"], str)
                                                 and _network_matches(row["net"], expected_network)):
            why.append(f"network is not {expected_network}")
        if row["gdr_all"] is not pd.NA and not bool(row["gdr_all"]):
            why.append("no GDR")
        if expected_gid_index is not None and row["gid_index"] is not pd.NA and row["gid_index"] != expected_gid_index:
            why.append(f"GID index is not {expected_gid_index}")
        if isinstance(row["gid"], str) and any(ipaddress.IPv6Address(g).is_link_local for g in row["gid"].split(",")):
            why.append("link-local GID")
        if row["warns"]:
            why.append(f"{row['warns']} WARN")
        whys.append(", ".join(dict.fromkeys(why)))
    table["odd"] = pd.Series([bool(w) for w in whys], dtype="bool", index=ranks.index)
    table["why"] = pd.Series(whys, dtype="object", index=ranks.index)
    return table


# ---------------------------------------------------------------------------------------------------------


def _rows(report: TransportReport) -> Iterator[tuple[pd.Series, RankEvidence]]:
    for (_, row), ev in zip(report.ranks.iterrows(), report.evidence, strict=True):
        yield row, ev


def _who(row: pd.Series) -> str:
    rank = "rank ?" if row["rank"] is pd.NA else f"rank {int(row['rank'])}"
    return f"{row['host']} {rank} (pid {int(row['pid'])})"


_RUN_SUBJECT = Subject("run", "nccl-debug-logs")


def _rank_subject(host: str, rank: int | None) -> Subject:
    """``node03/rank5``: the rank on its host (the host NCCL printed, which is the node's hostname)."""
    return Subject("rank", f"{host}/rank{'?' if rank is None else rank}", node=host or None)


def _row_subject(row: pd.Series) -> Subject:
    return _rank_subject(str(row["host"]), None if row["rank"] is pd.NA else int(row["rank"]))


def _where(path: str | None, lines: Sequence[str]) -> tuple[Evidence, ...]:
    quoted = tuple(line for line in lines if line)
    return (Evidence(path, quoted),) if path or quoted else ()


def _finding(row: pd.Series, message: str, lines: Sequence[str], path: str | None = None) -> Finding:
    return fd.failed(Criterion.TRANSPORT, _row_subject(row), message, evidence=_where(path, lines))


def _passed(row: pd.Series, message: str, lines: Sequence[str], path: str | None = None) -> Finding:
    return fd.passed(Criterion.TRANSPORT, _row_subject(row), message, evidence=_where(path, lines))


def _nothing_proven() -> Finding:
    return fd.failed(Criterion.TRANSPORT, _RUN_SUBJECT, "no NCCL rank in the debug logs: nothing proven")


def _network_matches(net: str, expected: str) -> bool:
    return net == expected or (expected in ("IB", "IBext") and _IB_PLUGIN.match(net) is not None)


def _device_kinds(devices: str) -> str:
    """Devices as compared across hosts: IB/RoCE entries as printed (``mlx5_0:1/RoCE``), socket entries
    without their per-host address (``eth0:10.30.0.11`` -> ``eth0``)."""
    return ",".join(d if "/" in d else d.split(":", 1)[0] for d in devices.split(","))


def _quote_body(line: str) -> str:
    """The message part of an NCCL line (after ``NCCL INFO``/``NCCL WARN``), for short messages."""
    for marker in ("NCCL INFO ", "NCCL WARN "):
        if marker in line:
            return line.split(marker, 1)[1].strip()
    return line.strip()


def _majority(values: pd.Series) -> object | None:
    """The most common value; on a tie, the one seen first."""
    items: list[object] = values.tolist()
    counts = Counter(items)
    if not counts:
        return None
    best = max(counts.values())
    return next(v for v in items if counts[v] == best)


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for p in version.split(".")[:3]:
        digits = "".join(ch for ch in p if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)
