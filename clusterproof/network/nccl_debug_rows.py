"""The per-rank accumulation of NCCL's debug lines and the row each rank becomes in a
:class:`~clusterproof.network.nccl_debug_model.TransportReport` (used by :mod:`clusterproof.network.nccl_debug`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace

import pandas as pd

from clusterproof.network.nccl_debug_model import GidUse, RankEvidence

# ---------------------------------------------------------------------------------------------------------
# Accumulation. Lines are collected per (host, pid, cudaDev); per-process facts (version, device lists,
# fallback reasons) are shared by every rank of that process when the rows are built.


@dataclass(frozen=True)
class Chan:
    net: str
    rest: str  # e.g. "IB/0/GDRDMA"
    gdr: bool
    proxy: bool
    line: str


@dataclass
class Acc:
    nets: list[tuple[str, str]] = field(default_factory=list)
    channels: dict[tuple[str, ...], Chan] = field(default_factory=dict)
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

    def merged(self, other: Acc) -> Acc:
        """Return a new accumulator with the lines of both."""
        out = Acc()
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



def merge(accs: Iterable[Acc]) -> Acc:
    out = Acc()
    for a in accs:
        out = out.merged(a)
    return out


def rank_accumulators(accs: dict[int | None, Acc]) -> Iterator[tuple[int | None, Acc]]:
    """Yield (cudaDev, lines) per rank of one process. Lines logged under a device that hosts no rank
    (e.g. before cudaSetDevice) belong to the process's only rank, or are shared when it has several."""
    rank_devs = [d for d, a in accs.items() if d is not None and a.is_rank()]
    if not rank_devs:
        first = next((d for d in accs if d is not None), None)
        yield first, merge(accs.values())
        return
    others = merge(a for d, a in accs.items() if d not in rank_devs)
    for d in sorted(rank_devs):
        yield d, accs[d].merged(others)


def rank_row(host: str, pid: int, dev: int | None, acc: Acc, process: Acc) -> tuple[dict[str, object], RankEvidence]:
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


def _rank_of(acc: Acc, dev: int | None) -> tuple[int | None, int | None]:
    """Return (NCCL rank, cudaDev): the largest communicator's Init line wins (nccl-tests may split
    communicators), then the rank the channel lines speak for, then nccl-tests' ``# Rank N ... device D``."""
    if acc.inits:
        rank, _n, cuda = max(acc.inits, key=lambda t: t[1])
        return rank, cuda if cuda is not None else dev
    if acc.own_ranks:
        return acc.own_ranks.most_common(1)[0][0], dev
    return acc.tests_rank, dev


def _via(chans: list[Chan]) -> str:
    counts = Counter(f"NET/{c.rest}" for c in chans)
    return ", ".join(f"{k} x{n}" for k, n in counts.items())


def _pxn(chans: list[Chan], summary: tuple[int, int, str] | None) -> object:
    if any(c.proxy for c in chans) or (summary is not None and summary[0] == 1):
        return True
    if chans or summary is not None:
        return False
    return pd.NA


def _most_common(values: Iterable[object]) -> object | None:
    counts = Counter(values)
    return counts.most_common(1)[0][0] if counts else None


def replace_version(ev: RankEvidence, line: str) -> RankEvidence:
    return replace(ev, version_line=line)


def sort_key(row: Mapping[str, object]) -> tuple[int, int, str, int, int]:
    rank = row["rank"]
    dev = row["cuda_dev"]
    return (
        1 if rank is pd.NA else 0,
        rank if isinstance(rank, int) else 0,
        str(row["host"]),
        int(row["pid"]),  # type: ignore[call-overload]
        dev if isinstance(dev, int) else -1,
    )
