"""RoCE GID tables: read them (local sysfs, ``show_gids`` text, one cheap remote shell command), pick the
index NCCL should use, and check that every node agrees.

Every reader returns a DataFrame with exactly :data:`GID_COLUMNS`, sorted by ``dev, port, index``:

========== ======== ==============================================================================
column     dtype    meaning
========== ======== ==============================================================================
dev        str      RDMA device (``mlx5_0``)
port       int      port number (``1``)
index      int      GID index (what ``NCCL_IB_GID_INDEX`` takes)
gid        str      8 groups of 4 lowercase hex digits, as sysfs prints it
ipv4       str|None dotted quad when the GID is IPv4-mapped (``::ffff:a.b.c.d``), else None
roce_version str|None ``"v1"`` / ``"v2"`` from ``gid_attrs/types``, None when missing/unreadable
netdev     str|None ``gid_attrs/ndevs`` (``ens1f0np0``), None when missing/unreadable
========== ======== ==============================================================================

All-zero GIDs (empty slots) are never rows. Why so much care about missing files: inside containers and on
empty slots the kernel answers ``EINVAL`` for ``types``/``ndevs``, and NCCL skips those silently too.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from clusterproof.errors import GidError, ParseError

GID_COLUMNS: tuple[str, ...] = ("dev", "port", "index", "gid", "ipv4", "roce_version", "netdev")

ZERO_GID = "0000:0000:0000:0000:0000:0000:0000:0000"
_GID_RE = re.compile(r"^[0-9a-fA-F]{4}(?::[0-9a-fA-F]{4}){7}$")
_VERSION_RE = re.compile(r"[Vv](\d+)")
_IPV4_RE = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")
_HCA_RE = re.compile(r"^[A-Za-z0-9_.\-]+(?::\d+)?$")

#: First line :func:`remote_gid_command` prints; :func:`parse_gid_dump` looks for it.
DUMP_HEADER = "#clusterproof-gids v1"
#: Line printed instead of rows when the node has no ``<root>/class/infiniband`` directory.
DUMP_NO_CLASS = "#no-infiniband"
#: Last line :func:`remote_gid_command` prints (its absence means the output was cut off).
DUMP_END = "#clusterproof-gids end"


# --------------------------------------------------------------------------------------------------------
# Rows and tables


def _normalize_gid(raw: str) -> str | None:
    """Return the GID in sysfs form (lowercase, 8 groups of 4) or None when it is not one."""
    text = raw.strip()
    if not _GID_RE.match(text):
        return None
    return text.lower()


def _ipv4_of(gid: str) -> str | None:
    """``0000:0000:0000:0000:0000:ffff:0a01:0105`` -> ``10.1.1.5``; None for any other GID."""
    mapped = ipaddress.IPv6Address(gid).ipv4_mapped
    return str(mapped) if mapped is not None else None


def _roce_version(type_text: str | None) -> str | None:
    """``"RoCE v2"`` -> ``"v2"``, ``"IB/RoCE v1"`` -> ``"v1"`` (the ``grep -o "[Vv].*"`` of show_gids)."""
    if not type_text:
        return None
    m = _VERSION_RE.search(type_text)
    return f"v{m.group(1)}" if m else None


def _row(
    dev: str, port: int, index: int, gid: str, roce_version: str | None, netdev: str | None
) -> dict[str, Any]:
    return {
        "dev": dev,
        "port": port,
        "index": index,
        "gid": gid,
        "ipv4": _ipv4_of(gid),
        "roce_version": roce_version,
        "netdev": netdev or None,
    }


def _table(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Build the fixed-column, sorted table from row dicts (an empty input gives an empty typed table)."""
    df = pd.DataFrame(list(rows), columns=list(GID_COLUMNS))
    df = df.astype({"dev": object, "port": "int64", "index": "int64", "gid": object})
    for col in ("ipv4", "roce_version", "netdev"):
        # Keep None (not NaN) for missing text so comparisons and messages stay readable.
        df[col] = df[col].astype(object).where(df[col].notna(), None)
    return df.sort_values(["dev", "port", "index"], kind="stable").reset_index(drop=True)


def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts (a column named ``index`` would shadow ``tuple.index`` on itertuples rows)."""
    return [{str(k): v for k, v in row.items()} for row in table.to_dict("records")]


def empty_gid_table() -> pd.DataFrame:
    """Return an empty table with :data:`GID_COLUMNS` and their dtypes."""
    return _table([])


def format_gid_table(table: pd.DataFrame, indent: str = "  ") -> str:
    """Return the table as aligned text lines ``dev port index gid ipv4 version netdev`` (for messages)."""
    if table.empty:
        return f"{indent}(no GIDs)"
    cells = [[str(r[c]) if r[c] is not None else "-" for c in GID_COLUMNS] for r in _records(table)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(GID_COLUMNS))]
    return "\n".join(
        indent + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


# --------------------------------------------------------------------------------------------------------
# Readers


def _read_attr(path: Path) -> str | None:
    """First line of a sysfs attribute, or None when it is missing or unreadable (EINVAL on empty slots)."""
    try:
        with path.open("r", encoding="utf-8", errors="replace") as fh:
            line = fh.readline()
    except OSError:
        return None
    return line.strip() or None


def _numeric_children(directory: Path) -> list[tuple[int, Path]]:
    """Children of ``directory`` whose names are integers (ports, GID indices), sorted by number."""
    try:
        children = list(directory.iterdir())
    except OSError:
        return []
    return sorted((int(p.name), p) for p in children if p.name.isdigit())


def read_gid_table(sysfs_root: Path) -> pd.DataFrame:
    """Read the GID table under ``<sysfs_root>/class/infiniband`` (``sysfs_root`` is the ``/sys`` directory).

    Returns:
        A :data:`GID_COLUMNS` table; empty when there is no ``class/infiniband`` directory. Missing or
        unreadable ``gids``/``types``/``ndevs`` files are skipped (a GID row) or give None (an attribute).

    Raises:
        ParseError: a readable ``gids/<i>`` file does not hold a GID (names the file).
    """
    base = Path(sysfs_root) / "class" / "infiniband"
    rows: list[dict[str, Any]] = []
    try:
        devices = sorted(p for p in base.iterdir())
    except OSError:
        return empty_gid_table()
    for dev_dir in devices:
        for port, port_dir in _numeric_children(dev_dir / "ports"):
            for index, gid_file in _numeric_children(port_dir / "gids"):
                raw = _read_attr(gid_file)
                if raw is None:
                    continue
                gid = _normalize_gid(raw)
                if gid is None:
                    raise ParseError(f"{gid_file}: not a GID: {raw!r}")
                if gid == ZERO_GID:
                    continue
                attrs = port_dir / "gid_attrs"
                version = _roce_version(_read_attr(attrs / "types" / str(index)))
                netdev = _read_attr(attrs / "ndevs" / str(index))
                rows.append(_row(dev_dir.name, port, index, gid, version, netdev))
    return _table(rows)


def _int_field(text: str, what: str, where: str, line: str = "") -> int:
    if not text.isdigit():
        raise ParseError(f"{where}: {what} is not a number: {text!r}" + (f" in {line!r}" if line else ""))
    return int(text)


def parse_show_gids(text: str) -> pd.DataFrame:
    """Parse the output of mlnx-tools ``show_gids`` (both script variants, tabs or tabs expanded to spaces).

    Rows are ``DEV PORT INDEX GID [IPv4] [VER] [DEV]``: 7 tokens for IPv4-mapped GIDs, 6 otherwise, fewer
    when ``types``/``ndevs`` were unreadable. The printed IPv4 is re-derived from the GID, like
    :func:`read_gid_table` does. ``n_gids_found=N`` must match the row count when present.

    Returns:
        A :data:`GID_COLUMNS` table.

    Raises:
        ParseError: empty text, an unrecognised line, a bad GID or a footer count mismatch (names the line).
    """
    rows: list[dict[str, Any]] = []
    footer: tuple[int, int] | None = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        where = f"show_gids line {lineno}"
        if not tokens:
            continue
        if tokens[0] == "DEV" or all(set(t) == {"-"} for t in tokens):
            continue  # header and its dashed underline
        if tokens[0].startswith("n_gids_found="):
            footer = (lineno, _int_field(tokens[0].partition("=")[2], "n_gids_found", where))
            continue
        if len(tokens) < 4 or len(tokens) > 7:
            raise ParseError(f"{where}: expected 'DEV PORT INDEX GID [IPv4] [VER] [DEV]', got {line!r}")
        dev, port_text, index_text, gid_text, *rest = tokens
        port = _int_field(port_text, "PORT", where, line)
        index = _int_field(index_text, "INDEX", where, line)
        gid = _normalize_gid(gid_text)
        if gid is None:
            raise ParseError(f"{where}: not a GID: {gid_text!r} in {line!r}")
        if rest and _IPV4_RE.match(rest[0]):
            rest = rest[1:]
        version = None
        if rest and _VERSION_RE.fullmatch(rest[0]):
            version = _roce_version(rest[0])
            rest = rest[1:]
        if len(rest) > 1:
            raise ParseError(f"{where}: unexpected columns {rest!r} in {line!r}")
        rows.append(_row(dev, port, index, gid, version, rest[0] if rest else None))
    if not rows and footer is None:
        raise ParseError("show_gids output is empty or has neither rows nor an 'n_gids_found=' line")
    if footer is not None and footer[1] != len(rows):
        raise ParseError(
            f"show_gids line {footer[0]}: n_gids_found={footer[1]} but {len(rows)} GID rows were read"
        )
    return _table(rows)


def remote_gid_command(sysfs_root: str = "/sys") -> str:
    """Return ONE POSIX ``sh`` command that prints a node's whole GID table for :func:`parse_gid_dump`.

    Output: :data:`DUMP_HEADER`; then one line per non-zero GID, tab-separated
    ``dev port index gid type netdev`` (``type`` is the raw ``types`` text, e.g. ``IB/RoCE v1``; a field is
    empty when its file is missing or unreadable), or :data:`DUMP_NO_CLASS` when ``<root>/class/infiniband``
    does not exist; then :data:`DUMP_END`. Only shell builtins run per file (``read -r`` with a redirect,
    ``printf``, parameter expansion), no ``$(cat ...)`` subshell: a 500-node check costs one round trip and
    a few ms of node CPU each. The markers let it share one SSH command with others
    (``hostname; <this>; uname -r``) and make a cut-off output detectable.

    The string is meant for ``sh -c`` (a zsh login shell would reject the unmatched globs); with an SSH
    helper that runs commands through the login shell, wrap it: ``shlex.join(["sh", "-c", cmd])``.
    """
    base = shlex.quote(sysfs_root.rstrip("/") + "/class/infiniband")
    # r: class dir; p: .../<dev>/ports/<port>/gids; q: the port dir; f: one gid file.
    # Each `read` has its stderr redirect FIRST so that a failed open (missing file) is silent too.
    return (
        f"r={base}; printf '%s\\n' '{DUMP_HEADER}'; "
        'if [ -d "$r" ]; then '
        'for p in "$r"/*/ports/*/gids; do '
        '[ -d "$p" ] || continue; '
        "q=${p%/gids}; pt=${q##*/}; d=${q%/ports/*}; d=${d##*/}; "
        'for f in "$p"/*; do '
        "i=${f##*/}; g=; t=; n=; "
        'read -r g 2>/dev/null <"$f"; '
        'case $g in ""|0000:0000:0000:0000:0000:0000:0000:0000) continue;; esac; '
        'read -r t 2>/dev/null <"$q/gid_attrs/types/$i"; '
        'read -r n 2>/dev/null <"$q/gid_attrs/ndevs/$i"; '
        'printf \'%s\\t%s\\t%s\\t%s\\t%s\\t%s\\n\' "$d" "$pt" "$i" "$g" "$t" "$n"; '
        "done; done; "
        f"else printf '%s %s\\n' '{DUMP_NO_CLASS}' \"$r\"; fi; "
        f"printf '%s\\n' '{DUMP_END}'"
    )


def parse_gid_dump(text: str) -> pd.DataFrame:
    """Parse the output of :func:`remote_gid_command`.

    Only the lines between :data:`DUMP_HEADER` and :data:`DUMP_END` are read (other commands' output and a
    chatty login script may surround them); each must be a GID row or the no-infiniband marker.

    Returns:
        A :data:`GID_COLUMNS` table (empty when the node has no ``class/infiniband``).

    Raises:
        ParseError: no header, no end marker (output cut off), or a line between them that is not a GID row
            (names the line).
    """
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == DUMP_HEADER)
    except StopIteration:
        first = next((ln for ln in lines if ln.strip()), "")
        raise ParseError(
            f"GID dump: no {DUMP_HEADER!r} header line (is this the output of remote_gid_command?); "
            f"first line: {first!r}"
        ) from None
    rows: list[dict[str, Any]] = []
    for lineno, line in enumerate(lines[start + 1 :], start=start + 2):
        where = f"GID dump line {lineno}"
        if line.strip() == DUMP_END:
            return _table(rows)
        if not line.strip() or line.startswith(DUMP_NO_CLASS):
            continue
        fields = line.split("\t")
        if len(fields) != 6:
            raise ParseError(
                f"{where}: expected 6 tab-separated fields 'dev port index gid type netdev', got {line!r}"
            )
        dev, port_text, index_text, gid_text, type_text, netdev = (f.strip() for f in fields)
        if not dev:
            raise ParseError(f"{where}: empty device name in {line!r}")
        port = _int_field(port_text, "port", where, line)
        index = _int_field(index_text, "index", where, line)
        gid = _normalize_gid(gid_text)
        if gid is None:
            raise ParseError(f"{where}: not a GID: {gid_text!r}")
        if gid == ZERO_GID:
            continue
        rows.append(_row(dev, port, index, gid, _roce_version(type_text), netdev or None))
    raise ParseError(f"GID dump: no {DUMP_END!r} line after {len(rows)} row(s): the output was cut off")


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
        if not _HCA_RE.match(hca):
            raise ValueError(f"bad HCA name {hca!r} (expected e.g. 'mlx5_0' or 'mlx5_0:1')")
        found = {k: g for k, g in groups.items() if k == hca or k.split(":")[0] == hca}
        if not found:
            missing.append(hca)
        kept.update(found)
    return kept, missing


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
    result: dict[str, int | None] = {}
    for key, grp in groups.items():
        hits = [int(r["index"]) for r in _records(grp) if _gid_matches(r, family, roce_version, netdevs)]
        result[key] = min(hits) if hits else None
    for hca in missing:
        result[hca] = None
    return result


def _found_text(grp: pd.DataFrame) -> str:
    items = [
        f"{int(r['index'])} {r['roce_version'] or '?'} {ipaddress.IPv6Address(r['gid']).compressed}"
        + (f" {r['netdev']}" if r["netdev"] else "")
        for r in _records(grp.sort_values("index"))
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
    indices = gid_indices_by_hca(table, netdev, family, roce_version, hcas)
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
        if not _HCA_RE.match(hca):
            raise ValueError(f"bad HCA name {hca!r} for NCCL_IB_HCA (expected e.g. 'mlx5_0' or 'mlx5_0:1')")
    if hcas:
        env["NCCL_IB_HCA"] = "=" + ",".join(hcas)
    return env
