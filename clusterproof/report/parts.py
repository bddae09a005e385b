"""Rows and facts each process of a run (the controller, every xdist worker) saves under ``<run>/parts/`` when it
finishes, and their merge on the controller before the report is built."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from clusterproof.results import ResultsCollector, to_frame

PARTS_DIR = "parts"
TABLES = ("network", "storage", "nodes", "transport")


def save_parts(run_dir: Path, process: str, collector: ResultsCollector) -> None:
    """Write this process's rows (one pickle per non-empty table) and facts (``facts.<process>.json``)."""
    parts = Path(run_dir) / PARTS_DIR
    parts.mkdir(exist_ok=True)
    for table in TABLES:
        df = collector.frame(table)
        if len(df):
            df.to_pickle(parts / f"{table}.{process}.pkl")
    facts = collector.facts()
    if facts:
        (parts / f"facts.{process}.json").write_text(json.dumps(facts, default=str), encoding="utf-8")


def merge_table(run_dir: Path, table: str) -> pd.DataFrame:
    """Every process's rows of ``table``, as one frame with the fixed columns. Node facts are gathered by every
    worker that needed them: one row per node is kept."""
    parts = Path(run_dir) / PARTS_DIR
    frames = [pd.read_pickle(p) for p in sorted(parts.glob(f"{table}.*.pkl"))] if parts.exists() else []
    df = to_frame(table, [r for f in frames for r in f.to_dict("records")])
    if table == "nodes":
        df = df.drop_duplicates(subset="node", keep="first", ignore_index=True)
    return df


def merge_facts(run_dir: Path) -> dict[str, Any]:
    """Every process's facts; the first process (by file name) that set a fact wins."""
    parts = Path(run_dir) / PARTS_DIR
    out: dict[str, Any] = {}
    for path in sorted(parts.glob("facts.*.json")) if parts.exists() else []:
        for k, v in json.loads(path.read_text(encoding="utf-8")).items():
            out.setdefault(k, v)
    return out


def remove_parts(run_dir: Path) -> None:
    parts = Path(run_dir) / PARTS_DIR
    if parts.exists():
        for p in parts.iterdir():
            p.unlink()
        parts.rmdir()
