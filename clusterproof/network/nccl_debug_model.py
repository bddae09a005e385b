"""The data NCCL's debug logs yield: one row per rank (:data:`RANK_COLUMNS`), the lines behind it, WARN lines
and the GIDs in use. Pure types, shared by the reader (:mod:`.nccl_debug`) and the checks (:mod:`.nccl_debug_checks`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

from clusterproof.errors import ParseError

# ---------------------------------------------------------------------------------------------------------
# Public data


@dataclass(frozen=True)
class WarnLine:
    """One ``NCCL WARN`` line: ``text`` is the message after ``NCCL WARN``, ``line`` the whole log line."""

    host: str
    pid: int
    rank: int | None
    text: str
    line: str


@dataclass(frozen=True)
class GidUse:
    """One RoCE QP's local GID, from the NET subsystem's per-connection ``NET/IB: ... GID i (p/i)`` line."""

    host: str
    pid: int
    rank: int | None
    hca: str  # "mlx5_0" when the process's NET/IB device list names it, else "IbDev 0"
    port: int
    gid_index: int
    gid: str  # decoded address, e.g. "::ffff:10.20.1.11" or "fe80::21c:73ff:fe4a:5b6c"
    line: str


@dataclass(frozen=True)
class RankEvidence:
    """The log lines behind one row of :attr:`TransportReport.ranks` (same position), for quoting."""

    network_lines: tuple[str, ...] = ()  # "Using network X" / "Assigned NET plugin X to comm"
    network_reasons: tuple[str, ...] = ()  # why IB was not used: libibverbs, "No device found", ...
    plugin_lines: tuple[str, ...] = ()  # NET/Plugin could-not-find lines (an expected plugin not loaded)
    devices_line: str | None = None  # "NET/IB : Using ..." or "NET/Socket : Using ..."
    version_line: str | None = None
    net_channel_lines: tuple[str, ...] = ()  # "Channel xx/y : a[d] -> b[d] [send] via NET/..." (deduplicated)
    gdr_hca_lines: tuple[str, ...] = ()  # "NET/IB : GPU Direct RDMA Enabled|Disabled for HCA n 'dev'"
    ring_summary_line: str | None = None  # "Connected all rings, use ring PXN p GDR g" (2.24+)
    gids: tuple[GidUse, ...] = ()
    nvls_lines: tuple[str, ...] = ()  # "n nvls channels" with n > 0, "NVLS comm ...", "Connected NVLS tree"
    collnet_lines: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)  # "NCCL_X set by environment to v" (per process)


RANK_COLUMNS: dict[str, str] = {
    "rank": "Int64",
    "host": "object",
    "pid": "int64",
    "cuda_dev": "Int64",
    "nccl_version": "object",
    "net": "object",
    "net_devices": "object",
    "relaxed_ordering": "boolean",
    "gdr_all": "boolean",
    "cross_node_channels": "int64",
    "via": "object",
    "pxn": "boolean",
    "nvls": "boolean",
    "collnet": "boolean",
    "gid_index": "Int64",
    "gid": "object",
    "warns": "int64",
}


@dataclass
class TransportReport:
    """What NCCL's logs prove about one run.

    ``ranks`` has one row per NCCL rank with the columns of :data:`RANK_COLUMNS` (sorted by rank; ranks
    whose number no line gives come last with ``rank`` NA). ``evidence[i]`` holds the lines behind row ``i``.
    ``unknown_lines`` counts non-blank lines that are neither NCCL lines nor nccl-tests output (torn lines,
    a custom timestamp format, multi-line WARN continuations). ``nccl_lines`` counts recognised NCCL lines.
    """

    ranks: pd.DataFrame
    warnings: list[WarnLine]
    unknown_lines: int
    versions: set[str]
    evidence: list[RankEvidence] = field(default_factory=list)
    nccl_lines: int = 0
    cut_lines: int = 0  # texts whose last line had no line end (cut, not read)
    framed_lines: int = 0  # NCCL lines with NCCL's "host:pid:tid" prefix (printed at WARN level or above)
    torn_versions: list[str] = field(default_factory=list)  # version lines torn or cut: a version nobody can read


def decode_gid(prefix_hex: str, interface_hex: str) -> str:
    """Return the IPv6 text of a GID NCCL printed as ``(%lX/%lX)``.

    NCCL prints the network-order subnet prefix and interface id as host-order (little-endian) 64-bit
    integers, so each half's bytes are reversed: ``("80FE", "6C5B4AFEFF731C02")`` -> ``fe80::21c:73ff:fe4a:5b6c``.

    Raises:
        ParseError: a half is not hex or does not fit in 64 bits.
    """
    try:
        raw = int(prefix_hex, 16).to_bytes(8, "little") + int(interface_hex, 16).to_bytes(8, "little")
    except (ValueError, OverflowError) as e:
        raise ParseError(f"GID ({prefix_hex}/{interface_hex}): not two 64-bit hex numbers") from e
    address = ipaddress.IPv6Address(raw)
    # Python < 3.13 prints IPv4-mapped GIDs as hex (::ffff:a14:10b); RoCE v2 people read ::ffff:10.20.1.11
    return f"::ffff:{address.ipv4_mapped}" if address.ipv4_mapped else str(address)
