"""Pick the RoCE GID index NCCL should use from a GID table (:mod:`clusterproof.network.rdma`), check that
every node agrees on it, and turn it into NCCL's environment (``NCCL_IB_GID_INDEX``, ``NCCL_IB_HCA``).
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from clusterproof.errors import GidError
from clusterproof.network.rdma import HCA_RE, format_gid_table, records

# --------------------------------------------------------------------------------------------------------
# Choosing the index


def _criteria(family: str, roce_version: str) -> None:
    if family not in ("ipv4", "ipv6"):
        raise ValueError(f"family must be 'ipv4' or 'ipv6', got {family!r}")
    if roce_version not in ("v1", "v2"):
        raise ValueError(f"roce_version must be 'v1' or 'v2', got {roce_version!r}")


def _describe(family: str, roce_version: str, netdevs: frozenset[str]) -> str:
    what = f"RoCE {roce_version} {'IPv4' if family == 'ipv4' else 'global IPv6'} GID"
    if netdevs:
        what += f" on netdev {'/'.join(sorted(netdevs))}"
    return what


def _gid_matches(row: Mapping[str, Any], family: str, roce_version: str, netdevs: frozenset[str]) -> bool:
    """NCCL >= 2.21 auto-selection test for one row (``ncclUpdateGidIndex``): right RoCE version, right
    address family, valid (non-zero, not fe80 link-local), and on one of the wanted netdevs."""
    if row["roce_version"] != roce_version:
        return False
    if netdevs and row["netdev"] not in netdevs:
        return False
    addr = ipaddress.IPv6Address(row["gid"])
    if addr.is_unspecified or addr.is_link_local:
        return False
    if family == "ipv4":
        return row["ipv4"] is not None
    return addr.ipv4_mapped is None


def _netdev_set(netdev: str | Sequence[str] | None) -> frozenset[str]:
    if netdev is None:
        return frozenset()
    if isinstance(netdev, str):
        return frozenset([netdev])
    return frozenset(netdev)


def _hca_groups(table: pd.DataFrame, hcas: Sequence[str]) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Split the table per ``dev:port``, keeping only the requested HCAs (``dev`` or ``dev:port``).

    Returns the groups and the requested HCAs that are not in the table.
    """
    groups = {f"{dev}:{port}": grp for (dev, port), grp in table.groupby(["dev", "port"], sort=True)}
    if not hcas:
        return groups, []
    kept: dict[str, pd.DataFrame] = {}
    missing: list[str] = []
    for hca in hcas:
        if not HCA_RE.match(hca):
            raise ValueError(f"bad HCA name {hca!r} (expected e.g. 'mlx5_0' or 'mlx5_0:1')")
        found = {k: g for k, g in groups.items() if k == hca or k.split(":")[0] == hca}
        if not found:
            missing.append(hca)
        kept.update(found)
    return kept, missing


def _lowest_match(grp: pd.DataFrame, family: str, roce_version: str, netdevs: frozenset[str]) -> int | None:
    hits = [int(r["index"]) for r in records(grp) if _gid_matches(r, family, roce_version, netdevs)]
    return min(hits) if hits else None


def gid_indices_by_hca(
    table: pd.DataFrame,
    netdev: str | Sequence[str] | None = None,
    family: str = "ipv4",
    roce_version: str = "v2",
    hcas: Sequence[str] = (),
) -> dict[str, int | None]:
    """Return the lowest matching GID index per HCA port, keyed ``"mlx5_0:1"`` (None: no matching GID).

    ``netdev`` may be one name or several (each HCA has its own netdev). With ``hcas`` only those devices
    count; a requested HCA absent from the table appears under its requested name with None.

    Raises:
        ValueError: unknown ``family``/``roce_version`` or a malformed HCA name.
    """
    _criteria(family, roce_version)
    netdevs = _netdev_set(netdev)
    groups, missing = _hca_groups(table, hcas)
    result: dict[str, int | None] = {key: _lowest_match(grp, family, roce_version, netdevs) for key, grp in groups.items()}
    for hca in missing:
        result[hca] = None
    return result


def _address_text(row: Mapping[str, Any]) -> str:
    """The GID as RoCE people read it: ``::ffff:10.1.1.5`` for IPv4-mapped GIDs (Python < 3.13 would print
    ``::ffff:a01:105``), the compressed IPv6 form otherwise."""
    return f"::ffff:{row['ipv4']}" if row["ipv4"] else ipaddress.IPv6Address(row["gid"]).compressed


def _found_text(grp: pd.DataFrame) -> str:
    items = [
        f"{int(r['index'])} {r['roce_version'] or '?'} {_address_text(r)}" + (f" {r['netdev']}" if r["netdev"] else "")
        for r in records(grp.sort_values("index"))
    ]
    return ", ".join(items) if items else "nothing"


def choose_gid_index(
    table: pd.DataFrame,
    netdev: str | Sequence[str] | None = None,
    family: str = "ipv4",
    roce_version: str = "v2",
    hcas: Sequence[str] = (),
) -> int:
    """Return the GID index NCCL should use on this node (the same on every HCA port looked at).

    Per HCA port the lowest index passing the NCCL >= 2.21 auto-selection rule wins (RoCE ``roce_version``,
    IPv4-mapped for ``family="ipv4"`` or global non-link-local IPv6 for ``"ipv6"``, non-zero, not fe80,
    on ``netdev`` when given).

    Raises:
        GidError: no HCA at all; a requested HCA is missing; an HCA has no matching GID (names it and lists
            what it has, e.g. ``mlx5_0 port 1: no RoCE v2 IPv4 GID (found: 0 v1 fe80::1, 1 v2 fe80::1)``);
            or the HCAs disagree (names each HCA and its index).
        ValueError: unknown ``family``/``roce_version`` or a malformed HCA name.
    """
    _criteria(family, roce_version)
    netdevs = _netdev_set(netdev)
    what = _describe(family, roce_version, netdevs)
    groups, missing = _hca_groups(table, hcas)
    if missing:
        have = ", ".join(sorted(set(table["dev"]))) or "none"
        raise GidError(f"HCA {', '.join(missing)} not in the GID table (HCAs present: {have})")
    if not groups:
        raise GidError(f"no {what}: the GID table is empty (no RoCE HCA with a non-zero GID)")
    indices = {key: _lowest_match(grp, family, roce_version, netdevs) for key, grp in groups.items()}
    problems = []
    for key, grp in groups.items():
        if indices[key] is None:
            dev, port = key.split(":")
            problems.append(f"{dev} port {port}: no {what} (found: {_found_text(grp)})")
    if problems:
        raise GidError("\n".join(problems))
    distinct = {indices[k] for k in groups}
    if len(distinct) > 1:
        pairs = ", ".join(f"{k} -> {indices[k]}" for k in groups)
        raise GidError(f"HCAs disagree on the {what} index: {pairs}")
    (index,) = distinct
    assert index is not None  # problems would have raised
    return index


# --------------------------------------------------------------------------------------------------------
# Across nodes


@dataclass
class GidConsensus:
    """The GID index the nodes agree on, and who does not.

    ``index`` is the majority index (None when no node has one or when there is a tie); ``per_node`` holds
    each node's own index (None on error); ``odd_nodes`` the nodes whose index differs or is missing;
    ``errors`` the GidError text per node; ``message`` a human explanation naming the odd nodes and
    showing their tables.
    """

    index: int | None
    per_node: dict[str, int | None] = field(default_factory=dict)
    odd_nodes: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    message: str = ""


def compare_nodes(tables: Mapping[str, pd.DataFrame], **choose_kwargs: Any) -> GidConsensus:
    """Choose the index on every node (``choose_kwargs`` go to :func:`choose_gid_index`) and compare.

    Returns:
        A :class:`GidConsensus`; never raises GidError (it is recorded per node in ``errors``).
    """
    per_node: dict[str, int | None] = {}
    errors: dict[str, str] = {}
    for node, table in tables.items():
        try:
            per_node[node] = choose_gid_index(table, **choose_kwargs)
        except GidError as exc:
            per_node[node] = None
            errors[node] = str(exc)
    counts = Counter(i for i in per_node.values() if i is not None)
    ranked = counts.most_common()
    tie = len(ranked) > 1 and ranked[0][1] == ranked[1][1]
    index = ranked[0][0] if ranked and not tie else None
    odd = [n for n, i in per_node.items() if i is None or i != index]
    n = len(per_node)
    if not per_node:
        message = "no nodes to compare"
    elif not odd:
        message = f"all {n} node(s) use GID index {index}"
    else:
        if index is None and not ranked:
            head = f"no node has a usable GID index ({n} node(s))"
        elif index is None:
            split = ", ".join(f"index {i} on {c} node(s)" for i, c in ranked)
            head = f"no majority GID index: {split}"
        else:
            head = f"GID index {index} on {counts[index]} of {n} node(s)"
        parts = [f"{head}; odd node(s): {', '.join(odd)}"]
        for node in odd:
            if node in errors:
                parts.append(f"--- {node}: no usable GID index:")
                parts.extend("    " + line for line in errors[node].splitlines())
            else:
                parts.append(f"--- {node}: GID index {per_node[node]}")
            parts.append(f"  {node} GID table:")
            parts.append(format_gid_table(tables[node], indent="    "))
        message = "\n".join(parts)
    return GidConsensus(index=index, per_node=per_node, odd_nodes=odd, errors=errors, message=message)


def nccl_env(index: int, hcas: Sequence[str]) -> dict[str, str]:
    """Return the NCCL variables pinning the GID index and (when ``hcas`` is not empty) the exact HCAs.

    ``NCCL_IB_HCA`` gets a leading ``=`` (exact match): without it ``mlx5_1`` also selects ``mlx5_10..19``.

    Raises:
        ValueError: a negative index or a malformed HCA name (``mlx5_0`` or ``mlx5_0:1`` expected).
    """
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ValueError(f"GID index must be a non-negative int, got {index!r}")
    env = {"NCCL_IB_GID_INDEX": str(index)}
    for hca in hcas:
        if not HCA_RE.match(hca):
            raise ValueError(f"bad HCA name {hca!r} for NCCL_IB_HCA (expected e.g. 'mlx5_0' or 'mlx5_0:1')")
    if hcas:
        env["NCCL_IB_HCA"] = "=" + ",".join(hcas)
    return env
