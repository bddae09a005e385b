"""Cutting a run of a search round once its peers are done, instead of waiting for it to end.

The runs of one round are the same test on disjoint node sets, so they take about the same time. Two rules:

* :class:`PeerCut` (hang search): once at least half of them have finished cleanly, a run still going after
  ``factor`` times the slowest clean one (and never before ``floor_s``) is taken for hung.
* :class:`SlowCut` (slow search with a bus-bandwidth limit): once every other run has finished (at least one
  cleanly), a run still going after the slowest clean one *plus* ``at_limit_s``, the time its timed collectives
  take at exactly the limit, cannot reach the limit: it is taken for slow. The bound holds as long as its start-up
  and tear-down take no longer than the slowest peer's whole run, start-up, transfers and all: a run that reaches
  the limit is done by (its own overhead) + ``at_limit_s`` <= (slowest peer) + ``at_limit_s``.

A cut run has its processes ended and is reported with the times that decided it, and no number. A round of one
run has no peers and keeps its fixed timeout.

:class:`PeerWatch` is the bookkeeping (pure, clock injected); :meth:`CollectiveRunner.run_many` polls it from a
watcher thread and ends what it says is due.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from clusterproof.network.localize_model import FailureKind


@dataclass(frozen=True)
class PeerCut:
    """``factor`` x the slowest clean peer, at least ``floor_s`` seconds, once half the round finished cleanly."""

    factor: float = 3.0
    floor_s: float = 10.0
    kind = FailureKind.HUNG  # what a cut run is reported as

    def __post_init__(self) -> None:
        if self.factor < 1.0:
            raise ValueError(f"PeerCut.factor must be >= 1, got {self.factor}")
        if self.floor_s < 0:
            raise ValueError(f"PeerCut.floor_s must be >= 0, got {self.floor_s}")

    def ready(self, n: int, clean: int, done: int) -> bool:
        return clean >= math.ceil(n / 2)

    def limit_s(self, slowest_s: float) -> float:
        return max(self.floor_s, self.factor * slowest_s)

    def rule(self) -> str:
        return f"limit {self.factor:g}x that, at least {self.floor_s:g} s"


@dataclass(frozen=True)
class SlowCut:
    """The slowest clean peer plus ``at_limit_s``, once every other run of the round finished (one cleanly)."""

    at_limit_s: float  # how long the run's timed collectives take at exactly the limit
    limit_gbs: float
    kind = FailureKind.SLOW

    def __post_init__(self) -> None:
        if not self.at_limit_s > 0 or not self.limit_gbs > 0:
            raise ValueError(f"SlowCut needs a positive time and limit, got {self.at_limit_s} s, {self.limit_gbs} GB/s")

    def ready(self, n: int, clean: int, done: int) -> bool:
        return clean >= 1 and done >= n - 1

    def limit_s(self, slowest_s: float) -> float:
        return slowest_s + self.at_limit_s

    def rule(self) -> str:
        return (f"limit that + {self.at_limit_s:.2f} s, what its timed collectives take at {self.limit_gbs:.3g} GB/s: "
                f"it cannot reach the limit")


class PeerWatch:
    """Start and finish times of the ``n`` runs of one round, and which running ones are due to be cut. Thread-safe."""

    def __init__(self, n: int, cut: PeerCut | SlowCut, clock: Callable[[], float] = time.monotonic) -> None:
        self.n = n
        self.cut = cut
        self.clock = clock
        self._started: dict[int, float] = {}
        self._took: dict[int, float] = {}  # finished cleanly: seconds
        self._done: set[int] = set()
        self._cut: dict[int, str] = {}
        self._lock = threading.Lock()

    def started(self, i: int) -> None:
        with self._lock:
            self._started[i] = self.clock()

    def finished(self, i: int, clean: bool) -> None:
        with self._lock:
            self._done.add(i)
            if clean and i in self._started and i not in self._cut:
                self._took[i] = self.clock() - self._started[i]

    @property
    def all_done(self) -> bool:
        with self._lock:
            return len(self._done) >= self.n

    def limit_s(self) -> float | None:
        """The running time past which a run is cut, or None while too few peers finished cleanly."""
        with self._lock:
            return self._limit()

    def _limit(self) -> float | None:
        if self.n < 2 or not self._took or not self.cut.ready(self.n, len(self._took), len(self._done)):
            return None
        return self.cut.limit_s(max(self._took.values()))

    def due(self) -> list[int]:
        """The running runs to cut now (each is returned once); their reasons are in :meth:`reason`."""
        with self._lock:
            limit = self._limit()
            if limit is None:
                return []
            now = self.clock()
            out = []
            for i, t0 in self._started.items():
                if i in self._done or i in self._cut or now - t0 <= limit:
                    continue
                slowest = max(self._took.values())
                self._cut[i] = (f"cut after {now - t0:.1f} s: {len(self._took)} of its {self.n - 1} peer(s) had finished "
                                f"cleanly, the slowest in {slowest:.1f} s ({self.cut.rule()})")
                out.append(i)
            return out

    def reason(self, i: int) -> str | None:
        """Why run ``i`` was cut, or None when it was not."""
        with self._lock:
            return self._cut.get(i)
