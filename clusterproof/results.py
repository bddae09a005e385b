"""The tidy tables one run of the suites produces, and a thread-safe collector for them.

Every table has fixed columns so that reports, baselines and history can rely on them:

- ``NETWORK_COLUMNS``: one row per (node set, collective, message size, placement).
- ``STORAGE_COLUMNS``: one row per storage access case.
- ``NODE_COLUMNS``: the facts of each node (extra fact columns are allowed after these).
- ``TRANSPORT_COLUMNS``: one row per rank of each collective run, from NCCL's own debug logs.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

NETWORK_COLUMNS: tuple[str, ...] = (
    "run_id",  # str: the run this row belongs to
    "cluster",  # str: inventory name
    "test_id",  # str: pytest node id that produced the row
    "collective",  # str: all_reduce, all_gather, ...
    "node_set",  # str: node names joined by ','
    "n_nodes",  # int
    "n_ranks",  # int
    "size_bytes",  # int
    "placement",  # "out-of-place" | "in-place"
    "time_us",  # float
    "algbw_gbs",  # float
    "busbw_gbs",  # float
    "wrong",  # Int64 (NA when not validated)
    "threshold_gbs",  # float or NaN when no threshold applies
    "verdict",  # "pass" | "fail" | "info" (no threshold)
    "gid_index",  # Int64 or NA
    "launcher",  # "mpirun" | "srun"
    "forced_nccl",  # str or None: result-changing NCCL settings forced in the launch environment (NCCL_ALGO=Ring; ...)
    "standin",  # bool: numbers come from the CPU stand-in, not nccl-tests on GPUs
    "nccl_tests_version",  # str or None
    "nccl_version",  # str or None
    "log_path",  # str: raw log, relative to the report directory
)

STORAGE_COLUMNS: tuple[str, ...] = (
    "run_id",
    "test_id",
    "issuer",  # rgw-user | sts | http
    "permission",  # object-read-write | object-read-only
    "operation",  # put, get, list_v2, multipart_complete, ...
    "where",  # inside, sibling, root, no-prefix, other-bucket, ...
    "expected",  # allow | deny
    "observed",  # allow | deny | error:<code>
    "verdict",  # pass | fail
    "detail",  # RGW's answer (status code and error code), already redacted
)

NODE_COLUMNS: tuple[str, ...] = (
    "node",
    "host",
    "hostname",
    "kernel",
    "cpu_model",
    "cpus",
    "mem_gib",
    "gpus",
    "gpu_model",
    "nics",  # "eth0:1500,ib0:4092"
    "clock_offset_s",
)

TRANSPORT_COLUMNS: tuple[str, ...] = (
    "run_id",
    "test_id",
    "job_id",  # the collective run the NCCL debug files came from
    "rank",
    "host",
    "network",  # IB | Socket | plugin name
    "devices",  # mlx5_0:1/RoCE,...
    "gdr",  # every cross-node channel via GDRDMA
    "gid",  # GID index and address in use
    "version",  # NCCL version
    "odd",  # differs from the majority or fails a check
)

_COLUMNS = {"network": NETWORK_COLUMNS, "storage": STORAGE_COLUMNS, "nodes": NODE_COLUMNS, "transport": TRANSPORT_COLUMNS}


class ResultsCollector:
    """Collects result rows from tests (possibly from several threads) into tidy DataFrames."""

    def __init__(self, run_id: str, cluster: str) -> None:
        self.run_id = run_id
        self.cluster = cluster
        self._rows: dict[str, list[dict[str, Any]]] = {k: [] for k in _COLUMNS}
        self._facts: dict[str, Any] = {}
        self._lock = threading.Lock()

    def set_fact(self, name: str, value: Any) -> None:
        """Keep a run-level fact (JSON-able), e.g. the detected GID consensus for ``metadata.json``."""
        with self._lock:
            self._facts[name] = value

    def facts(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._facts)

    def add(self, table: str, rows: list[Mapping[str, Any]]) -> None:
        """Append rows to ``table`` (network, storage, nodes, transport); run_id/cluster are filled in when absent."""
        if table not in _COLUMNS:
            raise KeyError(f"unknown results table {table!r} (known: {', '.join(_COLUMNS)})")
        cols = _COLUMNS[table]
        out = []
        for row in rows:
            r = dict(row)
            if "run_id" in cols:
                r.setdefault("run_id", self.run_id)
            if "cluster" in cols:
                r.setdefault("cluster", self.cluster)
            out.append(r)
        with self._lock:
            self._rows[table].extend(out)

    def frame(self, table: str) -> pd.DataFrame:
        """The rows of ``table`` as a DataFrame with the fixed columns first (extra columns kept after)."""
        with self._lock:
            rows = list(self._rows[table])
        return to_frame(table, rows)


def to_frame(table: str, rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows to a DataFrame with ``table``'s fixed columns first, in order, and missing ones as NA."""
    cols = list(_COLUMNS[table])
    df = pd.DataFrame(list(rows))
    for c in cols:
        if c not in df.columns:
            df[c] = pd.NA
    extra = [c for c in df.columns if c not in cols]
    df = df[cols + extra]
    for c in ("wrong", "gid_index", "n_nodes", "n_ranks", "size_bytes"):
        if c in df.columns:
            df[c] = pd.to_numeric(df[c], errors="coerce").astype("Int64")
    return df
