"""RoCE GID tables: read them from local sysfs, ``show_gids`` text or one cheap remote shell command.
Choosing the index and the consensus across nodes live in :mod:`clusterproof.network.gid_choice`.

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
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from clusterproof.errors import ParseError

GID_COLUMNS: tuple[str, ...] = ("dev", "port", "index", "gid", "ipv4", "roce_version", "netdev")

ZERO_GID = "0000:0000:0000:0000:0000:0000:0000:0000"
_GID_RE = re.compile(r"^[0-9a-fA-F]{4}(?::[0-9a-fA-F]{4}){7}$")
_VERSION_RE = re.compile(r"[Vv](\d+)")
_IPV4_RE = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")
_UNREADABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd]")  # undecodable bytes, control characters
HCA_RE = re.compile(r"^[A-Za-z0-9_.\-]+(?::\d+)?$")

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


def records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts (a column named ``index`` would shadow ``tuple.index`` on itertuples rows)."""
    return [{str(k): v for k, v in row.items()} for row in table.to_dict("records")]


def empty_gid_table() -> pd.DataFrame:
    """Return an empty table with :data:`GID_COLUMNS` and their dtypes."""
    return _table([])


def format_gid_table(table: pd.DataFrame, indent: str = "  ") -> str:
    """Return the table as aligned text lines ``dev port index gid ipv4 version netdev`` (for messages)."""
    if table.empty:
        return f"{indent}(no GIDs)"
    cells = [[str(r[c]) if r[c] is not None else "-" for c in GID_COLUMNS] for r in records(table)]
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
    lines = text.splitlines()
    # What precedes the header (a shell prompt, the command, a pasted sentence) is not show_gids output.
    start = next((i for i, ln in enumerate(lines) if ln.split()[:3] == ["DEV", "PORT", "INDEX"]), 0)
    headers = 0
    for lineno, line in enumerate(lines[start:], start=start + 1):
        tokens = line.split()
        where = f"show_gids line {lineno}"
        if not tokens:
            continue
        if _UNREADABLE.search(line):
            raise ParseError(f"{where}: undecodable bytes or control characters in {line!r}")
        if tokens[0] == "DEV":
            headers += 1
            if headers > 1:
                raise ParseError(f"{where}: a second show_gids table: two outputs in one text")
            continue
        if all(set(t) == {"-"} for t in tokens):
            continue  # the header's dashed underline
        if lineno == len(lines) and not text.endswith(("\n", "\r")) and not tokens[0].startswith("n_gids_found="):
            raise ParseError(f"{where}: the output ends inside this line (no line end): cut off, {line!r}")
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
        if _UNREADABLE.search(line):
            raise ParseError(f"{where}: undecodable bytes or control characters in {line!r}")
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
