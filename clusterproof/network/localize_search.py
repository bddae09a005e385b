"""The bad-node search, pure: which groups to run in which round, and what their verdicts mean.

The search never launches anything. It hands a round of disjoint node groups to ``run_round`` (the search's
own interface: one :class:`Measurement` back per group, in order; the groups share no node, so a real runner
starts them all at once and the round costs the wall time of one run) and judges what comes back.

Strategies:

* **pairs** (Meta GCM's ``--pairwise-quick``, run concurrently): round 1 runs the N/2 disjoint pairs at once.
  When no pair is bad, further rounds of a round-robin schedule pair every node with new partners (a bad
  *link* shows only when its two ends are paired). Then every suspect (a node of a bad pair) is re-paired with
  a known-good node, all in one round. A suspect that is bad with a good node is a bad node; a bad pair whose
  two nodes are both fine with good nodes is a bad link.
* **bisect** (hang or crash only): run the two halves of the suspect set at once; the half that fails holds the
  bad node. Chosen by ``strategy="auto"`` when it needs fewer rounds than pairs, which happens when
  ``max_concurrent`` caps the runs per round below N/2.
* :func:`exhaustive`: every one of the N(N-1)/2 pairs (GCM's ``--pairwise-exhaustive``), the reference.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence

from clusterproof.network.localize_model import FailureKind, GroupVerdict, Localization, Measurement, Round

Group = tuple[str, ...]
RoundRunner = Callable[[Sequence[Group]], Sequence[Measurement]]
STRATEGIES = ("auto", "pairs", "bisect")


def disjoint_pairs(nodes: Sequence[str]) -> list[tuple[str, str]]:
    """(n1,n2), (n3,n4), ...; an odd last node is left out (it is re-paired in the next round)."""
    return [(nodes[i], nodes[i + 1]) for i in range(0, len(nodes) - 1, 2)]


def round_robin(nodes: Sequence[str]) -> list[list[tuple[str, str]]]:
    """A round-robin schedule (circle method): N-1 rounds (N for odd N) of disjoint pairs that together hold
    every pair exactly once. Round 0 is :func:`disjoint_pairs`."""
    names: list[str | None] = list(nodes) + ([None] if len(nodes) % 2 else [])
    n = len(names)
    items: list[str | None] = [None] * n
    for i in range(n // 2):  # circle round 0 pairs positions (i, n-1-i): put natural neighbours there
        items[i], items[n - 1 - i] = names[2 * i], names[2 * i + 1]
    order = {name: k for k, name in enumerate(nodes)}
    rounds = []
    for _ in range(n - 1):
        pairs = [(items[i], items[n - 1 - i]) for i in range(n // 2)]
        real = [(a, b) if order[a] < order[b] else (b, a) for a, b in pairs if a is not None and b is not None]
        rounds.append(sorted(real, key=lambda p: order[p[0]]))
        items = [items[0], items[-1], *items[1:-1]]
    return rounds


def _waves(count: int, cap: int | None) -> int:
    return 1 if not cap else max(1, math.ceil(count / cap))


def rounds_needed(strategy: str, n: int, cap: int | None) -> int:
    """Rounds to name one bad node among ``n`` with at most ``cap`` runs per round."""
    if strategy == "pairs":
        return _waves(n // 2, cap) + 1
    halvings, size = 0, n
    while size >= 4:
        size = math.ceil(size / 2)
        halvings += 1
    return halvings * _waves(2, cap) + 1


def choose_strategy(kind: FailureKind, n: int, cap: int | None, strategy: str = "auto") -> str:
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if strategy != "auto":
        return strategy
    if kind in (FailureKind.HUNG, FailureKind.CRASHED) and rounds_needed("bisect", n, cap) < rounds_needed("pairs", n, cap):
        return "bisect"
    return "pairs"


def judge(m: Measurement, kind: FailureKind, limit: float | None) -> GroupVerdict:
    """The search's test: a group is bad when it did not run, failed in any way, or (slow search) measured
    below ``limit``. A group without a number never gets one."""
    if not m.ran:
        return GroupVerdict(m, True, f"did not run: {m.error}")
    if m.failure is not None:
        return GroupVerdict(m, True, f"{m.failure}: {m.error}" if m.error else str(m.failure))
    if m.busbw_gbs is None:
        return GroupVerdict(m, True, f"no result: {m.error}")
    if kind is FailureKind.SLOW and limit is not None:
        bad = m.busbw_gbs < limit
        return GroupVerdict(m, bad, f"busbw {m.busbw_gbs:.3f} GB/s {'<' if bad else '>='} limit {limit:.3f}")
    return GroupVerdict(m, False, f"ok (busbw {m.busbw_gbs:.3f} GB/s)")


class _Search:
    def __init__(self, out: Localization, run_round: RoundRunner, cap: int | None, relative_drop: float,
                 clock: Callable[[], float]) -> None:
        self.out = out
        self.run_round = run_round
        self.cap = cap
        self.relative_drop = relative_drop
        self.clock = clock
        self.good: list[str] = []
        self.tested: dict[frozenset[str], GroupVerdict] = {}

    def mark_good(self, nodes: Sequence[str]) -> None:
        self.good.extend(n for n in nodes if n not in self.good)

    def round(self, groups: Sequence[Group], strategy: str) -> list[GroupVerdict]:
        """Run ``groups`` (disjoint) in as few rounds as the cap allows; judge and record each."""
        verdicts: list[GroupVerdict] = []
        step = self.cap or max(1, len(groups))
        waves: list[tuple[list[Measurement], float]] = []
        for i in range(0, len(groups), step):
            wave = list(groups[i : i + step])
            t0 = self.clock()
            measured = list(self.run_round(wave))
            seconds = self.clock() - t0
            if len(measured) != len(wave) or any(m.nodes != tuple(g) for m, g in zip(measured, wave, strict=False)):
                raise ValueError(f"run_round returned {len(measured)} measurement(s) for {len(wave)} group(s), or out of order")
            waves.append((measured, seconds))
        if self.out.kind is FailureKind.SLOW and self.out.limit is None:
            # the relative limit comes from every group of the first round, however many waves the cap made of it
            # (one wave of one pair would make a bad first pair the norm)
            numbers = [m.busbw_gbs for measured, _ in waves for m in measured if m.busbw_gbs is not None and m.failure is None]
            if numbers:
                self.out.limit = (1.0 - self.relative_drop) * statistics.median(numbers)
        for measured, seconds in waves:
            judged = [judge(m, self.out.kind, self.out.limit) for m in measured]
            self.out.rounds.append(Round(len(self.out.rounds) + 1, strategy, tuple(judged), seconds))
            for g in judged:
                self.tested[frozenset(g.nodes)] = g
                if not g.bad:
                    self.mark_good(g.nodes)
            verdicts += judged
        return verdicts

    # ------------------------------------------------------------------ pairs

    def pairs(self, nodes: Sequence[str]) -> None:
        bad = [g for g in self.round(disjoint_pairs(nodes), "pairs") if g.bad]
        if not bad:
            for schedule in round_robin(nodes)[1:]:
                fresh = [p for p in schedule if frozenset(p) not in self.tested]
                if fresh:
                    bad = [g for g in self.round(fresh, "more pairs") if g.bad]
                    if bad:
                        break
        if not bad:
            self.out.note = "every pair passed: the fault needs more than two nodes to show"
            return
        self.resolve(bad, [n for n in nodes if not any(frozenset((n, m)) in self.tested for m in nodes if m != n)])

    def resolve(self, bad: Sequence[GroupVerdict], untested: Sequence[str] = ()) -> None:
        """Re-pair the suspects of the bad groups (and nodes never tested) with known-good nodes; conclude."""
        suspects: list[str] = []
        for g in bad:
            suspects.extend(n for n in g.nodes if n not in suspects)
        todo = [n for n in [*suspects, *untested] if n not in self.good]
        todo = list(dict.fromkeys(todo))
        if todo and not self.good:
            self.out.unresolved = suspects
            self.out.note = "every group failed: no node is known good to re-pair the suspects with"
            return
        bad_alone: set[str] = set()
        while todo:
            partners = [g for g in self.good if g not in todo][: len(todo)]
            if not partners:
                self.out.unresolved = suspects
                return
            batch, todo = todo[: len(partners)], todo[len(partners) :]
            for v in self.round([(s, p) for s, p in zip(batch, partners, strict=False)], "re-pair"):
                if v.bad:
                    bad_alone.add(v.nodes[0])
        links: list[tuple[str, str]] = []
        for g in bad:
            culprits = [n for n in g.nodes if n in bad_alone]
            if culprits:
                self.out.bad_nodes.extend(n for n in culprits if n not in self.out.bad_nodes)
            elif len(g.nodes) == 2:
                link = (g.nodes[0], g.nodes[1])
                if link not in links:
                    links.append(link)
            else:
                self.out.unresolved.extend(n for n in g.nodes if n not in self.out.unresolved)
        self.out.bad_nodes.extend(n for n in untested if n in bad_alone and n not in self.out.bad_nodes)
        self.confirm_links(links)

    def confirm_links(self, links: Sequence[tuple[str, str]]) -> None:
        """Run every candidate link once more (disjoint ones at once): two nodes fine with others are a bad link
        only when they fail together again; a pair that passes the second time was a transient dip."""
        todo = list(links)
        while todo:
            used: set[str] = set()
            wave = []
            for link in todo:
                if not used & set(link):
                    wave.append(link)
                    used.update(link)
            todo = [x for x in todo if x not in wave]
            for v in self.round(wave, "confirm"):
                link = (v.nodes[0], v.nodes[1])
                if v.bad:
                    self.out.bad_links.append(link)
                else:
                    self.out.note = (self.out.note + "; " if self.out.note else "") + (
                        f"{link[0]}+{link[1]} failed once but passed when run again: a transient dip, not a bad link")

    # ------------------------------------------------------------------ bisect

    def bisect(self, nodes: Sequence[str]) -> None:
        suspects = list(nodes)
        while len(suspects) >= 4:
            half = math.ceil(len(suspects) / 2)
            a, b = self.round([tuple(suspects[:half]), tuple(suspects[half:])], "bisect")
            if a.bad == b.bad:  # two bad nodes, or a fault that needs nodes of both halves
                self.out.note = f"bisection stopped: both halves {'failed' if a.bad else 'passed'}; pairs from here"
                self.pairs(suspects)
                return
            suspects = list((a if a.bad else b).nodes)
        # every halving had one good half, so known-good partners exist (localize bisects 4 nodes or more only)
        self.resolve([GroupVerdict(Measurement(tuple(suspects), error="failing half"), True, "failing half")])


def localize(
    nodes: Sequence[str],
    kind: FailureKind,
    run_round: RoundRunner,
    *,
    limit: float | None = None,
    relative_drop: float = 0.3,
    strategy: str = "auto",
    max_concurrent: int | None = None,
    label: str = "",
    clock: Callable[[], float] = time.monotonic,
) -> Localization:
    """Find the node(s) or link(s) behind an all-node failure of ``kind``.

    Args:
        nodes: node names in inventory order.
        kind: how the all-node run failed; ``run_round`` must run the matching test (short timeouts for a hang,
            validation on for wrong results).
        run_round: runs disjoint groups at once and returns one Measurement per group, in order.
        limit: for a slow search, a group below it is bad; None: ``(1 - relative_drop) x`` the median of round 1.
        strategy: ``auto`` (bisect for hang/crash when it needs fewer rounds), ``pairs`` or ``bisect``.
        max_concurrent: at most this many runs per round (None: all groups of a round at once; 1: one after
            another, which is the sequential pairwise search).
    """
    if max_concurrent is not None and max_concurrent < 1:
        raise ValueError(f"max_concurrent must be >= 1 or None, got {max_concurrent}")
    out = Localization(kind, tuple(nodes), limit, label=label)
    if len(nodes) < 2:
        out.unresolved = list(nodes)
        out.note = "a search needs at least 2 nodes"
        return out
    search = _Search(out, run_round, max_concurrent, relative_drop, clock)
    if len(nodes) < 4 or choose_strategy(kind, len(nodes), max_concurrent, strategy) == "pairs":
        search.pairs(nodes)
    else:
        search.bisect(nodes)
    out.good_nodes = [n for n in nodes if n in search.good and n not in out.bad_nodes]
    return out


def exhaustive(
    nodes: Sequence[str],
    kind: FailureKind,
    run_round: RoundRunner,
    *,
    limit: float | None = None,
    relative_drop: float = 0.3,
    max_concurrent: int | None = 1,
    label: str = "",
    clock: Callable[[], float] = time.monotonic,
) -> Localization:
    """Every pair (N(N-1)/2 runs; one at a time by default). A node is bad when every pair it is in is bad and
    some pair without it is good; a bad pair of two otherwise good nodes is a bad link."""
    out = Localization(kind, tuple(nodes), limit, label=label)
    search = _Search(out, run_round, max_concurrent, relative_drop, clock)
    for schedule in round_robin(nodes):
        search.round([p for p in schedule if frozenset(p) not in search.tested], "exhaustive")
    for n in nodes:
        mine = [g for key, g in search.tested.items() if n in key]
        if mine and all(g.bad for g in mine) and any(not g.bad for key, g in search.tested.items() if n not in key):
            out.bad_nodes.append(n)
    for g in search.tested.values():
        a, b = g.nodes
        if g.bad and a not in out.bad_nodes and b not in out.bad_nodes:
            out.bad_links.append((a, b))
    out.good_nodes = [n for n in nodes if n not in out.bad_nodes]
    return out
