"""Find the bad node or link behind an all-node failure: slow, hung, crashed or wrong, in a few concurrent rounds.

The work is split into small modules, imported one way:

* :mod:`~clusterproof.network.localize_model`: the failure kinds, measurements, rounds and the conclusion;
* :mod:`~clusterproof.network.localize_search`: the pure search (pairs in concurrent rounds, re-pairing with
  known-good nodes, bisection for hangs and crashes, the exhaustive reference) behind an injected ``run_round``;
* :mod:`~clusterproof.network.localize_runs`: the failure kind of an all-node run, the test per kind, and
  a run's measurement (a run that did not finish reports its error, never a number);
* :mod:`~clusterproof.network.localize_driver`: the real ``run_round`` (:meth:`CollectiveRunner.run_many`);
* :mod:`~clusterproof.network.localize_findings`: the conclusion as findings (bad node -> its own FAIL).
"""

from __future__ import annotations

from clusterproof.network.localize_model import FailureKind, GroupVerdict, Localization, Measurement, Round
from clusterproof.network.localize_search import (
    RoundRunner,
    choose_strategy,
    disjoint_pairs,
    exhaustive,
    judge,
    localize,
    round_robin,
    rounds_needed,
)

__all__ = [
    "FailureKind",
    "GroupVerdict",
    "Localization",
    "Measurement",
    "Round",
    "RoundRunner",
    "choose_strategy",
    "disjoint_pairs",
    "exhaustive",
    "judge",
    "localize",
    "round_robin",
    "rounds_needed",
]
