"""Helpers for the report tests (no tests here): the realistic run saved under ``tests/data/report/``.

The sample is a CPU stand-in run on 4 sandbox nodes: all_reduce on all 4 nodes and on every pair, 1M..8M,
with node3 slow (every pair with node3 is below the 0.30 GB/s threshold), 44 storage cases that all pass,
node facts, and the pytest outcome of every suite test. ``transport.csv`` is a GPU-shaped transport table
(16 ranks, rank 12 fell back to sockets) for the tests that need one.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from clusterproof.report import RunData, RunMeta, read_run_data, write_checks, write_run_data

DATA = Path(__file__).parent / "data" / "report"
RUN_ID = "20261124T213000Z-a1b2"
NODES = ["node1", "node2", "node3", "node4"]


def sample_meta(**changes: Any) -> RunMeta:
    """The sample run's metadata, with ``changes`` applied."""
    fields: dict[str, Any] = {
        "run_id": RUN_ID,
        "cluster": "sandbox",
        "started_at": datetime(2026, 11, 24, 21, 30, tzinfo=UTC),
        "finished_at": datetime(2026, 11, 24, 21, 33, 12, tzinfo=UTC),
        "standin": True,
        "launcher": "mpirun",
        "gid_index": 5,
        "nodes": list(NODES),
        "pytest_args": ["suites", "--cluster", "sandbox.yaml"],
        "git_sha": "d3ed994",
        "versions": {"openmpi": "4.1.4"},
        "extra": {"max_clock_skew_s": 1.0},
    }
    fields.update(changes)
    return RunMeta(**fields)


def sample_tables() -> dict[str, pd.DataFrame]:
    """The sample's network, storage and nodes tables, fresh copies."""
    return {name: pd.read_csv(DATA / f"{name}.csv") for name in ("network", "storage", "nodes")}


def sample_checks() -> list[dict[str, Any]]:
    """The sample's test outcomes (checks.json), a fresh copy."""
    checks: list[dict[str, Any]] = json.loads((DATA / "checks.json").read_text())
    return checks


def sample_transport() -> pd.DataFrame:
    return pd.read_csv(DATA / "transport.csv")


def write_sample(
    outdir: Path,
    *,
    meta: RunMeta | None = None,
    network: pd.DataFrame | None = None,
    storage: pd.DataFrame | None = None,
    nodes: pd.DataFrame | None = None,
    transport: pd.DataFrame | None = None,
    checks: list[dict[str, Any]] | None = None,
) -> Path:
    """Save the sample run (or a variant of it) into ``outdir`` with the public writers; returns ``outdir``."""
    tables = sample_tables()
    write_run_data(
        outdir,
        meta or sample_meta(),
        tables["network"] if network is None else network,
        tables["storage"] if storage is None else storage,
        tables["nodes"] if nodes is None else nodes,
        transport,
    )
    write_checks(outdir, sample_checks() if checks is None else checks)
    return outdir


def read_sample(outdir: Path, **kwargs: Any) -> RunData:
    """``write_sample`` then read it back, for scorecard tests that need no plots."""
    return read_run_data(write_sample(outdir, **kwargs))


def without_slow_node(network: pd.DataFrame) -> pd.DataFrame:
    """The network table minus every pair with node3 (what is left passes)."""
    return network[~(network["node_set"].str.contains("node3") & (network["n_nodes"] == 2))].reset_index(drop=True)


def passing_checks() -> list[dict[str, Any]]:
    """The sample's checks without the failed network tests of the node3 pairs."""
    return [c for c in sample_checks() if c["outcome"] != "failed"]
