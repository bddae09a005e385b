"""The real runner behind the pure search: each round's groups run at once on the cluster.

:class:`CollectiveRounds` is the ``run_round`` the search (:func:`clusterproof.network.localize_search.localize`)
calls: it turns node groups into :class:`RunRequest` s for :meth:`CollectiveRunner.run_many` and every result
into a :class:`Measurement`. :func:`search_after` decides from an all-node result whether and how to search.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from clusterproof.errors import ClusterproofError
from clusterproof.inventory import Inventory, Node
from clusterproof.network.collective import CollectiveResult, CollectiveRunner, RunRequest
from clusterproof.network.localize_model import FailureKind, Localization, Measurement
from clusterproof.network.localize_runs import SearchTest, failure_kind, measurement, search_test
from clusterproof.network.localize_search import Group, localize
from clusterproof.network.peer_cut import PeerCut


class CollectiveRounds:
    """``run_round`` for the search: every group of a round launched at the same time (one fabric lock hold).

    ``on_result`` sees every CollectiveResult (the fixtures record their rows in the results table).
    """

    def __init__(self, runner: CollectiveRunner, inventory: Inventory, collective: str, test: SearchTest,
                 env: Mapping[str, str] | None = None,
                 on_result: Callable[[CollectiveResult], None] | None = None, ranks_per_node: int | None = None,
                 peer_cut: PeerCut | None = None) -> None:
        self.runner = runner
        self.peer_cut = peer_cut
        self.ranks_per_node = ranks_per_node
        self.inventory = inventory
        self.collective = collective
        self.test = test
        self.env = {**(env or {}), **test.env}
        self.on_result = on_result

    def _node(self, name: str) -> Node:
        node = self.inventory.node(name)
        return replace(node, slots=self.ranks_per_node) if self.ranks_per_node else node

    def __call__(self, groups: Sequence[Group]) -> list[Measurement]:
        requests = [RunRequest(self.collective, tuple(self._node(n) for n in g), extra_env=self.env,
                               timeout_s=self.test.timeout_s, sweep=self.test.sweep, extra_mca=self.test.mca) for g in groups]
        outcomes: list[CollectiveResult | ClusterproofError] = self.runner.run_many(requests, peer_cut=self.peer_cut)
        out = []
        for group, outcome in zip(groups, outcomes, strict=True):
            if self.on_result is not None and isinstance(outcome, CollectiveResult):
                self.on_result(outcome)
            out.append(measurement(group, outcome, self.test))
        return out


def pair_limit(inventory: Inventory, collective: str, test: SearchTest) -> float | None:
    """The 2-node threshold at the searched size (after the tolerance), or None when the inventory has none."""
    limit = inventory.thresholds.lookup(collective, 2, test.size_bytes)
    return None if limit is None else limit * (1.0 - inventory.thresholds.tolerance_pct / 100.0)


def search(runner: CollectiveRunner, inventory: Inventory, collective: str, kind: FailureKind, *,
           nodes: Sequence[str] | None = None, env: Mapping[str, str] | None = None, mca: Mapping[str, str] | None = None,
           limit: float | None = None, label: str = "", max_concurrent: int | None = None, strategy: str | None = None,
           on_result: Callable[[CollectiveResult], None] | None = None, ranks_per_node: int | None = None) -> Localization:
    """Search the bad node or link of a ``kind`` failure of ``collective`` with the inventory's settings
    (``ranks_per_node`` overrides the nodes' slots, e.g. 1 for a rail)."""
    settings = inventory.localize
    test = search_test(kind, inventory.nccl_tests.sweep, timeout_s=inventory.nccl_tests.timeout_s,
                       hang_timeout_s=settings.hang_timeout_s, mca=mca)
    peer_cut = (PeerCut(settings.hang_peer_factor, settings.hang_peer_floor_s)
                if kind is FailureKind.HUNG and settings.hang_peer_factor > 0 else None)
    rounds = CollectiveRounds(runner, inventory, collective, test, env=env, on_result=on_result,
                              ranks_per_node=ranks_per_node, peer_cut=peer_cut)
    names = list(nodes) if nodes is not None else [n.name for n in inventory.nodes]
    if kind is FailureKind.SLOW and limit is None:
        limit = pair_limit(inventory, collective, test)
    return localize(names, kind, rounds, limit=limit, relative_drop=settings.relative_drop,
                    strategy=strategy or settings.strategy,
                    max_concurrent=max_concurrent if max_concurrent is not None else settings.max_concurrent,
                    label=label or collective)


def search_after(runner: CollectiveRunner, inventory: Inventory, result: CollectiveResult, *,
                 env: Mapping[str, str] | None = None,
                 on_result: Callable[[CollectiveResult], None] | None = None) -> Localization | None:
    """The search for the failure of an all-node ``result``, or None when the run did not fail."""
    kind = failure_kind(result, inventory.thresholds, result.collective)
    if kind is None:
        return None
    return search(runner, inventory, result.collective, kind, nodes=result.nodes, env=env, on_result=on_result)
