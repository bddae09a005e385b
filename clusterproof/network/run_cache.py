"""Launch once, judge many times: the cache that shares one collective run between every xdist worker of a test
run, the cases a run is split into, and the rows each run adds to the results tables.

The cache is a private directory (mode 0700, ours) holding one pickle per key: the first process that asks for a
key computes the value under an exclusive file lock; every later one (another worker, another size test) reads it
back. A failure (a :class:`~clusterproof.errors.ClusterproofError`) is cached too, so a run that cannot start is not
re-launched for every test that needs it. Pure of pytest: the fixtures only make the directory and remove it.
"""

from __future__ import annotations

import hashlib
import pickle
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from clusterproof.errors import ClusterproofError
from clusterproof.inventory import Inventory
from clusterproof.network import nccl_debug, nccl_debug_checks, verdict
from clusterproof.network.collective import CollectiveResult, file_lock
from clusterproof.nodes.health_nccl import forced_in_launch

T = TypeVar("T")


@dataclass(frozen=True)
class GroupSpec:
    """One collective on one node set: the unit that is launched once and judged per size."""

    collective: str
    nodes: tuple[str, ...]

    @property
    def n_nodes(self) -> int:
        return len(self.nodes)

    @property
    def id(self) -> str:
        return f"{self.collective}-{self.n_nodes}nodes"

    @property
    def node_set(self) -> str:
        return ",".join(self.nodes)


def group_specs(inv: Inventory) -> list[GroupSpec]:
    """all_reduce on every node and on the inventory's sub-set sizes (first k nodes); other collectives on all."""
    names = tuple(n.name for n in inv.nodes)
    specs: list[GroupSpec] = []
    for coll in inv.nccl_tests.collectives:
        counts = [len(names)]
        if coll == "all_reduce":
            counts += [k for k in inv.nccl_tests.node_counts if 2 <= k < len(names)]
        for k in sorted(set(counts), reverse=True):
            if k >= 2:
                specs.append(GroupSpec(coll, names[:k]))
    return specs


class SharedCache:
    """Values computed once per test run and shared by every process that uses the same directory."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = Path(cache_dir)
        self._lock = threading.Lock()

    def path_of(self, key: str) -> Path:
        digest = hashlib.sha1(key.encode()).hexdigest()[:16]  # 32 node names would overflow a file name
        return self.cache_dir / f"{digest}.pkl"

    def get(self, key: str, compute: Callable[[], T]) -> T:
        """The value for ``key``: computed by the first caller, read back by every later one. A
        :class:`ClusterproofError` raised by ``compute`` is cached and raised again to every caller."""
        path = self.path_of(key)
        with self._lock, file_lock(self.cache_dir, path.stem):
            if path.exists():
                outcome = pickle.loads(path.read_bytes())
            else:
                try:
                    outcome = ("ok", compute())
                except ClusterproofError as e:
                    outcome = ("error", e)
                tmp = path.with_suffix(".tmp")
                tmp.write_bytes(pickle.dumps(outcome))
                tmp.replace(path)
        kind, value = outcome
        if kind == "error":
            raise value
        return value  # type: ignore[no-any-return]


class RowSink(Protocol):
    def add(self, table: str, rows: list[dict[str, Any]]) -> None: ...


def network_rows(spec: GroupSpec, res: CollectiveResult, inventory: Inventory, gid_index: int | None,
                 test_id: str) -> list[dict[str, Any]]:
    """The ``network`` table rows of one run (every size and placement, with threshold and row verdict)."""
    run = res.run
    if run is None or not len(run.results):
        return []
    judged = verdict.row_verdicts(run.results, inventory.thresholds, collective=spec.collective, n_nodes=spec.n_nodes)
    rows = judged.assign(
        test_id=test_id,
        collective=spec.collective,
        node_set=spec.node_set,
        n_nodes=spec.n_nodes,
        n_ranks=run.nranks,
        gid_index=gid_index,
        launcher=inventory.nccl_tests.launcher,
        forced_nccl=forced_in_launch(inventory.nccl_tests.env, inventory.health.result_changing_nccl),
        standin=bool(inventory.standin or run.standin),
        nccl_tests_version=run.version,
        nccl_version=run.nccl_version,
        log_path=f"logs/{res.log_path.name}",
    )
    return rows.to_dict("records")  # type: ignore[return-value]


def transport_rows(res: CollectiveResult, inventory: Inventory, gid_index: int | None, test_id: str) -> list[dict[str, Any]]:
    """The ``transport`` table rows of one run (one per rank, from NCCL's debug files). The CPU stand-in speaks no
    NCCL: whatever it writes is no transport evidence, so it gives no row."""
    if not res.debug_files or inventory.standin or (res.run is not None and res.run.standin):
        return []
    report = nccl_debug.parse_debug_files(res.debug_files)
    table = nccl_debug_checks.transport_table(
        report, expected_network=inventory.nccl_tests.expect_net, expected_gid_index=gid_index
    ).assign(test_id=test_id, job_id=res.job_id)
    return table.to_dict("records")  # type: ignore[return-value]


def record_run(sink: RowSink, spec: GroupSpec, res: CollectiveResult, inventory: Inventory, gid_index: int | None,
               test_id: str) -> None:
    """Add one run's network and transport rows to ``sink`` (a :class:`~clusterproof.results.ResultsCollector`)."""
    rows = network_rows(spec, res, inventory, gid_index, test_id)
    if rows:
        sink.add("network", rows)
    ranks = transport_rows(res, inventory, gid_index, test_id)
    if ranks:
        sink.add("transport", ranks)
