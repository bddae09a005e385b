"""Write and read the saved data of one run: the tidy tables, the metadata and the logs.

Layout of ``reports/<run-id>/`` (every text file scrubbed of secrets and environment dumps)::

    results.parquet, results.csv   network rows (``NETWORK_COLUMNS``)
    storage.csv                    storage cases (``STORAGE_COLUMNS``)
    nodes.csv                      node facts (``NODE_COLUMNS``)
    transport.csv                  one row per rank of NCCL's own account of its transport (optional)
    findings/*.jsonl               every finding (``clusterproof.findings``): what the verdict is judged from
    metadata.json                  ``RunMeta``
    logs/                          raw benchmark logs
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pandas as pd

from clusterproof.errors import ClusterproofError, ParseError
from clusterproof.report.meta import RunMeta
from clusterproof.report.scrub import scrub, scrub_frame
from clusterproof.results import to_frame


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(scrub(text), encoding="utf-8")


def normalise(table: str, df: pd.DataFrame | None) -> pd.DataFrame:
    """Return ``df`` with ``table``'s fixed columns first (missing ones as NA) and integer columns as Int64;
    ``None`` or an empty frame gives an empty frame with the fixed columns."""
    if df is None or len(df.columns) == 0:
        return to_frame(table, [])
    return to_frame(table, cast(list[Mapping[str, Any]], df.to_dict("records")))


def write_run_data(
    outdir: Path,
    meta: RunMeta,
    network: pd.DataFrame,
    storage: pd.DataFrame,
    nodes: pd.DataFrame,
    transport: pd.DataFrame | None = None,
) -> None:
    """Write the tables and metadata of one run into ``outdir`` (created when missing).

    Writes ``results.parquet`` and ``results.csv`` (network), ``storage.csv``, ``nodes.csv``,
    ``transport.csv`` (when given) and ``metadata.json``. String cells are scrubbed before anything is
    written, so neither the parquet nor the CSV files can carry a registered secret or an env dump.
    """
    outdir.mkdir(parents=True, exist_ok=True)
    net = scrub_frame(normalise("network", network))
    _parquet_safe(net).to_parquet(outdir / "results.parquet", index=False)
    _write_text(outdir / "results.csv", net.to_csv(index=False))
    _write_text(outdir / "storage.csv", scrub_frame(normalise("storage", storage)).to_csv(index=False))
    _write_text(outdir / "nodes.csv", scrub_frame(normalise("nodes", nodes)).to_csv(index=False))
    if transport is not None:
        _write_text(outdir / "transport.csv", scrub_frame(normalise("transport", transport)).to_csv(index=False))
    _write_text(outdir / "metadata.json", meta.to_json())


def _parquet_safe(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with every object column that mixes value types (an extra column a test filled with both
    numbers and text) turned into text, which parquet needs; NA stays NA."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype != object:
            continue
        kinds = {type(v) for v in out[col] if v is not None and v is not pd.NA and not (isinstance(v, float) and v != v)}
        if len(kinds) > 1:
            out[col] = out[col].map(lambda v: v if v is None or v is pd.NA or (isinstance(v, float) and v != v) else str(v))
    return out


def copy_logs(src_paths: Iterable[Path], dest: Path) -> list[Path]:
    """Copy raw logs into ``dest`` (usually ``<run>/logs``), scrubbing secrets and env dumps on the way.

    A directory is copied with its tree under its own name. Two sources with the same name get ``-1``,
    ``-2``... suffixes rather than overwriting each other.

    Returns:
        The paths written, in the order of ``src_paths``.
    Raises:
        ClusterproofError: a source path does not exist.
    """
    written: list[Path] = []
    for src in src_paths:
        src = Path(src)
        if not src.exists():
            raise ClusterproofError(f"cannot copy log {src}: no such file or directory")
        pairs = (
            [(p, Path(src.name) / p.relative_to(src)) for p in sorted(src.rglob("*")) if p.is_file()]
            if src.is_dir()
            else [(src, Path(src.name))]
        )
        for file, rel in pairs:
            target = _unique(dest / rel)
            _write_text(target, file.read_bytes().decode("utf-8", errors="replace"))
            written.append(target)
    return written


def _unique(path: Path) -> Path:
    n = 0
    candidate = path
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


@dataclass
class RunData:
    """Everything ``build`` needs, read back from a run directory."""

    outdir: Path
    meta: RunMeta
    network: pd.DataFrame
    storage: pd.DataFrame
    nodes: pd.DataFrame
    transport: pd.DataFrame | None

    @property
    def standin(self) -> bool:
        """True when any number in this run comes from the CPU stand-in rather than nccl-tests on GPUs."""
        if self.meta.standin:
            return True
        col = self.network["standin"] if "standin" in self.network.columns else pd.Series([], dtype=object)
        return bool(col.fillna(False).astype(bool).any())


def _read_csv(path: Path, table: str | None) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        df = pd.read_csv(path, keep_default_na=True)
    except pd.errors.EmptyDataError:
        df = pd.DataFrame()
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise ParseError(f"{path}: not a readable CSV table ({e})") from e
    return normalise(table, df) if table else df


def read_network(path: Path) -> pd.DataFrame:
    """Read a network table from ``results.parquet`` or ``results.csv`` with the fixed columns.

    Raises:
        ParseError: the file cannot be read or lacks the network columns.
    """
    try:
        df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except (OSError, ValueError) as e:
        raise ParseError(f"{path}: not a readable results table ({e})") from e
    missing = [c for c in ("collective", "n_nodes", "node_set", "size_bytes", "placement", "busbw_gbs") if c not in df]
    if missing:
        raise ParseError(f"{path}: not a network results table (missing columns: {', '.join(missing)})")
    return normalise("network", df)


def read_run_data(outdir: Path) -> RunData:
    """Read back the tables, metadata and logs ``write_run_data`` and ``copy_logs`` saved in ``outdir`` (the findings
    are read by :func:`clusterproof.findings.read_findings`).

    Missing optional files (storage, nodes, transport) read as empty.

    Raises:
        ClusterproofError: ``outdir`` is not a run directory (no ``metadata.json``).
        ParseError: a saved file is unreadable; the message names it.
    """
    meta_path = outdir / "metadata.json"
    if not meta_path.is_file():
        raise ClusterproofError(f"{outdir}: not a clusterproof run directory (no metadata.json)")
    meta = RunMeta.from_json(meta_path.read_text(encoding="utf-8"), source=str(meta_path))
    if (outdir / "results.parquet").is_file():
        network = read_network(outdir / "results.parquet")
    elif (outdir / "results.csv").is_file():
        network = read_network(outdir / "results.csv")
    else:
        network = normalise("network", None)
    storage = _read_csv(outdir / "storage.csv", "storage")
    nodes = _read_csv(outdir / "nodes.csv", "nodes")
    return RunData(
        outdir=outdir,
        meta=meta,
        network=network,
        storage=storage if storage is not None else normalise("storage", None),
        nodes=nodes if nodes is not None else normalise("nodes", None),
        transport=_read_csv(outdir / "transport.csv", "transport"),
    )


__all__ = [
    "RunData",
    "copy_logs",
    "normalise",
    "read_network",
    "read_run_data",
    "write_run_data",
]
