"""What the bad-node search works with: the kind of failure it hunts, one group run's measurement, a judged
round, and the search's conclusion with the evidence per round.

A measurement either carries a number (``busbw_gbs``) or says why there is none (``error``): a group that did
not run, hung or crashed never reports a bandwidth, so nothing downstream can print ``0.000 SLOW`` for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class FailureKind(StrEnum):
    """How the all-node run failed; the search uses the same kind as its test."""

    SLOW = "slow"  # below its bus-bandwidth threshold
    HUNG = "hung"  # did not finish within its timeout
    CRASHED = "crashed"  # non-zero exit, NCCL error, unparsable or cut-off output
    WRONG = "wrong"  # #wrong > 0 (corrupted results)


@dataclass(frozen=True)
class Measurement:
    """One group run (a pair, a half...) as the runner saw it.

    ``failure`` is how the run failed (None when it finished cleanly); ``error`` the one-line reason when it
    failed or did not run at all; ``ran`` is False when it never started (launch error, node unreachable).
    ``busbw_gbs`` is set only for a run that finished and printed the measured size.
    """

    nodes: tuple[str, ...]
    busbw_gbs: float | None = None
    failure: FailureKind | None = None
    error: str | None = None
    ran: bool = True
    seconds: float = 0.0
    log: str | None = None  # the raw log (relative to the run directory when kept there)
    lines: tuple[str, ...] = ()  # the lines quoted from it

    def __post_init__(self) -> None:
        if self.busbw_gbs is None and self.failure is None and self.error is None:
            raise ValueError(f"{'+'.join(self.nodes)}: a measurement without a number must say why (failure or error)")
        if not self.ran and self.error is None:
            raise ValueError(f"{'+'.join(self.nodes)}: a run that did not start must carry its error")

    @property
    def label(self) -> str:
        return "+".join(self.nodes)


@dataclass(frozen=True)
class GroupVerdict:
    """A measurement judged by the search's test."""

    measurement: Measurement
    bad: bool
    why: str  # "busbw 0.012 GB/s < limit 0.050", "hung: timed out after 5 s", "did not run: ..."

    @property
    def nodes(self) -> tuple[str, ...]:
        return self.measurement.nodes

    def line(self) -> str:
        return f"{self.measurement.label}: {self.why}{'  BAD' if self.bad else ''}"


@dataclass(frozen=True)
class Round:
    """Groups that share no node, run at the same time. ``seconds`` is the wall time of the whole round."""

    number: int
    strategy: str  # "pairs", "more pairs", "re-pair", "bisect"
    groups: tuple[GroupVerdict, ...]
    seconds: float

    def lines(self) -> list[str]:
        head = f"round {self.number} ({self.strategy}, {len(self.groups)} run(s) at once, {self.seconds:.2f} s):"
        return [head, *(f"  {g.line()}" for g in self.groups)]


@dataclass
class Localization:
    """The search's conclusion: bad nodes, bad links (two nodes each fine with others, bad together) and what
    stayed unresolved, with every round as evidence."""

    kind: FailureKind
    nodes: tuple[str, ...]
    limit: float | None = None
    rounds: list[Round] = field(default_factory=list)
    bad_nodes: list[str] = field(default_factory=list)
    bad_links: list[tuple[str, str]] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)
    good_nodes: list[str] = field(default_factory=list)
    note: str = ""
    label: str = ""  # what was searched ("all_reduce", "all_reduce rail1"...)

    @property
    def runs(self) -> int:
        return sum(len(r.groups) for r in self.rounds)

    @property
    def seconds(self) -> float:
        return sum(r.seconds for r in self.rounds)

    def evidence_for(self, node: str) -> list[tuple[Round, GroupVerdict]]:
        """Every (round, group) that ``node`` took part in, in order."""
        return [(r, g) for r in self.rounds for g in r.groups if node in g.nodes]

    def verdict_line(self) -> str:
        what = self.label or "search"
        if self.bad_nodes or self.bad_links:
            parts = []
            if self.bad_nodes:
                parts.append(f"bad node(s): {', '.join(self.bad_nodes)}")
            if self.bad_links:
                parts.append(f"bad link(s): {', '.join(f'{a}-{b}' for a, b in self.bad_links)}")
            return f"{what} ({self.kind}): {'; '.join(parts)}"
        if self.unresolved:
            return f"{what} ({self.kind}): could not isolate one node; suspects: {', '.join(self.unresolved)}"
        return f"{what} ({self.kind}): no group showed the fault" + (f" ({self.note})" if self.note else "")

    def explain(self) -> str:
        """What a person reads at 2 a.m.: the verdict, then every round with every group's number or error."""
        limit = f"; limit {self.limit:.3f} GB/s" if self.limit is not None else ""
        lines = [self.verdict_line(), f"{len(self.rounds)} round(s), {self.runs} collective run(s), {self.seconds:.2f} s{limit}"]
        if self.note and (self.bad_nodes or self.bad_links or self.unresolved):
            lines.append(self.note)
        for r in self.rounds:
            lines += r.lines()
        return "\n".join(lines)
