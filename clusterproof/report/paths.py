"""Run ids and the layout of ``reports/``: one directory per run, ``reports/latest`` pointing at the newest."""

from __future__ import annotations

import os
import re
import secrets
from datetime import UTC, datetime
from pathlib import Path

from clusterproof.errors import ClusterproofError

#: ``20261124T213000Z-a1b2``: sorts by time as plain text; the random part keeps parallel CI jobs apart.
RUN_ID_RE = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{4}$")
LATEST = "latest"


def new_run_id(now: datetime | None = None) -> str:
    """Return a new run id: the UTC time (``now``, naive values taken as UTC) plus 4 random hex digits."""
    now = now or datetime.now(UTC)
    now = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"


def update_latest(reports_root: Path, run_dir: Path) -> Path:
    """Point ``reports_root/latest`` at ``run_dir`` with a relative symlink, replaced atomically so a reader
    never sees it missing.

    Returns:
        The path of the ``latest`` link.
    Raises:
        ClusterproofError: ``run_dir`` is not a directory, or ``latest`` exists and is not a symlink.
    """
    if not run_dir.is_dir():
        raise ClusterproofError(f"cannot point {reports_root / LATEST} at {run_dir}: not a directory")
    link = reports_root / LATEST
    if link.exists() and not link.is_symlink():
        raise ClusterproofError(f"{link} exists and is not a symlink; move it away so it can point at the newest run")
    # Relative, so the whole reports/ tree can be copied or archived by CI and still work.
    target = os.path.relpath(run_dir.resolve(), reports_root.resolve())
    tmp = reports_root / f".{LATEST}.{secrets.token_hex(4)}"
    os.symlink(target, tmp)
    os.replace(tmp, link)
    return link


def run_dirs(reports_root: Path) -> list[Path]:
    """Return the run directories under ``reports_root`` (those holding ``metadata.json`` or
    ``results.parquet``), oldest first by name; ``latest`` and other symlinks are skipped.

    Raises:
        ClusterproofError: ``reports_root`` is not a directory.
    """
    if not reports_root.is_dir():
        raise ClusterproofError(f"{reports_root}: not a directory of reports")
    found = [
        d
        for d in reports_root.iterdir()
        if d.is_dir()
        and not d.is_symlink()
        and ((d / "metadata.json").is_file() or (d / "results.parquet").is_file())
    ]
    return sorted(found, key=lambda d: d.name)
