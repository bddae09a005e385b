"""clusterproof.network.run_cache: one launch per key across processes (as across xdist workers), failures cached,
and the rows a run adds; and clusterproof.report.parts: every process's rows and facts merged. No root needed."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
from pathlib import Path

import pytest

from clusterproof.errors import ClusterproofError
from clusterproof.inventory import load_inventory
from clusterproof.network import nccl
from clusterproof.network.collective import CollectiveResult
from clusterproof.network.run_cache import (
    GroupSpec,
    SharedCache,
    group_specs,
    network_rows,
    record_run,
    transport_rows,
)
from clusterproof.report.parts import merge_facts, merge_table, remove_parts, save_parts
from clusterproof.results import ResultsCollector

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "my-cluster.yaml"
LOG = ROOT / "tests" / "data" / "report" / "all_reduce-4n.log"


def _compute_in_child(cache_dir: str, counter: str, key: str) -> None:
    def compute() -> str:
        with open(counter, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        return f"value of {key}"

    assert SharedCache(Path(cache_dir)).get(key, compute) == f"value of {key}"


def test_a_key_is_computed_once_across_processes(tmp_path: Path) -> None:
    counter = tmp_path / "computed.txt"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_compute_in_child, args=(str(tmp_path / "cache"), str(counter), "run-all_reduce-4nodes"))
             for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert len(counter.read_text().splitlines()) == 1  # one launch, three readers
    _compute_in_child(str(tmp_path / "cache"), str(counter), "another-key")
    assert len(counter.read_text().splitlines()) == 2


def test_a_failure_is_cached_and_raised_to_every_caller(tmp_path: Path) -> None:
    cache = SharedCache(tmp_path)
    calls: list[int] = []

    def broken() -> str:
        calls.append(1)
        raise ClusterproofError("node03: unreachable")

    for _ in range(3):
        with pytest.raises(ClusterproofError, match="node03: unreachable"):
            cache.get("k", broken)
    assert calls == [1]
    # A key of 32 long node names stays a short file name.
    assert len(cache.path_of("-".join(f"verylongnodename{i:03d}" for i in range(32))).name) < 40


def _result(tmp_path: Path, nodes: list[str]) -> CollectiveResult:
    text = LOG.read_text()
    log = tmp_path / "all_reduce-4n-abc.log"
    log.write_text(text)
    return CollectiveResult("all_reduce-4n-abc", "all_reduce", nodes, "mpirun ...", 0, False, 1.0, log, text,
                            nccl.parse(text), debug_files={"node01/nccl.node01.1": "no NCCL here"})


def test_rows_of_a_run_carry_threshold_verdict_and_provenance(tmp_path: Path) -> None:
    inv = load_inventory(EXAMPLE)
    names = tuple(n.name for n in inv.nodes)
    spec = GroupSpec("all_reduce", names)
    assert spec in group_specs(inv) and spec.id == f"all_reduce-{len(names)}nodes" and spec.node_set == ",".join(names)
    res = _result(tmp_path, list(spec.nodes))
    rows = network_rows(spec, res, inv, 3, "suites/network/test_collectives.py::test_nccl_run_sane[all_reduce-4nodes]")
    assert rows and {r["node_set"] for r in rows} == {spec.node_set} and {r["gid_index"] for r in rows} == {3}
    assert {r["log_path"] for r in rows} == {"logs/all_reduce-4n-abc.log"}
    assert {r["verdict"] for r in rows} <= {"pass", "fail", "info"}
    sink = ResultsCollector("run", inv.name)
    record_run(sink, spec, res, inv, 3, "t")
    assert len(sink.frame("network")) == len(rows)
    # Transport rows come only from NCCL's own lines: a file without any gives rows with nothing NCCL said.
    ranks = transport_rows(res, inv, 3, "t")
    assert all(r["network"] is None for r in ranks)


def test_a_forced_nccl_setting_stands_beside_the_busbw_it_produced(tmp_path: Path) -> None:
    inv = load_inventory(EXAMPLE)
    spec = GroupSpec("all_reduce", tuple(n.name for n in inv.nodes))
    res = _result(tmp_path, list(spec.nodes))
    plain = network_rows(spec, res, inv, 3, "t")
    assert {r["forced_nccl"] for r in plain} == {None}
    forced = dataclasses.replace(inv, nccl_tests=dataclasses.replace(
        inv.nccl_tests, env={**inv.nccl_tests.env, "NCCL_PROTO": "LL", "NCCL_ALGO": "Ring", "NCCL_DEBUG": "WARN"}))
    rows = network_rows(spec, res, forced, 3, "t")
    assert {r["forced_nccl"] for r in rows} == {"NCCL_ALGO=Ring; NCCL_PROTO=LL"}  # NCCL_DEBUG changes no result
    assert [r["busbw_gbs"] for r in rows] == [r["busbw_gbs"] for r in plain]


def test_parts_of_every_process_are_merged(tmp_path: Path) -> None:
    for worker, node in (("gw0", "node01"), ("gw1", "node01"), ("gw1b", "node02")):
        c = ResultsCollector("run", "c")
        c.add("nodes", [{"node": node, "host": f"h-{worker}"}])
        c.set_fact("gid_index", 5 if worker == "gw0" else 3)
        save_parts(tmp_path, worker, c)
    nodes = merge_table(tmp_path, "nodes")
    assert nodes["node"].tolist() == ["node01", "node02"]  # one row per node, the first process's
    assert nodes["host"].tolist() == ["h-gw0", "h-gw1b"]
    assert merge_facts(tmp_path) == {"gid_index": 5}
    assert merge_table(tmp_path, "network").empty
    remove_parts(tmp_path)
    assert not (tmp_path / "parts").exists()
