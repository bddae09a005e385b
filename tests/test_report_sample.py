"""Helpers for the report tests (no tests here): the realistic run saved under ``tests/data/report/``.

The sample is a CPU stand-in run on 4 sandbox nodes: all_reduce on all 4 nodes and on every pair, 1M..8M,
with node3 slow (every pair with node3 is below the 0.30 GB/s threshold), 44 storage cases that all pass,
node facts. ``sample_findings`` gives the findings the suites' checks would have recorded for it. ``transport.csv`` is a GPU-shaped transport table
(16 ranks, rank 12 fell back to sockets) for the tests that need one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from clusterproof import findings as fd
from clusterproof.findings import Criterion, Finding, FindingLog, Subject, node_subject
from clusterproof.report import RunData, RunMeta, read_run_data, write_run_data

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
        "extra": {},
    }
    fields.update(changes)
    return RunMeta(**fields)


def sample_tables() -> dict[str, pd.DataFrame]:
    """The sample's network, storage and nodes tables, fresh copies."""
    return {name: pd.read_csv(DATA / f"{name}.csv") for name in ("network", "storage", "nodes")}


def findings_of(network: pd.DataFrame, storage: pd.DataFrame, nodes: pd.DataFrame) -> list[Finding]:
    """The findings the suites would have recorded for these tables: a busbw finding per thresholded network row,
    an access-matrix finding per storage case, a reachability finding per node."""
    out: list[Finding] = []
    for r in network.itertuples():
        if pd.isna(r.threshold_gbs):
            continue
        subject = Subject("pair" if r.n_nodes == 2 else "node_set", str(r.node_set))
        text = f"{r.collective} {r.n_nodes} nodes {r.size_bytes} {r.placement}: busbw {r.busbw_gbs:.2f} GB/s"
        make = fd.failed if r.busbw_gbs < r.threshold_gbs else fd.passed
        out.append(make(Criterion.COLLECTIVES, subject, f"{text} vs threshold {r.threshold_gbs:.2f} GB/s",
                        evidence=[fd.Evidence(str(r.log_path))], values={"busbw_gbs": r.busbw_gbs}))
    for r in storage.itertuples():
        subject = Subject("issuer", f"{r.issuer}/{r.permission}")
        make = fd.passed if r.observed == r.expected else fd.failed
        out.append(make(Criterion.ACCESS_MATRIX, subject, f"[{r.issuer}] {r.operation}-{r.where}: expected {r.expected}, observed {r.observed}"))
    for r in nodes.itertuples():
        out.append(fd.passed(Criterion.NODES_REACHABLE, node_subject(str(r.node)), f"{r.node}: answered"))
    return out


def sample_findings() -> list[Finding]:
    t = sample_tables()
    return findings_of(t["network"], t["storage"], t["nodes"])


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
    findings: list[Finding] | None = None,
) -> Path:
    """Save the sample run (or a variant of it) into ``outdir`` with the public writers; returns ``outdir``."""
    tables = sample_tables()
    net = tables["network"] if network is None else network
    st = tables["storage"] if storage is None else storage
    nd = tables["nodes"] if nodes is None else nodes
    write_run_data(outdir, meta or sample_meta(), net, st, nd, transport)
    FindingLog(outdir, "sample").replace(findings_of(net, st, nd) if findings is None else findings)
    return outdir


def read_sample(outdir: Path, **kwargs: Any) -> RunData:
    """``write_sample`` then read it back, for scorecard tests that need no plots."""
    return read_run_data(write_sample(outdir, **kwargs))


def without_slow_node(network: pd.DataFrame) -> pd.DataFrame:
    """The network table minus every pair with node3 (what is left passes)."""
    return network[~(network["node_set"].str.contains("node3") & (network["n_nodes"] == 2))].reset_index(drop=True)
