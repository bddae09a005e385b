"""Cutting a hung run of a search round once its peers are done, instead of waiting out its whole timeout.

The runs of one round are the same test on disjoint node sets, so they take about the same time. Once at least
half of them have finished cleanly, a run still going after ``factor`` times the slowest clean one (and never
before ``floor_s``) is taken for hung: its processes are ended and it is reported as a hang, with the times that
decided it. A round of one run has no peers and keeps its fixed timeout.

:class:`PeerWatch` is the bookkeeping (pure, clock injected); :meth:`CollectiveRunner.run_many` polls it from a
watcher thread and ends what it says is due.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class PeerCut:
    """``factor`` x the slowest clean peer, at least ``floor_s`` seconds, once half the round finished cleanly."""

    factor: float = 3.0
    floor_s: float = 10.0

    def __post_init__(self) -> None:
        if self.factor < 1.0:
            raise ValueError(f"PeerCut.factor must be >= 1, got {self.factor}")
        if self.floor_s < 0:
            raise ValueError(f"PeerCut.floor_s must be >= 0, got {self.floor_s}")


class PeerWatch:
    """Start and finish times of the ``n`` runs of one round, and which running ones are due to be cut. Thread-safe."""

    def __init__(self, n: int, cut: PeerCut, clock: Callable[[], float] = time.monotonic) -> None:
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
        if self.n < 2 or len(self._took) < math.ceil(self.n / 2):
            return None
        return max(self.cut.floor_s, self.cut.factor * max(self._took.values()))

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
                                f"cleanly, the slowest in {slowest:.1f} s (limit {self.cut.factor:g}x that, at least "
                                f"{self.cut.floor_s:g} s)")
                out.append(i)
            return out

    def reason(self, i: int) -> str | None:
        """Why run ``i`` was cut, or None when it was not."""
        with self._lock:
            return self._cut.get(i)
