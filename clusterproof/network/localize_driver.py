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
from clusterproof.network.localize_runs import (
    SearchTest,
    failure_kind,
    measurement,
    search_test,
    seconds_at_limit,
)
from clusterproof.network.localize_search import Group, localize
from clusterproof.network.peer_cut import PeerCut, SlowCut


class CollectiveRounds:
    """``run_round`` for the search: every group of a round launched at the same time (one fabric lock hold).

    ``on_result`` sees every CollectiveResult (the fixtures record their rows in the results table). With
    ``slow_limit_gbs`` (a slow search against a known limit) a run of a round that can no longer reach the limit
    is cut once its peers are done (:class:`SlowCut`); otherwise ``peer_cut`` applies (a hang search).
    """

    def __init__(self, runner: CollectiveRunner, inventory: Inventory, collective: str, test: SearchTest,
                 env: Mapping[str, str] | None = None,
                 on_result: Callable[[CollectiveResult], None] | None = None, ranks_per_node: int | None = None,
                 peer_cut: PeerCut | None = None, slow_limit_gbs: float | None = None) -> None:
        self.runner = runner
        self.peer_cut = peer_cut
        self.slow_limit_gbs = slow_limit_gbs
        self.ranks_per_node = ranks_per_node
        self.inventory = inventory
        self.collective = collective
        self.test = test
        self.env = {**(env or {}), **test.env}
        self.on_result = on_result

    def _node(self, name: str) -> Node:
        node = self.inventory.node(name)
        return replace(node, slots=self.ranks_per_node) if self.ranks_per_node else node

    def cut_for(self, groups: Sequence[Group]) -> PeerCut | SlowCut | None:
        """The cut rule of a round of ``groups``: a slow cut timed for its largest group, or ``peer_cut``."""
        if self.slow_limit_gbs is None or not groups:
            return self.peer_cut
        ranks = max(sum(self._node(n).slots for n in g) * self.test.sweep.gpus_per_rank for g in groups)
        at_limit = seconds_at_limit(self.test, self.collective, ranks, self.slow_limit_gbs)
        return SlowCut(at_limit, self.slow_limit_gbs)

    def __call__(self, groups: Sequence[Group]) -> list[Measurement]:
        requests = [RunRequest(self.collective, tuple(self._node(n) for n in g), extra_env=self.env,
                               timeout_s=self.test.timeout_s, sweep=self.test.sweep, extra_mca=self.test.mca) for g in groups]
        outcomes: list[CollectiveResult | ClusterproofError] = self.runner.run_many(requests, peer_cut=self.cut_for(groups))
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
    if kind is FailureKind.SLOW and limit is None:
        limit = pair_limit(inventory, collective, test)
    slow_cut = kind is FailureKind.SLOW and limit is not None and limit > 0 and settings.slow_peer_cut
    rounds = CollectiveRounds(runner, inventory, collective, test, env=env, on_result=on_result,
                              ranks_per_node=ranks_per_node, peer_cut=peer_cut, slow_limit_gbs=limit if slow_cut else None)
    names = list(nodes) if nodes is not None else [n.name for n in inventory.nodes]
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
