"""Checks on what NCCL's logs can and cannot prove, returned as :class:`clusterproof.findings.Finding` lists.

(Whether NCCL wrote any debug line at all on a real run is :func:`clusterproof.network.nccl_debug_checks.transport_gate`.)
- :func:`check_warns`: NCCL ``WARN`` lines in a run's combined stdout are judged even with ``debug: off``
  (``NCCL_DEBUG=WARN`` from ``/etc/nccl.conf`` or a container prints them there); when NCCL printed nothing the
  criterion is not tested, with the reason.
- :func:`check_version_provable`: before NCCL 2.22 only rank 0 prints its version, so a mix of versions is not
  provable from the logs; a torn or cut version line is not "no version line".
- :func:`check_installed_nccl`: the libnccl version installed on each node (node facts) proves it instead.
Pure: no I/O.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping

from clusterproof.findings import (
    Criterion,
    Evidence,
    Finding,
    Subject,
    failed,
    known_limitation,
    node_subject,
    not_tested,
    passed,
)
from clusterproof.network.nccl_debug import parse_debug_text
from clusterproof.network.nccl_debug_model import TransportReport, WarnLine

_RUN = Subject("run", "run")
# WARNs NCCL prints on healthy systems: they change nothing the acceptance run measures.
_HARMLESS_WARN = re.compile(
    r"NVLS multicast support is not available|Missing \"amd_iommu=on\"|Cuda failure 'peer access is not supported"
    r"|NCCL_IB_WARN_RAIL_LOCAL|There are mismatched physical devices"
)
_MAX_QUOTED = 3


def _warn_subject(warn: WarnLine) -> Subject:
    rank = f"rank{warn.rank}" if warn.rank is not None else f"pid{warn.pid}"
    return Subject("rank", f"{warn.host}/{rank}", node=warn.host)


def check_warns(text: str, where: str | None = None) -> list[Finding]:
    """Judge the NCCL WARN lines in a run's combined output (``where``: the raw log path).

    One FAIL per (host, WARN text) that is not known to be harmless, a KNOWN_LIMITATION per harmless one, a
    PASS when NCCL printed lines but no WARN; NOT_TESTED when the output holds no NCCL line at all (with
    ``NCCL_DEBUG`` unset NCCL prints nothing, not even its WARNs)."""
    report = parse_debug_text(text)
    if not report.warnings:
        if report.framed_lines == 0:  # nothing, or only the version line NCCL_DEBUG=VERSION prints
            return [not_tested(Criterion.TRANSPORT, _RUN, "NCCL printed no line at or above WARN level (NCCL_DEBUG "
                               "unset or VERSION): its WARN lines, if any, were not printed and are not judged")]
        return [passed(Criterion.TRANSPORT, _RUN, f"no NCCL WARN in {report.nccl_lines} NCCL line(s)",
                       evidence=[Evidence(where)] if where else [])]
    out: list[Finding] = []
    seen: set[tuple[str, str]] = set()
    for warn in report.warnings:
        if (warn.host, warn.text) in seen:
            continue
        seen.add((warn.host, warn.text))
        evidence = [Evidence(where, (warn.line,))]
        if _HARMLESS_WARN.search(warn.text):
            out.append(known_limitation(Criterion.TRANSPORT, _warn_subject(warn), f"NCCL WARN: {warn.text}",
                                        "a WARN NCCL prints on healthy systems", evidence=evidence))
        else:
            out.append(failed(Criterion.TRANSPORT, _warn_subject(warn), f"NCCL WARN: {warn.text}", evidence=evidence))
    return out


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int("".join(c for c in p if c.isdigit()) or 0) for p in version.split(".")[:3])


def check_version_provable(report: TransportReport) -> list[Finding]:
    """NOT_TESTED when the logs cannot prove every rank's NCCL version: before 2.22 only rank 0 prints it, and a
    torn or cut version line is unreadable (not absent). Empty when every rank's version is known."""
    ranks = report.ranks
    if ranks.empty:
        return []
    known = ranks["nccl_version"].dropna()
    missing = len(ranks) - len(known)
    if report.torn_versions and missing:
        return [not_tested(Criterion.TRANSPORT, _RUN, f"{len(report.torn_versions)} NCCL version line(s) torn or "
                           "cut, so not every rank's version is readable: versions not provable from the logs",
                           evidence=[Evidence(None, tuple(report.torn_versions[:_MAX_QUOTED]))])]
    if missing and not known.empty:
        oldest = min(str(v) for v in known)
        if _version_tuple(oldest) < (2, 22):
            return [not_tested(Criterion.TRANSPORT, _RUN, f"mixed NCCL versions not provable from the logs: NCCL "
                               f"{oldest} (< 2.22) prints its version on rank 0 only ({len(known)} of {len(ranks)} "
                               "ranks known); the installed libnccl version of each node (node facts) proves it")]
    return []


def check_installed_nccl(installed: Mapping[str, str | None]) -> list[Finding]:
    """Per node: PASS when its installed libnccl version (``libnccl.so.2.X.Y``, from the node facts) is the
    majority's, FAIL naming both versions otherwise, NOT_TESTED when no libnccl was found on the node."""
    versions = [v for v in installed.values() if v]
    majority = Counter(versions).most_common(1)[0][0] if versions else None
    out: list[Finding] = []
    for node, version in sorted(installed.items()):
        subject = node_subject(node)
        if not version:
            out.append(not_tested(Criterion.NODE_FACTS, subject, f"{node}: no libnccl.so.2.X.Y found in the loader "
                                  "cache or the known library directories"))
        elif version != majority:
            count = versions.count(str(majority))
            out.append(failed(Criterion.NODE_FACTS, subject, f"{node}: libnccl {version} installed, while {count} "
                              f"node(s) have {majority}", values={"nccl": version, "majority": majority}))
        else:
            out.append(passed(Criterion.NODE_FACTS, subject, f"{node}: libnccl {version}", values={"nccl": version}))
    return out
