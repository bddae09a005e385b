"""Name the slow node when a collective across all nodes is below threshold.

Pairwise-quick (as Meta GCM's ``--pairwise-quick``): test disjoint pairs first (N/2 runs), then re-pair each
member of every slow pair with a node from a healthy pair (two runs per slow pair). A node is slow when every
pair it is in is slow and a pair without it is healthy. Pure: the measurement is a callable, so the logic is
tested without a cluster; the suite passes a function that runs the collective on the pair.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

Pair = tuple[str, str]


@dataclass
class Localization:
    """What the pairwise search measured and concluded."""

    pair_busbw: dict[Pair, float] = field(default_factory=dict)
    limit: float = 0.0
    slow_nodes: list[str] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)

    def explain(self) -> str:
        """One paragraph a person reads at 2 a.m.: the verdict, then every pair measured."""
        lines = []
        if self.slow_nodes:
            lines.append(f"slow node(s): {', '.join(self.slow_nodes)}")
        elif self.unresolved:
            lines.append(f"could not isolate one node; suspects: {', '.join(self.unresolved)}")
        else:
            lines.append("every pair is above the limit: the slowdown needs more than two nodes to show")
        lines.append(f"pairs measured (busbw GB/s at the largest size, limit {self.limit:.3f}):")
        for (a, b), bw in sorted(self.pair_busbw.items()):
            flag = "  SLOW" if bw < self.limit else ""
            lines.append(f"  {a} + {b}: {bw:.3f}{flag}")
        return "\n".join(lines)


def disjoint_pairs(nodes: Sequence[str]) -> list[Pair]:
    """(n1,n2), (n3,n4), ...; an odd last node pairs with the first."""
    pairs = [(nodes[i], nodes[i + 1]) for i in range(0, len(nodes) - 1, 2)]
    if len(nodes) % 2 == 1 and len(nodes) > 1:
        pairs.append((nodes[-1], nodes[0]))
    return pairs


def find_slow_nodes(
    nodes: Sequence[str],
    measure: Callable[[Pair], float],
    limit: float | None = None,
    relative_drop: float = 0.3,
) -> Localization:
    """Find the node(s) that make pairs slow.

    Args:
        nodes: the node names, in inventory order (at least 3 for a verdict).
        measure: returns busbw (GB/s) of a 2-node run of the pair at the largest size.
        limit: a pair below this is slow; when None, ``(1 - relative_drop) * median`` of the first round.
    """
    out = Localization()
    if len(nodes) < 2:
        out.unresolved = list(nodes)
        return out

    def bw(pair: Pair) -> float:
        key = (min(pair), max(pair))
        if key not in out.pair_busbw:
            out.pair_busbw[key] = measure(pair)
        return out.pair_busbw[key]

    first = disjoint_pairs(nodes)
    values = [bw(p) for p in first]
    out.limit = limit if limit is not None else (1.0 - relative_drop) * statistics.median(values)
    slow_pairs = [p for p, v in zip(first, values, strict=True) if v < out.limit]
    healthy = [n for p, v in zip(first, values, strict=True) if v >= out.limit for n in p]
    if not slow_pairs:
        return out
    if not healthy:
        out.unresolved = sorted({n for p in slow_pairs for n in p})
        return out
    reference = healthy[0]
    for pair in slow_pairs:
        slow_with_ref = [n for n in pair if n != reference and bw((reference, n)) < out.limit]
        if slow_with_ref:
            out.slow_nodes.extend(n for n in slow_with_ref if n not in out.slow_nodes)
        else:
            out.unresolved.extend(n for n in pair if n not in out.unresolved)
    return out
